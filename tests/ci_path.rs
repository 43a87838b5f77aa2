//! The CI path, end to end: exactly what `examples/ci/` runs, in an environment like a CI
//! runner's (only the variables the workflow passes, `CI=true`, no terminal, no SSH agent,
//! an empty HOME), against a real sshd. Also: keys from stdin and encrypted keys without a
//! prompt, host-key pins in every form, the JSON event schema against real runs.

#[path = "support/schema.rs"]
mod schema;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use schema::{Validator, schema, validate_lines};
use serde_json::Value;
use support::*;

const DB_PASSWORD: &str = "s3cr3t-from-the-ci-env";

// ---------------------------------------------------------------------------------------------
// The example CI files
// ---------------------------------------------------------------------------------------------

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/ci")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The lines under `line_idx` that are indented deeper than it.
fn block(lines: &[&str], line_idx: usize) -> Vec<String> {
    let base = indent(lines[line_idx]);
    lines[line_idx + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > base)
        .map(|l| l.to_string())
        .collect()
}

/// A GitHub Actions step by name: its `env:` (variable → the repository secret it is set
/// from) and its `run:` script.
fn github_step(yaml: &str, name: &str) -> (BTreeMap<String, String>, String) {
    let lines: Vec<&str> = yaml.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == format!("- name: {name}"))
        .unwrap_or_else(|| panic!("no step `{name}` in the workflow"));
    // The step's keys are indented like `name:` after the `- `.
    let step_indent = indent(lines[start]) + 2;
    let mut end = start + 1;
    while end < lines.len() && (lines[end].trim().is_empty() || indent(lines[end]) >= step_indent) {
        end += 1;
    }
    let step = &lines[..end];
    let mut env = BTreeMap::new();
    let mut run = String::new();
    for i in start..end {
        let l = step[i];
        if indent(l) != step_indent {
            continue;
        }
        if l.trim() == "env:" {
            for e in block(step, i) {
                let Some((k, v)) = e.trim().split_once(": ") else {
                    continue;
                };
                let secret = v
                    .trim()
                    .strip_prefix("${{ secrets.")
                    .and_then(|s| s.strip_suffix(" }}"))
                    .unwrap_or_else(|| panic!("env {k} is not set from a secret: {v}"));
                env.insert(k.to_string(), secret.to_string());
            }
        } else if let Some(r) = l.trim().strip_prefix("run:") {
            run = match r.trim() {
                "|" => block(step, i)
                    .iter()
                    .map(|b| b.trim())
                    .collect::<Vec<_>>()
                    .join("\n"),
                one => one.to_string(),
            };
        }
    }
    assert!(!run.is_empty(), "step `{name}` has no run");
    (env, run)
}

/// The `- ` lines of a GitLab job's `key:` list (`script`, `before_script`).
fn gitlab_list(yaml: &str, job: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == format!("{job}:"))
        .unwrap_or_else(|| panic!("no job `{job}`"));
    let job_lines = block(&lines, start);
    let job_refs: Vec<&str> = job_lines.iter().map(String::as_str).collect();
    let at = job_refs
        .iter()
        .position(|l| l.trim() == format!("{key}:"))
        .unwrap_or_else(|| panic!("job `{job}` has no {key}"));
    block(&job_refs, at)
        .iter()
        .filter_map(|l| l.trim().strip_prefix("- ").map(str::to_string))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A CI-like process
