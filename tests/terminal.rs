//! What a person at a terminal sees: the binary run on a real pseudo-terminal (Python's `pty`
//! module drives it, answering prompts as a person would, only after they appear).
//! - `up` on a terminal draws the live per-host view (indicatif) and ends with the recap;
//!   secret values are masked there too; a second `up` says nothing changed.
//! - An encrypted key file is asked for once on the terminal (not echoed), a wrong passphrase
//!   is asked again, and the right one is used for every host of the run.

#[path = "support/docker.rs"]
mod docker_support;
mod support;

use std::path::Path;
use std::process::Command;
use support::*;

/// Runs `argv` on a new pty (120 columns, `PTY_ROWS` rows, default 40), answering each `(expect, send)` in order once
/// `expect` has appeared in the output after the previous answer. Prints a JSON object: the
/// whole output, the exit code, and how many answers were sent.
const PTY_DRIVER: &str = r#"
import fcntl, json, os, pty, select, signal, struct, sys, termios, time
script = json.loads(sys.argv[1])
argv = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
rows = int(os.environ.get("PTY_ROWS", "40"))
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 120, 0, 0))
out, pos, sent = b"", 0, 0
deadline = time.time() + 120
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            break
        out += data
    while sent < len(script):
        at = out.find(script[sent][0].encode(), pos)
        if at < 0:
            break
        pos = at + len(script[sent][0])
        time.sleep(0.2)  # a person types after reading the prompt
        os.write(fd, script[sent][1].encode())
        sent += 1
else:
    os.kill(pid, signal.SIGKILL)
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"out": out.decode("utf-8", "replace"), "code": code, "sent": sent}))
"#;

struct TtyRun {
    /// Everything the terminal received, escape sequences included.
    raw: String,
    code: i32,
    /// Prompts answered.
    sent: u64,
}

impl TtyRun {
    /// The text with ANSI escape sequences and carriage returns taken out.
    fn text(&self) -> String {
        let mut out = String::new();
        let mut chars = self.raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\x1b' => {
                    // CSI: ESC [ params final-byte (0x40..=0x7e).
                    if chars.peek() == Some(&'[') {
                        chars.next();
                        for c in chars.by_ref() {
                            if ('\x40'..='\x7e').contains(&c) {
                                break;
                            }
                        }
                    }
                }
                '\r' => {}
                c => out.push(c),
            }
        }
        out
    }
}

/// Run provision on a pty in `p`'s project, with the person's answers in `script`.
fn on_tty(p: &Project, args: &[&str], script: &[(&str, &str)], env: &[(&str, &str)]) -> TtyRun {
    let mut argv = vec![
        env!("CARGO_BIN_EXE_provision").to_string(),
        "-C".into(),
        p.dir.path().display().to_string(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let script = serde_json::to_string(script).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(PTY_DRIVER)
        .arg(script)
        .args(&argv)
        // A person's terminal: no CI, a terminal type, colours allowed.
        .env_remove("CI")
        .env_remove("NO_COLOR")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("SSH_AGENT_PID")
        .env("HOME", &p.home)
        .env("TERM", "xterm-256color");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run python3 (the pty driver)");
    assert!(
        out.status.success(),
        "pty driver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("driver JSON");
    TtyRun {
        raw: v["out"].as_str().unwrap().to_string(),
        code: v["code"].as_i64().unwrap() as i32,
        sent: v["sent"].as_u64().unwrap(),
    }
}

#[test]
fn up_on_a_terminal_draws_the_live_view_and_masks_secrets() {
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(keys.path());
    let sshds = start_many(&key, 2);
    let p = Project::new();
    let hosts: Vec<String> = sshds.iter().map(|s| s.addr("root")).collect();
    let secret = "tty-secret-Zq81mVw3";
    p.write(
        "provision.toml",
        &format!(
            "{}secrets = \"secrets/test.env\"\n",
            project_toml("tty", &hosts, &key, "")
        ),
    );
    p.write("secrets/test.env", &format!("API_TOKEN={secret}\n"));
    let dir = p.remote_path("site");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"site dir\"\ndirectory = {{ path = \"{dir}/{{{{ host.name }}}}\" }}\n\n\
             [[step]]\nname = \"env\"\nenv_file = {{ dest = \"{dir}/{{{{ host.name }}}}/app.env\" }}\n\n\
             [[step]]\nname = \"say\"\ncommand = {{ run = \"cat {dir}/{{{{ host.name }}}}/app.env; sleep 1; touch {dir}/{{{{ host.name }}}}/said\", creates = \"{dir}/{{{{ host.name }}}}/said\" }}\n"
        ),
    );

    let first = on_tty(&p, &["up", "test", "-v"], &[], &[]);
    let text = first.text();
    assert_eq!(first.code, 0, "{text}");
    // Colour and cursor control: the live view, not plain lines.
    assert!(first.raw.contains("\x1b["), "no escape sequences: {text}");
    for h in &hosts {
        let name = h.split('@').nth(1).unwrap();
        assert!(text.contains(name), "host {name} missing: {text}");
    }
    assert!(text.contains("site dir") && text.contains("env"), "{text}");
    assert!(
        text.contains("API_TOKEN=********"),
        "the command's output is shown, masked: {text}"
    );
    assert!(
        !first.raw.contains(secret),
        "secret on the terminal: {text}"
    );
    assert!(
        text.contains("2 hosts: 0 failed, 0 unreachable; 6 changed"),
        "{text}"
    );

    let again = on_tty(&p, &["up", "test"], &[], &[]);
    let text = again.text();
    assert_eq!(again.code, 0, "{text}");
    assert!(text.contains("0 changed"), "{text}");
    assert!(!again.raw.contains(secret), "{text}");
}

/// Encrypt `key` in place with `pass` (the server keeps trusting its public half).
fn encrypt(key: &Path, pass: &str) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", pass, "-f"])
        .arg(key)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("ssh-keygen -p");
    assert!(st.success());
}

