//! `user`: a local account with this uid, primary group, supplementary groups, shell and home
//! (each only when given), made with `useradd` and changed with `usermod`; or with
//! `state = "absent"` removed with `userdel` (its home is kept: it may hold data).
//!
//! The probe reads the account from `getent passwd` and its groups from `id`, so it works the
//! same with files, LDAP or sssd behind NSS.

use super::state::State;
use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    pub uid: Option<u32>,
    /// The primary group (it must exist; without it useradd makes one named after the user).
    pub group: Option<String>,
    /// Exactly these supplementary groups, when given (`[]`: none).
    pub groups: Option<Vec<String>>,
    pub shell: Option<String>,
    pub home: Option<String>,
    /// A system account (`useradd -r`: a uid below UID_MIN, no home made). Only on creation.
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub state: State,
}

impl Kind for Spec {
    const NAME: &'static str = "user";

    fn target(&self) -> String {
        self.name.clone()
    }

    fn prepare(&self, _cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Ok(Box::new(Desired::prepare(self)?))
    }
}

/// A user or group name that `useradd`/`groupadd` take and no tool reads as an option.
pub fn valid_name(what: &str, name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = name
        .trim_end_matches('$')
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && name.len() <= 32 {
        Ok(())
    } else {
        Err(format!(
            "{what} name `{name}` must start with a lowercase letter or `_` and hold only lowercase letters, digits, `_` and `-` (at most 32)"
        ))
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    spec: Spec,
}

impl Desired {
    pub fn prepare(spec: &Spec) -> Result<Desired, String> {
        valid_name("user", &spec.name)?;
        for g in spec.group.iter().chain(spec.groups.iter().flatten()) {
            valid_name("group", g)?;
        }
        for (field, path) in [("shell", &spec.shell), ("home", &spec.home)] {
            if let Some(p) = path
                && !p.starts_with('/')
            {
                return Err(format!("{field} `{p}` must be an absolute path"));
            }
        }
        Ok(Desired { spec: spec.clone() })
    }

    /// What differs from the account the probe found, as words for the summary.
    fn changes(&self, p: &Probe, passwd: &str) -> Vec<String> {
        // name:x:uid:gid:gecos:home:shell
        let f: Vec<&str> = passwd.split(':').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or("");
        let mut out = Vec::new();
        let mut differs = |what: &str, now: &str, want: Option<&str>| {
            if let Some(want) = want
                && now != want
            {
                out.push(format!("{what} {now} → {want}"));
            }
        };
        let uid = self.spec.uid.map(|u| u.to_string());
        differs("uid", field(2), uid.as_deref());
        differs("home", field(5), self.spec.home.as_deref());
        differs("shell", field(6), self.spec.shell.as_deref());
        let primary = p.field("primary").unwrap_or("");
        differs("group", primary, self.spec.group.as_deref());
        if let Some(want) = &self.spec.groups {
            let want: BTreeSet<&str> = want.iter().map(String::as_str).collect();
            let now = supplementary(p);
            if now != want {
                out.push(format!("groups {} → {}", join(&now), join(&want)));
            }
        }
        out
    }

    /// The options useradd and usermod share, for the fields given.
    fn options(&self) -> String {
        let s = &self.spec;
        let mut o = String::new();
        if let Some(uid) = s.uid {
            o.push_str(&format!(" -u {uid}"));
        }
        if let Some(g) = &s.group {
            o.push_str(&format!(" -g {}", quote(g)));
        }
        if let Some(gs) = &s.groups {
            o.push_str(&format!(" -G {}", quote(&gs.join(","))));
        }
        if let Some(sh) = &s.shell {
            o.push_str(&format!(" -s {}", quote(sh)));
        }
        if let Some(h) = &s.home {
            o.push_str(&format!(" -d {}", quote(h)));
        }
        o
    }
}

/// The groups from `id -Gn` other than the primary one.
fn supplementary(p: &Probe) -> BTreeSet<&str> {
    let primary = p.field("primary").unwrap_or("");
    p.field("groups")
        .unwrap_or("")
        .split_whitespace()
        .filter(|g| *g != primary)
        .collect()
}

fn join(set: &BTreeSet<&str>) -> String {
    if set.is_empty() {
        "(none)".into()
    } else {
        set.iter().copied().collect::<Vec<_>>().join(",")
    }
}

impl StepKind for Desired {
    fn probe(&self, _check: bool) -> Option<String> {
        let n = quote(&self.spec.name);
        Some(format!(
            "if ent=$(getent passwd {n}); then printf 'passwd=%s\\nprimary=%s\\ngroups=%s\\n' \"$ent\" \"$(id -gn {n})\" \"$(id -Gn {n})\"; else echo passwd=; fi"
        ))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        let name = &self.spec.name;
        let passwd = p.field("passwd").unwrap_or("");
        match (self.spec.state, passwd.is_empty()) {
            (State::Absent, true) => Decision::Ok(format!("user {name} absent")),
            (State::Absent, false) => Decision::change(format!("remove user {name}")),
            (State::Present, true) => Decision::change(format!("create user {name}")),
            (State::Present, false) => {
                let changes = self.changes(&p, passwd);
                if changes.is_empty() {
                    Decision::Ok(format!("user {name} up to date"))
                } else {
                    Decision::change(format!("user {name}: {}", changes.join(", ")))
                }
            }
        }
    }

    fn apply(&self) -> Action {
        let n = quote(&self.spec.name);
        let script = match self.spec.state {
            State::Absent => {
                format!("set -e\nif getent passwd {n} >/dev/null; then userdel {n}; fi\n")
            }
            State::Present => {
                let create = if self.spec.system { " -r" } else { " -m" };
                let o = self.options();
                format!(
                    "set -e\nif getent passwd {n} >/dev/null; then\n\
                     {modify}\
                     else useradd{create}{o} {n}; fi\n",
                    modify = if o.is_empty() {
                        ":\n".to_string()
                    } else {
                        format!("usermod{o} {n}\n")
                    },
                )
            }
        };
        Action::script(script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            name: "app".into(),
            uid: Some(1500),
            group: None,
            groups: Some(vec!["adm".into(), "docker".into()]),
            shell: Some("/bin/bash".into()),
            home: None,
            system: false,
            state: State::Present,
        }
    }

    #[test]
    fn decides_from_passwd_and_groups() {
        let d = Desired::prepare(&spec()).unwrap();
        let none = Probe::with_out("passwd=\n");
        assert_eq!(d.decide(Some(&none)), Decision::change("create user app"));
        let same = Probe::with_out(
            "passwd=app:x:1500:1500::/home/app:/bin/bash\nprimary=app\ngroups=app docker adm\n",
        );
        assert!(matches!(d.decide(Some(&same)), Decision::Ok(_)));
        let other = Probe::with_out(
            "passwd=app:x:1501:1500::/home/app:/bin/sh\nprimary=app\ngroups=app adm\n",
        );
        assert_eq!(
            d.decide(Some(&other)),
            Decision::change(
                "user app: uid 1501 → 1500, shell /bin/sh → /bin/bash, groups adm → adm,docker"
            )
        );
        let gone = Desired::prepare(&Spec {
            state: State::Absent,
            ..spec()
        })
        .unwrap();
        assert!(matches!(gone.decide(Some(&none)), Decision::Ok(_)));
        assert_eq!(
            gone.decide(Some(&same)),
            Decision::change("remove user app")
        );
    }

    #[test]
    fn apply_adds_or_modifies_with_the_given_fields() {
        let s = Desired::prepare(&spec()).unwrap().apply().script;
        assert!(
            s.contains("usermod -u 1500 -G adm,docker -s /bin/bash app\n"),
            "{s}"
        );
        assert!(
            s.contains("useradd -m -u 1500 -G adm,docker -s /bin/bash app;"),
            "{s}"
        );
    }

    #[test]
    fn names_that_tools_would_misread_are_refused() {
        assert!(valid_name("user", "-o").is_err());
        assert!(valid_name("user", "App").is_err());
        assert!(valid_name("user", "a b").is_err());
        assert!(valid_name("user", "").is_err());
        assert!(valid_name("user", "svc_app-1").is_ok());
        let bad = Spec {
            shell: Some("bash".into()),
            ..spec()
        };
        assert!(Desired::prepare(&bad).is_err());
    }
}
