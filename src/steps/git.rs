//! `git`: a checkout at `dest` of `repo` at `ref` (branch, tag or commit SHA; default: the
//! remote's HEAD). The probe asks the remote what the ref points to (`git ls-remote`) and
//! compares with the checkout's HEAD; `register` exposes `sha` for later steps.

use super::{Action, Decision, Kind, Outcome, PrepareCx, PrepareError, Probe, StepKind, tail};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub repo: String,
    pub dest: String,
    #[serde(rename = "ref")]
    pub ref_: Option<String>,
}

impl Kind for Spec {
    const NAME: &'static str = "git";

    fn target(&self) -> String {
        self.dest.clone()
    }

    fn prepare(&self, _cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Ok(Box::new(Desired::prepare(self)?))
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    repo: String,
    dest: String,
    ref_: String,
}

const GIT: &str = "git -c safe.directory='*'";

fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

impl Desired {
    pub fn prepare(spec: &Spec) -> Result<Desired, String> {
        if !spec.dest.starts_with('/') {
            return Err(format!("dest `{}` must be an absolute path", spec.dest));
        }
        super::shell::not_an_option("repo", &spec.repo)?;
        let ref_ = spec.ref_.clone().unwrap_or_else(|| "HEAD".into());
        if ref_.is_empty() || ref_.starts_with('-') || ref_.contains(char::is_whitespace) {
            return Err(format!("ref `{ref_}` is not a branch, tag or commit"));
        }
        Ok(Desired {
            repo: spec.repo.clone(),
            dest: spec.dest.clone(),
            ref_,
        })
    }

    /// The commit the remote says `ref` is, from `ls-remote` lines (`<sha>\t<refname>`).
    fn resolve(&self, p: &Probe) -> Option<String> {
        if is_sha(&self.ref_) {
            return Some(self.ref_.to_lowercase());
        }
        let lines: Vec<(&str, &str)> = p
            .out
            .lines()
            .filter_map(|l| l.strip_prefix("remote="))
            .filter_map(|l| l.split_once(char::is_whitespace))
            .collect();
        let want = |name: String| {
            lines
                .iter()
                .find(|(_, r)| *r == name)
                .map(|(s, _)| s.to_string())
        };
        let r = &self.ref_;
        if r == "HEAD" {
            return want("HEAD".into());
        }
        // An annotated tag's commit is the peeled `^{}` entry.
        want(format!("refs/tags/{r}^{{}}"))
            .or_else(|| want(format!("refs/heads/{r}")))
            .or_else(|| want(format!("refs/tags/{r}")))
            .or_else(|| want(r.to_string()))
    }
}

impl StepKind for Desired {
    fn probe(&self, _check: bool) -> Option<String> {
        let (dest, repo, r) = (quote(&self.dest), quote(&self.repo), quote(&self.ref_));
        let lsremote = if is_sha(&self.ref_) {
            String::new()
        } else if self.ref_ == "HEAD" {
            format!("{GIT} ls-remote -- {repo} HEAD | sed 's/^/remote=/'\n")
        } else {
            // `ls-remote` matches patterns against whole ref names, so an annotated tag's
            // peeled commit (`refs/tags/v1^{}`) is only listed when asked for by name.
            let peeled = quote(&format!("{}^{{}}", self.ref_)).into_owned();
            format!("{GIT} ls-remote -- {repo} {r} {peeled} | sed 's/^/remote=/'\n")
        };
        Some(format!(
            "if ! command -v git >/dev/null 2>&1; then echo git=missing; exit 0; fi\n\
             if [ -d {dest}/.git ]; then\n\
               printf 'head=%s\\n' \"$({GIT} -C {dest} rev-parse -q --verify HEAD 2>/dev/null)\"\n\
               printf 'origin=%s\\n' \"$({GIT} -C {dest} config --get remote.origin.url)\"\n\
               if [ -n \"$({GIT} -C {dest} status --porcelain --untracked-files=no 2>/dev/null)\" ]; then echo dirty=1; fi\n\
             elif [ -e {dest} ]; then echo state=notrepo; fi\n\
             {lsremote}"
        ))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        if p.field("git") == Some("missing") {
            return Decision::change(format!("clone {} (git is not installed yet)", self.repo));
        }
        if p.field("state") == Some("notrepo") {
            return Decision::Fail(format!("{} exists but is not a git checkout", self.dest));
        }
        let Some(target) = self.resolve(&p) else {
            return Decision::Fail(format!(
                "ref `{}` not found in {} ({})",
                self.ref_,
                self.repo,
                tail(&p.out, 2)
            ));
        };
        let short = super::shell::prefix(&target, 12);
        match p.field("head") {
            None => Decision::change(format!("clone {} at {short}", self.repo)),
            Some(h) if p.field("origin") != Some(self.repo.as_str()) => Decision::change(format!(
                "switch origin to {} and check out {short} (was {})",
                self.repo,
                super::shell::prefix(h, 12)
            )),
            Some(h) if h != target => {
                Decision::change(format!("update {} → {short}", super::shell::prefix(h, 12)))
            }
            Some(_) if p.field("dirty").is_some() => {
                Decision::change(format!("discard local changes at {short}"))
            }
            Some(_) => Decision::Ok(format!("at {short}")),
        }
    }

