//! Many hosts, no downtime (issue 13), on four fresh VMs (`lb`, `web1`, `web2`, `db`) started
//! from the Docker-preinstalled image: the bundled hello app built ONCE on the controller and
//! shipped over SSH to both web hosts (same image ID), PostgreSQL on `db` found through the
//! topology (`hosts.db[0].vars.ip`), migrations run once per release (`run_once`, the default
//! for `migrate`), each web host swapping start-first behind its own nginx, and an HAProxy load
//! balancer on `lb` whose servers are rendered from `hosts.web` and health-checked on the
//! proxies' readiness path, so each web host is taken out of it for its swap and put back
//! (`proxy.lb`). The rollout is `serial = 1`.
//!
//! - a new release deployed while a load generator sends requests through the LB for the whole
//!   deploy: 0 failed requests (count, p50/p99 printed), each web host marked down by the LB
//!   and back up before the next one went down, the migration row written once, one build, the
//!   same image ID on both web hosts, a second `up` changes nothing;
//! - a release whose health check fails: the first web host keeps serving the old release, the
//!   second is never reached, the exit code and the recap say which batch failed, 0 failed
//!   requests through the LB.
//!
//! `#[ignore]`d: the slow group (`scripts/test.sh`) runs it with the fresh-VM tests.

#[path = "support/docker.rs"]
mod docker_support;
#[path = "support/fresh_vm.rs"]
mod fresh;
mod support;

use std::time::{Duration, Instant};

use docker_support::{DB_IMAGE, Load, LoadReport, docker};
use fresh::*;
use support::*;

const RATE: u32 = 40;
const WORKERS: u32 = 6;
const ROLES: [(&str, &str); 4] = [("db", "db"), ("web", "web1"), ("web", "web2"), ("lb", "lb")];

struct Fleet {
    _net: Network,
    targets: Vec<(String, Target)>,
    p: Project,
    _keys: tempfile::TempDir,
}

impl Fleet {
    fn target(&self, name: &str) -> &Target {
        &self
            .targets
            .iter()
            .find(|(n, _)| n == name)
            .expect("target")
            .1
    }

    /// `provision <cmd> prod -e version=…` with the controller's Docker (which builds and
    /// ships the images) being the tests' engine.
    fn run(&self, cmd: &str, version: &str) -> Run {
        self.p.run_timeout_env(
            &[
                cmd,
                "prod",
                "--output",
                "json",
                "-e",
                &format!("version={version}"),
            ],
            &[("DOCKER_HOST", docker_support::DOCKER_HOST)],
            Duration::from_secs(15 * 60),
        )
    }

    fn up(&self, version: &str) -> Run {
        self.run("up", version)
    }

    /// The address of `name` on the targets' network (what the hosts use between them).
    fn ip(net: &Network, container: &str) -> String {
        docker(&[
            "inspect",
            "-f",
            &format!(
                "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
                net.name
            ),
            container,
        ])
        .trim()
        .to_string()
    }
}

