//! `git`: a checkout at `dest` of `repo` at `ref` (branch, tag or commit SHA; default: the
//! remote's HEAD). The probe asks the remote what the ref points to (`git ls-remote`) and
//! compares with the checkout's HEAD; `register` exposes `sha` for later steps.

use super::{
    Action, Decision, Kind, Outcome, PROBE_INPUT_FD, PrepareCx, PrepareError, Probe, StepKind, tail,
};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub repo: String,
    pub dest: String,
    #[serde(rename = "ref")]
    pub ref_: Option<String>,
    /// The secret holding an SSH deploy key for the git server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret: Option<String>,
    /// Pinned host keys of the git server (`known_hosts` lines): checked strictly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<Vec<String>>,
    /// The secret holding an HTTPS token, given to git by a credential helper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
    /// The user name sent with `token_secret` (default `git`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

impl Kind for Spec {
    const NAME: &'static str = "git";

    fn target(&self) -> String {
        self.dest.clone()
    }

    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        let mut desired = Desired::prepare(self)?;
        desired.auth = Auth::prepare(self, cx)?;
        Ok(Box::new(desired))
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    repo: String,
    dest: String,
    ref_: String,
    auth: Auth,
}

/// How git authenticates to the server. The secret (a key, or a credential-helper answer)
/// travels on stdin into a 0600 file under a temp directory that a trap removes, so it is
/// never in a script, a command line or the output.
#[derive(Clone, Default)]
struct Auth {
    secret: Option<Secret>,
    known_hosts: Vec<String>,
}

#[derive(Clone)]
enum Secret {
    Key(Vec<u8>),
    /// `username=…` and `password=…` lines, what a credential helper's `get` prints.
    Credential(Vec<u8>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.secret {
            Some(Secret::Key(_)) => "key",
            Some(Secret::Credential(_)) => "token",
            None => "none",
        };
        write!(
            f,
            "Auth({kind}, {} pinned host keys)",
            self.known_hosts.len()
        )
    }
}

impl Auth {
    fn prepare(spec: &Spec, cx: &PrepareCx<'_>) -> Result<Auth, PrepareError> {
        let secret = match (&spec.key_secret, &spec.token_secret) {
            (Some(_), Some(_)) => {
                return Err("set key_secret (ssh) or token_secret (https), not both"
                    .to_string()
                    .into());
            }
            (Some(name), None) => {
                let mut key = cx.secrets.require(name).map_err(PrepareError::Secret)?;
                // ssh rejects a key file whose last line has no newline.
                if !key.ends_with('\n') {
                    key.push('\n');
                }
                Some(Secret::Key(key.into_bytes()))
            }
            (None, Some(name)) => {
                let token = cx.secrets.require(name).map_err(PrepareError::Secret)?;
                let user = spec.username.as_deref().unwrap_or("git");
                if token.contains('\n') || user.contains('\n') {
                    return Err(format!("secret {name} or username holds a newline").into());
                }
                let answer = format!("username={user}\npassword={token}\n");
                Some(Secret::Credential(answer.into_bytes()))
            }
            (None, None) if spec.username.is_some() => {
                return Err("username is only used with token_secret".to_string().into());
            }
            (None, None) => None,
        };
        let known_hosts = spec.known_hosts.clone().unwrap_or_default();
        for line in &known_hosts {
            if line.contains('\n') || line.split_whitespace().count() < 3 {
                return Err(format!(
                    "known_hosts entry `{line}` is not a known_hosts line (\"host key-type base64-key\", as `ssh-keyscan host` prints)"
                )
                .into());
            }
        }
        Ok(Auth {
            secret,
            known_hosts,
        })
    }

    fn input(&self) -> Option<Vec<u8>> {
        match self.secret.as_ref()? {
            Secret::Key(b) | Secret::Credential(b) => Some(b.clone()),
        }
    }

