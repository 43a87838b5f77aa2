//! Hostile targets: remote output that is not UTF-8, a 10 MB line, 100 MB of stdout, login
//! shells that are not bash, rc files that print or exit. provision keeps working (or fails
//! with a clear message) and its memory stays bounded.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::{
    Project, SECRETS_ENV, Sampled, Servers, Setup, ensure_user, reader, wait_sampling_peak,
};

/// A playbook touching every upload kind plus a command, all under `remote`.
fn full_playbook(p: &Project) -> String {
    let dir = p.remote_path("app");
    format!(
        "[[step]]\nname = \"dir\"\ndirectory = {{ path = \"{dir}\", mode = \"0755\" }}\n\n\
         [[step]]\nname = \"file\"\nfile = {{ src = \"files/blob.txt\", dest = \"{dir}/blob.txt\" }}\n\n\
         [[step]]\nname = \"conf\"\ntemplate = {{ src = \"templates/app.conf.j2\", dest = \"{dir}/app.conf\" }}\n\n\
         [[step]]\nname = \"env\"\nenv_file = {{ dest = \"{dir}/app.env\" }}\n\n\
         [[step]]\nname = \"cmd\"\ncommand = {{ run = \"echo done > {dir}/cmd.out\", creates = \"{dir}/cmd.out\" }}\n"
    )
}

fn full_project(servers: &Servers, user: &str) -> Project {
    let p = servers.project("hostile", user, "", SECRETS_ENV);
    p.write("files/blob.txt", "hello\n");
    p.write(
        "templates/app.conf.j2",
        "app = {{ app }} on {{ host.name }}\n",
    );
    p.write("secrets/test.env", "TOKEN=hostile-canary-1\n");
    p.write("playbooks/deploy.toml", &full_playbook(&p));
    p
}

/// The full playbook converges for `user`, then a second run changes nothing.
fn converges_as(user: &str, servers: &Servers) {
    let p = full_project(servers, user);
    let first = p.run(&["up", "test", "--output", "plain"]);
    first.expect_code(0);
    let app = p.remote.join("app");
    assert_eq!(
        std::fs::read_to_string(app.join("blob.txt")).unwrap(),
        "hello\n"
    );
    assert!(
        std::fs::read_to_string(app.join("app.conf"))
            .unwrap()
            .starts_with("app = hostile on ")
    );
    assert_eq!(
        std::fs::read_to_string(app.join("app.env")).unwrap(),
        "TOKEN=hostile-canary-1\n"
    );
    assert_eq!(
        std::fs::read_to_string(app.join("cmd.out")).unwrap(),
        "done\n"
    );
    let second = p.run(&["up", "test", "--output", "json"]);
    second.expect_code(0);
    assert_eq!(second.changed(), 0, "{}", second.dump());
    let all = format!(
        "{}{}{}{}",
        first.stdout, first.stderr, second.stdout, second.stderr
    );
    assert!(!all.contains("hostile-canary-1"), "secret printed:\n{all}");
}

fn set_shell(user: &str, shell: &str) {
    let st = Command::new("usermod")
        .args(["-s", shell, user])
        .status()
        .unwrap();
    assert!(st.success(), "usermod -s {shell} {user}");
}

/// A server to log in to as the local `user` (created if missing), whose login shell is now
/// `shell`.
fn server_for(user: &str, shell: &str) -> Servers {
    let servers = Servers::start(1);
    ensure_user(user, false);
    set_shell(user, shell);
    servers
}

fn write_home_file(user: &str, name: &str, text: &str) {
    let path = format!("/home/{user}/{name}");
    std::fs::write(&path, text).unwrap();
    let _ = Command::new("chown")
        .arg(format!("{user}:"))
        .arg(&path)
        .status();
}

#[test]
fn dash_login_shell() {
    let servers = server_for("prov_dash", "/bin/dash");
    converges_as("prov_dash", &servers);
}

