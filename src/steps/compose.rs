//! `compose`: a multi-container app brought up with `docker compose` (v2) or `docker-compose`
//! (v1), whichever the host has. The compose file usually comes from a `template` step. The
//! step is `ok` when the file (and its env file) is what was last brought up and every service
//! runs; otherwise `up -d --remove-orphans`, which itself recreates only what changed.

use super::shell::state_dir;
use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The compose file on the host.
    pub file: String,
    /// Compose project name (default: the app's name).
    pub project: Option<String>,
    /// An env file whose content is part of the state (e.g. the `.env` next to the file).
    pub env_file: Option<String>,
}

impl Kind for Spec {
    const NAME: &'static str = "compose";

    fn target(&self) -> String {
        self.file.clone()
    }

    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Ok(Box::new(Desired::prepare(self, cx.app, cx.env)?))
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    file: String,
    project: String,
    env_file: Option<String>,
    state: String,
}

impl Desired {
    pub fn prepare(spec: &Spec, app: &str, env: &str) -> Result<Desired, String> {
        if !spec.file.starts_with('/') {
            return Err(format!(
                "file `{}` must be an absolute path on the host",
                spec.file
            ));
        }
        let project = spec.project.clone().unwrap_or_else(|| app.to_string());
        if project.is_empty()
            || !project
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c))
        {
            return Err(format!(
                "project `{project}` must be lowercase letters, digits, `-` or `_`"
            ));
        }
        Ok(Desired {
            file: spec.file.clone(),
            project,
            env_file: spec.env_file.clone(),
            state: state_dir(app, env),
        })
    }

    /// Sets `$dc` to the compose command and `$sum` to the hash of the inputs; prints
    /// `compose=missing` or `file=missing` and exits when there is nothing to compare.
    fn prelude(&self) -> String {
        let inputs = std::iter::once(&self.file)
            .chain(self.env_file.iter())
            .map(|f| quote(f).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "{st}if docker compose version >/dev/null 2>&1; then dc='docker compose'; \
             elif command -v docker-compose >/dev/null 2>&1; then dc=docker-compose; else echo compose=missing; exit 0; fi\n\
             [ -f {file} ] || {{ echo file=missing; exit 0; }}\n\
             sum=$(cat {inputs} 2>/dev/null | sha256sum | cut -c1-64)\n\
             marker=\"$st/compose-\"{p}\".sha\"\n\
             c() {{ $dc -p {p} -f {file} \"$@\"; }}\n",
            st = self.state,
            file = quote(&self.file),
            p = quote(&self.project),
        )
    }
}

impl StepKind for Desired {
    fn inputs(&self) -> Vec<String> {
        std::iter::once(self.file.clone())
            .chain(self.env_file.iter().cloned())
            .collect()
    }

    fn probe(&self, _check: bool) -> Option<String> {
        Some(format!(
            "{}echo compose=ok\nprintf 'sum=%s\\napplied=%s\\n' \"$sum\" \"$(cat \"$marker\" 2>/dev/null)\"\n\
             printf 'want=%s\\n' \"$(c config --services 2>/dev/null | sort | tr '\\n' ' ')\"\n\
             printf 'running=%s\\n' \"$(c ps --services --filter status=running 2>/dev/null | sort | tr '\\n' ' ')\"\n",
            self.prelude()
        ))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        let project = &self.project;
        match p.field("compose") {
            Some("missing") => {
                return Decision::change(format!(
                    "up {project} (neither `docker compose` nor `docker-compose` is installed yet)"
                ));
            }
            Some("ok") => {}
            _ if p.field("file") == Some("missing") => {
                return Decision::change(format!("up {project} ({} not there yet)", self.file));
            }
            _ => {
                return Decision::Fail(format!(
                    "could not inspect compose project {project}: {}",
                    super::tail(&p.out, 3)
                ));
            }
        }
        if p.field("sum") != p.field("applied") {
            return Decision::change(format!(
                "up {project}: {} changed since the last up",
                self.file
            ));
        }
        let want = p.field("want").unwrap_or("").trim();
        let running = p.field("running").unwrap_or("").trim();
        if want != running {
            let down: Vec<&str> = want
                .split(' ')
                .filter(|s| !running.split(' ').any(|r| r == *s))
                .collect();
            return Decision::change(format!("up {project}: not running: {}", down.join(", ")));
        }
        Decision::Ok(format!(
            "{project}: {} running",
            if want.is_empty() { "no services" } else { want }
        ))
    }

    fn apply(&self) -> Action {
        let script = format!(
            "set -e\n{}\
             if [ \"${{compose:-}}\" = missing ]; then echo \"neither docker compose nor docker-compose is installed\" >&2; exit 1; fi\n\
             c up -d --remove-orphans\n\
             mkdir -p \"$st\" && printf '%s\\n' \"$sum\" > \"$marker\"\n",
            self.prelude()
                .replace(
                    "echo compose=missing; exit 0",
                    "echo 'neither docker compose nor docker-compose is installed' >&2; exit 1"
                )
                .replace(
                    "echo file=missing; exit 0",
                    "echo \"compose file missing\" >&2; exit 1"
                )
        );
        Action::script(script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Desired {
        Desired::prepare(
            &Spec {
                file: "/srv/app/compose.yml".into(),
                project: None,
                env_file: Some("/srv/app/.env".into()),
            },
            "app",
            "prod",
        )
        .unwrap()
    }

    #[test]
    fn decides_from_sum_and_services() {
        let up = Probe::with_out("compose=ok\nsum=a\napplied=a\nwant=db web \nrunning=db web \n");
        assert!(matches!(d().decide(Some(&up)), Decision::Ok(_)));
        let changed =
            Probe::with_out("compose=ok\nsum=b\napplied=a\nwant=db web \nrunning=db web \n");
        assert!(matches!(
            d().decide(Some(&changed)),
            Decision::Change { .. }
        ));
        let down = Probe::with_out("compose=ok\nsum=a\napplied=a\nwant=db web \nrunning=db \n");
        assert_eq!(
            d().decide(Some(&down)),
            Decision::change("up app: not running: web")
        );
        let missing = Probe::with_out("compose=missing\n");
        assert!(matches!(
            d().decide(Some(&missing)),
            Decision::Change { .. }
        ));
    }

    #[test]
    fn bad_project_and_relative_file() {
        assert!(
            Desired::prepare(
                &Spec {
                    file: "compose.yml".into(),
                    project: None,
                    env_file: None
                },
                "app",
                "p"
            )
            .is_err()
        );
        assert!(
            Desired::prepare(
                &Spec {
                    file: "/c.yml".into(),
                    project: Some("My App".into()),
                    env_file: None
                },
                "app",
                "p"
            )
            .is_err()
        );
    }

    #[test]
    fn apply_fails_loudly_without_compose() {
        let s = d().apply().script;
        assert!(s.contains("c up -d --remove-orphans"));
        assert!(!s.contains("exit 0"));
    }
}
