//! The HTML run report (issue 20): `up`/`plan --report FILE --timings` on a real three-host run
//! against real sshd, with a secret a template and commands use; the page holds no secret
//! value, equals what `provision report` makes of the run's saved `--output json` lines, and
//! a real headless browser (Debian's `chromium`, installed by scripts/deps.sh) finds a row
//! per host and a bar per step with its status. A screenshot is kept in
//! target/report-artifacts/. No browser: the test fails, it never skips.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{SECRETS_ENV, Setup};

const SECRET: &str = "Rp7-report-canary-1";

/// Three hosts; the playbook writes the secret into an env file and a template, prints it
/// from commands, and fails on the first host (its output, the secret, is the failure's tail).
fn setup() -> Setup {
    let s = Setup::with_env("reportapp", 3, "retries = 0", SECRETS_ENV);
    let p = &s.p;
    p.write("secrets/test.env", &format!("DB_PASSWORD={SECRET}\n"));
    p.write(
        "templates/app.conf.j2",
        "password = {{ secrets.DB_PASSWORD }}\n",
    );
    p.write("files/motd", "welcome to {{ app }}\n<b>not markup</b>\n");
    let app = p.remote_path("app");
    let first_port = s.servers.sshds[0].port;
    p.write(
        "playbooks/deploy.toml",
        &format!(
            r#"release = "rel-{{{{ app }}}}-1"

[[step]]
name = "app dir"
directory = {{ path = "{app}/{{{{ host.port }}}}", mode = "0755" }}

[[step]]
name = "motd"
file = {{ src = "files/motd", dest = "{app}/{{{{ host.port }}}}/motd" }}

[[step]]
name = "app env"
env_file = {{ dest = "{app}/{{{{ host.port }}}}/.env", keys = ["DB_PASSWORD"] }}

[[step]]
name = "app config"
template = {{ src = "templates/app.conf.j2", dest = "{app}/{{{{ host.port }}}}/app.conf" }}

[[step]]
name = "<script>alert(1)</script>"
command = {{ run = "cat {app}/{{{{ host.port }}}}/.env; sleep 0.2" }}

[[step]]
name = "fail on the first host"
command = {{ run = "if [ {{{{ host.port }}}} = {first_port} ]; then cat {app}/{{{{ host.port }}}}/app.conf >&2; exit 1; fi" }}
"#
        ),
    );
    s
}

/// `chromium --headless` with `args` and the page, killed after a minute: its stdout.
fn chromium(page: &Path, args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let mut child = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium must be installed (scripts/deps.sh installs it): this test needs a real browser");
    let stdout = support::reader(child.stdout.take().unwrap());
    let stderr = support::reader(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("chromium ran longer than a minute on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(status.success(), "chromium {args:?}: {status}\n{err}");
    out
}

/// The DOM's elements with `attr="value"` (as chromium serializes them: double quotes).
fn count(dom: &str, needle: &str) -> usize {
    dom.matches(needle).count()
}

/// (host, step, status) of every step_finished line.
fn finished_steps(events: &[Value]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("host"), s("step"), s("status"))
        })
        .collect()
}