// ---------------------------------------------------------------------------------------------

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn dump(&self) -> String {
        format!(
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A folder holding `provision` (a link to the binary under test), for PATH: what the
/// workflow's build step leaves on the runner.
fn bin_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_provision"), d.path().join("provision"))
        .unwrap();
    d
}

/// `bash --noprofile --norc -eo pipefail -c script` (how GitHub Actions runs `run:`) in
/// `cwd`, with nothing of this process's environment: only PATH, HOME, CI and `vars`;
/// stdin is /dev/null (no terminal).
fn ci_shell(cwd: &Path, bin: &Path, home: &Path, script: &str, vars: &[(&str, &str)]) -> Out {
    ci_shell_stdin(cwd, bin, home, script, vars, None)
}

fn ci_shell_stdin(
    cwd: &Path,
    bin: &Path,
    home: &Path,
    script: &str,
    vars: &[(&str, &str)],
    stdin: Option<&str>,
) -> Out {
    let mut cmd = Command::new("/bin/bash");
    cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .current_dir(cwd)
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        )
        .env("HOME", home)
        .env("CI", "true")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run bash");
    if let Some(text) = stdin {
        use std::io::Write;
        let mut w = child.stdin.take().unwrap();
        w.write_all(text.as_bytes()).unwrap();
    }
    let t1 = reader(child.stdout.take().unwrap());
    let t2 = reader(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`{script}` ran over 120s (waiting for a prompt?)\n{}",
                t1.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Out {
        code: status.code().unwrap_or(-1),
        stdout: t1.join().unwrap(),
        stderr: t2.join().unwrap(),
    };
    eprintln!("$ {script} → exit {}", out.code);
    out
}

/// A project with `[env.prod]` on `sshd`: no identity file, strict host keys (the
/// default), no ssh_config, secrets from `secrets/prod.env`, which does not exist. Its
/// playbook checks out the app's repository at `{{ ref }}` (`main` unless `-e ref=…`).
fn ci_project(sshd: &Sshd) -> Project {
    let p = Project::new();
    let repo = p.path("app-repo.git");
    p.write(
        "provision.toml",
        &format!(
            "app = \"ciapp\"\n\n[vars]\nref = \"main\"\n\n[ssh]\nconfig = \"none\"\nretries = 0\n\n[env.prod]\nhosts = [\"{}\"]\nsecrets = \"secrets/prod.env\"\n",
            sshd.addr("root")
        ),
    );
    let app = p.remote_path("app");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"app dir\"\ndirectory = {{ path = \"{app}\", mode = \"0755\" }}\n\n\
             [[step]]\nname = \"app code\"\ngit = {{ repo = \"{repo}\", dest = \"{app}/src\", ref = \"{{{{ ref }}}}\" }}\n\n\
             [[step]]\nname = \"app env\"\nenv_file = {{ dest = \"{app}/.env\", keys = [\"DATABASE_PASSWORD\"] }}\n\n\
             [[step]]\nname = \"release marker\"\ncommand = {{ run = \"date +%s > {app}/deployed\", creates = \"{app}/deployed\" }}\n",
            repo = repo.display()
        ),
    );
    p
}

/// The app's repository for `ci_project`, with two commits on `main`: the one CI built
/// (returned) and a later push, so a deploy of the branch would get the wrong one.
fn ci_repo(p: &Project) -> String {
    let bare = p.path("app-repo.git");
    let work = p.path("app-work");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    git(
        p.dir.path(),
        &["clone", "-q", &bare.display().to_string(), "app-work"],
    );
    let mut shas = Vec::new();
    for version in ["built by CI", "pushed while CI ran"] {
        std::fs::write(work.join("VERSION"), version).unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", version]);
        git(&work, &["push", "-q", "origin", "HEAD:main"]);
        shas.push(git(&work, &["rev-parse", "HEAD"]).trim().to_string());
    }
    shas.swap_remove(0)
}

/// The commit checked out on the host.
fn deployed_sha(p: &Project) -> String {
    git(&p.remote.join("app/src"), &["rev-parse", "HEAD"])
        .trim()
        .to_string()
}

fn key_text(key: &ClientKey) -> String {
    std::fs::read_to_string(&key.private).unwrap()
}

