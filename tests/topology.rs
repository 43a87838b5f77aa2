//! Topology and facts in templates (issue 13), end to end: the real binary, real sshd daemons
//! on 127.0.0.1 (each one a "host"), real files written.
//!
//! * `hosts.<role>` lists every host of the env in the order written, with its per-host
//!   `vars`, on every host and also under `--limit` (an upstream names all web hosts).
//! * `facts` are this machine's (every sshd runs here): checked against /etc/os-release,
//!   `uname -m`, `nproc` and /proc/meminfo; usable in `when` and in templates.
//! * `plan` on a fresh host predicts exactly what `up` changes; a second `up` changes nothing.
//! * Round trips of a no-op run: 1 per host when facts are only in `when`s, 2 when a step's
//!   fields use them (its probe can only be rendered once the first trip brought them).

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use support::*;

/// The upstream every host renders: all web hosts, in the order written, with their weights.
const UPSTREAM: &str = "upstream app {\n\
{% for h in hosts.web %}    server {{ h.address }}:{{ h.port }} weight={{ h.vars.weight }};  # {{ h.name }}\n\
{% endfor %}}\n\
# on {{ host.name }} ({{ host.roles | join(',') }}), {{ hosts.all | length }} hosts, db {{ hosts.db[0].name }}\n";

const UPSTREAM_PLAYBOOK: &str = "[[step]]\nname = \"upstream\"\n\
template = { src = \"templates/upstream.j2\", dest = \"@R/upstream-{{ host.name }}.conf\" }\n";

/// Three web hosts written in the order web3, web1, web2 (not name order), each with a
/// weight; web1 is the db host too (listed again as a plain string under `db`).
fn topology_toml(s: &Servers, app: &str, web2_weight: u32) -> String {
    let a: Vec<String> = s.sshds.iter().map(|d| d.addr("root")).collect();
    format!(
        "app = {app:?}\n\n[ssh]\nidentity_file = {key:?}\nknown_hosts = \"accept-new\"\nconfig = \"none\"\n\n\
         [env.test]\nhosts = {{ web = [\n  {{ host = {h3:?}, name = \"web3\", vars = {{ weight = 3 }} }},\n  \
         {{ host = {h1:?}, name = \"web1\", vars = {{ weight = 1 }} }},\n  \
         {{ host = {h2:?}, name = \"web2\", vars = {{ weight = {web2_weight} }} }},\n], db = [{h1:?}] }}\n",
        key = s.key.private.display().to_string(),
        h1 = a[0],
        h2 = a[1],
        h3 = a[2],
    )
}

/// What each host's file must say, given the hosts' ports and web2's weight.
fn expected_upstream(s: &Servers, on: &str, roles: &str, web2_weight: u32) -> String {
    let port = |i: usize| s.sshds[i].port;
    format!(
        "upstream app {{\n    server 127.0.0.1:{} weight=3;  # web3\n    server 127.0.0.1:{} weight=1;  # web1\n    server 127.0.0.1:{} weight={web2_weight};  # web2\n}}\n# on {on} ({roles}), 3 hosts, db web1\n",
        port(2),
        port(0),
        port(1),
    )
}

fn fill(p: &Project, text: &str) -> String {
    text.replace("@R", &p.remote.display().to_string())
}

