//! `systemd`: a unit in /etc/systemd/system (from inline `content` or a template `src`, when
//! given), enabled or not, started, stopped, or restarted when its file changed.
//!
//! The unit file is written like `file` (an [`Upload`]: sha256 probe, staged write, diff in
//! plan). `systemctl daemon-reload` runs exactly when the file changed: the apply compares its
//! sha256 before and after the write on the host, so a rerun whose file is unchanged never
//! reloads. The probe prints the systemctl fields first: the upload's fetched content (for the
//! diff) runs to the end of the output.

use super::upload::Upload;
use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};

const UNIT_DIR: &str = "/etc/systemd/system";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The unit's name with its type, e.g. `app.service`.
    pub name: String,
    /// The unit file's text (not with `src`).
    pub content: Option<String>,
    /// A template for the unit file, relative to the project (not with `content`).
    pub src: Option<String>,
    /// Enabled at boot (`systemctl enable`) or not; unmanaged when left out.
    pub enabled: Option<bool>,
    /// Running or not; unmanaged when left out.
    pub state: Option<UnitState>,
}

/// What the unit should be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitState {
    /// Running (started when it is not; a changed unit file is loaded at its next start).
    Started,
    Stopped,
    /// Running, and restarted whenever its unit file changed.
    Restarted,
}

impl<'de> Deserialize<'de> for UnitState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<UnitState, D::Error> {
        use UnitState::*;
        let names = &["started", "stopped", "restarted"];
        super::state::one_of(d, names, &[Started, Stopped, Restarted])
    }
}

impl Kind for Spec {
    const NAME: &'static str = "systemd";

    fn target(&self) -> String {
        self.name.clone()
    }

    fn template_file(&self) -> Option<&str> {
        self.src.as_deref()
    }

    /// The unit file's text is uploaded on stdin (and never shown when it holds a secret).
    fn on_stdin(&self, field: &str) -> bool {
        field == "content"
    }

    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        valid_unit(&self.name)?;
        let path = format!("{UNIT_DIR}/{}", self.name);
        let unit = match (&self.content, &self.src) {
            (Some(_), Some(_)) => {
                return Err(PrepareError::Invalid(
                    "systemd takes `content` or `src`, not both".into(),
                ));
            }
            (Some(text), None) => Some(
                Upload::new(&path, text.clone().into_bytes(), "644", None, None)?
                    .hidden_if_secret(cx.secrets.redactor()),
            ),
            (None, Some(src)) => {
                let spec = super::template::Spec {
                    src: src.clone(),
                    dest: path,
                    mode: None,
                    owner: None,
                    group: None,
                };
                Some(super::template::prepare(&spec, cx)?)
            }
            (None, None) => None,
        };
        Ok(Box::new(Desired {
            name: self.name.clone(),
            unit,
            enabled: self.enabled,
            state: self.state,
        }))
    }
}

/// A unit name systemctl takes and no tool reads as an option: `name.type`.
fn valid_unit(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ":_.@-\\".contains(c));
    let typed = name.rsplit_once('.').is_some_and(|(b, t)| {
        !b.is_empty() && !t.is_empty() && t.chars().all(|c| c.is_ascii_lowercase())
    });
    if ok_chars && typed && !name.starts_with('-') {
        Ok(())
    } else {
        Err(format!(
            "unit name `{name}` must be like `app.service`: letters, digits and `:_.@-`, then `.<type>`"
        ))
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    name: String,
    unit: Option<Upload>,
    enabled: Option<bool>,
    state: Option<UnitState>,
}

impl Desired {
    /// What the unit file needs: None when it is as desired (or not managed).
    fn unit_change(&self, p: &Probe) -> Result<Option<Decision>, String> {
        let Some(unit) = &self.unit else {
            return Ok(None);
        };
        match unit.decide(Some(p)) {
            Decision::Ok(_) => Ok(None),
            Decision::Fail(e) => Err(e),
            change => Ok(Some(change)),
        }
    }

    /// The systemctl changes, given whether the unit file changes in this run.
    fn service_changes(&self, p: &Probe, file_changes: bool) -> Vec<String> {
        let mut out = Vec::new();
        let enabled = p.field("enabled").unwrap_or("");
        match self.enabled {
            Some(true) if enabled != "enabled" => out.push("enable".to_string()),
            Some(false) if enabled == "enabled" => out.push("disable".to_string()),
            _ => {}
        }
        let active = p.field("active") == Some("active");
        match self.state {
            Some(UnitState::Started | UnitState::Restarted) if !active => out.push("start".into()),
            Some(UnitState::Restarted) if file_changes => out.push("restart".into()),
            Some(UnitState::Stopped) if active => out.push("stop".into()),
            _ => {}
        }
        out
    }

