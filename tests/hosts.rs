//! Many hosts, unreachable hosts, `--limit`, `--forks`, host keys and jump hosts: the real
//! binary against real sshd servers on 127.0.0.1.
//!
//! All servers are this machine, so per-host paths carry `{{ host.port }}`.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use support::*;

/// A project whose hosts are `servers` (as root) plus `extra_hosts`; `env_extra` is appended
/// to `[env.test]`.
fn project<'a>(
    key_dir: &Project,
    servers: impl IntoIterator<Item = &'a Sshd>,
    extra_hosts: &[String],
    key: &ClientKey,
    env_extra: &str,
) {
    let mut hosts: Vec<String> = servers.into_iter().map(|s| s.addr("root")).collect();
    hosts.extend(extra_hosts.iter().cloned());
    let mut toml = project_toml("fleet", &hosts, key, "connect_timeout = \"5s\"");
    toml.push_str(env_extra);
    toml.push('\n');
    key_dir.write("provision.toml", &toml);
}

/// A playbook with one command per host that runs `before`, then leaves `marker-<port>`
/// (holding the host's name) unless it is there already.
fn marker_step(p: &Project, before: &str) {
    let r = p.remote.display();
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"marker\"\ncommand = {{ run = \"{before}; echo {{{{ host.name }}}} > {r}/marker-{{{{ host.port }}}}\", creates = \"{r}/marker-{{{{ host.port }}}}\" }}\n"
        ),
    );
}

/// [`marker_step`] after sleeping `secs`.
fn marker_playbook(p: &Project, secs: u32) {
    marker_step(p, &format!("sleep {secs}"));
}

/// [`marker_step`] after waiting (30 s at most, then failing) until `n` hosts are inside the
/// step: it can only succeed on every host when `n` hosts run it at the same time.
fn rendezvous_playbook(p: &Project, n: usize) {
    let r = p.remote.display();
    marker_step(
        p,
        &format!(
            "touch {r}/inside-{{{{ host.port }}}}; i=0; while [ $(ls {r} | grep -c '^inside-') -lt {n} ]; do i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.05; done"
        ),
    );
}

fn marker(p: &Project, port: u16) -> PathBuf {
    p.remote.join(format!("marker-{port}"))
}

fn hosts_of(run: &Run, event: &str) -> BTreeSet<String> {
    run.events_of(event)
        .iter()
        .map(|e| e["host"].as_str().unwrap().to_string())
        .collect()
}

fn set(items: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    items.into_iter().collect()
}

fn setup(n: usize) -> (Project, ClientKey, Vec<Sshd>) {
    let p = Project::new();
    let key = ClientKey::generate(&p.path("keys"));
    let servers = start_many(&key, n);
    (p, key, servers)
}

/// [`setup`] with one server, and the project on it (`env_extra` as in [`project`]) with the
/// marker playbook: the start of every host key test.
fn one_host(env_extra: &str) -> (Project, ClientKey, Vec<Sshd>) {
    let (p, key, servers) = setup(1);
    project(&p, &servers, &[], &key, env_extra);
    marker_playbook(&p, 0);
    (p, key, servers)
}

/// The project on `targets`, reached through `bastion` (`ssh.jump`), with the marker playbook.
fn behind_bastion<'a>(
    p: &Project,
    targets: impl IntoIterator<Item = &'a Sshd>,
    key: &ClientKey,
    bastion: &Sshd,
) {
    project(
        p,
        targets,
        &[],
        key,
        &format!("ssh = {{ jump = \"root@127.0.0.1:{}\" }}", bastion.port),
    );
    marker_playbook(p, 0);
}

