//! `group`: a local group with this gid (when given), made with `groupadd` and changed with
//! `groupmod`; or with `state = "absent"` removed with `groupdel`. Read from `getent group`.

use super::state::State;
use super::user::valid_name;
use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    pub gid: Option<u32>,
    /// A system group (`groupadd -r`). Only on creation.
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub state: State,
}

impl Kind for Spec {
    const NAME: &'static str = "group";

    fn target(&self) -> String {
        self.name.clone()
    }

    fn prepare(&self, _cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        valid_name("group", &self.name)?;
        Ok(Box::new(self.clone()))
    }
}

impl StepKind for Spec {
    fn probe(&self, _check: bool) -> Option<String> {
        let n = quote(&self.name);
        Some(format!(
            "if ent=$(getent group {n}); then printf 'group=%s\\n' \"$ent\"; else echo group=; fi"
        ))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        let name = &self.name;
        // name:x:gid:members
        let entry = p.field("group").unwrap_or("");
        let gid = entry.split(':').nth(2).unwrap_or("");
        match (self.state, entry.is_empty(), self.gid) {
            (State::Absent, true, _) => Decision::Ok(format!("group {name} absent")),
            (State::Absent, false, _) => Decision::change(format!("remove group {name}")),
            (State::Present, true, _) => Decision::change(format!("create group {name}")),
            (State::Present, false, Some(want)) if gid != want.to_string() => {
                Decision::change(format!("group {name}: gid {gid} → {want}"))
            }
            (State::Present, false, _) => Decision::Ok(format!("group {name} exists")),
        }
    }

    fn apply(&self) -> Action {
        let n = quote(&self.name);
        let gid = self.gid.map(|g| format!(" -g {g}")).unwrap_or_default();
        let system = if self.system { " -r" } else { "" };
        let script = match self.state {
            State::Absent => {
                format!("set -e\nif getent group {n} >/dev/null; then groupdel {n}; fi\n")
            }
            State::Present => format!(
                "set -e\nif getent group {n} >/dev/null; then {modify}; else groupadd{system}{gid} {n}; fi\n",
                modify = if gid.is_empty() {
                    ":".to_string()
                } else {
                    format!("groupmod{gid} {n}")
                },
            ),
        };
        Action::script(script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(gid: Option<u32>, state: State) -> Spec {
        Spec {
            name: "web".into(),
            gid,
            system: false,
            state,
        }
    }

    #[test]
    fn decides_from_getent() {
        let none = Probe::with_out("group=\n");
        let there = Probe::with_out("group=web:x:1200:a,b\n");
        let g = spec(Some(1200), State::Present);
        assert_eq!(g.decide(Some(&none)), Decision::change("create group web"));
        assert!(matches!(g.decide(Some(&there)), Decision::Ok(_)));
        assert_eq!(
            spec(Some(1300), State::Present).decide(Some(&there)),
            Decision::change("group web: gid 1200 → 1300")
        );
        assert!(matches!(
            spec(None, State::Present).decide(Some(&there)),
            Decision::Ok(_)
        ));
        let gone = spec(None, State::Absent);
        assert!(matches!(gone.decide(Some(&none)), Decision::Ok(_)));
        assert_eq!(
            gone.decide(Some(&there)),
            Decision::change("remove group web")
        );
    }

    #[test]
    fn apply_scripts() {
        let s = spec(Some(1300), State::Present).apply().script;
        assert!(
            s.contains("then groupmod -g 1300 web; else groupadd -g 1300 web; fi"),
            "{s}"
        );
        let s = spec(None, State::Absent).apply().script;
        assert!(s.contains("groupdel web"), "{s}");
    }
}
