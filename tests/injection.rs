//! Values from the playbook never reach a remote shell or tool as code or options (issue 12,
//! items 8 and 10): a `wait.tcp` host is not parsed by a second shell, and repos, package
//! names, images and build contexts that start with `-` are refused before anything runs —
//! in `plan` too. Each case is checked against a real sshd: exit 1, the message names the
//! field, and the marker file the injected text would create does not exist.

mod support;

use support::*;

/// Runs `plan` then `up` of the playbook `step(marker)` and checks both are refused with an
/// error containing `field`, and that the command injected to create `marker` never ran.
fn refused(step: impl Fn(&str) -> String, field: &str) {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("injected");
    let marker = marker.to_string_lossy().into_owned();
    let s = Setup::new("inj", 1, "");
    s.p.write("playbooks/deploy.toml", &step(&marker));
    for cmd in ["plan", "up"] {
        let r = s.p.run(&[cmd, "test"]);
        r.expect_code(1);
        assert!(
            r.stderr.contains(field),
            "{cmd}: the error names `{field}`:\n{}",
            r.dump()
        );
    }
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the injected command ran: {marker}"
    );
}

#[test]
fn wait_tcp_host_with_shell_syntax_is_refused() {
    refused(
        |m| format!("[[step]]\nwait = {{ tcp = \"db;touch {m};:5432\", timeout = \"1s\" }}\n"),
        "is not a host name or address",
    );
}

#[test]
fn git_repo_that_is_an_option_is_refused_even_in_plan() {
    refused(
        |m| {
            format!(
                "[[step]]\ngit = {{ repo = \"--upload-pack=touch {m}\", dest = \"/tmp/inj-src\" }}\n"
            )
        },
        "repo `--upload-pack",
    );
}

#[test]
fn package_image_and_context_names_that_are_options_are_refused() {
    let cases = [
        (
            "[[step]]\npackages = { names = [\"-oAPT::Update::Pre-Invoke::=touch MARK\"] }\n",
            "is not a package name",
        ),
        (
            "[[step]]\ndocker_run = { name = \"web\", image = \"--privileged\" }\n",
            "image `--privileged`",
        ),
        (
            "[[step]]\ndocker_build = { tag = \"app:1\", context = \"--no-cache\" }\n",
            "context `--no-cache`",
        ),
    ];
    for (step, field) in cases {
        refused(|m| step.replace("MARK", m), field);
    }
}

/// The positive side of `wait.tcp`, never exercised before (issue 19): a listening port is
/// ready (by address and by name), a closed one fails after its timeout with the last output.
#[test]
fn wait_tcp_waits_for_a_real_port() {
    let s = Setup::new("inj", 1, "");
    let open = s.sshd().port;
    let closed = closed_port();
    s.p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nwait = {{ tcp = \"127.0.0.1:{open}\", timeout = \"20s\" }}\n\
             [[step]]\nwait = {{ tcp = \"localhost:{open}\", timeout = \"20s\" }}\n"
        ),
    );
    let r = s.p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.ok(), 2, "{}", r.dump());
    s.p.write(
        "playbooks/deploy.toml",
        &format!("[[step]]\nwait = {{ tcp = \"127.0.0.1:{closed}\", timeout = \"2s\", interval = \"0.5s\" }}\n"),
    );
    let r = s.p.run(&["up", "test", "--output", "json"]);
    r.expect_code(3);
    assert_eq!(r.failed(), 1, "{}", r.dump());
    assert!(r.stdout.contains("not ready after"), "{}", r.dump());
}