/// `SHA256:...` strings in a text.
fn fingerprints(text: &str) -> BTreeSet<String> {
    text.split(|c: char| c.is_whitespace() || "(),;\"".contains(c))
        .filter(|w| w.starts_with("SHA256:") && w.len() > 20)
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// many hosts
// ---------------------------------------------------------------------------------------------

#[test]
fn five_hosts_converge_in_parallel_and_an_unreachable_one_is_reported() {
    let (p, key, servers) = setup(5);
    let dead_port = closed_port();
    let dead = format!("127.0.0.1:{dead_port}");
    project(&p, &servers, &[format!("root@{dead}")], &key, "");
    // In parallel, or the step fails: each host waits inside it until all 5 are.
    rendezvous_playbook(&p, 5);

    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(4);
    let live: BTreeSet<String> = set(servers.iter().map(Sshd::name));
    let started = &r.events_of("run_started")[0];
    assert_eq!(started["hosts"].as_array().unwrap().len(), 6, "{started}");

    // The 5 reachable hosts converged.
    assert_eq!(hosts_of(&r, "host_connected"), live, "{}", r.dump());
    let expect: BTreeSet<(String, String)> = live
        .iter()
        .map(|h| (h.clone(), "marker".to_string()))
        .collect();
    assert_eq!(r.host_steps_with("changed"), expect, "{}", r.dump());
    assert_eq!(r.changed(), 5);
    assert_eq!(r.failed(), 0);
    for s in &servers {
        assert_eq!(
            std::fs::read_to_string(marker(&p, s.port)).unwrap(),
            format!("{}\n", s.name())
        );
    }

    // The dead one is named, as unreachable, in the events and the totals.
    let unreachable = r.events_of("host_unreachable");
    assert_eq!(unreachable.len(), 1, "{}", r.dump());
    assert_eq!(unreachable[0]["host"], dead.as_str());
    let error = unreachable[0]["error"].as_str().unwrap();
    assert!(
        error.contains(&dead_port.to_string()),
        "the error names the address: {error}"
    );
    let fin = r.finished();
    assert_eq!(fin["unreachable_hosts"], serde_json::json!([dead]));
    assert_eq!(fin["failed_hosts"], serde_json::json!([]));
    assert_eq!(fin["exit_code"], 4);
    let dead_finished: Vec<_> = r
        .events_of("host_finished")
        .into_iter()
        .filter(|e| e["host"] == dead.as_str())
        .collect();
    assert_eq!(dead_finished.len(), 1);
    assert_eq!(dead_finished[0]["unreachable"], true);

    // In parallel, as the events tell too: the step started on every host before it
    // finished on any.
    let kinds: Vec<String> = r
        .events()
        .iter()
        .filter(|e| e["event"] == "step_started" || e["event"] == "step_finished")
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds[..5], ["step_started"; 5], "{}", r.dump());

    // The text recap names the unreachable host too.
    let text = p.run(&["up", "test"]);
    text.expect_code(4);
    let recap = text
        .stdout
        .split("RECAP")
        .nth(1)
        .unwrap_or_else(|| panic!("no recap\n{}", text.dump()));
    let dead_line = recap
        .lines()
        .find(|l| l.contains(&dead))
        .unwrap_or_else(|| panic!("recap does not name {dead}\n{}", text.dump()));
    assert!(dead_line.contains("UNREACHABLE"), "{dead_line}");
    for s in &servers {
        let line = recap
            .lines()
            .find(|l| l.contains(&s.name()))
            .unwrap_or_else(|| panic!("recap misses {}\n{}", s.name(), text.dump()));
        assert!(
            line.contains("changed=0") && line.contains("failed=0"),
            "{line}"
        );
    }
    assert!(recap.contains("1 unreachable"), "{}", text.dump());
}

