//! `provision status <env>`: per host, in one round trip, the release deployed (the last
//! successful record of the release log), the last deploy (its last record, whatever the
//! result), the app container's state and health (`docker container inspect`) and the deploy
//! lock's holder when a lock is there.

use super::context::Context;
use super::{Target, hosts_n};
use crate::error::{Error, exit};
use crate::inventory::Host;
use crate::remote::releases::parse_log;
use crate::report::Event;
pub use crate::report::{ContainerStatus, HostStatus, LockStatus};
use crate::steps::shell::state_dir;
use crate::transport::Connector;
use crate::transport::Transport;
use crate::transport::script::quote;
use crate::transport::ssh::SshConnector;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

const MARK: &str = "@@provision-status";
/// `docker container inspect` format: state|health|image|started|exit code.
const INSPECT: &str = "{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.Config.Image}}|{{.State.StartedAt}}|{{.State.ExitCode}}";

/// The one script: the release log's tail, the lock, the container.
pub fn script(prelude: &str, app: &str, env: &str, container: &str) -> String {
    format!(
        "{prelude}{st}echo '{MARK} log'\n\
         tail -n 500 \"$st/releases.log\" 2>/dev/null\n\
         echo '{MARK} lock'\n\
         if [ -d \"$st/lock\" ]; then\n\
           printf 'owner=%s\\n' \"$(sed -n 1p \"$st/lock/info\" 2>/dev/null)\"\n\
           since=$(sed -n 2p \"$st/lock/info\" 2>/dev/null); [ -n \"$since\" ] || since=$(stat -c %Y \"$st/lock\")\n\
           printf 'since=%s\\nnow=%s\\n' \"$since\" \"$(date +%s)\"\n\
         fi\n\
         echo '{MARK} container'\n\
         if command -v docker >/dev/null 2>&1; then docker container inspect -f {fmt} {name} 2>&1 || true; else echo 'docker is not installed'; fi\n",
        st = state_dir(app, env),
        fmt = quote(INSPECT),
        name = quote(container),
    )
}

/// Read the script's output.
pub fn parse(stdout: &str, container: &str) -> HostStatus {
    let mut section = "";
    let (mut log, mut lock, mut cont) = (String::new(), Vec::new(), Vec::new());
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix(MARK) {
            section = match name.trim() {
                "log" => "log",
                "lock" => "lock",
                _ => "container",
            };
            continue;
        }
        match section {
            "log" => {
                log.push_str(line);
                log.push('\n');
            }
            "lock" => lock.push(line),
            "container" => cont.push(line),
            _ => {}
        }
    }
    let records = parse_log(&log);
    let release = records
        .iter()
        .rev()
        .find(|r| r.result == "ok" && !r.release.is_empty())
        .cloned();
    HostStatus {
        release,
        last_deploy: records.last().cloned(),
        container: parse_container(&cont, container),
        lock: parse_lock(&lock),
    }
}

fn parse_lock(lines: &[&str]) -> Option<LockStatus> {
    let get = |k: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::trim)
    };
    let owner = get("owner")?;
    let since: u64 = get("since")?.parse().ok()?;
    let now: u64 = get("now")?.parse().ok()?;
    Some(LockStatus {
        owner: if owner.is_empty() {
            "unknown".into()
        } else {
            owner.into()
        },
        since,
        age_secs: now.saturating_sub(since),
    })
}

fn parse_container(lines: &[&str], name: &str) -> ContainerStatus {
    let mut c = ContainerStatus {
        name: name.to_string(),
        state: "unknown".into(),
        health: None,
        image: None,
        started_at: None,
        exit_code: None,
        error: None,
    };
    let text = lines.join("\n");
    let fields: Vec<&str> = text.trim().split('|').collect();
    if fields.len() == 5 && !fields[0].is_empty() && !fields[0].contains(' ') {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        c.state = fields[0].to_string();
        c.health = some(fields[1]);
        c.image = some(fields[2]);
        c.started_at = some(fields[3]).filter(|s| !s.starts_with("0001-"));
        c.exit_code = fields[4].parse().ok();
    } else if text.contains("No such container") || text.contains("no such container") {
        c.state = "absent".into();
    } else {
        c.error = Some(crate::steps::tail(&text, 3));
    }
    c
}

/// "42s", "5m", "3h 20m", "2d".
pub fn ago(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d", s / 86400),
    }
}

/// How long ago an RFC 3339 time was, when it parses.
fn since(time: &str) -> Option<String> {
    let t = humantime::parse_rfc3339_weak(time).ok()?;
    let secs = std::time::SystemTime::now()
        .duration_since(t)
        .ok()?
        .as_secs();
    Some(format!(" ({} ago)", ago(secs)))
}

/// The text lines for one host.
pub fn render(host: &str, s: &HostStatus) -> Vec<String> {
    let mut out = Vec::new();
    out.push(match &s.release {
        Some(r) => format!(
            "[{host}] release:     {} (deployed {}{} by {})",
            r.release,
            r.time,
            since(&r.time).unwrap_or_default(),
            r.user
        ),
        None => format!("[{host}] release:     none recorded"),
    });
    out.push(match &s.last_deploy {
        Some(r) => format!(
            "[{host}] last deploy: {}{} {}, {} changed",
            r.time,
            since(&r.time).unwrap_or_default(),
            r.result,
            r.changed
        ),
        None => format!("[{host}] last deploy: never"),
    });
    let c = &s.container;
    let mut line = format!("[{host}] container:   {} {}", c.name, c.state);
    if let Some(h) = &c.health {
        line.push_str(&format!(", {h}"));
    }
    if c.state != "running"
        && let Some(code) = c.exit_code.filter(|_| c.state == "exited")
    {
        line.push_str(&format!(" (exit code {code})"));
    }
    let mut details = Vec::new();
    if let Some(i) = &c.image {
        details.push(format!("image {i}"));
    }
    if let Some(t) = c.started_at.as_ref().filter(|_| c.state == "running") {
        details.push(format!("started {t}"));
    }
    if !details.is_empty() {
        line.push_str(&format!(" ({})", details.join(", ")));
    }
    if let Some(e) = &c.error {
        line.push_str(&format!(": {}", e.replace('\n', " / ")));
    }
    out.push(line);
    out.push(match &s.lock {
        Some(l) => format!(
            "[{host}] lock:        held by {} for {} (`provision unlock` removes it)",
            l.owner,
            ago(l.age_secs)
        ),
        None => format!("[{host}] lock:        free"),
    });
    out
}

