//! Malformed input never touches a host and always says where the problem is.
//!
//! Every folder of `tests/bad_input/` (but `_base`) is one malformed project: the files of
//! `_base` with the case's files laid over them, run with the real binary against a real sshd
//! started here (see `tests/bad_input/README.md` for the placeholders and `expect.txt`). For
//! each case the test checks the exit code, that the message names `file:line` and says what
//! `expect.txt` lists, that no secret value is printed, that nothing panicked, and that the
//! host was not touched: the playbook's first step (`marker`) did not run, and for a config
//! error sshd saw no connection at all and no host key was pinned.

mod support;

use std::path::{Path, PathBuf};
use support::{ClientKey, Project, Run, Servers, Sshd};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bad_input");
const BASE: &str = "_base";

/// What one case's `expect.txt` says.
#[derive(Debug)]
struct Expect {
    file: Option<String>,
    line: Option<usize>,
    /// With `line`: the message names `file:line:col`.
    col: Option<usize>,
    contains: Vec<String>,
    absent: Vec<String>,
    args: Option<String>,
    exit: i32,
    remove: Vec<String>,
    /// `KEY=VALUE` set in provision's environment for the run.
    env: Vec<(String, String)>,
    /// `(path, passphrase)`: an ed25519 key generated into the project, encrypted.
    keygen: Vec<(String, String)>,
}

fn parse_expect(case: &str, text: &str) -> Expect {
    let mut e = Expect {
        file: None,
        line: None,
        col: None,
        contains: Vec::new(),
        absent: Vec::new(),
        args: None,
        exit: 1,
        remove: Vec::new(),
        env: Vec::new(),
        keygen: Vec::new(),
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{case}/expect.txt:{}: not `key: value`: {raw}", i + 1));
        let value = value.trim().to_string();
        let bad = |what: &str| -> usize { panic!("{case}/expect.txt:{}: {what}: {raw}", i + 1) };
        match key.trim() {
            "file" => e.file = Some(value),
            "line" => e.line = Some(value.parse().unwrap_or_else(|_| bad("not a line number"))),
            "col" => e.col = Some(value.parse().unwrap_or_else(|_| bad("not a column number"))),
            "contains" => e.contains.push(value),
            "absent" => e.absent.push(value),
            "args" => e.args = Some(value),
            "exit" => {
                e.exit = value
                    .parse()
                    .unwrap_or_else(|_| bad("not an exit code") as i32)
            }
            "remove" => e.remove.push(value),
            "env" => {
                let (k, v) = value.split_once('=').unwrap_or_else(|| {
                    bad("not KEY=VALUE");
                    unreachable!()
                });
                e.env.push((k.to_string(), v.to_string()));
            }
            "keygen" => {
                let (path, pass) = value.split_once(' ').unwrap_or_else(|| {
                    bad("not `<path> <passphrase>`");
                    unreachable!()
                });
                e.keygen.push((path.to_string(), pass.trim().to_string()));
            }
            _ => {
                bad("unknown key");
            }
        }
    }
    assert!(
        e.line.is_none() || e.file.is_some(),
        "{case}/expect.txt: `line` without `file`"
    );
    assert!(
        e.col.is_none() || e.line.is_some(),
        "{case}/expect.txt: `col` without `line`"
    );
    assert!(
        e.exit != 1 || e.file.is_some(),
        "{case}/expect.txt: a config error must name its `file`"
    );
    assert!(
        !e.contains.is_empty(),
        "{case}/expect.txt: give at least one `contains`"
    );
    e
}

/// Placeholders of the corpus files, filled in for one run.
struct Subst {
    host: String,
    remote: String,
    ssh: String,
}

impl Subst {
    fn new(sshd: &Sshd, key: &ClientKey, project: &Project) -> Subst {
        Subst {
            host: sshd.addr("root"),
            remote: project.remote.display().to_string(),
            ssh: format!(
                "ssh = {{ config = \"none\", known_hosts = \"accept-new\", identity_file = {:?} }}",
                key.private.display().to_string()
            ),
        }
    }

    fn apply(&self, text: &str) -> String {
        text.replace("@HOST@", &self.host)
            .replace("@REMOTE@", &self.remote)
            .replace("@SSH@", &self.ssh)
    }
}

/// Copy `src` into `dst` with placeholders filled in (`expect.txt` is not part of a project).
fn lay_over(src: &Path, dst: &Path, subst: &Subst) {
    for entry in std::fs::read_dir(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display())) {
        let entry = entry.expect("dir entry");
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        if from.is_dir() {
            std::fs::create_dir_all(&to).expect("create dir");
            lay_over(&from, &to, subst);
        } else if entry.file_name() != "expect.txt" {
            let text = std::fs::read_to_string(&from)
                .unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
            std::fs::write(&to, subst.apply(&text)).expect("write project file");
        }
    }
}

