//! Connections lost: 20 hosts, the sshd of 2 killed mid-run (its session processes, which
//! hold the connections): the other 18 converge, the 2 are reported unreachable with the step
//! they were on, exit 4, and `up --retry-failed` completes exactly those. A host that accepts
//! TCP but never speaks SSH times out within `connect_timeout`; a hanging command is stopped
//! by its step `timeout`.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, Read};
use std::process::Command;
use std::time::Duration;
use support::{ClientKey, Project, SOON, Setup, Sshd, project_toml, wait_until};

/// Pids of every descendant of `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last `)`.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
            parent_of.push((p, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parent_of {
            if parent == p && !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// The pid listening on 127.0.0.1:port (sshd itself).
fn listener_pid(port: u16) -> u32 {
    let out = Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("pid=")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no listener on port {port}: {text}"))
}

/// Kill the per-connection sshd processes (and what they run) of the server on `port`: the
/// host's sshd dies under the open connection. The listener stays, so the host can be
/// reached again later.
fn kill_sessions(port: u16) {
    for pid in descendants(listener_pid(port)) {
        // SAFETY: kill(2) on a pid we just found under our own test sshd.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

#[test]
fn two_of_twenty_hosts_lost_mid_run_then_retry_failed_completes_them() {
    let setup = Setup::new("lost", 20, "retries = 0\nconnect_timeout = \"5s\"");
    let (p, servers) = (&setup.p, &setup.servers.sshds);
    let r = p.remote.display();
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "lock_ttl = \"1s\"\n\n[[step]]\nname = \"dir\"\ndirectory = {{ path = \"{r}/{{{{ host.port }}}}\" }}\n\n\
             [[step]]\nname = \"slow\"\ncommand = {{ run = \"touch {r}/{{{{ host.port }}}}/started; i=0; while [ ! -e {r}/go ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; touch {r}/{{{{ host.port }}}}/slow\", creates = \"{r}/{{{{ host.port }}}}/slow\" }}\n\n\
             [[step]]\nname = \"last\"\ncommand = {{ run = \"touch {r}/{{{{ host.port }}}}/last\", creates = \"{r}/{{{{ host.port }}}}/last\" }}\n"
        ),
    );
    let victims: Vec<&Sshd> = vec![&servers[3], &servers[11]];
    let mut child = p
        .command(&["up", "test", "--output", "json", "--forks", "20"])
        .spawn()
        .unwrap();
    // Once the slow step runs on both victims, kill their sshd sessions. The step waits for
    // `go` (created after the kill, at most 60 s), not a fixed time: however slow the second
    // victim is to start, the first is still inside the step when the kill comes.
    for v in &victims {
        let marker = p.remote.join(v.port.to_string()).join("started");
        wait_until("the slow step starts on a victim", SOON, || {
            // A run that ended before the step started: say what it printed, not "timed out".
            if let Some(status) = child.try_wait().unwrap() {
                let mut out = String::new();
                let _ = child.stdout.take().unwrap().read_to_string(&mut out);
                panic!("provision exited ({status}) before the slow step started:\n{out}");
            }
            marker.exists()
        });
    }
    for v in &victims {
        kill_sessions(v.port);
    }
    std::fs::write(p.remote.join("go"), "").unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("a JSON event"))
        .collect();
    let status = child.wait().unwrap();
    let dump = events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(status.code(), Some(4), "{dump}");
    let victim_names: BTreeSet<String> = victims.iter().map(|v| v.name()).collect();
    let finished = events.last().unwrap();
    assert_eq!(finished["event"], "run_finished", "{dump}");
    let unreachable: BTreeSet<String> = finished["unreachable_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    assert_eq!(unreachable, victim_names, "{dump}");
    // Each is reported unreachable at the step it was on, in exactly these events: one
    // host_unreachable naming `slow` (the cause after the colon depends on how the kill
    // lands), no result for `slow`, and a host_finished stopped at `slow` with the one step
    // before it counted.
    for name in &victim_names {
        let of_host: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| e["host"] == name.as_str() && e["event"] != "debug")
            .collect();
        let kinds: Vec<&str> = of_host
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "host_connected",
                "step_started",
                "step_finished",
                "step_started",
                "host_unreachable",
                "host_finished"
            ],
            "{name}:\n{dump}"
        );
        assert_eq!(of_host[1]["step"], "dir", "{dump}");
        assert_eq!(of_host[2]["step"], "dir", "{dump}");
        assert_eq!(of_host[3]["step"], "slow", "{dump}");
        let error = of_host[4]["error"].as_str().unwrap();
        assert!(
            error.starts_with("lost during step `slow`: "),
            "{name}: {error}\n{dump}"
        );
        assert_eq!(
            *of_host[5],
            serde_json::json!({
                "event": "host_finished",
                "host": name,
                "counts": { "changed": 1, "failed": 0, "ok": 0, "skipped": 0 },
                "ms": of_host[5]["ms"],
                "round_trips": of_host[5]["round_trips"],
                "stopped_at": "slow",
                "unreachable": true,
            }),
            "{dump}"
        );
    }
    // The other 18 converged.
    for s in servers.iter().filter(|s| !victim_names.contains(&s.name())) {
        assert!(
            p.remote.join(s.port.to_string()).join("last").exists(),
            "{} did not converge:\n{dump}",
            s.name()
        );
    }
    for v in &victims {
        assert!(!p.remote.join(v.port.to_string()).join("last").exists());
    }
    let recorded: BTreeSet<String> = std::fs::read_to_string(p.path(".provision/last-failed-test"))
        .expect("the unfinished hosts are recorded")
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(recorded, victim_names);

    // Only the two are run again, and they complete (the deploy lock the lost runs left on
    // them is older than its TTL by then, and taken over).
    std::thread::sleep(Duration::from_millis(1500));
    let retry = p.run(&["up", "test", "--retry-failed", "--output", "json"]);
    retry.expect_code(0);
    let ran: BTreeSet<String> = retry
        .events_of("host_finished")
        .iter()
        .map(|e| e["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ran, victim_names, "{}", retry.dump());
    for v in &victims {
        assert!(p.remote.join(v.port.to_string()).join("last").exists());
    }
    assert!(!p.path(".provision/last-failed-test").exists());
    let none = p.run(&["up", "test", "--retry-failed"]);
    none.expect_code(1);
    assert!(
        none.stderr.contains("no unfinished hosts recorded"),
        "{}",
        none.dump()
    );
}

#[test]
fn a_host_that_never_speaks_ssh_times_out_within_connect_timeout() {
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(keys.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection, never sending a byte.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let p = Project::new();
    p.write(
        "provision.toml",
        &project_toml(
            "mute",
            &[format!("root@127.0.0.1:{port}")],
            &key,
            "connect_timeout = \"2s\"\nretries = 0",
        ),
    );
    p.write(
        "playbooks/deploy.toml",
        "[[step]]\ncommand = { run = \"true\" }\n",
    );
    // The feature is "does not hang": a bound far above the 2 s timeout (the run's own limit
    // is 120 s), and the error that says it was the timeout, not any other failure.
    let run = p.run_timeout(&["up", "test", "--output", "json"], Duration::from_secs(30));
    run.expect_code(4);
    let unreachable = run.events_of("host_unreachable");
    assert_eq!(unreachable.len(), 1, "{}", run.dump());
    assert_eq!(
        unreachable[0]["error"],
        format!("connection to 127.0.0.1:{port} timed out after 2s"),
        "{}",
        run.dump()
    );
}

#[test]
fn a_hanging_command_is_stopped_by_its_step_timeout() {
    let s = Setup::new("hang", 1, "");
    let p = &s.p;
    let after = p.remote_path("after");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"hang\"\ntimeout = \"2s\"\ncommand = {{ run = \"sleep 600\" }}\n\n\
             [[step]]\nname = \"after\"\ncommand = {{ run = \"touch {after}\" }}\n"
        ),
    );
    // `sleep 600` ends only by the step timeout: 60 s is far above the 2 s timeout and far
    // below the sleep.
    let run = p.run_timeout(&["up", "test", "--output", "json"], Duration::from_secs(60));
    run.expect_code(3);
    assert_eq!(run.step("hang")["status"], "failed", "{}", run.dump());
    let msg = run.step("hang").to_string();
    assert!(
        msg.contains("2s"),
        "the failure should name the timeout: {msg}"
    );
    assert!(!std::path::Path::new(&after).exists(), "a later step ran");
}