fn logins(sshd: &Sshd) -> usize {
    sshd.log().matches("Accepted publickey").count()
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

/// What examples/ci/github-actions.yml runs, as a runner would run it.
#[test]
fn github_workflow_deploys_then_changes_nothing_and_refuses_a_wrong_host_key() {
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(keys.path());
    let sshd = Sshd::start(&key);
    let p = ci_project(&sshd);
    let built = ci_repo(&p);
    let bin = bin_dir();
    let yaml = example("github-actions.yml");

    // The build step builds provision with cargo and puts it on PATH (the test's binary
    // stands in for it: building a release here would take minutes).
    let (_, build) = github_step(&yaml, "Build provision");
    assert!(build.contains("cargo build --release"), "{build}");
    assert!(build.contains("GITHUB_PATH"), "{build}");

    let (env, run) = github_step(&yaml, "Deploy");
    // The commit CI built, not what `main` points to when the host fetches.
    assert_eq!(run, r#"provision up prod -e ref="$GITHUB_SHA""#);
    // The repository secrets, as a person would paste them.
    // Another machine's host key, written for this host: what an impersonator would offer.
    let other = ClientKey::generate(&keys.path().join("other"));
    let wrong = format!("[127.0.0.1]:{} {}", sshd.port, other.public);
    let secrets_with = |known_hosts: &str| -> Vec<(String, String)> {
        let secrets: BTreeMap<&str, String> = [
            ("DEPLOY_SSH_KEY", key_text(&key)),
            ("DEPLOY_KNOWN_HOSTS", known_hosts.to_string()),
            ("DATABASE_PASSWORD", DB_PASSWORD.to_string()),
        ]
        .into();
        env.iter()
            .map(|(var, secret)| {
                let v = secrets
                    .get(secret.as_str())
                    .unwrap_or_else(|| panic!("the workflow uses secret {secret}, unknown here"));
                (var.clone(), v.clone())
            })
            .collect()
    };
    assert_eq!(
        env.keys().collect::<Vec<_>>(),
        [
            "DATABASE_PASSWORD",
            "PROVISION_KNOWN_HOSTS",
            "PROVISION_SSH_KEY"
        ]
    );
    let pairs = |v: &[(String, String)]| -> Vec<(String, String)> { v.to_vec() };

    // 1. A wrong pinned host key: refused at key exchange, before authentication, so no
    //    command ran (sshd logged no login) and nothing exists on the host.
    let wrong_env = pairs(&secrets_with(&wrong));
    // GITHUB_SHA is set by the runner, not by the workflow.
    let w: Vec<(&str, &str)> = wrong_env
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .chain([("GITHUB_SHA", built.as_str())])
        .collect();
    let out = ci_shell(p.dir.path(), bin.path(), &p.home, &run, &w);
    assert_eq!(out.code, 4, "{}", out.dump());
    assert!(
        out.stdout.contains("does not match the pinned host key")
            && out.stdout.contains("$PROVISION_KNOWN_HOSTS"),
        "{}",
        out.dump()
    );
    assert_eq!(logins(&sshd), 0, "a login happened: {}", sshd.log());
    assert!(!p.remote.join("app").exists());

    // 2. The real secrets: deployed, in plain lines grouped by host and a one-line summary.
    let good_env = pairs(&secrets_with(&sshd.known_hosts_line()));
    let g: Vec<(&str, &str)> = good_env
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .chain([("GITHUB_SHA", built.as_str())])
        .collect();
    let first = ci_shell(p.dir.path(), bin.path(), &p.home, &run, &g);
    assert_eq!(first.code, 0, "{}", first.dump());
    let host = sshd.name();
    assert!(
        first
            .stdout
            .contains(&format!("[{host}] changed      app env")),
        "{}",
        first.dump()
    );
    let last = first.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("1 hosts: 0 failed, 0 unreachable; 4 changed"),
        "{last}"
    );
    assert_eq!(
        deployed_sha(&p),
        built,
        "the host has the branch tip, not CI's commit"
    );
    assert!(!first.stdout.contains(DB_PASSWORD) && !first.stderr.contains(DB_PASSWORD));
    assert!(
        !first.stdout.contains('\x1b'),
        "colors in CI: {}",
        first.stdout
    );
    let env_file = std::fs::read_to_string(p.remote.join("app/.env")).unwrap();
    assert!(env_file.contains(&format!("DATABASE_PASSWORD={DB_PASSWORD}")));
    // Nothing was asked for, nothing was written to HOME, no known_hosts was pinned.
    assert!(!first.stderr.to_lowercase().contains("passphrase"));
    assert_eq!(std::fs::read_dir(&p.home).unwrap().count(), 0);
    assert!(!p.path(".provision/known_hosts").exists());

    // 3. Again: nothing to change.
    let second = ci_shell(p.dir.path(), bin.path(), &p.home, &run, &g);
    assert_eq!(second.code, 0, "{}", second.dump());
    let last = second.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("1 hosts: 0 failed, 0 unreachable; 0 changed, 4 ok"),
        "{}",
        second.dump()
    );
}