    /// The systemctl lines of the apply; `$changed` is 1 when the unit file just changed.
    fn systemctl_sh(&self) -> String {
        let n = quote(&self.name);
        let mut s = String::from("if [ \"$changed\" = 1 ]; then systemctl daemon-reload; fi\n");
        match self.enabled {
            Some(true) => s.push_str(&format!("systemctl enable {n}\n")),
            Some(false) => s.push_str(&format!("systemctl disable {n}\n")),
            None => {}
        }
        match self.state {
            Some(UnitState::Started) => s.push_str(&format!("systemctl start {n}\n")),
            Some(UnitState::Stopped) => s.push_str(&format!("systemctl stop {n}\n")),
            Some(UnitState::Restarted) => s.push_str(&format!(
                "if [ \"$changed\" = 1 ]; then systemctl restart {n}; else systemctl start {n}; fi\n"
            )),
            None => {}
        }
        s
    }
}

impl StepKind for Desired {
    fn probe(&self, check: bool) -> Option<String> {
        let n = quote(&self.name);
        let mut s = format!(
            "if [ -d /run/systemd/system ]; then echo systemd=ok; fi\n\
             printf 'active=%s\\nenabled=%s\\n' \"$(systemctl is-active {n} 2>/dev/null)\" \"$(systemctl is-enabled {n} 2>/dev/null)\"\n"
        );
        if let Some(unit) = &self.unit {
            s.push_str(&unit.probe(check));
        }
        Some(s)
    }

    fn outputs(&self) -> Vec<String> {
        self.unit.iter().map(|u| u.dest.clone()).collect()
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        if p.field("systemd") != Some("ok") {
            return Decision::Fail(format!(
                "systemd does not run on this host: {} cannot be managed",
                self.name
            ));
        }
        let unit = match self.unit_change(&p) {
            Ok(u) => u,
            Err(e) => return Decision::Fail(e),
        };
        let mut summary = Vec::new();
        let mut diff = None;
        if let Some(Decision::Change {
            summary: s,
            diff: d,
        }) = &unit
        {
            summary.push(format!("{s}, daemon-reload"));
            diff = d.clone();
        }
        summary.extend(self.service_changes(&p, unit.is_some()));
        if summary.is_empty() {
            return Decision::Ok(format!("{} as desired", self.name));
        }
        Decision::Change {
            summary: summary.join(", "),
            diff,
        }
    }

