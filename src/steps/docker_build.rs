//! `docker_build`: an image built from a checkout on the host, tagged (usually with the commit
//! SHA: `tag = "{{ app }}:{{ src.sha }}"`). `ok` when the tag exists; after a build, older tags
//! of the same repository beyond `keep` are pruned (those a container uses are kept).

use super::docker_install::{docker_missing, docker_ok_probe};
use super::{Action, Decision, Kind, Outcome, PrepareCx, PrepareError, Probe, StepKind};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Build context on the host.
    pub context: String,
    pub tag: String,
    pub dockerfile: Option<String>,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// Tags of this image repository to keep (default 5).
    pub keep: Option<usize>,
}

impl Kind for Spec {
    const NAME: &'static str = "docker_build";

    fn target(&self) -> String {
        self.tag.clone()
    }

    fn prepare(&self, _cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Ok(Box::new(Desired::prepare(self)?))
    }
}

#[derive(Debug, Clone)]
pub struct Desired(Spec);

impl Desired {
    pub fn prepare(spec: &Spec) -> Result<Desired, String> {
        super::shell::check_image_tag(&spec.tag)?;
        super::shell::not_an_option("context", &spec.context)?;
        if spec.keep == Some(0) {
            return Err("keep must be at least 1 (the image just built)".into());
        }
        Ok(Desired(spec.clone()))
    }

    fn repo(&self) -> &str {
        self.0.tag.rsplit_once(':').map_or(&self.0.tag, |(r, _)| r)
    }
}

impl StepKind for Desired {
    fn probe(&self, _check: bool) -> Option<String> {
        Some(format!(
            "{}printf 'id=%s\\n' \"$(docker image inspect -f '{{{{.Id}}}}' {} 2>/dev/null)\"\n",
            docker_ok_probe(),
            quote(&self.0.tag)
        ))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        if let Some(d) = docker_missing(&p, format!("build {}", self.0.tag)) {
            return d;
        }
        match p.field("id") {
            Some(id) if !id.is_empty() => Decision::Ok(format!("{} exists", self.0.tag)),
            _ => Decision::change(format!("build {}", self.0.tag)),
        }
    }

    fn apply(&self) -> Action {
        let s = &self.0;
        let mut args = format!("-t {}", quote(&s.tag));
        if let Some(f) = &s.dockerfile {
            args.push_str(&format!(" -f {}", quote(&in_context(&s.context, f))));
        }
        for (k, v) in &s.build_args {
            args.push_str(&format!(" --build-arg {}", quote(&format!("{k}={v}"))));
        }
        let keep = s.keep.unwrap_or(5);
        let script = format!(
            "set -e\n\
             docker build -q {args} {ctx} >/dev/null\n\
             # Prune: newest first, keep {keep}; rmi refuses images a container uses, which is what we want.\n\
             docker images {repo} --format '{{{{.CreatedAt}}}}\t{{{{.Repository}}}}:{{{{.Tag}}}}' | sort -r | cut -f2 | grep -v ':<none>$' | tail -n +{skip} | while read -r old; do\n\
               [ \"$old\" = {tag} ] || docker rmi \"$old\" >/dev/null 2>&1 || true\n\
             done\n\
             printf 'id=%s\\n' \"$(docker image inspect -f '{{{{.Id}}}}' {tag})\"\n",
            ctx = quote(&s.context),
            repo = quote(self.repo()),
            tag = quote(&s.tag),
            skip = keep + 1,
        );
        Action::script(script)
    }

    fn register(&self, o: &Outcome<'_>) -> serde_json::Value {
        let id = o
            .applied
            .and_then(|a| {
                a.stdout_lossy()
                    .lines()
                    .find_map(|l| l.strip_prefix("id=").map(str::to_string))
            })
            .or_else(|| o.probe.and_then(|p| p.field("id").map(str::to_string)))
            .unwrap_or_default();
        serde_json::json!({ "changed": o.changed, "tag": self.0.tag, "id": id })
    }
}

/// `dockerfile` is relative to the context, as in compose files (`docker build -f` alone
/// would read it relative to the remote shell's working directory, the login's home).
fn in_context(context: &str, dockerfile: &str) -> String {
    if dockerfile.starts_with('/') {
        dockerfile.to_string()
    } else {
        format!("{}/{dockerfile}", context.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_is_read_in_the_context() {
        assert_eq!(
            in_context("/srv/app/", "Dockerfile.prod"),
            "/srv/app/Dockerfile.prod"
        );
        assert_eq!(in_context("/srv/app", "docker/web"), "/srv/app/docker/web");
        assert_eq!(in_context("/srv/app", "/etc/Dockerfile"), "/etc/Dockerfile");
    }

    fn d(tag: &str) -> Result<Desired, String> {
        Desired::prepare(&Spec {
            context: "/srv/app/src".into(),
            tag: tag.into(),
            dockerfile: None,
            build_args: BTreeMap::new(),
            keep: None,
        })
    }

    #[test]
    fn tag_needs_repo_and_tag() {
        assert!(d("app").is_err());
        assert!(d("registry:5000/app").is_err());
        assert_eq!(
            d("registry:5000/app:abc").unwrap().repo(),
            "registry:5000/app"
        );
    }

    #[test]
    fn ok_when_image_exists() {
        let b = d("app:abc").unwrap();
        let have = Probe::with_out("docker=ok\nid=sha256:1\n");
        assert!(matches!(b.decide(Some(&have)), Decision::Ok(_)));
        let missing = Probe::with_out("docker=ok\nid=\n");
        assert_eq!(b.decide(Some(&missing)), Decision::change("build app:abc"));
        let no_docker = Probe::with_out("id=\n");
        assert!(matches!(
            b.decide(Some(&no_docker)),
            Decision::Change { .. }
        ));
    }
}
