//! The controller's own Docker engine, through the local `docker` CLI (so `DOCKER_HOST` and
//! the CLI's context apply as they do for the operator): look an image up, build it, save it
//! to a private temporary archive, push it. A registry password reaches `docker login` on
//! stdin only, and the login lives in a temporary `DOCKER_CONFIG` that is removed after the
//! push, so it is never on a command line nor left in the operator's `~/.docker`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How many of the last lines of a failed command a message carries.
const TAIL_LINES: usize = 5;

/// What one local docker command printed.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// `<what> failed: <last lines of stderr (or stdout)>`.
    fn failure(&self, what: &str) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let all: Vec<&str> = text.trim_end().lines().collect();
        let tail = all[all.len().saturating_sub(TAIL_LINES)..].join("\n");
        format!("{what} failed on the controller: {}", tail.trim())
    }
}

/// `docker args…` on the controller, with `config` as DOCKER_CONFIG when given and `stdin`
/// fed then closed.
async fn docker(args: &[&str], config: Option<&Path>, stdin: Option<&[u8]>) -> Result<Ran, String> {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = config {
        cmd.env("DOCKER_CONFIG", dir);
    }
    let mut child = cmd.spawn().map_err(|e| {
        format!("cannot run the docker CLI on the controller: {e} (install docker on this machine)")
    })?;
    if let (Some(bytes), Some(mut w)) = (stdin, child.stdin.take()) {
        // A CLI that exits before reading is reported by its own status below.
        let _ = w.write_all(bytes).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("docker on the controller: {e}"))?;
    Ok(Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// An image on the controller's engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: String,
    /// `repository@sha256:…` names it is known by in registries (after a push or pull).
    pub repo_digests: Vec<String>,
}

/// The image `tag` names on the controller's engine; None when there is none.
pub async fn inspect(tag: &str) -> Result<Option<Found>, String> {
    let ran = docker(
        &[
            "image",
            "inspect",
            "--format",
            "{{.Id}}{{range .RepoDigests}} {{.}}{{end}}",
            tag,
        ],
        None,
        None,
    )
    .await?;
    if !ran.ok {
        // The one failure that means "no such image"; anything else (no engine) is an error.
        if ran.stderr.to_ascii_lowercase().contains("no such image") {
            return Ok(None);
        }
        return Err(ran.failure(&format!("docker image inspect {tag}")));
    }
    let mut words = ran.stdout.split_whitespace();
    let id = words.next().unwrap_or_default().to_string();
    if id.is_empty() {
        return Err(format!(
            "docker image inspect {tag} printed no ID on the controller"
        ));
    }
    Ok(Some(Found {
        id,
        repo_digests: words.map(str::to_string).collect(),
    }))
}

/// Build `tag` from `context` with `dockerfile`; the new image's ID.
pub async fn build(tag: &str, context: &Path, dockerfile: &Path) -> Result<String, String> {
    let dir = private_dir()?;
    let iid = dir.path().join("iid");
    let (iid_s, ctx, file) = (path_str(&iid)?, path_str(context)?, path_str(dockerfile)?);
    let args = [
        "build",
        "-q",
        "-t",
        tag,
        "-f",
        file,
        "--iidfile",
        iid_s,
        ctx,
    ];
    let ran = docker(&args, None, None).await?;
    if !ran.ok {
        return Err(ran.failure(&format!("docker build of {tag}")));
    }
    let id = std::fs::read_to_string(&iid).unwrap_or_default();
    match id.trim() {
        "" => Err(format!(
            "docker build of {tag} wrote no image ID on the controller"
        )),
        id => Ok(id.to_string()),
    }
}

/// An image saved by `docker save` in a private (0700) temporary directory, removed on drop.
#[derive(Debug)]
pub struct Archive {
    dir: tempfile::TempDir,
    pub bytes: u64,
}

impl Archive {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("image.tar")
    }
}

/// `docker save` of `tag` to a temporary file, written once and read by every host's upload.
pub async fn save(tag: &str) -> Result<Archive, String> {
    let dir = private_dir()?;
    let archive = Archive { dir, bytes: 0 };
    let path = archive.path();
    let ran = docker(&["save", "-o", path_str(&path)?, tag], None, None).await?;
    if !ran.ok {
        return Err(ran.failure(&format!("docker save {tag}")));
    }
    let bytes = std::fs::metadata(&path)
        .map_err(|e| format!("docker save {tag}: {e}"))?
        .len();
    Ok(Archive { bytes, ..archive })
}

/// Push `tag` to `registry` as `remote` (`registry/repository:tag`), after logging in as
/// `login`'s user (the password on stdin, in a throwaway DOCKER_CONFIG) when given, else with
/// the operator's own docker config; the pushed image's `registry/repository@sha256:…`.
pub async fn push(
    tag: &str,
    remote: &str,
    registry: &str,
    login: Option<(&str, &str)>,
) -> Result<String, String> {
    let config = private_dir()?;
    let cfg = login.map(|_| config.path());
    if let Some((username, password)) = login {
        let args = [
            "login",
            "--username",
            username,
            "--password-stdin",
            registry,
        ];
        let ran = docker(&args, cfg, Some(password.as_bytes())).await?;
        if !ran.ok {
            return Err(ran.failure(&format!("docker login to {registry}")));
        }
    }
    if remote != tag {
        let ran = docker(&["tag", tag, remote], cfg, None).await?;
        if !ran.ok {
            return Err(ran.failure(&format!("docker tag {tag} {remote}")));
        }
    }
    let ran = docker(&["push", remote], cfg, None).await?;
    if !ran.ok {
        return Err(ran.failure(&format!("docker push {remote}")));
    }
    let repository = repository_of(remote);
    let found = inspect(remote).await?.unwrap_or(Found {
        id: String::new(),
        repo_digests: Vec::new(),
    });
    digest_in(&found.repo_digests, repository).ok_or_else(|| {
        format!("docker push {remote} left no digest for {repository} on the controller")
    })
}

/// `registry/repo` of `registry/repo:tag` (a port's colon is not a tag's).
pub fn repository_of(name: &str) -> &str {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => name,
    }
}

/// The `repository@sha256:…` among `digests` that belongs to `repository`.
pub fn digest_in(digests: &[String], repository: &str) -> Option<String> {
    digests
        .iter()
        .find(|d| d.split_once('@').is_some_and(|(r, _)| r == repository))
        .cloned()
}

fn private_dir() -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix("provision-image-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory on the controller: {e}"))
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_and_digest() {
        assert_eq!(repository_of("127.0.0.1:5000/app:1"), "127.0.0.1:5000/app");
        assert_eq!(repository_of("127.0.0.1:5000/app"), "127.0.0.1:5000/app");
        let digests = vec![
            "other/app@sha256:aa".to_string(),
            "127.0.0.1:5000/app@sha256:bb".to_string(),
        ];
        assert_eq!(
            digest_in(&digests, "127.0.0.1:5000/app").as_deref(),
            Some("127.0.0.1:5000/app@sha256:bb")
        );
        assert_eq!(digest_in(&digests, "127.0.0.1:5000/web"), None);
    }

    #[test]
    fn a_failure_says_what_and_why_in_its_last_lines() {
        let ran = Ran {
            ok: false,
            stdout: String::new(),
            stderr: "a\nb\nc\nd\ne\nunauthorized: authentication required\n".into(),
        };
        let m = ran.failure("docker login to r:5000");
        assert!(
            m.starts_with("docker login to r:5000 failed on the controller: b\n"),
            "{m}"
        );
        assert!(m.ends_with("unauthorized: authentication required"), "{m}");
    }
}