#[test]
fn unreachable_takes_precedence_over_a_failed_step() {
    let (p, key, servers) = setup(2);
    let dead = format!("127.0.0.1:{}", closed_port());
    project(&p, &servers, &[format!("root@{dead}")], &key, "");
    let r = p.remote.display();
    // The step fails on the first server only.
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"maybe fail\"\ncommand = {{ run = \"test {{{{ host.port }}}} != {port} || exit 9\\ntouch {r}/ok-{{{{ host.port }}}}\", creates = \"{r}/ok-{{{{ host.port }}}}\" }}\n",
            port = servers[0].port
        ),
    );
    let run = p.run(&["up", "test", "--output", "json"]);
    run.expect_code(4);
    let fin = run.finished();
    assert_eq!(
        fin["failed_hosts"],
        serde_json::json!([servers[0].name()]),
        "{fin}"
    );
    assert_eq!(fin["unreachable_hosts"], serde_json::json!([dead]), "{fin}");
    assert_eq!(run.failed(), 1);
    assert_eq!(run.changed(), 1);
    assert!(
        p.remote.join(format!("ok-{}", servers[1].port)).exists(),
        "the healthy host converged"
    );

    // Without the dead host, the failure alone gives 3.
    project(&p, &servers, &[], &key, "");
    p.run(&["up", "test", "--output", "json"]).expect_code(3);
}

#[test]
fn limit_runs_only_the_named_host() {
    let (p, key, servers) = setup(3);
    project(&p, &servers, &[], &key, "");
    marker_playbook(&p, 0);
    let chosen = &servers[1];

    let r = p.run(&["up", "test", "--limit", &chosen.name(), "--output", "json"]);
    r.expect_code(0);
    assert_eq!(
        r.events_of("run_started")[0]["hosts"],
        serde_json::json!([chosen.name()])
    );
    assert_eq!(hosts_of(&r, "host_finished"), set([chosen.name()]));
    assert_eq!(
        r.host_steps_with("changed"),
        BTreeSet::from([(chosen.name(), "marker".to_string())])
    );
    for s in &servers {
        assert_eq!(
            marker(&p, s.port).exists(),
            s.port == chosen.port,
            "marker of {}",
            s.name()
        );
    }
    assert!(
        !servers[0].log().contains("Accepted publickey"),
        "a host outside --limit was contacted"
    );

    // A limit that matches nothing is a config error, before any connection.
    let bad = p.run(&["up", "test", "--limit", "nope"]);
    bad.expect_code(1);
    assert!(bad.stderr.contains("nope"), "{}", bad.dump());
    assert!(!marker(&p, servers[0].port).exists());
}