    fn apply(&self) -> Action {
        let (dest, repo, r) = (quote(&self.dest), quote(&self.repo), quote(&self.ref_));
        let script = format!(
            r#"set -e
dest={dest}; ref={r}
if [ ! -d "$dest/.git" ]; then
  mkdir -p "$(dirname -- "$dest")"
  {GIT} clone --quiet --no-checkout -- {repo} "$dest"
else
  {GIT} -C "$dest" remote set-url -- origin {repo}
fi
{GIT} -C "$dest" fetch --quiet --force --tags origin '+refs/heads/*:refs/remotes/origin/*'
if [ "$ref" = HEAD ]; then
  target=$({GIT} -C "$dest" ls-remote origin HEAD | cut -f1)
elif target=$({GIT} -C "$dest" rev-parse -q --verify "refs/remotes/origin/$ref^{{commit}}"); then :
else
  target=$({GIT} -C "$dest" rev-parse -q --verify "$ref^{{commit}}") || {{ echo "ref $ref not found in the repository" >&2; exit 1; }}
fi
{GIT} -C "$dest" checkout --quiet --force --detach "$target"
{GIT} -C "$dest" reset --quiet --hard "$target"
printf 'sha=%s\n' "$({GIT} -C "$dest" rev-parse HEAD)"
"#
        );
        Action::script(script)
    }

    fn register(&self, o: &Outcome<'_>) -> serde_json::Value {
        let from_apply = o.applied.and_then(|out| {
            out.stdout_lossy()
                .lines()
                .find_map(|l| l.strip_prefix("sha=").map(str::to_string))
        });
        let from_probe = o.probe.and_then(|p| {
            if o.changed {
                self.resolve(p)
            } else {
                p.field("head").map(str::to_string)
            }
        });
        let sha = from_apply.or(from_probe).unwrap_or_default();
        serde_json::json!({ "changed": o.changed, "sha": sha, "short_sha": super::shell::prefix(&sha, 12) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    fn d(r: Option<&str>) -> Desired {
        Desired::prepare(&Spec {
            repo: "/srv/repo.git".into(),
            dest: "/srv/app".into(),
            ref_: r.map(Into::into),
        })
        .unwrap()
    }

    fn probe(head: Option<&str>, remote: &str) -> Probe {
        let mut out = String::new();
        if let Some(h) = head {
            out.push_str(&format!("head={h}\norigin=/srv/repo.git\n"));
        }
        out.push_str(remote);
        Probe { out, rc: 0 }
    }

    #[test]
    fn clone_when_absent_ok_when_at_target() {
        let remote = format!("remote={A}\trefs/heads/main\n");
        assert!(matches!(
            d(Some("main")).decide(Some(&probe(None, &remote))),
            Decision::Change { .. }
        ));
        assert!(matches!(
            d(Some("main")).decide(Some(&probe(Some(A), &remote))),
            Decision::Ok(_)
        ));
        assert!(matches!(
            d(Some("main")).decide(Some(&probe(Some(B), &remote))),
            Decision::Change { .. }
        ));
    }

    #[test]
    fn annotated_tag_uses_peeled_commit() {
        let remote = format!("remote={B}\trefs/tags/v1\nremote={A}\trefs/tags/v1^{{}}\n");
        assert_eq!(
            d(Some("v1")).resolve(&probe(None, &remote)).as_deref(),
            Some(A)
        );
    }

    #[test]
    fn sha_ref_needs_no_remote() {
        assert!(matches!(
            d(Some(A)).decide(Some(&probe(Some(A), ""))),
            Decision::Ok(_)
        ));
        assert!(!d(Some(A)).probe(false).unwrap().contains("ls-remote"));
    }

    #[test]
    fn unknown_ref_fails_and_dirty_tree_changes() {
        assert!(matches!(
            d(Some("nope")).decide(Some(&probe(Some(A), ""))),
            Decision::Fail(_)
        ));
        let mut p = probe(Some(A), &format!("remote={A}\tHEAD\n"));
        p.out.push_str("dirty=1\n");
        assert!(matches!(d(None).decide(Some(&p)), Decision::Change { .. }));
    }

    #[test]
    fn register_prefers_apply_output() {
        let out = crate::transport::ExecOutput {
            stdout: format!("sha={B}\n").into_bytes(),
            exit: Some(0),
            ..Default::default()
        };
        let o = Outcome {
            changed: true,
            check_mode: false,
            probe: None,
            applied: Some(&out),
        };
        assert_eq!(d(None).register(&o)["sha"], B);
    }
}
