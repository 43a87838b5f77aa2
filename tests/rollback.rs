//! `provision rollback` against a real sshd host: what it reads from the host's release log
//! is checked before it becomes a var, and a release's command-line vars are set again.

mod support;

use support::*;

/// A release line with a command in its id (as a compromised host, or anyone who can write
/// the state dir, could forge it) is refused: nothing of it runs, on any host.
#[test]
fn a_forged_release_id_is_refused_and_nothing_runs() {
    let s = Setup::new("rbforge", 1, "retries = 0");
    let p = &s.p;
    let cur = p.remote_path("current");
    // Like examples/dev-and-prod before `shell_quote`: the release id straight into a command.
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "release = \"{{{{ ref }}}}\"\n\n[[step]]\nname = \"record\"\ncommand = {{ run = \"echo {{{{ ref }}}} > {cur}\", unless = \"grep -qx {{{{ ref }}}} {cur}\" }}\n"
        ),
    );
    p.run(&["up", "test", "-e", "ref=v1", "--output", "json"])
        .expect_code(0);
    p.run(&["up", "test", "-e", "ref=v2", "--output", "json"])
        .expect_code(0);
    let marker = format!("/tmp/provision-forged-{}", std::process::id());
    let _ = std::fs::remove_file(&marker);
    let log = s.sshd().state_dir().join("rbforge/test/releases.log");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str(&format!(
        "{{\"time\":\"2026-01-01T00:00:00Z\",\"release\":\"$(touch {marker})\",\"user\":\"x\",\"result\":\"ok\",\"changed\":1}}\n"
    ));
    text.push_str("{\"time\":\"2026-01-01T00:00:01Z\",\"release\":\"v2\",\"user\":\"x\",\"result\":\"ok\",\"changed\":1}\n");
    std::fs::write(&log, text).unwrap();

    let r = p.run(&["rollback", "test"]);
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr.contains("not a valid release id"),
        "the refusal must say why\n{}",
        r.dump()
    );
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the forged release ran a command"
    );
    assert_eq!(std::fs::read_to_string(&cur).unwrap().trim(), "v2");
}

/// A project whose one step writes `version={{ version }}` to a file on the host, released
/// as `<prefix><version>`; and that file's path.
fn versioned(app: &str, prefix: &str) -> (Setup, String) {
    let s = Setup::with_env(app, 1, "retries = 0", "vars = { version = \"0\" }\n");
    let dest = s.p.remote_path("version.txt");
    s.p.write("templates/version.j2", "version={{ version }}\n");
    s.p.write(
        "playbooks/deploy.toml",
        &format!(
            "release = \"{prefix}{{{{ version }}}}\"\n\n[[step]]\nname = \"version file\"\ntemplate = {{ src = \"templates/version.j2\", dest = \"{dest}\" }}\n"
        ),
    );
    (s, dest)
}

/// A playbook keyed on `version` (not `ref`): rollback sets the vars the release was deployed
/// with, so the previous version is what is deployed again.
#[test]
fn rollback_sets_the_vars_the_release_was_deployed_with() {
    let (s, dest) = versioned("rbvars", "");
    let p = &s.p;
    for v in ["1", "2"] {
        p.run(&[
            "up",
            "test",
            "-e",
            &format!("version={v}"),
            "--output",
            "json",
        ])
        .expect_code(0);
        assert_eq!(
            std::fs::read_to_string(&dest).unwrap(),
            format!("version={v}\n")
        );
    }
    let r = p.run(&["rollback", "test", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "version=1\n");
    assert_eq!(r.changed(), 1, "{}", r.dump());
    // The rollback's own record carries the vars too: rolling back again goes to 2.
    let log =
        std::fs::read_to_string(s.sshd().state_dir().join("rbvars/test/releases.log")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["release"], "1", "{log}");
    assert_eq!(last["vars"]["version"], "1", "{log}");
    p.run(&["rollback", "test", "--output", "json"])
        .expect_code(0);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "version=2\n");
}

/// `--to` names a release by a prefix of its id: three releases, back to the first one.
#[test]
fn rollback_to_a_named_release_by_prefix() {
    let (s, dest) = versioned("rbto", "rel-");
    let p = &s.p;
    for v in ["alpha1", "beta2", "gamma3"] {
        p.run(&["up", "test", "-e", &format!("version={v}")])
            .expect_code(0);
    }
    let r = p.run(&["rollback", "test", "--to", "rel-alp", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "version=alpha1\n");
    // A prefix no release has: refused, nothing changes.
    let r = p.run(&["rollback", "test", "--to", "rel-zzz"]);
    assert_ne!(r.code, 0, "{}", r.dump());
    assert!(r.stderr.contains("rel-zzz"), "{}", r.dump());
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "version=alpha1\n");
    // Forward again, to the newest by its prefix.
    p.run(&["rollback", "test", "--to", "rel-gam"])
        .expect_code(0);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "version=gamma3\n");
}
