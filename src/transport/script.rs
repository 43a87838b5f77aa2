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

/// The command line for `script`: `/bin/sh -c` with a fixed PATH and locale so nothing depends
/// on the remote user's rc files, optionally through `sudo -n` (never prompts).
pub fn command_line(script: &str, become_user: Option<&str>) -> String {
    match become_user {
        None => format!(
            "exec {ENV} HOME=\"$HOME\" USER=\"$USER\" /bin/sh -c {}",
            quote(script)
        ),
        // sudo -H sets HOME (and USER) to the target user's; the clean environment is made
        // inside, keeping those two: without HOME a non-root user's state dir (lock, release
        // log, markers) would have no home. The script is a positional parameter, never
        // parsed twice.
        Some(user) => format!("exec {}", as_user(script, user)),
    }
}

/// `script` run as `user` through `sudo -n` (never prompts), in the same clean environment as
/// [`command_line`]: the whole connection's `ssh.become`, or one step's `become`. Reads the
/// stdin it is given, so a change's upload passes through.
pub fn as_user(script: &str, user: &str) -> String {
    format!(
        "sudo -n -H -u {} -- /bin/sh -c {} provision {}",
        quote(user),
        quote(&format!(
            "exec {ENV} HOME=\"$HOME\" USER=\"$USER\" /bin/sh -c \"$1\""
        )),
        quote(script)
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
        let line = command_line("echo hi", None);
        assert!(line.starts_with("exec env -i PATH="));
        assert!(line.ends_with("/bin/sh -c 'echo hi'"));
        let line = command_line("echo hi", Some("root"));
        assert!(
            line.starts_with("exec sudo -n -H -u root -- /bin/sh -c "),
            "{line}"
        );
        assert!(line.ends_with(" provision 'echo hi'"), "{line}");
    }
}