#[test]
fn busybox_sh_login_shell() {
    // Not a skip: a missing busybox must fail the test, or this shell is never covered.
    assert!(
        std::path::Path::new("/bin/busybox").exists(),
        "/bin/busybox is required for this test (apt-get install busybox-static; scripts/deps.sh installs it)"
    );
    // busybox picks its applet from argv[0]: a link named `sh`.
    std::fs::create_dir_all("/opt/provision-test-busybox").unwrap();
    let sh = std::path::Path::new("/opt/provision-test-busybox/sh");
    if !sh.exists() {
        let _ = std::os::unix::fs::symlink("/bin/busybox", sh);
    }
    let servers = server_for("prov_busybox", "/opt/provision-test-busybox/sh");
    converges_as("prov_busybox", &servers);
}

#[test]
fn rc_files_that_print_text() {
    let servers = server_for("prov_chatty", "/bin/bash");
    let noise = "echo 'Welcome! rc noise on stdout'; echo 'rc noise on stderr' >&2\n";
    for f in [".bashrc", ".profile", ".bash_profile", ".bash_login"] {
        write_home_file("prov_chatty", f, noise);
    }
    converges_as("prov_chatty", &servers);
}

#[test]
fn bashrc_that_exits_fails_with_a_clear_message() {
    let servers = server_for("prov_exit", "/bin/bash");
    write_home_file("prov_exit", ".bashrc", "echo 'broken rc'; exit 1\n");
    let p = full_project(&servers, "prov_exit");
    let run = p.run(&["up", "test", "--output", "plain"]);
    assert_ne!(run.code, 0, "{}", run.dump());
    assert!(
        !p.remote.join("app").exists(),
        "a step ran although every command exits 1"
    );
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("login shell") && all.contains("exit 1"),
        "the message should say the remote login shell exited 1 before running anything:\n{}",
        run.dump()
    );
}

#[test]
fn invalid_utf8_and_a_10_mb_line() {
    let s = Setup::new("hostile", 1, "");
    let p = &s.p;
    // \377\376: never valid UTF-8; then 10 MB without a newline; on both streams.
    p.write(
        "playbooks/deploy.toml",
        "[[step]]\nname = \"bytes\"\nregister = \"out\"\n\
         command = { run = \"printf 'bad \\\\377\\\\376 bytes\\\\n'; printf '\\\\377' >&2; head -c 10485760 /dev/zero | tr '\\\\0' a; head -c 10485760 /dev/zero | tr '\\\\0' b >&2\" }\n\n\
         [[step]]\nname = \"after\"\nwhen = \"out.stdout | length > 10000000\"\ncommand = { run = \"true\" }\n",
    );
    for output in ["plain", "json"] {
        let run = p.run(&["up", "test", "--output", output, "-v"]);
        run.expect_code(0);
        if output == "json" {
            let events = run.events();
            assert!(!events.is_empty());
            assert_eq!(run.step("after")["status"], "changed", "{}", run.dump());
        }
    }
}

