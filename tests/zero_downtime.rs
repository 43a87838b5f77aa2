//! Zero-downtime deploys on one host: `docker_run` with `strategy = "start-first"` behind its
//! front proxy (Debian's nginx in a locally built image), driven by the real binary over a real
//! sshd against the tests' own dockerd, while a load generator sends requests through the proxy.
//!
//! The playbook is the repo's own `playbooks/deploy.toml` with only the app step changed to
//! start-first (no host port on the app; the proxy publishes `http_port`).
//!
//! - `start_first_deploy_under_load_drops_nothing`: plan/up/no-op on a fresh host; a new
//!   version deployed under load (0 failed requests, responses move from the old release to
//!   the new one, the old container is gone, a second `up` changes nothing); then a release
//!   whose health check fails, under load (0 failed requests, the old release keeps serving,
//!   exit code 3, the new container removed).
//! - `stop_first_app_moves_to_start_first_and_the_proxy_reloads`: an app deployed stop-first
//!   (the playbook as shipped) switched to start-first (the old container gives up its port to
//!   the proxy); a `drain` change is a graceful reload under load (same proxy container, 0
//!   failed requests); a `port` change recreates the proxy on the new port.

#[path = "support/docker.rs"]
mod docker_support;
mod support;

use std::time::Instant;

use docker_support::*;
use support::*;

/// The app step of `playbooks/deploy.toml` as shipped (stop-first, publishing the port)…
const STOP_FIRST: &str = r#"ports = ["127.0.0.1:{{ http_port }}:8000"], network = "{{ app }}-net", pull = "never", healthcheck = { url = "http://127.0.0.1:{{ http_port }}/cgi-bin/health", timeout = "30s" } }"#;
/// …and start-first behind the proxy, which publishes the same port.
const START_FIRST: &str = r#"network = "{{ app }}-net", pull = "never", strategy = "start-first", proxy = { port = "127.0.0.1:{{ http_port }}", app_port = 8000, health = "/cgi-bin/health", timeout = "20s", drain = "5s" } }"#;

/// Requests per second the load generator sends, and its threads. The load fetches the app's
/// static page (`/`, served by the app's busybox httpd through the proxy): its CGI page runs
/// psql per request, which a loaded 2-core machine cannot answer 30 times a second.
const RATE: u32 = 40;
const WORKERS: u32 = 16;

fn start_first_playbook() -> String {
    let text = std::fs::read_to_string(repo_root().join("playbooks/deploy.toml"))
        .expect("read playbooks/deploy.toml");
    assert_eq!(
        text.matches(STOP_FIRST).count(),
        1,
        "the app step of playbooks/deploy.toml changed; update STOP_FIRST in this test"
    );
    text.replace(STOP_FIRST, START_FIRST)
}

fn plan(d: &Deploy) -> Run {
    let r = d.run(&["plan", "test", "--output", "json", "--detailed-exitcode"]);
    d.assert_no_secrets(&r, &[]);
    r
}

/// The one container of the service, which must be running.
#[track_caller]
fn serving(app: &str) -> String {
    let names = service_containers(app);
    assert_eq!(names.len(), 1, "containers of {app}: {names:?}");
    assert_eq!(container_state(&names[0]).as_deref(), Some("running"));
    names[0].clone()
}

/// Fails when any request of the load got no 200, showing the first few; or when the load
/// stayed under `min_rate` requests per second.
#[track_caller]
fn assert_none_failed(load: &LoadReport, during: &Run, min_rate: f64) {
    let failed = load.failed();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, e.g. {:?}\n{}",
        failed.len(),
        load.samples.len(),
        &failed[..failed.len().min(5)],
        during.dump()
    );
    assert!(
        load.rate() >= min_rate,
        "the load generator reached only {:.1} req/s",
        load.rate()
    );
}