    /// Shell lines that make the environment git authenticates with, reading the secret
    /// from fd `fd`. Removed on exit by a trap, also when a later command fails.
    fn setup_sh(&self, fd: u8) -> String {
        if self.secret.is_none() && self.known_hosts.is_empty() {
            return String::new();
        }
        let mut s = String::from(
            "pv_auth=$(umask 077 && mktemp -d) || exit 1\ntrap 'rm -rf \"$pv_auth\"' EXIT\nexport GIT_TERMINAL_PROMPT=0\n",
        );
        if let Some(secret) = &self.secret {
            let len = self.input().map_or(0, |b| b.len());
            // `bs=1`: read exactly this secret's bytes, leaving the rest of the stream.
            let _ = writeln!(
                s,
                "(umask 077 && dd bs=1 count={len} of=\"$pv_auth/secret\" <&{fd} 2>/dev/null)"
            );
            if let Secret::Credential(_) = secret {
                s.push_str("export PV_GIT_CRED=\"$pv_auth/secret\"\n");
            }
        }
        let mut ssh = String::from("ssh -o BatchMode=yes");
        if matches!(self.secret, Some(Secret::Key(_))) {
            ssh.push_str(" -i \"$pv_auth/secret\" -o IdentitiesOnly=yes");
        }
        if !self.known_hosts.is_empty() {
            for line in &self.known_hosts {
                let _ = writeln!(
                    s,
                    "printf '%s\\n' {} >>\"$pv_auth/known_hosts\"",
                    quote(line)
                );
            }
            ssh.push_str(
                " -o UserKnownHostsFile=\"$pv_auth/known_hosts\" -o StrictHostKeyChecking=yes",
            );
        }
        // Expanded now: the paths are fixed for this script.
        let _ = writeln!(s, "export GIT_SSH_COMMAND=\"{ssh}\"");
        s
    }

    /// `-c` options for each git command: a credential helper that prints the 0600 file.
    fn git_options(&self) -> &'static str {
        match self.secret {
            Some(Secret::Credential(_)) => {
                " -c credential.helper= -c 'credential.helper=!f() { test \"$1\" = get && cat \"$PV_GIT_CRED\"; }; f'"
            }
            _ => "",
        }
    }
}

const GIT: &str = "git -c safe.directory='*'";

