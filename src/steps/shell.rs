//! Shell snippets several step kinds share: the app's state directory on the host, an HTTP
//! status probe that works with curl or wget, and a bounded polling loop.

pub use crate::remote::state_dir;
use std::time::Duration;

/// An image tag a step builds or ships: `repository:tag` (a `:` in a registry's `host:port`
/// does not count), without spaces, not read as an option by docker.
pub fn check_image_tag(full: &str) -> Result<(), String> {
    let (repo, tag) = full
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .unwrap_or((full, ""));
    if repo.is_empty() || tag.is_empty() {
        return Err(format!(
            "tag `{full}` must be repository:tag, e.g. \"myapp:{{{{ src.sha }}}}\""
        ));
    }
    if full.contains(char::is_whitespace) {
        return Err(format!("tag `{full}` must not contain spaces"));
    }
    not_an_option("tag", full)
}

/// Refuse a value that a remote tool would read as an option (`--upload-pack=…`, `-x`):
/// values handed to tools as positional arguments must not start with `-`.
pub fn not_an_option(field: &str, value: &str) -> Result<(), String> {
    if value.starts_with('-') {
        return Err(format!(
            "{field} `{value}` starts with `-`, which the remote tool would read as an option"
        ));
    }
    Ok(())
}

/// Prints `state=link|dir|file|other|missing` for a path (a link is never followed).
pub fn type_probe(path: &str) -> String {
    let p = crate::transport::script::quote(path);
    format!(
        "if [ -L {p} ]; then echo state=link; elif [ -d {p} ]; then echo state=dir; elif [ -f {p} ]; then echo state=file; \
         elif [ -e {p} ]; then echo state=other; else echo state=missing; fi"
    )
}

/// The first `n` characters of `text` (never splits a multibyte character).
/// An absolute path's directory and last component, as `dirname` and `basename` print them
/// ("/" is both), computed here so the host's scripts spend no process on them.
pub fn dir_and_base(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    let Some((dir, base)) = trimmed.rsplit_once('/') else {
        return ("/".into(), "/".into());
    };
    match dir.trim_end_matches('/') {
        "" => ("/".into(), base.into()),
        d => (d.into(), base.into()),
    }
}

pub fn prefix(text: &str, n: usize) -> &str {
    text.char_indices().nth(n).map_or(text, |(i, _)| &text[..i])
}

/// Defines `http_status URL` printing the HTTP status code (000 when nothing answered).
///
/// With wget (no curl, e.g. a busybox host) the status is the last response line `-S` prints
/// (`  HTTP/1.1 500 …`, indented); busybox also reports an error status as
/// `wget: server returned error: HTTP/1.1 500 …`, which must not be read. No `-T`: busybox
/// built without its timeout feature (Debian's busybox-static) dies of SIGSEGV on it, so
/// `timeout` (coreutils or busybox) bounds the request where the host has one. busybox takes
/// `-t` and ignores it; GNU wget then tries once. Unlike curl here, wget follows redirects.
pub const HTTP_STATUS_FN: &str = r#"http_status() {
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" 2>/dev/null || true
  elif command -v wget >/dev/null 2>&1; then
    _hs_t=; if timeout 5 true 2>/dev/null; then _hs_t='timeout 5'; fi
    $_hs_t wget -q -S -t 1 -O /dev/null "$1" 2>&1 | awk '/^[ \t]*HTTP\//{c=$2} END{print (c=="" ? "000" : c)}'
  else
    echo no-http-client
  fi
}
"#;

/// Runs `check` (sh that must set `ok=1` on success and may set `last`) every `interval` until
/// it succeeds or `timeout` passes. Prints `ready=1`/`ready=0`, `waited=<s>`, then `last:` and
/// the last output.
pub fn poll(check: &str, timeout: Duration, interval: Duration) -> String {
    let t = timeout.as_millis().max(1);
    let i = format!("{:.1}", interval.as_secs_f64().max(0.1));
    // Milliseconds where date knows %N (GNU, busybox), else whole seconds: with whole seconds
    // alone a 3 s timeout could end after 2.01 s.
    format!(
        "now_ms() {{ n=$(date +%s%N 2>/dev/null); case $n in ''|*[!0-9]*) echo $(( $(date +%s) * 1000 ));; *) echo $(( n / 1000000 ));; esac; }}\n\
         start=$(now_ms); ok=0; last=\n\
         while :; do\n\
         {check}\n\
         [ \"$ok\" = 1 ] && break\n\
         [ $(( $(now_ms) - start )) -ge {t} ] && break\n\
         sleep {i}\n\
         done\n\
         printf 'ready=%s\\nwaited=%s\\nlast:\\n%s\\n' \"$ok\" \"$(( ($(now_ms) - start) / 1000 ))\" \"$last\"\n"
    )
}

#[cfg(test)]
mod prefix_tests {
    use super::*;

    #[test]
    fn dir_and_base_are_what_dirname_and_basename_print() {
        for path in [
            "/",
            "/srv",
            "/srv/app",
            "/srv//app",
            "/srv/app/",
            "//x",
            "/a b/c d",
        ] {
            let run = |cmd: &str| {
                let out = std::process::Command::new(cmd)
                    .arg("--")
                    .arg(path)
                    .output()
                    .unwrap();
                String::from_utf8(out.stdout)
                    .unwrap()
                    .trim_end_matches('\n')
                    .to_string()
            };
            assert_eq!(
                dir_and_base(path),
                (run("dirname"), run("basename")),
                "{path}"
            );
        }
    }

    #[test]
    fn prefix_never_splits_a_character() {
        assert_eq!(prefix("abc", 12), "abc");
        assert_eq!(prefix("", 12), "");
        assert_eq!(prefix("ééééééééééééé", 12), "éééééééééééé");
        assert_eq!(prefix("0123456789abcdef", 12), "0123456789ab");
    }

    #[test]
    fn option_like_values_are_refused() {
        assert!(not_an_option("repo", "--upload-pack=x").is_err());
        assert!(not_an_option("repo", "-").is_err());
        assert!(not_an_option("repo", "https://example.com/a-b.git").is_ok());
    }
}