/// `provision status <env>`: on the env's hosts as they are (static hosts and running EC2
/// instances, nothing created).
pub async fn run(cx: &Context, env: &str, container: Option<&str>) -> Result<i32, Error> {
    let t = Target::load(cx, env).await?;
    let (forks, json, quiet) = (cx.forks, cx.json(), cx.quiet());
    Ok(show_all(t, container, forks, json, quiet).await)
}

/// Ask every host; print each host's block (or JSON line) as it answers; a summary line at
/// the end. Exit 0, or 4 when a host could not be asked.
async fn show_all(
    t: Target,
    container: Option<&str>,
    forks: usize,
    json: bool,
    quiet: bool,
) -> i32 {
    let out = t.output(json, quiet);
    let container = container.unwrap_or(&t.project.app).to_string();
    let script = Arc::new(script(&t.prelude, &t.project.app, &t.env.name, &container));
    let sem = Arc::new(Semaphore::new(forks.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let n = t.hosts.len();
    for h in t.hosts {
        let (sem, script, container) = (sem.clone(), script.clone(), container.clone());
        tasks.spawn(async move {
            let _p = sem.acquire_owned().await.expect("semaphore open");
            let r = ask(&h, &script, &container).await;
            (h.name, r)
        });
    }
    let mut unreachable = 0;
    while let Some(r) = tasks.join_next().await {
        let (host, r) = r.expect("status task panicked");
        unreachable += usize::from(r.is_err());
        match r {
            r if json => out.emit(Event::status(&host, r)),
            Ok(s) if !quiet => render(&host, &s).iter().for_each(|l| out.line(l)),
            Ok(_) => {}
            Err(e) => out.line(&format!("[{host}] UNREACHABLE: {e}")),
        }
    }
    if !json {
        out.line(&format!(
            "status of {}: {} answered, {unreachable} unreachable",
            hosts_n(n),
            n - unreachable
        ));
    }
    exit::of_hosts(0, unreachable)
}

async fn ask(h: &Host, script: &str, container: &str) -> Result<HostStatus, String> {
    let session = SshConnector
        .connect(&h.connect)
        .await
        .map_err(|e| e.to_string())?;
    let out = session.exec(script, None, Duration::from_secs(60)).await;
    session.close().await;
    let out = out.map_err(|e| e.to_string())?;
    Ok(parse(&out.stdout_lossy(), container))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_section() {
        let out = format!(
            "{MARK} log\n\
             {{\"time\":\"2026-01-01T00:00:00Z\",\"release\":\"aaa\",\"user\":\"u\",\"result\":\"ok\",\"changed\":3}}\n\
             {{\"time\":\"2026-01-02T00:00:00Z\",\"release\":\"bbb\",\"user\":\"u\",\"result\":\"failed\",\"changed\":1}}\n\
             {MARK} lock\nowner=alice@box (pid 1)\nsince=100\nnow=142\n\
             {MARK} container\nrunning|healthy|hello:aaa|2026-01-01T00:00:01Z|0\n"
        );
        let s = parse(&out, "hello");
        assert_eq!(s.release.as_ref().unwrap().release, "aaa");
        assert_eq!(s.last_deploy.as_ref().unwrap().result, "failed");
        assert_eq!(
            s.lock,
            Some(LockStatus {
                owner: "alice@box (pid 1)".into(),
                since: 100,
                age_secs: 42
            })
        );
        assert_eq!(s.container.state, "running");
        assert_eq!(s.container.health.as_deref(), Some("healthy"));
        assert_eq!(s.container.image.as_deref(), Some("hello:aaa"));
        let lines = render("h", &s);
        assert!(lines[0].starts_with("[h] release:     aaa (deployed 2026-01-01T00:00:00Z"));
        assert!(lines[2].contains("hello running, healthy (image hello:aaa"));
        assert!(lines[3].contains("held by alice@box (pid 1) for 42s"));
    }

    #[test]
    fn absent_container_no_lock_no_log() {
        let out = format!(
            "{MARK} log\n{MARK} lock\n{MARK} container\nError response from daemon: No such container: web\n"
        );
        let s = parse(&out, "web");
        assert_eq!((s.release, s.last_deploy, s.lock), (None, None, None));
        assert_eq!(s.container.state, "absent");
        let out = format!("{MARK} log\n{MARK} lock\n{MARK} container\ndocker is not installed\n");
        let s = parse(&out, "web");
        assert_eq!(s.container.state, "unknown");
        assert_eq!(
            s.container.error.as_deref(),
            Some("docker is not installed")
        );
    }

    #[test]
    fn ago_is_coarse() {
        assert_eq!(ago(42), "42s");
        assert_eq!(ago(300), "5m");
        assert_eq!(ago(3 * 3600 + 20 * 60 + 5), "3h 20m");
        assert_eq!(ago(3 * 86400), "3d");
    }
}
