//! Building the command line sent over SSH.
//!
//! sshd runs what we send as `$SHELL -c <line>`, and bash sources ~/.bashrc even then, so the
//! line only hands the real script to `/bin/sh` with a clean, fixed environment. Values that
//! end up in a script are always quoted with [`quote`]. Secrets never go here: they travel on
//! stdin (the command line is visible in every process list).

use std::borrow::Cow;

/// Quote one value for POSIX sh.
pub fn quote(s: &str) -> Cow<'_, str> {
    shell_escape::unix::escape(Cow::Borrowed(s))
}

/// A fixed PATH and locale, nothing from the remote user's environment.
const ENV: &str =
    "env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C";

/// The shell variable holding the sudo password inside a script, read from the first line of
/// stdin (see [`Sudo::password`]). Never exported: it lives in that shell's memory only.
const PASSWORD_VAR: &str = "PROVISION_BECOME_PASSWORD";

/// How a script escalates: through `sudo -n` (never prompts), or, when the env gives a sudo
/// password, with that password as the first line of the script's stdin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sudo {
    /// The transport sends the password as the first line of every script's stdin, and
    /// [`command_line`] reads it into [`PASSWORD_VAR`] before the script runs.
    pub password: bool,
    /// The agent is forwarded (`ssh.forward_agent`): the login user's script keeps
    /// `SSH_AUTH_SOCK` (sudo's env_reset drops it for `become`).
    pub agent: bool,
}

/// The command line for `script`: `/bin/sh -c` with a fixed PATH and locale so nothing depends
/// on the remote user's rc files, optionally as `become_user` through sudo.
pub fn command_line(script: &str, become_user: Option<&str>, sudo: Sudo) -> String {
    let agent = if sudo.agent {
        " SSH_AUTH_SOCK=\"$SSH_AUTH_SOCK\""
    } else {
        ""
    };
    if sudo.password {
        // The password line is read first (by the login user's clean shell), so whatever
        // follows on stdin is the script's input as without a password.
        let body = match become_user {
            None => script.to_string(),
            Some(user) => as_user(script, user, sudo),
        };
        return format!(
            "exec {ENV}{agent} HOME=\"$HOME\" USER=\"$USER\" /bin/sh -c {}",
            quote(&format!("IFS= read -r {PASSWORD_VAR} || exit 1\n{body}"))
        );
    }
    match become_user {
        None => format!(
            "exec {ENV}{agent} HOME=\"$HOME\" USER=\"$USER\" /bin/sh -c {}",
            quote(script)
        ),
        // sudo -H sets HOME (and USER) to the target user's; the clean environment is made
        // inside, keeping those two: without HOME a non-root user's state dir (lock, release
        // log, markers) would have no home. The script is a positional parameter, never
        // parsed twice.
        Some(user) => format!("exec {}", as_user(script, user, sudo)),
    }
}

/// `script` run as `user` through sudo, in the same clean environment as [`command_line`]:
/// the whole connection's `ssh.become`, or one step's `become`. Reads the stdin it is given,
/// so a change's upload passes through.
///
/// Without a password: `sudo -n` (never prompts). With one: still `sudo -n` where it needs
/// none (NOPASSWD), else `sudo -S -k`, whose stdin is the password line followed by the
/// script's own stdin; sudo reads its password a byte at a time, so the rest is left for the
/// script. `-k` makes sudo always read it (a cached credential would leave the line to the
/// script). `printf` is a shell builtin: the password is in no process's arguments.
pub fn as_user(script: &str, user: &str, sudo: Sudo) -> String {
    let u = quote(user);
    let rest = format!(
        "-H -u {u} -- /bin/sh -c {} provision {}",
        quote(&format!(
            "exec {ENV} HOME=\"$HOME\" USER=\"$USER\" /bin/sh -c \"$1\""
        )),
        quote(script)
    );
    if !sudo.password {
        return format!("sudo -n {rest}");
    }
    format!(
        "if sudo -n -u {u} true 2>/dev/null; then sudo -n {rest}; \
         else {{ printf '%s\\n' \"${PASSWORD_VAR}\"; exec cat; }} | sudo -S -k -p '' {rest}; fi"
    )
}

/// For unit tests of generated scripts: `script` in a real `/bin/sh` reading `stdin`; its
/// stdout.
#[cfg(test)]
pub fn run_in_sh(script: &str, stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn /bin/sh");
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin).expect("write the script's stdin");
    drop(input);
    child.wait_with_output().expect("wait for /bin/sh").stdout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_values_with_spaces_and_quotes() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn command_line_wraps_in_sh_and_sudo() {
        let line = command_line("echo hi", None, Sudo::default());
        assert!(line.starts_with("exec env -i PATH="));
        assert!(line.ends_with("/bin/sh -c 'echo hi'"));
        let line = command_line("echo hi", Some("root"), Sudo::default());
        assert!(
            line.starts_with("exec sudo -n -H -u root -- /bin/sh -c "),
            "{line}"
        );
        assert!(line.ends_with(" provision 'echo hi'"), "{line}");
    }

    /// With a sudo password the first stdin line is the password, in the shell's memory only:
    /// the script sees the rest of stdin and the variable, never an argument holding it.
    #[test]
    fn password_line_is_read_before_the_script_and_not_passed_on() {
        let with = Sudo {
            password: true,
            agent: false,
        };
        let line = command_line("cat; echo \"[$PROVISION_BECOME_PASSWORD]\"", None, with);
        assert!(!line.contains("s3cret"));
        let out = run_in_sh(&line, b"s3cret\nthe input\n");
        assert_eq!(String::from_utf8_lossy(&out), "the input\n[s3cret]\n");
        let sudo = as_user("id", "app", with);
        assert!(sudo.contains("sudo -S -k -p ''") && sudo.contains("sudo -n -u app true"));
        assert!(!as_user("id", "app", Sudo::default()).contains("-S"));
    }
}