fn json(p: &Project, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let r = p.run(&all);
    r.expect_code(0);
    assert_eq!(r.failed(), 0, "{}", r.dump());
    r
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn every_host_renders_the_upstream_of_all_web_hosts_with_their_weights_also_under_limit() {
    let s = Servers::start(3);
    let p = Project::new();
    p.write("provision.toml", &topology_toml(&s, "topo-upstream", 2));
    p.write("templates/upstream.j2", UPSTREAM);
    p.write("playbooks/deploy.toml", &fill(&p, UPSTREAM_PLAYBOOK));
    let file = |name: &str| p.remote.join(format!("upstream-{name}.conf"));

    let plan = json(&p, &["plan", "test"]);
    let would = plan.host_steps_with("changed");
    assert_eq!(would.len(), 3, "{}", plan.dump());
    assert!(!file("web1").exists(), "plan wrote a file");
    // The plan's diffs already show every web host, on every host.
    for e in plan.events_of("step_finished") {
        let diff = e["diff"].as_str().unwrap_or_default();
        for line in [
            "weight=3;  # web3",
            "weight=1;  # web1",
            "weight=2;  # web2",
        ] {
            assert!(
                diff.contains(line),
                "{line} missing from the plan of {}\n{diff}",
                e["host"]
            );
        }
    }
    let up = json(&p, &["up", "test"]);
    assert_eq!(up.host_steps_with("changed"), would, "{}", up.dump());
    for (name, roles) in [("web1", "db,web"), ("web2", "web"), ("web3", "web")] {
        assert_eq!(
            read(&file(name)),
            expected_upstream(&s, name, roles, 2),
            "{name}"
        );
    }
    let again = json(&p, &["up", "test"]);
    assert_eq!(again.changed(), 0, "{}", again.dump());

    // web2 gets another weight; a run limited to web1 still lists every web host, with the
    // new weight, and touches only web1.
    p.write("provision.toml", &topology_toml(&s, "topo-upstream", 7));
    let limited = json(&p, &["up", "test", "--limit", "web1"]);
    let hosts: BTreeSet<String> = limited
        .events_of("host_finished")
        .iter()
        .map(|e| e["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts, BTreeSet::from(["web1".to_string()]));
    assert_eq!(limited.changed(), 1, "{}", limited.dump());
    assert_eq!(
        read(&file("web1")),
        expected_upstream(&s, "web1", "db,web", 7)
    );
    assert_eq!(read(&file("web2")), expected_upstream(&s, "web2", "web", 2));
    assert_eq!(read(&file("web3")), expected_upstream(&s, "web3", "web", 2));
}

/// This machine's facts, read here the way the facts are defined (README).
struct LocalFacts {
    id: String,
    version: String,
    arch: String,
    cpus: u64,
    memory_mb: u64,
}

fn local_facts() -> LocalFacts {
    let os = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .expect("this machine has an os-release file");
    let field = |k: &str| {
        os.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let out = |cmd: &str, args: &[&str]| {
        let o = Command::new(cmd).args(args).output().expect(cmd);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let kb: u64 = read(Path::new("/proc/meminfo"))
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("MemTotal in /proc/meminfo");
    LocalFacts {
        id: field("ID"),
        version: field("VERSION_ID"),
        arch: out("uname", &["-m"]),
        cpus: out("nproc", &[]).parse().expect("nproc prints a number"),
        memory_mb: kb / 1024,
    }
}

const FACTS_TEMPLATE: &str = "id={{ facts.os.id }}\nversion={{ facts.os.version }}\n\
family={{ facts.os.family }}\narch={{ facts.arch }}\ncpus={{ facts.cpus }}\n\
memory_mb={{ facts.memory_mb }}\nworkers={{ facts.cpus * 2 + 1 }}\n";

/// A template using facts (deferred to after the first trip), then [`WHEN_STEPS`].
const FACTS_PLAYBOOK: &str = concat!(
    "[[step]]\nname = \"facts file\"\n",
    "template = { src = \"templates/facts.j2\", dest = \"@R/facts.txt\" }\n"
);

/// A command whose `when` on facts holds, and one whose `when` does not.
const WHEN_STEPS: &str = "[[step]]\nname = \"has cpus\"\nwhen = \"facts.cpus >= 1 and facts.memory_mb > 0\"\n\
command = { run = \"touch @R/has-cpus\", creates = \"@R/has-cpus\" }\n\
[[step]]\nname = \"no cpus\"\nwhen = \"facts.cpus < 1\"\n\
command = { run = \"touch @R/no-cpus\", creates = \"@R/no-cpus\" }\n";

#[test]
fn facts_are_this_machines_and_drive_when_and_templates_with_plan_predicting_up() {
    let s = Setup::new("topo-facts", 1, "");
    let p = &s.p;
    p.write("templates/facts.j2", FACTS_TEMPLATE);
    p.write(
        "playbooks/deploy.toml",
        &fill(p, &format!("{FACTS_PLAYBOOK}{WHEN_STEPS}")),
    );

    let plan = json(p, &["plan", "test"]);
    let would = plan.steps_with("changed");
    assert_eq!(
        would,
        BTreeSet::from(["facts file".to_string(), "has cpus".to_string()]),
        "{}",
        plan.dump()
    );
    assert_eq!(
        plan.steps_with("skipped"),
        BTreeSet::from(["no cpus".to_string()])
    );
    assert!(!p.remote.join("facts.txt").exists(), "plan wrote a file");
    let up = json(p, &["up", "test"]);
    assert_eq!(up.steps_with("changed"), would, "{}", up.dump());
    assert!(p.remote.join("has-cpus").exists());
    assert!(!p.remote.join("no-cpus").exists());

    let here = local_facts();
    let family = read(&p.remote.join("facts.txt"))
        .lines()
        .find_map(|l| l.strip_prefix("family=").map(str::to_string))
        .unwrap();
    assert_ne!(family, "unknown");
    assert_eq!(
        read(&p.remote.join("facts.txt")),
        format!(
            "id={}\nversion={}\nfamily={family}\narch={}\ncpus={}\nmemory_mb={}\nworkers={}\n",
            here.id,
            here.version,
            here.arch,
            here.cpus,
            here.memory_mb,
            here.cpus * 2 + 1
        )
    );

    // A no-op run: trip 1 brings the facts (with the probes of the `when` steps), trip 2 the
    // probe of the template rendered with them.
    let again = json(p, &["up", "test"]);
    assert_eq!(again.changed(), 0, "{}", again.dump());
    assert_eq!(again.round_trips(), 2, "{}", again.dump());
    p.run(&["plan", "test", "--detailed-exitcode"])
        .expect_code(0);

    // Facts only in `when`s cost no round trip: the first probe batch carries them.
    p.write("playbooks/deploy.toml", &fill(p, WHEN_STEPS));
    let when_run = json(p, &["up", "test"]);
    assert_eq!(when_run.changed(), 0, "{}", when_run.dump());
    assert_eq!(when_run.round_trips(), 1, "{}", when_run.dump());
}