#[test]
fn limit_by_role_runs_only_its_hosts() {
    let (p, key, servers) = setup(3);
    let toml = project_toml("fleet", &[], &key, "connect_timeout = \"5s\"").replace(
        "hosts = []",
        &format!(
            "hosts = {{ web = [{:?}, {:?}], db = [{:?}] }}",
            servers[0].addr("root"),
            servers[1].addr("root"),
            servers[2].addr("root")
        ),
    );
    p.write("provision.toml", &toml);
    marker_playbook(&p, 0);

    let r = p.run(&["up", "test", "--limit", "db", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(hosts_of(&r, "host_finished"), set([servers[2].name()]));
    assert!(marker(&p, servers[2].port).exists());
    assert!(!marker(&p, servers[0].port).exists() && !marker(&p, servers[1].port).exists());

    let r = p.run(&["up", "test", "--limit", "web", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(
        hosts_of(&r, "host_finished"),
        set([servers[0].name(), servers[1].name()])
    );
    assert_eq!(r.changed(), 2);
}

#[test]
fn forks_one_runs_hosts_one_at_a_time() {
    let (p, key, servers) = setup(3);
    project(&p, &servers, &[], &key, "");
    marker_playbook(&p, 1);

    let r = p.run(&["up", "test", "--forks", "1", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.changed(), 3, "{}", r.dump());
    for s in &servers {
        assert!(marker(&p, s.port).exists(), "marker of {}", s.name());
    }
    // One host at a time: every host finishes before the next one connects.
    let mut open: Option<String> = None;
    for e in r.events() {
        match e["event"].as_str().unwrap() {
            "host_connected" => {
                assert!(
                    open.is_none(),
                    "two hosts at once with --forks 1\n{}",
                    r.dump()
                );
                open = Some(e["host"].as_str().unwrap().to_string());
            }
            "host_finished" => {
                assert_eq!(open.as_deref(), e["host"].as_str(), "{}", r.dump());
                open = None;
            }
            _ => {}
        }
    }
    assert!(
        r.elapsed >= Duration::from_secs(3),
        "3 × 1 s one at a time took only {:?}",
        r.elapsed
    );

    let again = p.run(&["up", "test", "--forks", "1", "--output", "json"]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0);
}

// ---------------------------------------------------------------------------------------------
// host keys
// ---------------------------------------------------------------------------------------------

fn known_hosts(p: &Project) -> String {
    std::fs::read_to_string(p.path(".provision/known_hosts")).unwrap_or_default()
}

/// `up` on a project whose one host is refused: exit 4, one `host_unreachable` event; its
/// error message.
#[track_caller]
fn refused_host_error(p: &Project) -> String {
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(4);
    let unreachable = r.events_of("host_unreachable");
    assert_eq!(unreachable.len(), 1, "{}", r.dump());
    unreachable[0]["error"].as_str().unwrap().to_string()
}

#[test]
fn strict_refuses_an_unknown_host_and_touches_nothing() {
    let (p, _, servers) = one_host("ssh = { known_hosts = \"strict\" }");
    let sshd = &servers[0];

    let error = refused_host_error(&p);
    assert!(error.contains("not known"), "{error}");
    assert!(
        error.contains(&sshd.fingerprint()),
        "the error shows the offered key's fingerprint: {error}"
    );
    assert!(
        !marker(&p, sshd.port).exists(),
        "nothing may change on an unverified host"
    );
    assert!(
        !known_hosts(&p).contains(&sshd.host_pub_key),
        "strict must not pin"
    );
    assert!(
        !sshd.log().contains("Accepted publickey"),
        "strict must not even authenticate\n{}",
        sshd.log()
    );

    let text = p.run(&["up", "test"]);
    text.expect_code(4);
    assert!(text.stdout.contains("not known"), "{}", text.dump());
}

#[test]
fn strict_accepts_a_key_from_the_users_known_hosts() {
    let (p, _, servers) = one_host("ssh = { known_hosts = \"strict\" }");
    let sshd = &servers[0];
    std::fs::create_dir_all(p.home.join(".ssh")).unwrap();
    // Hashed by OpenSSH itself, as with `HashKnownHosts yes`.
    let user_file = p.home.join(".ssh/known_hosts");
    std::fs::write(
        &user_file,
        format!("# a comment\n{}\n", sshd.known_hosts_line()),
    )
    .unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&user_file)
        .output()
        .expect("ssh-keygen -H");
    assert!(out.status.success(), "{out:?}");
    let hashed = std::fs::read_to_string(&user_file).unwrap();
    assert!(
        hashed.contains("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );

    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    assert!(marker(&p, sshd.port).exists());
    assert!(
        !known_hosts(&p).contains(&sshd.host_pub_key),
        "a key known to the user is not pinned again"
    );
}

#[test]
fn accept_new_pins_the_key_and_strict_then_accepts_it() {
    let (p, key, servers) = one_host("");
    let sshd = &servers[0];

    p.run(&["up", "test", "--output", "json"]).expect_code(0);
    assert!(marker(&p, sshd.port).exists());
    let pinned = known_hosts(&p);
    assert!(
        pinned.lines().any(|l| l.trim() == sshd.known_hosts_line()),
        "expected `{}` in .provision/known_hosts:\n{pinned}",
        sshd.known_hosts_line()
    );

    // Strict now finds the pinned key.
    std::fs::remove_file(marker(&p, sshd.port)).unwrap();
    project(&p, [sshd], &[], &key, "ssh = { known_hosts = \"strict\" }");
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.changed(), 1);
    assert!(marker(&p, sshd.port).exists());
    assert_eq!(known_hosts(&p), pinned, "a known host is not pinned twice");
}

#[test]
fn changed_host_key_is_refused_even_under_accept_new() {
    let (p, key, mut servers) = one_host("");
    let sshd = &mut servers[0];

    // First contact pins the key (plan changes nothing on the host).
    p.run(&["plan", "test", "--output", "json"]).expect_code(0);
    let old = sshd.fingerprint();
    let pinned = known_hosts(&p);
    assert!(pinned.contains(&sshd.host_pub_key), "{pinned}");

    sshd.regenerate_host_key();
    let new = sshd.fingerprint();
    assert_ne!(old, new);
    let log_from = sshd.log().len();

    let error = refused_host_error(&p);
    assert!(error.contains("HOST KEY CHANGED"), "{error}");
    assert_eq!(
        fingerprints(&error),
        set([old.clone(), new.clone()]),
        "both fingerprints are shown: {error}"
    );
    assert!(
        !marker(&p, sshd.port).exists(),
        "nothing may change on a host with a changed key"
    );
    assert_eq!(
        known_hosts(&p),
        pinned,
        "the pinned key must not be replaced"
    );
    let log = sshd.log()[log_from..].to_string();
    assert!(
        !log.contains("Accepted publickey"),
        "no login to an impostor\n{log}"
    );

    // Same under strict, and in the text output.
    project(
        &p,
        [&*sshd],
        &[],
        &key,
        "ssh = { known_hosts = \"strict\" }",
    );
    let text = p.run(&["up", "test"]);
    text.expect_code(4);
    assert!(text.stdout.contains("HOST KEY CHANGED"), "{}", text.dump());
    assert!(
        text.stdout.contains(&old) && text.stdout.contains(&new),
        "{}",
        text.dump()
    );
    assert!(!marker(&p, sshd.port).exists());
}

// ---------------------------------------------------------------------------------------------
// jump host
// ---------------------------------------------------------------------------------------------

#[test]
fn one_bastion_for_several_targets_is_pinned_once_and_checked() {
    let (p, key, mut servers) = setup(3);
    let mut bastion = servers.remove(0);
    let targets = servers;
    behind_bastion(&p, &targets, &key, &bastion);

    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.changed(), 2, "{}", r.dump());
    for t in &targets {
        assert!(marker(&p, t.port).exists());
    }
    let pinned = known_hosts(&p);
    assert_eq!(
        pinned.matches(&bastion.host_pub_key).count(),
        1,
        "the bastion is pinned once:\n{pinned}"
    );

    // The bastion's key changes: every target is refused, and the error says it is the jump host.
    bastion.regenerate_host_key();
    for t in &targets {
        std::fs::remove_file(marker(&p, t.port)).unwrap();
    }
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(4);
    let errors = r.events_of("host_unreachable");
    assert_eq!(errors.len(), 2, "{}", r.dump());
    for e in &errors {
        let msg = e["error"].as_str().unwrap();
        assert!(
            msg.contains("HOST KEY CHANGED") && msg.contains("jump"),
            "{msg}"
        );
    }
    for t in &targets {
        assert!(!marker(&p, t.port).exists());
    }
}

#[test]
fn jump_host_reaches_the_target_through_the_bastion() {
    let (p, key, mut servers) = setup(2);
    let target = servers.pop().unwrap();
    let mut bastion = servers.pop().unwrap();
    behind_bastion(&p, [&target], &key, &bastion);

    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(
        r.host_steps_with("changed"),
        BTreeSet::from([(target.name(), "marker".to_string())])
    );
    assert!(marker(&p, target.port).exists());
    assert!(
        bastion.log().contains("Accepted publickey for root"),
        "the bastion was not used\n{}",
        bastion.log()
    );
    assert!(
        target.log().contains("Accepted publickey for root"),
        "{}",
        target.log()
    );
    let pinned = known_hosts(&p);
    assert!(
        pinned.contains(&bastion.known_hosts_line()),
        "bastion key pinned:\n{pinned}"
    );
    assert!(
        pinned.contains(&target.known_hosts_line()),
        "target key pinned:\n{pinned}"
    );

    let again = p.run(&["up", "test", "--output", "json"]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0);

    // Without the bastion the target is unreachable: the route really goes through it.
    bastion.stop();
    std::fs::remove_file(marker(&p, target.port)).unwrap();
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(4);
    let error = r.events_of("host_unreachable")[0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("jump"), "{error}");
    assert!(!marker(&p, target.port).exists());
}