    /// The unit file's write (the upload's staged write, in a subshell so its traps and exit
    /// stay its own) between two sha256s of it, then systemctl.
    fn apply(&self) -> Action {
        let mut action = match &self.unit {
            Some(unit) => {
                let upload = unit.apply();
                let f = quote(&unit.dest);
                Action {
                    script: format!(
                        "set -e\nsum() {{ {{ sha256sum < {f}; }} 2>/dev/null | cut -c1-64; }}\n\
                         before=$(sum)\n(\n{}\n)\nchanged=0; [ \"$(sum)\" = \"$before\" ] || changed=1\n",
                        upload.script
                    ),
                    ..upload
                }
            }
            None => Action::script("set -e\nchanged=0\n".into()),
        };
        action.script.push_str(&self.systemctl_sh());
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(state: Option<UnitState>, enabled: Option<bool>) -> Desired {
        Desired {
            name: "app.service".into(),
            unit: Some(
                Upload::new(
                    "/etc/systemd/system/app.service",
                    b"[Service]\nExecStart=/bin/true\n".to_vec(),
                    "644",
                    None,
                    None,
                )
                .unwrap(),
            ),
            enabled,
            state,
        }
    }

    fn probe(d: &Desired, active: &str, enabled: &str, same_file: bool) -> Probe {
        let sha = if same_file {
            d.unit.as_ref().unwrap().sha256.clone()
        } else {
            "00".into()
        };
        Probe::with_out(format!(
            "systemd=ok\nactive={active}\nenabled={enabled}\nstate=file\nmode=644\nowner=root\ngroup=root\nsha256={sha}\n"
        ))
    }

    #[test]
    fn decides_file_enable_and_state_together() {
        let d = desired(Some(UnitState::Restarted), Some(true));
        assert!(matches!(
            d.decide(Some(&probe(&d, "active", "enabled", true))),
            Decision::Ok(_)
        ));
        let fresh = Probe::with_out("systemd=ok\nactive=inactive\nenabled=\nstate=missing\n");
        match d.decide(Some(&fresh)) {
            Decision::Change { summary, .. } => assert_eq!(
                summary,
                "create /etc/systemd/system/app.service (30 bytes), daemon-reload, enable, start"
            ),
            other => panic!("{other:?}"),
        }
        let changed = probe(&d, "active", "enabled", false);
        match d.decide(Some(&changed)) {
            Decision::Change { summary, .. } => assert_eq!(
                summary,
                "update /etc/systemd/system/app.service, daemon-reload, restart"
            ),
            other => panic!("{other:?}"),
        }
        // `started` leaves a running unit alone when only its file changed.
        let started = desired(Some(UnitState::Started), None);
        match started.decide(Some(&probe(&started, "active", "enabled", false))) {
            Decision::Change { summary, .. } => {
                assert_eq!(
                    summary,
                    "update /etc/systemd/system/app.service, daemon-reload"
                )
            }
            other => panic!("{other:?}"),
        }
        let stop = desired(Some(UnitState::Stopped), Some(false));
        assert_eq!(
            stop.decide(Some(&probe(&stop, "active", "enabled", true))),
            Decision::change("disable, stop")
        );
    }

    #[test]
    fn without_systemd_the_step_fails() {
        let d = desired(None, None);
        let p = Probe::with_out("active=\nenabled=\nstate=missing\n");
        assert!(matches!(d.decide(Some(&p)), Decision::Fail(_)));
    }

    #[test]
    fn apply_reloads_only_when_the_file_changed() {
        let s = desired(Some(UnitState::Restarted), Some(true))
            .apply()
            .script;
        let write = s.find("mv -f -- ./upload").unwrap();
        let after = s.find("[ \"$(sum)\" = \"$before\" ] || changed=1").unwrap();
        let reload = s
            .find("if [ \"$changed\" = 1 ]; then systemctl daemon-reload; fi\n")
            .unwrap();
        assert!(write < after && after < reload, "{s}");
        assert!(s.ends_with(
            "systemctl enable app.service\n\
             if [ \"$changed\" = 1 ]; then systemctl restart app.service; else systemctl start app.service; fi\n"
        ), "{s}");
        let bare = Desired {
            unit: None,
            ..desired(Some(UnitState::Stopped), None)
        };
        assert_eq!(
            bare.apply().script,
            "set -e\nchanged=0\nif [ \"$changed\" = 1 ]; then systemctl daemon-reload; fi\nsystemctl stop app.service\n"
        );
    }

    /// The apply's bookkeeping in a real shell, with a stand-in `systemctl` on PATH that logs
    /// its arguments: a second run with the same file neither reloads nor restarts.
    #[test]
    fn apply_script_runs_and_reloads_once() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = dir.path().join("log");
        let fake = bin.join("systemctl");
        std::fs::write(
            &fake,
            format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let unit = dir.path().join("units/app.service");
        let d = Desired {
            unit: Some(
                Upload::new(
                    unit.to_str().unwrap(),
                    b"[Unit]\n".to_vec(),
                    "644",
                    None,
                    None,
                )
                .unwrap(),
            ),
            ..desired(Some(UnitState::Restarted), Some(true))
        };
        let run = || {
            use std::io::Write;
            let a = d.apply();
            let mut child = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&a.script)
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            for part in &a.stdin_shared {
                stdin.write_all(part).unwrap();
            }
            drop(stdin);
            assert!(child.wait().unwrap().success());
        };
        run();
        run();
        assert_eq!(std::fs::read_to_string(&unit).unwrap(), "[Unit]\n");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "daemon-reload\nenable app.service\nrestart app.service\n\
             enable app.service\nstart app.service\n"
        );
    }

    /// Its text is uploaded on stdin, so a secret may be in it; everything else is in a script.
    #[test]
    fn only_content_travels_on_stdin() {
        let spec = Spec {
            name: "app.service".into(),
            content: Some("x".into()),
            src: None,
            enabled: None,
            state: None,
        };
        assert!(Kind::on_stdin(&spec, "content"));
        assert!(!Kind::on_stdin(&spec, "name"));
    }

    #[test]
    fn unit_names() {
        assert!(valid_unit("app.service").is_ok());
        assert!(valid_unit("getty@tty1.service").is_ok());
        assert!(valid_unit("app").is_err());
        assert!(valid_unit("-x.service").is_err());
        assert!(valid_unit("a b.service").is_err());
    }
}