#[test]
fn an_encrypted_key_is_asked_for_once_on_the_terminal_and_never_echoed() {
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(keys.path());
    let pass = "correct horse 7Qv";
    encrypt(&key.private, pass);
    let sshds = start_many(&key, 3);
    let p = Project::new();
    let hosts: Vec<String> = sshds.iter().map(|s| s.addr("root")).collect();
    p.write("provision.toml", &project_toml("ttykey", &hosts, &key, ""));

    let prompt = "Enter passphrase for key";
    // A wrong passphrase first: asked again; then the right one, used for all three hosts.
    let r = on_tty(
        &p,
        &["exec", "test", "--", "echo", "hello-from-host"],
        &[(prompt, "wrong one\n"), (prompt, &format!("{pass}\n"))],
        &[],
    );
    let text = r.text();
    assert_eq!(r.code, 0, "{text}");
    assert_eq!(r.sent, 2, "{text}");
    assert_eq!(
        text.matches(prompt).count(),
        2,
        "asked once more after the wrong one: {text}"
    );
    assert!(text.contains("Bad passphrase, try again."), "{text}");
    assert_eq!(text.matches("hello-from-host").count(), 3, "{text}");
    assert!(!r.raw.contains(pass), "the passphrase was echoed: {text}");
    assert!(
        !r.raw.contains("wrong one"),
        "the passphrase was echoed: {text}"
    );

    // Three wrong answers: no more prompts for the other hosts, a clear error naming the key
    // file on each, exit 4 (no host reached).
    let r = on_tty(
        &p,
        &["exec", "test", "--", "true"],
        &[(prompt, "a\n"), (prompt, "b\n"), (prompt, "c\n")],
        &[],
    );
    let text = r.text();
    assert_eq!(r.code, 4, "{text}");
    assert_eq!(
        text.matches(prompt).count(),
        3,
        "three prompts in all, not three per host: {text}"
    );
    assert_eq!(
        text.matches("wrong passphrase (asked three times)").count(),
        3,
        "every host says why: {text}"
    );
    assert!(
        text.contains(&key.private.display().to_string()),
        "names the key file: {text}"
    );
}