fn start_fleet(ph: &mut Phases) -> Fleet {
    images();
    docker_support::nginx_image();
    docker_support::haproxy_image();
    let net = Network::create("fleet");
    let keys = tempfile::tempdir().expect("key dir");
    let key = ClientKey::generate(keys.path());
    let targets: Vec<(String, Target)> = std::thread::scope(|s| {
        let handles: Vec<_> = ROLES
            .iter()
            .map(|(_, name)| {
                let (net, key) = (&net, key.clone());
                s.spawn(move || {
                    (
                        name.to_string(),
                        Target::start(Variant::VmDocker, net, name, key),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("target started"))
            .collect()
    });
    ph.lap("four fresh VMs (Docker preinstalled) boot to ssh");
    let p = Project::new();
    let mut known = String::new();
    let mut roles = std::collections::BTreeMap::<&str, Vec<String>>::new();
    for ((role, name), (_, t)) in ROLES.iter().zip(&targets) {
        known.push_str(&format!("[127.0.0.1]:{} {}\n", t.ssh_port, t.host_key));
        let ip = Fleet::ip(&net, &t.container);
        roles.entry(role).or_default().push(format!(
            "{{ host = {:?}, name = {name:?}, vars = {{ ip = {ip:?} }} }}",
            t.addr()
        ));
    }
    p.write(".provision/fleet_known_hosts", &known);
    let hosts: Vec<String> = ["db", "web", "lb"]
        .iter()
        .map(|r| format!("{r} = [{}]", roles[r].join(", ")))
        .collect();
    p.write(
        "provision.toml",
        &format!(
            "app = \"fleet\"\n\n[ssh]\nidentity_file = {key:?}\nknown_hosts = \"strict\"\n\
             known_hosts_file = \".provision/fleet_known_hosts\"\nconfig = \"none\"\nconnect_timeout = \"10s\"\n\n\
             [env.prod]\nhosts = {{ {hosts} }}\nsecrets = \"secrets/prod.env\"\nserial = 1\nssh = {{ become = true }}\n",
            key = key.private.display().to_string(),
            hosts = hosts.join(", "),
        ),
    );
    p.write("secrets/prod.env", "DB_PASSWORD=fleet-db-password-42\n");
    docker_support::copy_dir(
        &docker_support::repo_root().join("examples/hello"),
        &p.path("app"),
    );
    // The release as a static page: busybox httpd serves it without a CGI fork per request,
    // so the load generator measures the deploy, not the CGI's cost on two loaded cores.
    p.write("app/serve", SERVE);
    p.write("templates/lb.conf.j2", LB_CONF);
    p.write(
        "playbooks/deploy.toml",
        &PLAYBOOK.replace("@DB_IMAGE@", DB_IMAGE),
    );
    Fleet {
        _net: net,
        targets,
        p,
        _keys: keys,
    }
}

const SERVE: &str = r#"#!/bin/sh
printf '%s\n' "${APP_RELEASE:-unknown}" > /app/www/release.txt
httpd -f -p 8000 -h /app/www &
trap 'kill "$!"; exit 0' TERM INT
wait "$!"
"#;

/// The load balancer: every web host from the topology, health-checked on its proxy's
/// readiness path (`proxy.lb`), a request that found a host going away retried on another.
const LB_CONF: &str = r#"global
  maxconn 512
defaults
  mode http
  retries 3
  option redispatch
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout check 2s
frontend fe
  bind :80
  default_backend web
backend web
  option httpchk GET /.provision/ready
  http-check expect status 200
{%- for h in hosts.web %}
  server {{ h.name }} {{ h.vars.ip }}:8080 check inter 100ms fall 2 rise 2
{%- endfor %}
"#;

const PLAYBOOK: &str = r#"release = "{{ version }}"

[[step]]
name = "docker"
docker_install = {}

[[step]]
name = "curl"
on = ["web"]
# The start-first health check runs on the host (curl, or wget).
packages = { names = ["curl"] }

[[step]]
name = "app folder"
directory = { path = "/srv/fleet", mode = "0755" }

[[step]]
name = "db image"
on = ["db"]
image = { tag = "@DB_IMAGE@" }

[[step]]
name = "db env"
on = ["db"]
env_file = { dest = "/srv/fleet/db.env", keys = [], vars = { POSTGRES_USER = "fleet", POSTGRES_DB = "fleet", POSTGRES_PASSWORD = "{{ secrets.DB_PASSWORD }}" } }

[[step]]
name = "database"
on = ["db"]
docker_run = { name = "fleet-db", image = "@DB_IMAGE@", env_file = "/srv/fleet/db.env", volumes = ["fleet-pgdata:/var/lib/postgresql/data"], ports = ["5432:5432"], stateful = true, pull = "never" }

[[step]]
name = "database ready"
on = ["db"]
wait = { command = "docker exec fleet-db pg_isready -q -U fleet", timeout = "60s", interval = "0.5s" }

[[step]]
name = "proxy image"
on = ["web"]
image = { tag = "provision-local/nginx:1" }

[[step]]
name = "lb image"
on = ["lb"]
image = { tag = "provision-local/haproxy:1" }

[[step]]
name = "app image"
on = ["web"]
image = { tag = "fleet:{{ version }}", build = { context = "app" } }

[[step]]
name = "app env"
on = ["web"]
env_file = { dest = "/srv/fleet/app.env", keys = [], vars = { PGHOST = "{{ hosts.db[0].vars.ip }}", PGUSER = "fleet", PGDATABASE = "fleet", PGPASSWORD = "{{ secrets.DB_PASSWORD }}", APP_GREETING = "fleet on {{ host.name }}" } }

[[step]]
name = "migrations"
on = ["web"]
migrate = { image = "fleet:{{ version }}", command = "APP_RELEASE={{ version | shell_quote }} /app/migrate", env_file = "/srv/fleet/app.env", pull = "never" }

[[step]]
name = "app"
on = ["web"]
docker_run = { name = "fleet", image = "fleet:{{ version }}", env_file = "/srv/fleet/app.env", env = { APP_RELEASE = "{{ version }}" }, network = "fleet-net", pull = "never", strategy = "start-first", proxy = { port = "8080", app_port = 8000, health = "/cgi-bin/health", timeout = "30s", drain = "5s", lb = { checks = 2, timeout = "30s" } } }

[[step]]
name = "lb conf"
on = ["lb"]
template = { src = "templates/lb.conf.j2", dest = "/srv/fleet/lb.conf" }
register = "lbconf"

[[step]]
name = "lb"
on = ["lb"]
docker_run = { name = "fleet-lb", image = "provision-local/haproxy:1", ports = ["80:80"], volumes = ["/srv/fleet/lb.conf:/etc/haproxy/haproxy.cfg:ro"], pull = "never" }

[[step]]
name = "lb reload"
on = ["lb"]
when = "lbconf.changed"
# HAProxy's master reloads gracefully on USR2 (old workers finish their connections).
command = { run = "docker kill -s USR2 fleet-lb" }
"#;

/// Round trips per host from the `host_finished` events.
fn round_trips(r: &Run) -> String {
    r.events_of("host_finished")
        .iter()
        .map(|e| format!("{}={}", e["host"].as_str().unwrap_or("?"), e["round_trips"]))
        .collect::<Vec<_>>()
        .join(" ")
}

fn changed(r: &Run) -> u64 {
    r.events_of("host_finished")
        .iter()
        .map(|e| e["counts"]["changed"].as_u64().unwrap_or(0))
        .sum()
}

fn assert_no_failures(load: &LoadReport, what: &str) {
    println!("{what}: {}", load.summary());
    let failed = load.failed();
    assert!(
        failed.is_empty(),
        "{what}: {} failed requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        load.samples.len() > 20,
        "{what}: too few requests: {}",
        load.summary()
    );
}

/// The LB's server state changes (`web1 DOWN`, `web1 UP`, …) it logged after its first
/// `skip` log lines.
fn lb_changes(f: &Fleet, skip: usize) -> Vec<String> {
    lb_log(f)
        .lines()
        .skip(skip)
        .filter_map(|l| {
            let rest = l.split("Server web/").nth(1)?;
            let (server, state) = rest.split_once(" is ")?;
            let state = state.split([',', ' ']).next()?;
            Some(format!("{server} {state}"))
        })
        .collect()
}

/// The LB log's length once its checks agree every web server is up: after the first
/// release the LB may still be marking a server it found down at its start, and such a
/// late `UP` is not part of the next rollout.
fn settled_lb_log(f: &Fleet) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let changes = lb_changes(f, 0);
        let down = ["web1", "web2"].into_iter().any(|web| {
            changes
                .iter()
                .rev()
                .find(|c| c.starts_with(&format!("{web} ")))
                .is_some_and(|c| !c.ends_with(" UP"))
        });
        if !down {
            return lb_log(f).lines().count();
        }
        assert!(
            Instant::now() < deadline,
            "the LB never saw both web hosts up: {changes:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn lb_log(f: &Fleet) -> String {
    f.target("lb")
        .exec("docker logs fleet-lb 2>&1")
        .expect("LB logs")
}

/// The releases the LB's answers named, in order of first appearance.
fn releases(load: &LoadReport) -> Vec<String> {
    let mut seen = Vec::new();
    for s in &load.samples {
        if let Some((200, body)) = &s.answer
            && !seen.contains(&body.trim().to_string())
        {
            seen.push(body.trim().to_string());
        }
    }
    seen
}

#[test]
#[ignore = "slow group (fresh VMs): scripts/test.sh runs it; cargo test --test fleet -- --ignored"]
fn rolling_release_behind_a_load_balancer_on_four_fresh_vms_drops_nothing() {
    let mut ph = Phases::start();
    let f = start_fleet(&mut ph);
    let p = &f.p;

    // plan before anything exists, then the first release.
    let plan = f.run("plan", "v1");
    assert_eq!(plan.code, 0, "{}", plan.dump());
    let started = Instant::now();
    let r = f.up("v1");
    assert_eq!(r.code, 0, "first up\n{}", r.dump());
    ph.lap("first up (4 hosts: group + relogin, images shipped, db, migrate once, swap, lb)");
    println!(
        "first up: {:.1}s, round trips {}",
        started.elapsed().as_secs_f64(),
        round_trips(&r)
    );

    let lb = f.target("lb").tunnel(80).expect("tunnel to the LB");
    // A new release under load.
    let logged = settled_lb_log(&f);
    let load = Load::start(lb.port, "/release.txt", RATE, WORKERS);
    let started = Instant::now();
    let r = f.up("v2");
    let wall = started.elapsed();
    let report = load.finish();
    assert_eq!(r.code, 0, "v2\n{}", r.dump());
    ph.lap("up v2 under load through the LB (serial = 1)");
    println!(
        "new-release deploy on 4 hosts: {:.1}s wall, round trips {}",
        wall.as_secs_f64(),
        round_trips(&r)
    );
    assert_no_failures(&report, "v2 deploy through the LB");
    assert_eq!(
        releases(&report).last().map(String::as_str),
        Some("v2"),
        "{}",
        report.summary()
    );
    // Each web host was taken out of the LB for its swap and back in before the next one.
    assert_eq!(
        lb_changes(&f, logged),
        ["web1 DOWN", "web1 UP", "web2 DOWN", "web2 UP"],
        "the LB's view of the rollout"
    );
    let batches: Vec<_> = r.events_of("batch_started");
    assert_eq!(batches.len(), 4, "serial = 1 over 4 hosts: {batches:?}");

    // The migration of v2 ran exactly once, for the whole env.
    let runs = f
        .target("db")
        .exec("docker exec fleet-db psql -U fleet -tAc \"SELECT count(*) FROM migration_runs WHERE release = 'v2'\"")
        .expect("psql on db");
    assert_eq!(runs.trim(), "1", "migration runs of v2");
    // One build, the same image on both web hosts.
    let local = docker(&["image", "inspect", "-f", "{{.Id}}", "fleet:v2"]);
    for web in ["web1", "web2"] {
        let id = f
            .target(web)
            .exec("docker image inspect -f '{{.Id}}' fleet:v2")
            .expect("image on web");
        assert_eq!(id.trim(), local.trim(), "{web} runs the controller's image");
    }
    let again = f.up("v2");
    assert_eq!(again.code, 0, "{}", again.dump());
    assert_eq!(changed(&again), 0, "second up\n{}", again.dump());
    ph.lap("second up v2 (0 changes)");

    // A release whose health check fails: the rollout stops at the first web host.
    p.write(
        "app/www/cgi-bin/health",
        "#!/bin/sh\nprintf 'Status: 503 Service Unavailable\\r\\n\\r\\nbroken\\n'\n",
    );
    let logged = settled_lb_log(&f);
    let load = Load::start(lb.port, "/release.txt", RATE, WORKERS);
    let r = f.up("v3");
    let report = load.finish();
    ph.lap("up v3 (unhealthy) under load");
    assert_eq!(r.code, 3, "a failed batch fails the run\n{}", r.dump());
    assert_no_failures(&report, "failed v3 deploy through the LB");
    assert_eq!(
        releases(&report),
        vec!["v2".to_string()],
        "{}",
        report.summary()
    );
    // Its new container never became healthy: web1 was never taken out.
    assert_eq!(lb_changes(&f, logged), Vec::<String>::new());
    let stopped = r.events_of("rollout_stopped");
    assert_eq!(stopped.len(), 1, "{}", r.dump());
    let reached: Vec<String> = r
        .events_of("host_connected")
        .iter()
        .filter_map(|e| e["host"].as_str().map(str::to_string))
        .collect();
    // Batches go by host name: db, lb, web1 (fails), web2 (never reached).
    assert!(reached.iter().any(|h| h == "web1"), "{reached:?}");
    assert!(
        !reached.iter().any(|h| h == "web2"),
        "web2 reached: {reached:?}"
    );
    for web in ["web1", "web2"] {
        let image = f
            .target(web)
            .exec("docker ps --filter label=provision.service=fleet --format '{{.Image}}'")
            .unwrap_or_default();
        assert_eq!(image.trim(), "fleet:v2", "{web} still serves v2");
    }
    println!("{}", ph.summary());
}