/// `step ms` of each changed step of a run, for the test output.
fn step_times(r: &Run) -> String {
    r.events_of("step_finished")
        .iter()
        .filter(|e| e["status"] == "changed")
        .map(|e| format!("{} {} ms", e["step"].as_str().unwrap_or("?"), e["ms"]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which version answered each request, from the static page the load fetches: the
/// example's own `index.html` (v1), or the `<p>vN</p>` a later commit wrote.
fn versions_seen(load: &LoadReport) -> Vec<String> {
    load.samples
        .iter()
        .filter_map(|s| s.answer.as_ref())
        .map(|(_, body)| {
            if body.contains("<title>hello</title>") {
                "v1".to_string()
            } else {
                body.trim()
                    .strip_prefix("<p>")
                    .and_then(|b| b.strip_suffix("</p>"))
                    .unwrap_or("?")
                    .to_string()
            }
        })
        .collect()
}

#[test]
fn start_first_deploy_under_load_drops_nothing() {
    nginx_image();
    let d = Deploy::new("dkzero");
    d.p.write("playbooks/deploy.toml", &start_first_playbook());
    let app = d.app.clone();
    let proxy = format!("{app}-proxy");
    let short1 = git(&d.work, &["rev-parse", "HEAD"])[..12].to_string();

    // 1. Fresh host: plan predicts exactly what up changes; a second up changes nothing.
    let planned = plan(&d);
    planned.expect_code(2);
    let first = d.up_checked(&[]);
    first.expect_code(0);
    assert_eq!(
        first.steps_with("changed"),
        planned.steps_with("changed"),
        "plan on a fresh host\n{}",
        first.dump()
    );
    assert!(
        first.step_text("app").contains(&format!("behind {proxy}")),
        "{}",
        first.dump()
    );
    let v1 = serving(&app);
    assert!(
        container_id(&app).is_none(),
        "a container named {app} exists"
    );
    assert_eq!(container_state(&proxy).as_deref(), Some("running"));
    assert!(hello(d.http_port).contains(&format!("release {short1}")));
    let again = d.up_checked(&[]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());

    // 2. A new version under load: nothing fails, the answers move from v1 to v2.
    d.write_app_file("www/index.html", "<p>v2</p>\n");
    let sha2 = d.commit("v2");
    let short2 = sha2[..12].to_string();
    let predicted = plan(&d);
    predicted.expect_code(2);
    let load = Load::start(d.http_port, "/", RATE, WORKERS);
    let t = Instant::now();
    let deploy = d.up_checked(&[]);
    let wall = t.elapsed();
    let seen = load.finish();
    eprintln!("new version under load: {}", seen.summary());
    eprintln!(
        "single-host new-version deploy under that load: {:.2} s wall, {} round trips; changed steps: {}",
        wall.as_secs_f64(),
        deploy.round_trips(),
        step_times(&deploy)
    );
    deploy.expect_code(0);
    assert_eq!(
        deploy.steps_with("changed"),
        predicted.steps_with("changed"),
        "plan of the new version\n{}",
        deploy.dump()
    );
    assert!(
        deploy
            .step_text("app")
            .contains(&format!("swap {app}: env, image changed")),
        "{}",
        deploy.dump()
    );
    assert_none_failed(&seen, &deploy, 30.0);
    let answered = versions_seen(&seen);
    assert!(
        answered.iter().all(|r| r == "v1" || r == "v2"),
        "answers from neither release: {answered:?}"
    );
    assert_eq!(
        answered.first().map(String::as_str),
        Some("v1"),
        "{answered:?}"
    );
    assert_eq!(
        answered.last().map(String::as_str),
        Some("v2"),
        "{answered:?}"
    );
    let v2 = serving(&app);
    assert_ne!(v2, v1);
    assert!(
        container_id(&v1).is_none(),
        "the old container {v1} is still there"
    );
    assert_eq!(container_image(&v2), d.image_for(&sha2));
    let again = d.up_checked(&[]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());

    // 3. A release whose health check fails, under load: the old release keeps serving.
    d.write_app_file(
        "www/cgi-bin/health",
        "#!/bin/sh\nprintf 'Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\nbroken\\n'\n",
    );
    d.write_app_file("www/index.html", "<p>v3</p>\n");
    d.commit("v3: unhealthy");
    let load = Load::start(d.http_port, "/", RATE, WORKERS);
    let broken = d.up_checked(&[]);
    let seen = load.finish();
    eprintln!(
        "unhealthy release under load: {}; changed steps: {}",
        seen.summary(),
        step_times(&broken)
    );
    broken.expect_code(3);
    assert_eq!(
        broken.steps_with("failed"),
        set(&["app"]),
        "{}",
        broken.dump()
    );
    let text = broken.step_text("app");
    eprintln!("unhealthy release: {text}");
    assert!(
        text.contains("health check /cgi-bin/health")
            && text.contains(&format!("{v2} keeps serving")),
        "the failure does not say what happened: {text}"
    );
    assert_none_failed(&seen, &broken, 30.0);
    let answered = versions_seen(&seen);
    assert!(
        answered.iter().all(|r| r == "v2"),
        "answers not from the serving release v2: {answered:?}"
    );
    assert_eq!(serving(&app), v2, "the new container was not removed");
    assert!(hello(d.http_port).contains(&format!("release {short2}")));
}

#[test]
fn stop_first_app_moves_to_start_first_and_the_proxy_reloads() {
    nginx_image();
    let mut d = Deploy::new("dkswitch");
    let app = d.app.clone();
    let proxy = format!("{app}-proxy");
    d.up_checked(&[]).expect_code(0);
    let legacy = container_id(&app).expect("the stop-first container");

    // Start-first from here: plan says the stop-first container goes; up does exactly that.
    let playbook = start_first_playbook();
    d.p.write("playbooks/deploy.toml", &playbook);
    let planned = plan(&d);
    planned.expect_code(2);
    assert!(
        planned
            .step_text("app")
            .contains(&format!("replace the stop-first container {app}")),
        "{}",
        planned.dump()
    );
    let switched = d.up_checked(&[]);
    switched.expect_code(0);
    assert_eq!(
        switched.steps_with("changed"),
        planned.steps_with("changed"),
        "{}",
        switched.dump()
    );
    assert!(
        container_id(&legacy).is_none(),
        "the stop-first container is still there"
    );
    let serving_one = serving(&app);
    assert!(hello(d.http_port).contains("release "));
    let proxy_id = container_id(&proxy).expect("the proxy");
    assert_eq!(d.up_checked(&[]).changed(), 0);

    // A drain change rewrites the conf and reloads it: the same proxy and app containers.
    d.p.write(
        "playbooks/deploy.toml",
        &playbook.replace(r#"drain = "5s""#, r#"drain = "3s""#),
    );
    let planned = plan(&d);
    assert_eq!(
        planned.step_text("app").lines().next(),
        Some(format!("rewrite the conf of {proxy} and reload it").as_str()),
        "{}",
        planned.dump()
    );
    let load = Load::start(d.http_port, "/", RATE, WORKERS);
    let reload = d.up_checked(&[]);
    let seen = load.finish();
    eprintln!("conf reload under load: {}", seen.summary());
    reload.expect_code(0);
    assert_eq!(
        reload.steps_with("changed"),
        set(&["app"]),
        "{}",
        reload.dump()
    );
    // A reload-only run is short (one step changes): what counts is that every request
    // around the reload was answered, not the rate over so short a window.
    assert_none_failed(&seen, &reload, 0.0);
    assert!(seen.samples.len() >= 20, "{}", seen.summary());
    assert_eq!(
        container_id(&proxy).as_ref(),
        Some(&proxy_id),
        "the proxy was recreated"
    );
    assert_eq!(serving(&app), serving_one);
    assert!(
        docker(&["exec", &proxy, "cat", "/etc/nginx/nginx.conf"])
            .contains("worker_shutdown_timeout 3000ms;")
    );
    assert_eq!(d.up_checked(&[]).changed(), 0);

    // A port change recreates the proxy, which then answers on the new port.
    let old_port = d.http_port;
    d.http_port = free_port();
    d.write_config();
    let moved = d.up_checked(&[]);
    moved.expect_code(0);
    assert!(
        moved
            .step_text("app")
            .contains(&format!("recreate proxy {proxy}")),
        "{}",
        moved.dump()
    );
    assert_ne!(container_id(&proxy), Some(proxy_id));
    assert_eq!(serving(&app), serving_one);
    assert!(hello(d.http_port).contains("release "));
    assert!(
        http_get(old_port, "/cgi-bin/hello").is_none(),
        "the old port still answers"
    );
    assert_eq!(d.up_checked(&[]).changed(), 0);
}

/// HAProxy in front of the app's proxy, checking its readiness path: `web` is the app host,
/// `fallback` answers only when no server of `web` is up (what a second web host would do),
/// so the answers show when the LB had taken the host out.
const HAPROXY_CFG: &str = "global
  maxconn 256
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout check 2s
frontend fe
  bind :80
  use_backend fallback if { nbsrv(web) eq 0 }
  default_backend web
backend web
  option httpchk GET /.provision/ready
  http-check expect status 200
  server app @PROXY@:80 check inter 100ms fall 2 rise 2
backend fallback
  http-request return status 200 content-type text/plain string \"<p>fallback</p>\"
";

/// Start the LB on the app's network, publishing `port`; wait until it routes to the app.
fn start_lb(app: &str, dir: &std::path::Path, port: u16) {
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        HAPROXY_CFG.replace("@PROXY@", &format!("{app}-proxy")),
    )
    .expect("write haproxy.cfg");
    docker(&[
        "run",
        "-d",
        "--name",
        &format!("{app}-lb"),
        "--network",
        &format!("{app}-net"),
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "-v",
        &format!("{}:/etc/haproxy/haproxy.cfg:ro", cfg.display()),
        "provision-local/haproxy:1",
    ]);
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while !matches!(http_get(port, "/"), Some((200, b)) if !b.contains("fallback")) {
        assert!(Instant::now() < deadline, "the LB never routed to the app");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn behind_a_load_balancer_the_host_is_taken_out_for_its_swap_and_put_back() {
    nginx_image();
    haproxy_image();
    let d = Deploy::new("dklb");
    let with_lb = |timeout: &str| {
        start_first_playbook().replace(
            r#"drain = "5s" }"#,
            &format!(r#"drain = "5s", lb = {{ checks = 2, timeout = "{timeout}" }} }}"#),
        )
    };
    d.p.write("playbooks/deploy.toml", &with_lb("20s"));
    let app = d.app.clone();
    let lb = format!("{app}-lb");
    // The first deploy: no release serves yet, so nothing is taken out.
    let first = d.up_checked(&[]);
    first.expect_code(0);
    assert!(
        !first.step_text("app").contains("load balancer"),
        "{}",
        first.dump()
    );
    let lb_port = free_port();
    start_lb(&app, &d.p.path(""), lb_port);

    // A new version under load through the LB: out, swap, back in; nothing fails.
    d.write_app_file("www/index.html", "<p>v2</p>\n");
    d.commit("v2");
    let predicted = plan(&d);
    let load = Load::start(lb_port, "/", RATE, WORKERS);
    let deploy = d.up_checked(&[]);
    let seen = load.finish();
    eprintln!("new version through the LB: {}", seen.summary());
    deploy.expect_code(0);
    assert_eq!(
        deploy.steps_with("changed"),
        predicted.steps_with("changed"),
        "{}",
        deploy.dump()
    );
    let text = deploy.step_text("app");
    eprintln!("the swap behind the LB:\n{text}");
    let out = text.find("out of the load balancer").expect("taken out");
    let reloaded = text.find("reloaded, routing to").expect("switched");
    let back = text.find("back in the load balancer").expect("put back");
    assert!(out < reloaded && reloaded < back, "{text}");
    assert_none_failed(&seen, &deploy, 30.0);
    // The LB's answers: the old release, then only the fallback while the host was out,
    // then the new release: v2 never answered before the host had been taken out.
    let answered = versions_seen(&seen);
    let first_fallback = answered.iter().position(|v| v == "fallback");
    let first_v2 = answered.iter().position(|v| v == "v2");
    assert!(
        matches!((first_fallback, first_v2), (Some(f), Some(v)) if f < v),
        "{answered:?}"
    );
    assert!(
        answered
            .iter()
            .all(|v| ["v1", "v2", "fallback"].contains(&v.as_str())),
        "{answered:?}"
    );
    let logs = docker_out(&["logs", &lb]);
    let logs =
        String::from_utf8_lossy(&logs.stdout).into_owned() + &String::from_utf8_lossy(&logs.stderr);
    let down = logs
        .find("app is DOWN")
        .expect("HAProxy marked the host down");
    assert!(logs[down..].contains("app is UP"), "{logs}");
    // Between deploys the proxy's conf is the steady one: a second up changes nothing.
    let again = d.up_checked(&[]);
    assert_eq!(again.changed(), 0, "{}", again.dump());

    // No LB checking: the swap refuses to go on, the host is put back as it was.
    docker(&["stop", &lb]);
    d.p.write("playbooks/deploy.toml", &with_lb("2s"));
    d.write_app_file("www/index.html", "<p>v3</p>\n");
    d.commit("v3");
    let unchecked = d.up_checked(&[]);
    unchecked.expect_code(3);
    let text = unchecked.step_text("app");
    assert!(
        text.contains("did not check /.provision/ready 2 times within 2s")
            && text.contains("keeps serving"),
        "{text}"
    );
    assert!(
        matches!(http_get(d.http_port, "/.provision/ready"), Some((200, _))),
        "the readiness path was left answering 503"
    );
    assert!(http_get(d.http_port, "/").is_some_and(|(_, b)| b.contains("v2")));
    // With the LB back the next up finishes the release.
    docker(&["start", &lb]);
    let finished = d.up_checked(&[]);
    finished.expect_code(0);
    assert!(http_get(d.http_port, "/").is_some_and(|(_, b)| b.contains("v3")));
    assert_eq!(d.up_checked(&[]).changed(), 0);
}