/// The `--timings` table in `text` lists ten steps, each among the ten slowest of `events`.
fn assert_slowest_table(text: &str, events: &[Value]) {
    let mut ms: Vec<(u64, String, String)> = events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (e["ms"].as_u64().unwrap(), s("host"), s("step"))
        })
        .collect();
    ms.sort_by_key(|m| std::cmp::Reverse(m.0));
    let tenth = ms[9].0;
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "slowest steps:")
        .skip(2)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(rows.len(), 10, "{text}");
    for row in rows {
        // Columns are two spaces or more apart; names here have single spaces at most.
        let cells: Vec<&str> = row
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        let (took, _, _) = ms
            .iter()
            .find(|(_, host, step)| cells[..2] == [host.as_str(), step.as_str()])
            .unwrap_or_else(|| panic!("`{row}` is no step of the run"));
        assert!(
            *took >= tenth,
            "`{row}` ({took}ms) is not among the ten slowest"
        );
    }
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn html_attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[test]
fn the_run_report_shows_every_host_and_step_without_secrets_in_a_real_browser() {
    let s = setup();
    let p = &s.p;
    let page = p.path("run.html");
    let page_arg = page.display().to_string();

    // plan first: every step would change, and file diffs are on the page.
    let plan_page = p.path("plan.html");
    let plan = p.run(&[
        "plan",
        "test",
        "--report",
        plan_page.to_str().unwrap(),
        "--timings",
    ]);
    plan.expect_code(0);
    // Plain output: the table follows the summary line, on stdout.
    let after_summary = plan
        .stdout
        .split_once("3 hosts: 0 failed, 0 unreachable")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no summary line\n{}", plan.dump()));
    assert!(
        after_summary.contains("slowest steps:\n  host"),
        "{}",
        plan.dump()
    );
    assert_eq!(
        after_summary.lines().count(),
        1 + 1 + 1 + 10,
        "{}",
        plan.dump()
    );
    let plan_html = std::fs::read_to_string(&plan_page).expect("plan --report wrote its page");
    assert!(
        !plan_html.contains(SECRET),
        "the secret is in the plan's page"
    );
    assert!(plan_html.contains("provision plan"), "{plan_html}");

    let up = p.run_env(
        &[
            "up",
            "test",
            "--report",
            &page_arg,
            "--timings",
            "--output",
            "json",
        ],
        &[("USER", "alice")],
    );
    up.expect_code(3);
    let events = up.events();
    assert!(!up.stdout.contains(SECRET) && !up.stderr.contains(SECRET));
    // --timings: the table, on stderr with --output json (stdout stays NDJSON).
    assert!(up.stderr.contains("slowest steps:"), "{}", up.dump());
    assert_slowest_table(&up.stderr, &events);

    let html = std::fs::read_to_string(&page).expect("up --report wrote its page");
    assert!(!html.contains(SECRET), "the secret is in the report");
    assert!(
        html.contains("********"),
        "the failure's output tail is there, masked"
    );
    assert!(
        !html.contains("<script>alert"),
        "a step name injected markup"
    );
    assert!(html.len() < 1_000_000);
    // Who ran it (user@machine) and when.
    let started = &up.events_of("run_started")[0];
    assert!(started["user"].as_str().unwrap().starts_with("alice@"));
    for field in ["user", "started_at"] {
        assert!(html.contains(started[field].as_str().unwrap()), "{field}");
    }
    // The release the hosts recorded (the two that finished; the failed one records it too).
    let released: Vec<_> = up.events_of("host_finished");
    assert!(
        released
            .iter()
            .all(|h| h["release"].as_str().is_some_and(|r| r.starts_with("rel-"))),
        "{}",
        up.dump()
    );
    assert!(
        html.contains("<dt>release</dt><dd>rel-"),
        "the release is not in the header"
    );

    // The saved NDJSON makes the very same page: both are the events as printed.
    p.write("events.ndjson", &up.stdout);
    let saved = p.path("events.ndjson");
    let saved = saved.to_str().unwrap();
    let again = p.path("again.html");
    p.run(&["report", saved, "-o", again.to_str().unwrap()])
        .expect_code(0);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), html);
    let to_stdout = p.run(&["report", saved]);
    to_stdout.expect_code(0);
    assert_eq!(to_stdout.stdout, html);

    // The browser's DOM: a row per host, a bar per step with the status of its event.
    let dom = chromium(&page, &["--dump-dom"]);
    let steps = finished_steps(&events);
    assert_eq!(steps.len(), 18, "{}", up.dump());
    for sshd in &s.servers.sshds {
        let host = sshd.name();
        assert_eq!(
            count(&dom, &format!("class=\"name\" title=\"{host}\"")),
            1,
            "one row for {host}"
        );
    }
    assert_eq!(count(&dom, "<div class=\"row"), 3);
    assert_eq!(count(&dom, "data-status="), steps.len());
    for (host, step, status) in &steps {
        let bar = format!(
            "data-host=\"{host}\" data-step=\"{}\" data-status=\"{status}\"",
            html_attr(step)
        );
        assert_eq!(count(&dom, &bar), 1, "no bar {bar} in the DOM");
    }
    assert_eq!(count(&dom, "data-status=\"failed\""), 1);
    assert!(count(&dom, "class=\"row has-failed") == 1);
    assert!(!dom.contains("<script"), "no script element in the DOM");

    // The screenshot is the test's artifact (docs/report.png is one).
    let shot = artifacts().join("run.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,900",
            "--hide-scrollbars",
        ],
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    std::fs::copy(&page, artifacts().join("run.html")).unwrap();
}

#[test]
fn a_bad_events_line_and_an_unwritable_report_are_errors_naming_them() {
    let s = Setup::new("reportbad", 1, "retries = 0");
    let p = &s.p;
    p.write(
        "bad.ndjson",
        "{\"event\":\"host_connected\",\"host\":\"a\",\"ms\":1,\"at_ms\":1}\nnot json\n",
    );
    let bad = p.path("bad.ndjson");
    let r = p.run(&["report", bad.to_str().unwrap()]);
    r.expect_code(1);
    assert!(
        r.stderr
            .contains(&format!("{}:2: not a provision event", bad.display())),
        "{}",
        r.dump()
    );

    p.write(
        "playbooks/deploy.toml",
        "[[step]]\ncommand = { run = \"true\" }\n",
    );
    let r = p.run(&["up", "test", "--report", "/nonexistent-dir/run.html"]);
    r.expect_code(1);
    assert!(
        r.stderr
            .contains("error: cannot write the report to /nonexistent-dir/run.html"),
        "{}",
        r.dump()
    );
    assert!(
        r.events_of("step_started").is_empty() && !r.stdout.contains("command true"),
        "no step ran before the report path was refused:\n{}",
        r.dump()
    );
}