/// An `https://user:token@host/…` URL would put the token in the host's process list and in
/// the checkout's config: refuse it and point at `token_secret`.
fn refuse_url_credentials(repo: &str) -> Result<(), String> {
    let Some((scheme, rest)) = repo.split_once("://") else {
        return Ok(());
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if scheme.starts_with("http") && authority.contains('@') {
        return Err(format!(
            "repo `{scheme}://…@{}` carries credentials in the URL, which every process list on the host would show: write the URL without them and set token_secret = \"NAME\" (and username) to a secret holding the token",
            authority.rsplit('@').next().unwrap_or_default()
        ));
    }
    Ok(())
}

/// Why `ref` was not resolved: git's own errors (a refused key or token) when it printed any.
fn not_found(r: &str, repo: &str, p: &Probe) -> String {
    let errors: Vec<&str> = p
        .out
        .lines()
        .filter_map(|l| l.strip_prefix("remote="))
        .filter(|l| !l.split_whitespace().next().is_some_and(is_sha) && !l.trim().is_empty())
        .collect();
    if errors.is_empty() {
        return format!("ref `{r}` not found in {repo} ({})", tail(&p.out, 2));
    }
    format!(
        "cannot read {repo}: {} (check key_secret/token_secret and known_hosts)",
        errors.join("; ")
    )
}

fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

impl Desired {
    pub fn prepare(spec: &Spec) -> Result<Desired, String> {
        if !spec.dest.starts_with('/') {
            return Err(format!("dest `{}` must be an absolute path", spec.dest));
        }
        super::shell::not_an_option("repo", &spec.repo)?;
        refuse_url_credentials(&spec.repo)?;
        let ref_ = spec.ref_.clone().unwrap_or_else(|| "HEAD".into());
        if ref_.is_empty() || ref_.starts_with('-') || ref_.contains(char::is_whitespace) {
            return Err(format!("ref `{ref_}` is not a branch, tag or commit"));
        }
        Ok(Desired {
            repo: spec.repo.clone(),
            dest: spec.dest.clone(),
            ref_,
            auth: Auth::default(),
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
        let git = format!("{GIT}{}", self.auth.git_options());
        // Read first, before any early exit: later probes of the batch read after it.
        let auth = self.auth.setup_sh(PROBE_INPUT_FD);
        let lsremote = if is_sha(&self.ref_) {
            String::new()
        } else if self.ref_ == "HEAD" {
            // Its errors too (a refused key): the failure message shows the last lines.
            format!("{git} ls-remote -- {repo} HEAD 2>&1 | sed 's/^/remote=/'\n")
        } else {
            // `ls-remote` matches patterns against whole ref names, so an annotated tag's
            // peeled commit (`refs/tags/v1^{}`) is only listed when asked for by name.
            let peeled = quote(&format!("{}^{{}}", self.ref_)).into_owned();
            format!("{git} ls-remote -- {repo} {r} {peeled} 2>&1 | sed 's/^/remote=/'\n")
        };
        Some(format!(
            "{auth}if ! command -v git >/dev/null 2>&1; then echo git=missing; exit 0; fi\n\
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
            return Decision::Fail(not_found(&self.ref_, &self.repo, &p));
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
        let auth = self.auth.setup_sh(0);
        let git = format!("{GIT}{}", self.auth.git_options());
        let script = format!(
            r#"set -e
{auth}dest={dest}; ref={r}
if [ ! -d "$dest/.git" ]; then
  mkdir -p "$(dirname -- "$dest")"
  {git} clone --quiet --no-checkout -- {repo} "$dest"
else
  {git} -C "$dest" remote set-url -- origin {repo}
fi
{git} -C "$dest" fetch --quiet --force --tags origin '+refs/heads/*:refs/remotes/origin/*'
if [ "$ref" = HEAD ]; then
  target=$({git} -C "$dest" ls-remote origin HEAD | cut -f1)
elif target=$({git} -C "$dest" rev-parse -q --verify "refs/remotes/origin/$ref^{{commit}}"); then :
else
  target=$({git} -C "$dest" rev-parse -q --verify "$ref^{{commit}}") || {{ echo "ref $ref not found in the repository" >&2; exit 1; }}
fi
{git} -C "$dest" checkout --quiet --force --detach "$target"
{git} -C "$dest" reset --quiet --hard "$target"
printf 'sha=%s\n' "$({git} -C "$dest" rev-parse HEAD)"
"#
        );
        Action {
            stdin: self.auth.input(),
            ..Action::script(script)
        }
    }

    fn probe_input(&self) -> Option<Vec<u8>> {
        self.auth.input()
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
        registered(o.changed, &sha)
    }

    /// A checkout left at a SHA registers it unchanged next time, unless the ref moves.
    fn steady_register(&self, v: &serde_json::Value) -> Option<serde_json::Value> {
        let sha = v["sha"].as_str().filter(|s| !s.is_empty())?;
        Some(registered(false, sha))
    }
}

/// What a git step registers: whether it changed, the SHA checked out and its short form.
fn registered(changed: bool, sha: &str) -> serde_json::Value {
    serde_json::json!({ "changed": changed, "sha": sha, "short_sha": super::shell::prefix(sha, 12) })
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
            key_secret: None,
            known_hosts: None,
            token_secret: None,
            username: None,
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

    #[test]
    fn token_in_url_is_refused_without_echoing_it() {
        let err = refuse_url_credentials("https://bob:s3cr3t-tok@git.example/a.git").unwrap_err();
        assert!(
            err.contains("token_secret") && !err.contains("s3cr3t"),
            "{err}"
        );
        assert!(refuse_url_credentials("https://git.example/a.git").is_ok());
        assert!(refuse_url_credentials("ssh://git@git.example/a.git").is_ok());
    }

    #[test]
    fn key_reaches_git_through_a_file_never_the_script() {
        let mut desired = d(Some("main"));
        desired.auth = Auth {
            secret: Some(Secret::Key(b"KEYBODY\n".to_vec())),
            known_hosts: vec!["git.example ssh-ed25519 AAAA".into()],
        };
        let probe = desired.probe(false).unwrap();
        let apply = desired.apply();
        for script in [&probe, &apply.script] {
            assert!(!script.contains("KEYBODY"));
            assert!(
                script.contains("IdentitiesOnly=yes")
                    && script.contains("StrictHostKeyChecking=yes")
            );
            assert!(script.contains("trap 'rm -rf"));
        }
        assert!(probe.contains("count=8") && probe.contains("<&3"));
        assert_eq!(apply.stdin.as_deref(), Some(&b"KEYBODY\n"[..]));
    }
}
