//! `command`: run a shell script, guarded by `creates` (a path that, when present, means
//! done) and/or `unless` (a command whose success means done). Without a guard it always runs
//! and always reports changed, like a shell line would.

use super::{Action, Decision, Kind, Outcome, PrepareCx, PrepareError, Probe, StepKind};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The script, run by /bin/sh with `set -e`.
    pub run: String,
    pub creates: Option<String>,
    pub unless: Option<String>,
    /// Working directory.
    pub chdir: Option<String>,
}

impl Kind for Spec {
    const NAME: &'static str = "command";

    fn target(&self) -> String {
        self.run.lines().next().unwrap_or("").to_string()
    }

    fn prepare(&self, _cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Ok(Box::new(Desired::prepare(self)?))
    }
}

#[derive(Debug, Clone)]
pub struct Desired(Spec);

impl Desired {
    pub fn prepare(spec: &Spec) -> Result<Desired, String> {
        if spec.run.trim().is_empty() {
            return Err("`run` is empty: give the command to run".into());
        }
        Ok(Desired(spec.clone()))
    }
}

impl StepKind for Desired {
    fn probe(&self, _check: bool) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(path) = &self.0.creates {
            parts.push(format!(
                "if [ -e {} ]; then echo creates=present; fi",
                quote(path)
            ));
        }
        if let Some(cmd) = &self.0.unless {
            // The guard runs in its own subshell; only its exit code matters.
            let cd = cd_prefix(self.0.chdir.as_deref());
            parts.push(format!(
                "if ( {cd}{cmd}\n ) >/dev/null 2>&1; then echo unless=ok; fi"
            ));
        }
        (!parts.is_empty()).then(|| parts.join("\n"))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        match observed {
            Some(p) if p.field("creates") == Some("present") => Decision::Ok(format!(
                "{} exists",
                self.0.creates.as_deref().unwrap_or("")
            )),
            Some(p) if p.field("unless") == Some("ok") => Decision::Ok("`unless` succeeded".into()),
            _ => Decision::change("run"),
        }
    }

    fn apply(&self) -> Action {
        let cd = cd_prefix(self.0.chdir.as_deref());
        Action {
            script: format!("set -e\n{cd}{}", self.0.run),
            ..Action::default()
        }
    }

    fn register(&self, o: &Outcome<'_>) -> serde_json::Value {
        let (stdout, stderr, rc) = match o.applied {
            Some(out) => (
                out.stdout_lossy(),
                out.stderr_lossy(),
                out.exit.map(i64::from),
            ),
            None => (String::new(), String::new(), None),
        };
        serde_json::json!({
            "changed": o.changed,
            "stdout": stdout.trim_end(),
            "stderr": stderr.trim_end(),
            "rc": rc,
        })
    }
}

fn cd_prefix(chdir: Option<&str>) -> String {
    chdir
        .map(|d| format!("cd {}\n", quote(d)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(creates: Option<&str>, unless: Option<&str>) -> Desired {
        Desired::prepare(&Spec {
            run: "touch /tmp/x".into(),
            creates: creates.map(Into::into),
            unless: unless.map(Into::into),
            chdir: None,
        })
        .unwrap()
    }

    #[test]
    fn unguarded_always_runs() {
        let d = spec(None, None);
        assert!(d.probe(false).is_none());
        assert_eq!(d.decide(None), Decision::change("run"));
    }

    #[test]
    fn creates_guard() {
        let d = spec(Some("/tmp/my file"), None);
        assert!(d.probe(false).unwrap().contains("[ -e '/tmp/my file' ]"));
        let present = Probe::with_out("creates=present\n");
        assert!(matches!(d.decide(Some(&present)), Decision::Ok(_)));
        assert_eq!(d.decide(Some(&Probe::default())), Decision::change("run"));
    }

    #[test]
    fn unless_guard() {
        let d = spec(None, Some("grep -q x /etc/hosts"));
        assert!(d.probe(false).unwrap().contains("grep -q x /etc/hosts"));
        let ok = Probe::with_out("unless=ok\n");
        assert!(matches!(d.decide(Some(&ok)), Decision::Ok(_)));
    }

    #[test]
    fn empty_run_is_rejected() {
        let s = Spec {
            run: "  ".into(),
            creates: None,
            unless: None,
            chdir: None,
        };
        assert!(Desired::prepare(&s).is_err());
    }
}
