//! `become` where sudo asks for a password (issue 18): `ssh.become_password_env` names the
//! variable holding it; it travels as the first line of each script's stdin, never on a
//! command line, and is masked everywhere. Against real sshd and real sudo with a real
//! password (PAM), for the connection's `become` and one step's `become`: plan → up → up 0,
//! an upload passes through the password pipe intact, a wrong or missing password is a clear
//! error, and the password appears in no output and no process list.

#[path = "support/forms.rs"]
mod forms;
mod process_list;
mod support;

use support::*;

const LOGIN: &str = "provbp-deploy";
/// Spaces, quotes, `$` and a backslash: whatever a shell could mangle.
const PASSWORD: &str = "pw S3cr3t$HOME 'q' \"d\" \\z";
const VAR: &str = "PROVBP_SUDO_PASS";

fn playbook(etc: &str, become_step: &str) -> String {
    format!(
        r#"[[step]]
name = "conf"
{become_step}template = {{ src = "templates/conf.j2", dest = "{etc}.conf", mode = "0600" }}

[[step]]
name = "who"
{become_step}command = {{ run = "id -un > {etc}.who", creates = "{etc}.who" }}
"#
    )
}

fn clean(r: &Run, what: &str) {
    let all = r.dump();
    for f in forms::forms(PASSWORD) {
        assert!(
            !all.contains(&f),
            "{what}: the sudo password leaked as {f:?}:\n{all}"
        );
    }
}

fn read_root(path: &str) -> (String, String) {
    let owner = std::process::Command::new("stat")
        .args(["-c", "%U", path])
        .output()
        .expect("stat");
    (
        std::fs::read_to_string(path).unwrap_or_default(),
        String::from_utf8_lossy(&owner.stdout).trim().to_string(),
    )
}

/// One project, both ways of becoming root: `ssh.become` for every script, then one step's
/// `become` with the login user's own scripts around it.
#[test]
fn sudo_with_a_password_from_the_environment() {
    ensure_password_sudoer(LOGIN, PASSWORD);
    let servers = Servers::start(1);
    for (way, ssh, step) in [
        ("conn", "become = true\n", ""),
        ("step", "", "become = true\n"),
    ] {
        let app = format!("bp{way}{}", servers.sshd().port);
        let etc = format!("/etc/provbp-{app}");
        for ext in ["conf", "who"] {
            let _ = std::fs::remove_file(format!("{etc}.{ext}"));
        }
        let p = servers.project(
            &app,
            LOGIN,
            &format!("{ssh}become_password_env = \"{VAR}\""),
            "",
        );
        p.write("playbooks/deploy.toml", &playbook(&etc, step));
        p.write("templates/conf.j2", "line one\nline two\n");
        let run = |args: &[&str]| p.run_env(args, &[(VAR, PASSWORD)]);

        let plan = run(&["plan", "test", "--output", "json", "-vv"]);
        plan.expect_code(0);
        clean(&plan, "plan");
        assert_eq!(plan.changed(), 2, "{way}: {}", plan.dump());
        let (up, ps) =
            process_list::watching_process_list(|| run(&["up", "test", "--output", "json", "-vv"]));
        up.expect_code(0);
        clean(&up, "up");
        assert_eq!(plan.steps_with("changed"), up.steps_with("changed"));
        assert!(!ps.is_empty(), "no process list sample was taken");
        for sample in &ps {
            assert!(
                !sample.contains("S3cr3t"),
                "{way}: password on a command line:\n{sample}"
            );
        }
        // The upload went through `sudo -S` behind the password line, whole.
        assert_eq!(
            read_root(&format!("{etc}.conf")),
            ("line one\nline two\n".to_string(), "root".to_string()),
            "{way}"
        );
        assert_eq!(read_root(&format!("{etc}.who")).0.trim(), "root", "{way}");
        let again = run(&["up", "test", "--output", "json"]);
        again.expect_code(0);
        assert_eq!(again.changed(), 0, "{way}: second up\n{}", again.dump());
        let human = run(&["up", "test", "-vv"]);
        human.expect_code(0);
        clean(&human, "human -vv");

        // A wrong password: sudo refuses, the step fails and says so; neither password shows.
        std::fs::remove_file(format!("{etc}.who")).unwrap();
        let wrong = p.run_env(&["up", "test"], &[(VAR, "not-the-Passw0rd")]);
        assert_eq!(wrong.code, 3, "{way}: {}", wrong.dump());
        // Through the connection's become sudo's own words show; a step's probe drops its
        // stderr, so the failure names sudo and the setting instead.
        let said = [
            "incorrect password",
            "Sorry, try again",
            "ssh.become_password_env",
        ];
        assert!(
            said.iter().any(|s| wrong.dump().contains(s)),
            "{way}: a refused password says so: {}",
            wrong.dump()
        );
        assert!(
            !wrong.dump().contains("not-the-Passw0rd"),
            "{}",
            wrong.dump()
        );

        // Not set: a config error naming the variable before any host is contacted.
        let unset = p.run(&["up", "test"]);
        unset.expect_code(1);
        assert!(
            unset.stderr.contains(VAR) && unset.stderr.contains("-K"),
            "{way}: {}",
            unset.dump()
        );
        assert!(!std::path::Path::new(&format!("{etc}.who")).exists());
    }
}

/// `-K` asks on a terminal only: without one it is a usage error pointing at the variable.
#[test]
fn ask_become_pass_without_a_terminal_points_at_the_variable() {
    let servers = Servers::start(1);
    let p = servers.project("bpk", "root", "", "");
    p.write(
        "playbooks/deploy.toml",
        "[[step]]\ncommand = { run = \"true\" }\n",
    );
    let r = p.run(&["plan", "test", "-K"]);
    r.expect_code(1);
    assert!(
        r.stderr.contains("become_password_env") && r.stderr.contains("terminal"),
        "{}",
        r.dump()
    );
}