/// `--output human` beyond the live view: a plan's diff, a failure with its output tail and
/// the recap naming where the host stopped; `NO_COLOR` drops colours (the live view's cursor
/// control stays); piped, human output is plain lines without any escape sequence.
#[test]
fn human_output_shows_diffs_failures_and_honours_no_color() {
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(keys.path());
    let sshds = start_many(&key, 1);
    let p = Project::new();
    let hosts: Vec<String> = sshds.iter().map(|s| s.addr("root")).collect();
    p.write(
        "provision.toml",
        &project_toml("ttyhuman", &hosts, &key, ""),
    );
    let conf = p.remote_path("app.conf");
    p.write("templates/app.conf.j2", "workers = 4\n");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"conf\"\ntemplate = {{ src = \"templates/app.conf.j2\", dest = \"{conf}\" }}\n\n\
             [[step]]\nname = \"migrate db\"\ncommand = {{ run = \"echo applying 0007; echo 'relation users does not exist' >&2; exit 4\" }}\n"
        ),
    );
    let plan = on_tty(&p, &["plan", "test"], &[], &[]);
    let text = plan.text();
    assert_eq!(plan.code, 0, "{text}");
    assert!(text.contains("+workers = 4"), "the plan's diff: {text}");

    let up = on_tty(&p, &["up", "test"], &[], &[]);
    let text = up.text();
    assert_eq!(up.code, 3, "{text}");
    assert!(up.raw.contains("\x1b[3"), "no colour on a terminal: {text}");
    for want in [
        "migrate db",
        "exit code 4",
        "applying 0007",
        "relation users does not exist",
    ] {
        assert!(text.contains(want), "missing {want:?}: {text}");
    }
    assert!(text.contains("1 failed"), "the recap: {text}");

    let plain = on_tty(&p, &["up", "test"], &[], &[("NO_COLOR", "1")]);
    assert_eq!(plain.code, 3);
    assert!(
        !plain.raw.contains("\x1b[3"),
        "colour despite NO_COLOR: {}",
        plain.text()
    );
    assert!(plain.text().contains("relation users does not exist"));

    let piped = p.run(&["up", "test", "--output", "human"]);
    piped.expect_code(3);
    assert!(
        !piped.stdout.contains('\x1b'),
        "escapes when piped: {}",
        piped.dump()
    );
    assert!(
        format!("{}{}", piped.stdout, piped.stderr).contains("relation users does not exist"),
        "{}",
        piped.dump()
    );
}

/// Twelve hosts on a terminal of 8 rows, 3 at a time (`--forks 3`): the view never takes more
/// rows than the terminal has (every redraw moves the cursor up fewer lines than there are
/// rows), shows the run's totals, a step counter per host, the hosts queued for a fork slot
/// and how many more there are; the recap lists hosts in natural order (web2 before web10).
#[test]
fn the_live_view_fits_a_terminal_with_fewer_rows_than_hosts() {
    const ROWS: usize = 8;
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(keys.path());
    let sshds = start_many(&key, 12);
    let p = Project::new();
    let hosts: Vec<String> = (sshds.iter().enumerate())
        .map(|(i, s)| format!("{{ host = {:?}, name = \"web{}\" }}", s.addr("root"), i + 1))
        .collect();
    p.write(
        "provision.toml",
        &format!(
            "app = \"wide\"\n\n[ssh]\nidentity_file = {key:?}\nknown_hosts = \"accept-new\"\nconfig = \"none\"\n\n[env.test]\nhosts = [{}]\n",
            hosts.join(", "),
            key = key.private.display().to_string(),
        ),
    );
    let dir = p.remote_path("wide");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"dir\"\ndirectory = {{ path = \"{dir}/{{{{ host.name }}}}\" }}\n\n\
             [[step]]\nname = \"slow\"\ncommand = {{ run = \"sleep 0.4; touch {dir}/{{{{ host.name }}}}/done\", creates = \"{dir}/{{{{ host.name }}}}/done\" }}\n\n\
             [[step]]\nname = \"check\"\ncommand = {{ run = \"true\", unless = \"true\" }}\n"
        ),
    );
    let run = on_tty(
        &p,
        &["up", "test", "--forks", "3"],
        &[],
        &[("PTY_ROWS", &ROWS.to_string())],
    );
    let text = run.text();
    assert_eq!(run.code, 0, "{text}");
    // Cursor-up moves (`ESC [ n A`) of every redraw.
    let ups: Vec<usize> = run
        .raw
        .split("\x1b[")
        .skip(1)
        .filter_map(|s| {
            let n: String = s.chars().take_while(char::is_ascii_digit).collect();
            s[n.len()..]
                .starts_with('A')
                .then(|| n.parse().unwrap_or(1))
        })
        .collect();
    assert!(!ups.is_empty(), "no redraws: {text}");
    assert!(
        ups.iter().all(|&n| n < ROWS),
        "a redraw taller than the terminal: {ups:?}\n{text}"
    );
    for want in [
        "/12 hosts done",
        "/36 steps",
        "queued",
        "more: ",
        "2/3 slow",
    ] {
        assert!(text.contains(want), "missing `{want}`:\n{text}");
    }
    let recap = &text[text.rfind("RECAP").expect("a recap")..];
    let at = |h: &str| {
        recap
            .find(&format!("\n{h} "))
            .unwrap_or_else(|| panic!("{h} not in the recap: {recap}"))
    };
    assert!(
        at("web1") < at("web2") && at("web2") < at("web10"),
        "{recap}"
    );
    assert!(
        at("web9") < at("web10") && at("web10") < at("web12"),
        "{recap}"
    );
}

