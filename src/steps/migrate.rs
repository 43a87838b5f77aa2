//! `migrate`: run a command in the release's image (env file applied, on the database's
//! network) once per release. A marker in the app's state dir on the host records that the
//! release's migration ran; a rerun of the same release is `ok`. Put it after a `wait` for the
//! database so it only runs once the database accepts connections.

use super::shell::state_dir;
use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub image: String,
    /// Run by /bin/sh -c in the container.
    pub command: String,
    pub env_file: Option<String>,
    pub network: Option<String>,
    /// What "once" is per (default: the image, which carries the commit SHA).
    pub release: Option<String>,
    /// "missing" (default), "never" or "always".
    pub pull: Option<String>,
}

impl Kind for Spec {
    const NAME: &'static str = "migrate";

    fn target(&self) -> String {
        self.command.clone()
    }

    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Ok(Box::new(Desired::prepare(self, cx.app, cx.env)?))
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    spec: Spec,
    state: String,
    marker: String,
}

impl Desired {
    pub fn prepare(spec: &Spec, app: &str, env: &str) -> Result<Desired, String> {
        if spec.command.trim().is_empty() {
            return Err("`command` is empty".into());
        }
        let release = spec.release.clone().unwrap_or_else(|| spec.image.clone());
        let key =
            hex::encode(&Sha256::digest(format!("{release}\n{}", spec.command).as_bytes())[..8]);
        let safe: String = release
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(Desired {
            spec: spec.clone(),
            state: state_dir(app, env),
            marker: format!("{safe}-{key}"),
        })
    }
}

impl StepKind for Desired {
    fn probe(&self, _check: bool) -> Option<String> {
        Some(format!(
            "{}if [ -f \"$st/migrations/\"{m} ]; then echo done=1; fi\n",
            self.state,
            m = quote(&self.marker)
        ))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        match observed.and_then(|p| p.field("done")) {
            Some("1") => Decision::Ok(format!(
                "already ran for {}",
                self.spec.release.as_deref().unwrap_or(&self.spec.image)
            )),
            _ => Decision::change(format!(
                "run `{}` in {}",
                self.spec.command, self.spec.image
            )),
        }
    }

    fn apply(&self) -> Action {
        let s = &self.spec;
        let mut args = vec!["--rm".to_string()];
        if let Some(p) = &s.pull {
            args.push(format!("--pull {}", quote(p)));
        }
        if let Some(f) = &s.env_file {
            args.push(format!("--env-file {}", quote(f)));
        }
        if let Some(n) = &s.network {
            args.push(format!("--network {}", quote(n)));
        }
        let script = format!(
            "set -e\n{st}mkdir -p \"$st/migrations\"\n\
             docker run {args} {image} /bin/sh -c {cmd}\n\
             date -u +%Y-%m-%dT%H:%M:%SZ > \"$st/migrations/\"{m}\n",
            st = self.state,
            args = args.join(" "),
            image = quote(&s.image),
            cmd = quote(&s.command),
            m = quote(&self.marker),
        );
        Action::script(script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(image: &str) -> Desired {
        let s = Spec {
            image: image.into(),
            command: "bin/migrate".into(),
            env_file: None,
            network: Some("net".into()),
            release: None,
            pull: None,
        };
        Desired::prepare(&s, "app", "prod").unwrap()
    }

    #[test]
    fn marker_is_per_release() {
        assert_ne!(d("app:1").marker, d("app:2").marker);
        assert_eq!(d("app:1").marker, d("app:1").marker);
        assert!(d("app:1").marker.starts_with("app_1-"));
    }

    #[test]
    fn decides_from_marker() {
        let m = d("app:1");
        assert!(matches!(
            m.decide(Some(&Probe::with_out("done=1\n"))),
            Decision::Ok(_)
        ));
        assert!(matches!(
            m.decide(Some(&Probe::default())),
            Decision::Change { .. }
        ));
        assert!(
            m.apply()
                .script
                .contains("docker run --rm --network net 'app:1' /bin/sh -c bin/migrate")
        );
    }
}