/// What examples/ci/gitlab-ci.yml's `script` runs, with the key base64-encoded as a masked
/// GitLab variable must be and the host key pinned by its fingerprint.
#[test]
fn gitlab_job_deploys_with_a_base64_key_and_a_fingerprint() {
    let servers = Servers::start(1);
    let (key, sshd) = (&servers.key, servers.sshd());
    let p = ci_project(sshd);
    let built = ci_repo(&p);
    let bin = bin_dir();
    let yaml = example("gitlab-ci.yml");
    let before = gitlab_list(&yaml, "deploy", "before_script");
    assert!(
        before.iter().any(|l| l.contains("cargo build --release")),
        "{before:?}"
    );
    let script = gitlab_list(&yaml, "deploy", "script");
    assert_eq!(script, [r#"provision up prod -e ref="$CI_COMMIT_SHA""#]);
    let b64 = {
        use std::io::Write;
        let mut child = Command::new("base64")
            .arg("-w0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(key_text(key).as_bytes())
            .unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    let fp = sshd.fingerprint();
    let vars = [
        ("PROVISION_SSH_KEY", b64.as_str()),
        ("PROVISION_KNOWN_HOSTS", fp.as_str()),
        ("DATABASE_PASSWORD", DB_PASSWORD),
        ("GITLAB_CI", "true"),
        ("CI_COMMIT_SHA", built.as_str()),
    ];
    for want_changed in [4, 0] {
        let out = ci_shell(p.dir.path(), bin.path(), &p.home, &script.join("\n"), &vars);
        assert_eq!(out.code, 0, "{}", out.dump());
        assert!(
            out.stdout
                .lines()
                .last()
                .unwrap()
                .contains(&format!("0 failed, 0 unreachable; {want_changed} changed")),
            "{}",
            out.dump()
        );
        assert_eq!(deployed_sha(&p), built, "the host has the branch tip");
    }
}

/// `--ssh-key-stdin`; an encrypted key with and without its passphrase (never a prompt);
/// a key that is not one; pins in provision.toml (`ssh.host_key`).
#[test]
fn key_from_stdin_encrypted_keys_and_pins_in_config() {
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(keys.path());
    let sshd = Sshd::start(&key);
    let p = ci_project(&sshd);
    let bin = bin_dir();
    let kh = sshd.known_hosts_line();
    let base = [
        ("PROVISION_KNOWN_HOSTS", kh.as_str()),
        ("DATABASE_PASSWORD", DB_PASSWORD),
    ];
    let (cwd, b, home) = (p.dir.path(), bin.path(), p.home.as_path());

    // The key on stdin.
    let out = ci_shell_stdin(
        cwd,
        b,
        home,
        "provision exec prod --ssh-key-stdin -- echo via-stdin",
        &base,
        Some(&key_text(&key)),
    );
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(out.stdout.contains(&format!("[{}] via-stdin", sshd.name())));
    // Nothing there at all.
    let out = ci_shell_stdin(
        cwd,
        b,
        home,
        "provision exec prod --ssh-key-stdin -- true",
        &base,
        Some(""),
    );
    assert_eq!(out.code, 1, "{}", out.dump());
    assert!(out.stderr.contains("--ssh-key-stdin: stdin is empty"));
    // No key anywhere: the failure says where CI gives one.
    let out = ci_shell(cwd, b, home, "provision exec prod -- true", &base);
    assert_eq!(out.code, 4, "{}", out.dump());
    assert!(
        out.stdout
            .contains("in CI, give the key in $PROVISION_SSH_KEY or with --ssh-key-stdin"),
        "{}",
        out.dump()
    );
    // Not a key: a config error before any connection.
    let mut with = base.to_vec();
    with.push(("PROVISION_SSH_KEY", "ssh-ed25519 AAAA this is a public key"));
    let before = logins(&sshd);
    let out = ci_shell(cwd, b, home, "provision exec prod -- true", &with);
    assert_eq!(out.code, 1, "{}", out.dump());
    assert!(
        out.stderr.contains("the SSH key from $PROVISION_SSH_KEY"),
        "{}",
        out.dump()
    );
    assert_eq!(logins(&sshd), before);

    // An encrypted key: no prompt, an error naming the variable; then that variable.
    let enc = keys.path().join("enc");
    std::fs::copy(&key.private, &enc).unwrap();
    let st = Command::new("ssh-keygen")
        .args(["-q", "-p", "-N", "hunter2", "-P", "", "-f"])
        .arg(&enc)
        .status()
        .unwrap();
    assert!(st.success());
    let enc_text = std::fs::read_to_string(&enc).unwrap();
    let mut with = base.to_vec();
    with.push(("PROVISION_SSH_KEY", enc_text.as_str()));
    let started = Instant::now();
    let out = ci_shell(cwd, b, home, "provision exec prod -- true", &with);
    assert_eq!(out.code, 4, "{}", out.dump());
    assert!(
        out.stdout.contains("PROVISION_SSH_KEY_PASSPHRASE"),
        "{}",
        out.dump()
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    with.push(("PROVISION_SSH_KEY_PASSPHRASE", "hunter2"));
    let out = ci_shell(cwd, b, home, "provision exec prod -- echo decrypted", &with);
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(out.stdout.contains("decrypted"));

    // Pins in provision.toml: a fingerprint list with the right one second; then only a
    // wrong one (refused, no login).
    let toml = std::fs::read_to_string(p.path("provision.toml")).unwrap();
    let fp = sshd.fingerprint();
    let wrong_fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
    let kt = key_text(&key);
    let only_key = [
        ("PROVISION_SSH_KEY", kt.as_str()),
        ("DATABASE_PASSWORD", DB_PASSWORD),
    ];
    p.write(
        "provision.toml",
        &toml.replace(
            "[ssh]\n",
            &format!("[ssh]\nhost_key = [\"{wrong_fp}\", \"{fp}\"]\n"),
        ),
    );
    let out = ci_shell(
        cwd,
        b,
        home,
        "provision exec prod -- echo pinned",
        &only_key,
    );
    assert_eq!(out.code, 0, "{}", out.dump());
    p.write(
        "provision.toml",
        &toml.replace("[ssh]\n", &format!("[ssh]\nhost_key = \"{wrong_fp}\"\n")),
    );
    let before = logins(&sshd);
    let out = ci_shell(
        cwd,
        b,
        home,
        "provision exec prod -- echo pinned",
        &only_key,
    );
    assert_eq!(out.code, 4, "{}", out.dump());
    assert!(
        out.stdout.contains(&format!(
            "does not match the pinned host key ({wrong_fp}, from ssh.host_key)"
        )),
        "{}",
        out.dump()
    );
    assert_eq!(logins(&sshd), before, "{}", sshd.log());
    // A malformed pin is a config error naming it.
    p.write(
        "provision.toml",
        &toml.replace("[ssh]\n", "[ssh]\nhost_key = \"MD5:12:34\"\n"),
    );
    let out = ci_shell(cwd, b, home, "provision exec prod -- true", &only_key);
    assert_eq!(out.code, 1, "{}", out.dump());
    assert!(out.stderr.contains("ssh.host_key"), "{}", out.dump());
}

// ---------------------------------------------------------------------------------------------
// The JSON event schema
// ---------------------------------------------------------------------------------------------

/// Every event variant, built in Rust (a new variant fails to compile here until it is
/// added, and then fails the schema until the schema documents it).
#[test]
fn every_event_variant_matches_the_schema() {
    use provision::report::{Counts, Event, Mode, Status};
    let counts = Counts {
        ok: 1,
        changed: 2,
        failed: 0,
        skipped: 3,
    };
    let all = vec![
        Event::RunStarted {
            env: "prod".into(),
            mode: Mode::Check,
            playbook: "playbooks/deploy.toml".into(),
            hosts: vec!["a".into()],
            user: "alice@laptop".into(),
            started_at: "2026-01-02T15:04:05Z".into(),
        },
        Event::HostConnected {
            host: "a".into(),
            ms: 5,
            at_ms: 6,
        },
        Event::HostUnreachable {
            host: "a".into(),
            error: "no".into(),
        },
        Event::StepStarted {
            host: "a".into(),
            index: 0,
            step: "s".into(),
            kind: "command".into(),
            at_ms: 7,
        },
        Event::StepFinished {
            host: "a".into(),
            index: 0,
            step: "s".into(),
            kind: "file".into(),
            status: Status::Changed,
            message: "m".into(),
            diff: Some("-a\n+b".into()),
            output: Some("out".into()),
            ms: 1,
            at_ms: 8,
        },
        Event::StepFinished {
            host: "a".into(),
            index: 1,
            step: "t".into(),
            kind: "command".into(),
            status: Status::Skipped,
            message: String::new(),
            diff: None,
            output: None,
            ms: 0,
            at_ms: 8,
        },
        Event::HostWarning {
            host: "a".into(),
            message: "the deploy lock is held by".into(),
        },
        Event::Debug {
            host: "a".into(),
            message: "exec".into(),
        },
        Event::HostFinished {
            host: "a".into(),
            counts: counts.clone(),
            unreachable: true,
            stopped_at: Some("connect".into()),
            round_trips: 0,
            ms: 3,
            release: Some("v1".into()),
        },
        Event::BatchStarted {
            batch: 1,
            of: 2,
            hosts: vec!["a".into()],
        },
        Event::RolloutStopped {
            batch: 1,
            of: 2,
            failed_hosts: vec!["a".into()],
            not_reached: vec!["b".into()],
            limits: "max_failures = 0".into(),
        },
        Event::RunFinished {
            mode: Mode::Apply,
            totals: counts,
            failed_hosts: vec![],
            unreachable_hosts: vec!["a".into()],
            exit_code: 4,
            ms: 9,
        },
    ];
    let all: Vec<Event> = all.into_iter().chain(operator_events()).collect();
    for ev in &all {
        // Exhaustive on purpose: see the doc comment.
        match ev {
            Event::RunStarted { .. }
            | Event::HostConnected { .. }
            | Event::HostUnreachable { .. }
            | Event::StepStarted { .. }
            | Event::StepFinished { .. }
            | Event::HostWarning { .. }
            | Event::Debug { .. }
            | Event::HostFinished { .. }
            | Event::RunFinished { .. }
            | Event::BatchStarted { .. }
            | Event::RolloutStopped { .. }
            | Event::Exec { .. }
            | Event::Status { .. }
            | Event::Release { .. }
            | Event::Host { .. }
            | Event::Unlock { .. } => {}
        }
    }
    let text: String = all
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    let s = schema();
    assert_eq!(validate_lines(&s, &text), all.len());
    // And the validator does refuse what the schema excludes.
    let v = Validator { root: &s };
    for bad in [
        r#"{"event":"host_connected","host":"a"}"#,
        r#"{"event":"host_connected","host":"a","ms":1,"extra":2}"#,
        r#"{"event":"nope"}"#,
        r#"{"event":"step_finished","host":"a","index":0,"step":"s","kind":"k","status":"weird","message":"","ms":1}"#,
        r#"{"event":"exec","host":"a","unreachable":false,"error":"e"}"#,
        r#"{"event":"unlock","host":"a","removed":true,"owner":null,"extra":1}"#,
        r#"{"event":"host","host":"a","roles":[],"address":null,"port":null,"user":null,"jump":null,"state":7}"#,
        r#"{"event":"host","host":"a","roles":[],"address":"x","port":22,"user":"u","jump":null,"extra":1}"#,
    ] {
        let value: Value = serde_json::from_str(bad).unwrap();
        assert!(v.check(&s, &value, "$").is_err(), "accepted: {bad}");
    }
}

/// Every variant of the operator commands' events, answered and unreachable.
fn operator_events() -> Vec<provision::report::Event> {
    use provision::remote::releases::Record;
    use provision::report::{
        ContainerStatus, Event, ExecOutput, HostInstance, HostStatus, LockStatus,
    };
    let record = Record {
        time: "2026-01-02T15:04:05Z".into(),
        release: "abc".into(),
        user: "u@m (pid 1)".into(),
        result: "ok".into(),
        changed: 2,
        vars: Default::default(),
    };
    let status = HostStatus {
        release: Some(record.clone()),
        last_deploy: None,
        container: ContainerStatus {
            name: "app".into(),
            state: "running".into(),
            health: None,
            image: Some("app:abc".into()),
            started_at: None,
            exit_code: Some(0),
            error: None,
        },
        lock: Some(LockStatus {
            owner: "u".into(),
            since: 1,
            age_secs: 2,
        }),
    };
    let ran = ExecOutput {
        exit: None,
        stdout: "o".into(),
        stderr: String::new(),
    };
    vec![
        Event::exec("a", Ok(ran)),
        Event::exec("a", Err("no".into())),
        Event::status("a", Ok(status)),
        Event::status("a", Err("no".into())),
        Event::release("a", Ok(record)),
        Event::release("a", Err("no".into())),
        Event::Host {
            host: "a".into(),
            roles: vec!["web".into()],
            address: Some("10.0.0.1".into()),
            port: Some(22),
            user: Some("root".into()),
            jump: None,
            instance: None,
        },
        // An EC2 instance provision reaches, and one it cannot (stopped: no address).
        Event::Host {
            host: "shop-prod-web-1".into(),
            roles: vec!["web".into()],
            address: Some("203.0.113.7".into()),
            port: Some(22),
            user: Some("ubuntu".into()),
            jump: Some("ops@bastion:22".into()),
            instance: Some(HostInstance {
                id: "i-0abc".into(),
                state: "running".into(),
                instance_address: Some("203.0.113.7".into()),
                instance_type: Some("t3.micro".into()),
            }),
        },
        Event::Host {
            host: "i-0def".into(),
            roles: vec![],
            address: None,
            port: None,
            user: None,
            jump: None,
            instance: Some(HostInstance {
                id: "i-0def".into(),
                state: "stopped".into(),
                instance_address: None,
                instance_type: None,
            }),
        },
        Event::unlock("a", Ok(Some("u".into()))),
        Event::unlock("a", Ok(None)),
        Event::unlock("a", Err("no".into())),
    ]
}

/// The events of real runs: a failing deploy with a diff and output (-v), a plan, an
/// unreachable host, and the per-host lines of exec, status, releases, hosts and unlock.
#[test]
fn json_events_of_real_runs_match_the_schema() {
    let servers = Servers::start(1);
    let p = Project::new();
    let dead = format!("root@127.0.0.1:{}", closed_port());
    p.write(
        "provision.toml",
        &servers
            .project_toml("schemaapp", "root", "retries = 0")
            .replace(
                "[env.test]",
                &format!("[env.dead]\nhosts = [\"{dead}\"]\n\n[env.test]"),
            ),
    );
    let f = p.remote_path("f.txt");
    p.write("files/f.txt", "one\n");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"file\"\nfile = {{ src = \"files/f.txt\", dest = \"{f}\" }}\n\n\
             [[step]]\nname = \"skip me\"\nwhen = \"false\"\ncommand = {{ run = \"true\" }}\n\n\
             [[step]]\nname = \"talk\"\ncommand = {{ run = \"echo hello; echo warn >&2\" }}\n\n\
             [[step]]\nname = \"fail\"\ncommand = {{ run = \"echo boom >&2; exit 3\" }}\n"
        ),
    );
    let s = schema();
    let mut total = 0;
    let mut kinds = std::collections::BTreeSet::new();
    let warnings = std::cell::RefCell::new(Vec::new());
    let mut check = |args: &[&str], code: i32| {
        let r = p.run(args);
        r.expect_code(code);
        total += validate_lines(&s, &r.stdout);
        for e in r.events() {
            kinds.insert(e["event"].as_str().unwrap().to_string());
            if e["event"] == "host_warning" {
                warnings
                    .borrow_mut()
                    .push(e["message"].as_str().unwrap().to_string());
            }
        }
    };
    check(&["plan", "test", "--output", "json", "-vv"], 0);
    check(&["up", "test", "--output", "json", "-v"], 3);
    p.write("files/f.txt", "two\n");
    check(&["plan", "test", "--output", "json"], 0);
    check(&["up", "dead", "--output", "json"], 4);
    check(
        &["exec", "test", "--output", "json", "--", "echo hi; exit 2"],
        3,
    );
    check(&["exec", "dead", "--output", "json", "--", "true"], 4);
    check(&["status", "test", "--output", "json"], 0);
    check(&["status", "dead", "--output", "json"], 4);
    check(&["releases", "test", "--output", "json"], 0);
    check(&["hosts", "test", "--output", "json"], 0);
    // The warnings, from real runs too: a lock a killed deploy left long ago (older than any
    // TTL) is taken over by the next change, a recent one is reported by a plan; `unlock`
    // then removes a real lock.
    let sshd = servers.sshd();
    let old = sshd.leave_lock(
        "schemaapp",
        "test",
        "gone@ci (pid 1)",
        Duration::from_secs(86400 * 30),
    );
    check(&["up", "test", "--output", "json"], 3);
    assert!(
        !old.exists(),
        "the up that took the lock over did not release it"
    );
    sshd.leave_lock(
        "schemaapp",
        "test",
        "alice@laptop (pid 4242)",
        Duration::from_secs(60),
    );
    check(&["plan", "test", "--output", "json"], 0);
    check(&["unlock", "test", "--yes", "--output", "json"], 0);
    let warnings: Vec<String> = warnings.borrow().clone();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with("took over the deploy lock of gone@ci (pid 1), taken 30days"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with("the deploy lock is held by alice@laptop (pid 4242) since "),
        "{warnings:?}"
    );
    for k in [
        "run_started",
        "host_connected",
        "host_unreachable",
        "step_started",
        "step_finished",
        "host_warning",
        "debug",
        "host_finished",
        "run_finished",
        "exec",
        "status",
        "release",
        "host",
        "unlock",
    ] {
        assert!(kinds.contains(k), "no `{k}` event was seen: {kinds:?}");
    }
    assert!(total > 20, "{total}");
}

/// In CI, hosts run in parallel but their lines come out grouped, each host's block whole,
/// then the recap and the one-line summary.
#[test]
fn plain_output_groups_lines_per_host() {
    let s = Setup::new("groupapp", 3, "retries = 0");
    let p = &s.p;
    // Steps that take turns across hosts: each sleeps 0.1 to 0.5s, by its shell's pid.
    let steps: String = (0..4)
        .map(|i| {
            format!(
                "[[step]]\nname = \"step {i}\"\ncommand = {{ run = \"sleep 0.$(( $$ % 5 + 1 ))\" }}\n\n"
            )
        })
        .collect();
    p.write("playbooks/deploy.toml", &steps);
    let r = p.run(&["up", "test"]);
    r.expect_code(0);
    let step_lines: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(step_lines.len(), 12, "{}", r.dump());
    let mut order: Vec<&str> = Vec::new();
    for l in &step_lines {
        let host = &l[1..l.find(']').unwrap()];
        if order.last() != Some(&host) {
            assert!(!order.contains(&host), "hosts interleave:\n{}", r.stdout);
            order.push(host);
        }
    }
    assert_eq!(order.len(), 3);
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("3 hosts: 0 failed, 0 unreachable; 12 changed, 0 ok"),
        "{last}"
    );
}