/// A project made of `_base` plus `case` (None: `_base` alone).
fn materialize(
    sshd: &Sshd,
    key: &ClientKey,
    case: Option<&str>,
    expect: Option<&Expect>,
) -> (Project, Subst) {
    let project = Project::new();
    let subst = Subst::new(sshd, key, &project);
    lay_over(&Path::new(CORPUS).join(BASE), project.dir.path(), &subst);
    if let Some(case) = case {
        lay_over(&Path::new(CORPUS).join(case), project.dir.path(), &subst);
    }
    for rel in expect.map(|e| e.remove.as_slice()).unwrap_or_default() {
        std::fs::remove_file(project.path(rel)).unwrap_or_else(|e| panic!("remove {rel}: {e}"));
    }
    for (rel, pass) in expect.map(|e| e.keygen.as_slice()).unwrap_or_default() {
        let path = project.path(rel);
        std::fs::create_dir_all(path.parent().expect("key dir")).expect("create key dir");
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-C", "bad-input", "-N", pass, "-f"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run ssh-keygen");
        assert!(st.success(), "ssh-keygen {}", path.display());
    }
    (project, subst)
}

fn cases() -> Vec<String> {
    let mut cases: Vec<String> = std::fs::read_dir(CORPUS)
        .expect("tests/bad_input exists")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.path().is_dir() && e.file_name() != BASE)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    cases
}