/// `exec -t` (issue 18): the command gets a real terminal on the host (a person types into an
/// interactive program), and `--container` runs it inside a container with `docker exec -it`;
/// several hosts selected is an error naming --limit.
#[test]
fn exec_t_gives_the_command_a_terminal_on_the_host_and_in_the_container() {
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(keys.path());
    let sshds = start_many(&key, 2);
    let name = format!("ttyexec{}", std::process::id());
    let engine = docker_support::docker_host();
    let _ = docker_support::docker_ok(&["rm", "-f", &name]);
    docker_support::docker(&[
        "run",
        "-d",
        "--name",
        &name,
        docker_support::BASE_IMAGE,
        "sleep",
        "600",
    ]);
    let p = Project::new();
    let hosts: Vec<String> = sshds.iter().map(|s| s.addr("root")).collect();
    p.write(
        "provision.toml",
        &format!(
            "{}remote_env = {{ DOCKER_HOST = \"{}\" }}\n",
            project_toml(&name, &hosts, &key, ""),
            engine
        ),
    );
    let host = sshds[0].name();
    let ask = "sh -c 'tty; printf \"name? \"; read n; echo \"hello $n\"'";
    for container in [None, Some("--container")] {
        let mut args = vec!["exec", "test", "--limit", &host, "-t"];
        args.extend(container);
        args.extend(["--", ask]);
        let r = on_tty(&p, &args, &[("name? ", "ada\r")], &[]);
        let text = r.text();
        assert_eq!((r.code, r.sent), (0, 1), "{container:?}: {text}");
        assert!(
            text.contains("/dev/pts/"),
            "{container:?}: no terminal: {text}"
        );
        assert!(text.contains("hello ada"), "{container:?}: {text}");
    }
    // In the container: its hostname is the container's, not the host's.
    let inside = docker_support::docker(&["inspect", "-f", "{{.Config.Hostname}}", &name]);
    let r = on_tty(
        &p,
        &[
            "exec",
            "test",
            "--limit",
            &host,
            "-t",
            "--container",
            &name,
            "--",
            "hostname",
        ],
        &[],
        &[],
    );
    let _ = docker_support::docker_ok(&["rm", "-f", &name]);
    assert_eq!(r.code, 0, "{}", r.text());
    assert!(r.text().contains(inside.trim()), "{}", r.text());

    let r = on_tty(&p, &["exec", "test", "-t", "--", "true"], &[], &[]);
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(
        r.text().contains("2 hosts are selected") && r.text().contains("--limit"),
        "{}",
        r.text()
    );
}

/// `-K` on a terminal: the sudo password is asked once, not echoed, used for every script's
/// sudo, and never shown.
#[test]
fn ask_become_pass_on_a_terminal_is_used_for_become() {
    let login = "provbp-tty";
    let password = "tty sudo Pw 9\"x'";
    ensure_password_sudoer(login, password);
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(keys.path());
    let sshds = start_many(&key, 1);
    let p = Project::new();
    let app = format!("ttyk{}", sshds[0].port);
    let etc = format!("/etc/provbp-{app}.who");
    let _ = std::fs::remove_file(&etc);
    p.write(
        "provision.toml",
        &project_toml(&app, &[sshds[0].addr(login)], &key, "become = true"),
    );
    p.write(
        "playbooks/deploy.toml",
        &format!("[[step]]\ncommand = {{ run = \"id -un > {etc}\", creates = \"{etc}\" }}\n"),
    );
    let prompt = "sudo password: ";
    let r = on_tty(
        &p,
        &["up", "test", "-K"],
        &[(prompt, &format!("{password}\r"))],
        &[],
    );
    let text = r.text();
    assert_eq!((r.code, r.sent), (0, 1), "{text}");
    assert_eq!(text.matches(prompt).count(), 1, "{text}");
    assert!(!text.contains("sudo Pw"), "the password was echoed: {text}");
    assert_eq!(std::fs::read_to_string(&etc).unwrap().trim(), "root");
}