#[test]
fn sixty_megabytes_on_one_line_keep_memory_and_events_bounded() {
    let s = Setup::new("hostile", 1, "");
    let p = &s.p;
    let done = p.remote_path("done");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"flood\"\ncommand = {{ run = \"head -c 62914560 /dev/zero | tr '\\\\0' x; echo; echo flood done\" }}\n\n\
             [[step]]\nname = \"after\"\ncommand = {{ run = \"touch {done}\", creates = \"{done}\" }}\n"
        ),
    );
    for output in ["plain", "json"] {
        let _ = std::fs::remove_file(&done);
        let mut child = p
            .command(&["up", "test", "--output", output, "-v"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let out_reader = reader(child.stdout.take().unwrap());
        let err_reader = reader(child.stderr.take().unwrap());
        let started = Instant::now();
        let Sampled {
            status,
            peak_kib: peak,
            samples,
        } = wait_sampling_peak(&mut child, Duration::from_secs(300));
        let stdout = out_reader.join().unwrap();
        let stderr = err_reader.join().unwrap();
        eprintln!(
            "--output {output}: exit {:?}, peak RSS {} MiB ({samples} samples), {} bytes of stdout, {:?}",
            status.code(),
            peak / 1024,
            stdout.len(),
            started.elapsed()
        );
        assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
        assert!(
            std::path::Path::new(&done).exists(),
            "the step after the flood did not run"
        );
        // 60 MB through ssh takes well over a second; sampled every 20 ms, that is dozens of
        // samples. Fewer than 10 means the measurement did not happen.
        assert!(
            samples >= 10,
            "only {samples} VmHWM samples of pid {pid}: the memory bound was not measured"
        );
        assert!(
            peak > 0 && peak < 100 * 1024,
            "peak RSS {} MiB is not bounded (< 100 MiB)",
            peak / 1024
        );
        // What provision itself prints stays small: the flood is not echoed, and no JSON
        // event carries it.
        assert!(stdout.len() < 1 << 20, "{} bytes printed", stdout.len());
        let longest = stdout.lines().map(str::len).max().unwrap_or(0);
        assert!(longest < 1 << 20, "a line (event) of {longest} bytes");
        assert!(
            stdout.contains("truncated"),
            "the report does not say the output was cut:\n{}",
            &stdout[..stdout.len().min(4000)]
        );
    }
}

/// Sample a run of `args` for its peak RSS (KiB), with its stdout.
fn sampled_run(p: &Project, args: &[&str]) -> (Sampled, String, String) {
    let mut child = p.command(args).spawn().unwrap();
    let out_reader = reader(child.stdout.take().unwrap());
    let err_reader = reader(child.stderr.take().unwrap());
    let sampled = wait_sampling_peak(&mut child, Duration::from_secs(600));
    (
        sampled,
        out_reader.join().unwrap(),
        err_reader.join().unwrap(),
    )
}

/// Issue 14: one upload's content is held once for all hosts, not once per host (nor once
/// per connection in flight): a 1 MiB file to 100 hosts, each its own sshd, adds little to the
/// peak RSS of the same run with a 10-byte file (it added ~1 MiB per host in flight).
#[test]
fn a_one_megabyte_file_to_a_hundred_hosts_is_held_once() {
    let s = Setup::new("memory", 100, "");
    let p = &s.p;
    // Incompressible and the same for every host: 1 MiB of a fixed pseudo-random sequence.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(p.path("big.bin"), &big).unwrap();
    std::fs::write(p.path("small.bin"), "ten bytes\n").unwrap();
    let dir = p.remote_path("hosts");
    let playbook = |src: &str| {
        format!(
            "[[step]]\nname = \"dir\"\ndirectory = {{ path = \"{dir}/{{{{ host.port }}}}\" }}\n\n\
             [[step]]\nname = \"upload\"\nfile = {{ src = \"{src}\", dest = \"{dir}/{{{{ host.port }}}}/file\" }}\n"
        )
    };
    let mut peaks = Vec::new();
    for (src, want_changed) in [("small.bin", 200), ("big.bin", 100), ("big.bin", 0)] {
        p.write("playbooks/deploy.toml", &playbook(src));
        let started = Instant::now();
        let (run, stdout, stderr) = sampled_run(p, &["up", "test", "--output", "json"]);
        eprintln!(
            "up of {src} to 100 hosts ({want_changed} changes): peak RSS {:.1} MiB ({} samples), {:.1}s",
            run.peak_kib as f64 / 1024.0,
            run.samples,
            started.elapsed().as_secs_f64()
        );
        assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
        let changed = stdout.matches("\"status\":\"changed\"").count();
        assert_eq!(changed, want_changed, "up of {src}: changed steps");
        peaks.push(run.peak_kib);
    }
    // 100 MiB went out (32 hosts at a time, the default --forks): held per host or per
    // connection in flight, it would add 32 MiB or more.
    let added = peaks[1].saturating_sub(peaks[0]);
    assert!(
        added < 12 * 1024,
        "the 1 MiB upload added {} MiB of peak RSS over the 10-byte one",
        added / 1024
    );
    for entry in std::fs::read_dir(&dir).unwrap() {
        let got = std::fs::read(entry.unwrap().path().join("file")).unwrap();
        assert!(got == big, "a host's copy differs");
    }
}