/// `file:line` followed by a non-digit (so `:3` does not match `:30`).
fn has_location(text: &str, file: &str, line: usize) -> bool {
    let needle = format!("{file}:{line}");
    text.match_indices(&needle)
        .any(|(i, _)| !text[i + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Run one case; Err says every way it fell short.
fn run_case(sshd: &Sshd, key: &ClientKey, case: &str) -> Result<(), String> {
    let dir = PathBuf::from(CORPUS).join(case);
    let text = std::fs::read_to_string(dir.join("expect.txt"))
        .map_err(|e| format!("cannot read {case}/expect.txt: {e}"))?;
    let expect = parse_expect(case, &text);
    let (project, subst) = materialize(sshd, key, Some(case), Some(&expect));
    let args = subst.apply(expect.args.as_deref().unwrap_or("up test"));
    let args: Vec<&str> = args.split_whitespace().collect();
    let log_before = sshd.log().len();
    let run = if expect.env.is_empty() {
        project.run(&args)
    } else {
        project.run_env(&args, &expect.env)
    };
    let sshd_saw = sshd.log().get(log_before..).unwrap_or_default().to_string();
    if expect.exit != 1 {
        // This case did connect: let sshd finish logging it before the next case looks.
        wait_quiet(sshd);
    }

    let mut problems = Vec::new();
    check_run(&run, &expect, &mut problems);
    let marker = project.remote.join("marker");
    if marker.exists() {
        problems.push(format!("the first step ran: {} exists", marker.display()));
    }
    if expect.exit == 1 {
        if sshd_saw.contains("Connection from") {
            problems.push(format!(
                "a config error, yet sshd saw a connection:\n{sshd_saw}"
            ));
        }
        let pinned = project.path(".provision/known_hosts");
        if pinned.exists() {
            problems.push(format!(
                "a config error, yet a host key was pinned in {}",
                pinned.display()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{}", problems.join("\n"), run.dump()))
    }
}

/// Wait until sshd's log stops growing (its per-connection processes log after the client
/// is gone), so one case's connection is not seen by the next. The harness's own "is it
/// listening" probe is a connection too, logged shortly after `Sshd::start` returns.
fn wait_quiet(sshd: &Sshd) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut len = sshd.log().len();
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = sshd.log().len();
        let log = sshd.log();
        let opened = log.matches("Connection from").count();
        let closed =
            log.matches("Connection closed by").count() + log.matches("Disconnected from").count();
        if now == len && closed >= opened {
            return;
        }
        len = now;
    }
}

fn check_run(run: &Run, expect: &Expect, problems: &mut Vec<String>) {
    let all = format!("{}\n{}", run.stdout, run.stderr);
    if run.code != expect.exit {
        problems.push(format!("exit code {} (expected {})", run.code, expect.exit));
    }
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        if all.contains(bad) {
            problems.push(format!("the output contains `{bad}`"));
        }
    }
    // A config error is one `error: ...` line on stderr; other failures may report on stdout.
    let message = if expect.exit == 1 {
        let has_error_line = run.stderr.lines().any(|l| {
            l.strip_prefix("error: ")
                .is_some_and(|m| !m.trim().is_empty())
        });
        if !has_error_line {
            problems.push("stderr has no `error: <message>` line".into());
        }
        run.stderr.as_str()
    } else {
        all.as_str()
    };
    match (&expect.file, expect.line) {
        (Some(file), Some(line)) if !has_location(message, file, line) => {
            problems.push(format!("the message does not name `{file}:{line}`"));
        }
        (Some(file), Some(line)) if expect.col.is_some() => {
            let col = expect.col.unwrap_or_default();
            if !has_location(message, &format!("{file}:{line}"), col) {
                problems.push(format!("the message does not name `{file}:{line}:{col}`"));
            }
        }
        (Some(file), None) if !message.contains(file.as_str()) => {
            problems.push(format!("the message does not name `{file}`"));
        }
        _ => {}
    }
    for want in &expect.contains {
        if !message.contains(want.as_str()) {
            problems.push(format!("the message does not contain `{want}`"));
        }
    }
    for secret in &expect.absent {
        if all.contains(secret.as_str()) {
            problems.push(format!(
                "the output contains `{secret}`, which must never be printed"
            ));
        }
    }
}

#[test]
fn every_bad_input_is_reported_with_its_location_and_touches_no_host() {
    let servers = Servers::start(1);
    let (sshd, key) = (servers.sshd(), &servers.key);
    wait_quiet(sshd);
    let cases = cases();
    assert!(
        cases.len() >= 50,
        "the corpus should hold at least 50 cases, found {}: {cases:?}",
        cases.len()
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            run_case(sshd, key, case)
                .err()
                .map(|e| format!("=== {case}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// `provision validate` on every case: it exits 1 and reports the very error the normal path
/// gives (the same `error:` line: file:line:col and message), without connecting. The case's
/// `args` give the env (`up test` → `validate test`) and the options before `--`.
#[test]
fn validate_reports_every_bad_input_as_the_normal_path_does_and_connects_nowhere() {
    let servers = Servers::start(1);
    let (sshd, key) = (servers.sshd(), &servers.key);
    wait_quiet(sshd);
    let cases = cases();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            validate_case(sshd, key, case)
                .err()
                .map(|e| format!("=== {case}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases failed under validate:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

fn validate_case(sshd: &Sshd, key: &ClientKey, case: &str) -> Result<(), String> {
    let dir = PathBuf::from(CORPUS).join(case);
    let text = std::fs::read_to_string(dir.join("expect.txt"))
        .map_err(|e| format!("cannot read {case}/expect.txt: {e}"))?;
    let expect = parse_expect(case, &text);
    let (project, subst) = materialize(sshd, key, Some(case), Some(&expect));
    let args = subst.apply(expect.args.as_deref().unwrap_or("up test"));
    let args: Vec<&str> = args.split_whitespace().collect();
    let mut validate = vec!["validate"];
    validate.extend(args[1..].iter().take_while(|a| **a != "--"));
    let run = |args: &[&str]| project.run_env(args, &expect.env);
    let normal = run(&args);
    let log_before = sshd.log().len();
    let checked = run(&validate);
    let sshd_saw = sshd.log().get(log_before..).unwrap_or_default().to_string();
    let mut problems = Vec::new();
    let first_error = |r: &Run| {
        r.stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .map(str::to_string)
    };
    match (first_error(&normal), checked.code) {
        (None, _) => problems.push(format!(
            "the normal path gave no error line\n{}",
            normal.dump()
        )),
        (Some(line), 1) if checked.stderr.lines().any(|l| l == line) => {}
        (Some(line), code) => problems.push(format!(
            "validate (exit {code}) does not report the normal path's `{line}`"
        )),
    }
    let all = format!("{}\n{}", checked.stdout, checked.stderr);
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        if all.contains(bad) {
            problems.push(format!("the output contains `{bad}`"));
        }
    }
    for secret in &expect.absent {
        if all.contains(secret.as_str()) {
            problems.push(format!("the output contains `{secret}`"));
        }
    }
    if !checked.stderr.contains("nothing was contacted") {
        problems.push("no summary line".into());
    }
    if sshd_saw.contains("Connection from") || project.path(".provision/known_hosts").exists() {
        problems.push(format!("validate connected:\n{sshd_saw}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{}", problems.join("\n"), checked.dump()))
    }
}

/// The control: `_base` alone is a valid project whose first step does create the marker, so
/// "the marker is absent" in the cases above means something.
#[test]
fn the_base_project_converges_and_its_first_step_creates_the_marker() {
    let servers = Servers::start(1);
    let (project, _) = materialize(servers.sshd(), &servers.key, None, None);
    let run = project.run(&["up", "test"]);
    run.expect_code(0);
    assert!(
        project.remote.join("marker").is_dir(),
        "the base playbook's first step did not create the marker\n{}",
        run.dump()
    );
    assert!(
        !format!("{}{}", run.stdout, run.stderr).contains("bad-input-canary-0"),
        "a secret was printed\n{}",
        run.dump()
    );
}

#[test]
fn location_match_does_not_accept_a_longer_line_number() {
    assert!(has_location(
        "x/provision.toml:3:1: bad",
        "provision.toml",
        3
    ));
    assert!(has_location("templates/a.j2:3: bad", "templates/a.j2", 3));
    assert!(!has_location(
        "provision.toml:30:1: bad",
        "provision.toml",
        3
    ));
}
