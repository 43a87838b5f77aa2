//! `secrets_command`: an env's secrets printed by a local command (dotenv or JSON). Its values
//! reach the host and never any output, in any form; a failing command is an error at the
//! key with its exit status and its (masked) stderr. Real sshd, real binary, real commands.

#[path = "support/forms.rs"]
mod forms;
mod support;

use forms::assert_no_form;
use support::{Run, Setup};

const PASSWORD: &str = "Cq7-cmd-canary-1";
const KEY: &str = "-----BEGIN TEST KEY-----\nCq7cmdcanarylineone0000\nCq7cmdcanarylinetwo1111\n-----END TEST KEY-----";

/// A project whose env runs `sh secrets.sh` printing `output`, and a playbook writing both
/// secrets to the host and then printing that file plain, base64, JSON-escaped, url-encoded.
fn setup(output: &str) -> Setup {
    let s = Setup::with_env(
        "seccmd",
        1,
        "",
        "secrets_command = \"sh secrets.sh\"\nvars = { dsn = \"pg://u:{{ secrets.DB_PASSWORD }}@db/x\" }\n",
    );
    s.p.write("secrets.sh", &format!("cat <<'EOF'\n{output}\nEOF\n"));
    s.p.write(
        "templates/s.j2",
        "{{ secrets.DB_PASSWORD }}\n{{ secrets.TLS_KEY }}\n",
    );
    let f = s.p.remote_path("s.txt");
    s.p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"write\"\ntemplate = {{ src = \"templates/s.j2\", dest = \"{f}\", mode = \"0600\" }}\n\n\
             [[step]]\nname = \"show\"\ncommand = {{ run = \"cat {f}; base64 -w0 {f}; echo; jq -Rs . {f}; jq -sRr @uri {f}; cat {f} >&2; exit 1\" }}\n"
        ),
    );
    s
}

fn values() -> Vec<String> {
    vec![PASSWORD.to_string(), KEY.to_string()]
}

#[track_caller]
fn clean(what: &str, r: &Run) {
    assert_no_form(what, &format!("{}\n{}", r.stdout, r.stderr), &values());
    assert!(!r.stderr.contains("panicked"), "{what}\n{}", r.dump());
}

fn check_everything_masked(s: &Setup) {
    let plan = s.p.run(&["plan", "test"]);
    plan.expect_code(0);
    clean("plan", &plan);
    for args in [
        &["up", "test"][..],
        &["up", "test", "-vv"],
        &["up", "test", "--output", "json"],
    ] {
        let up = s.p.run(args);
        up.expect_code(3);
        clean(&format!("{args:?}"), &up);
        assert!(
            up.stdout.contains("********"),
            "{args:?}: output not shown masked\n{}",
            up.dump()
        );
    }
    let on_host = std::fs::read_to_string(s.p.remote.join("s.txt")).expect("file on the host");
    assert_eq!(
        on_host,
        format!("{PASSWORD}\n{KEY}\n"),
        "the command's values reach the host"
    );
    let listing = s.p.run(&["secrets", "test"]);
    listing.expect_code(0);
    clean("secrets", &listing);
    assert!(
        listing
            .stdout
            .lines()
            .any(|l| l.starts_with("DB_PASSWORD") && l.contains("command")),
        "{}",
        listing.dump()
    );
    assert!(
        listing.stdout.contains("secrets_command `sh secrets.sh`"),
        "{}",
        listing.dump()
    );
    let config = s.p.run(&["config", "test"]);
    config.expect_code(0);
    clean("config", &config);
    assert!(
        config.stdout.contains("dsn = \"********\""),
        "{}",
        config.dump()
    );
}

#[test]
fn dotenv_output_with_a_multi_line_value_is_used_and_never_printed() {
    let s = setup(&format!("DB_PASSWORD={PASSWORD}\nTLS_KEY=\"{KEY}\""));
    check_everything_masked(&s);
}

#[test]
fn json_output_is_used_and_never_printed() {
    let json = serde_json::json!({ "DB_PASSWORD": PASSWORD, "TLS_KEY": KEY });
    let s = setup(&json.to_string());
    check_everything_masked(&s);
}

#[test]
fn a_failing_command_is_an_error_at_the_key_with_status_and_masked_stderr() {
    let s = setup("unused");
    s.p.write(
        "secrets.sh",
        &format!("echo DB_PASSWORD={PASSWORD}\necho \"cannot unlock {PASSWORD}\" >&2\nexit 7\n"),
    );
    let run = s.p.run(&["plan", "test"]);
    run.expect_code(1);
    clean("failing command", &run);
    for want in [
        "provision.toml:",
        "secrets_command `sh secrets.sh` failed with exit status 7",
        "cannot unlock ********",
    ] {
        assert!(
            run.stderr.contains(want),
            "missing {want:?}\n{}",
            run.dump()
        );
    }
}
