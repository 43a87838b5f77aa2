//! The release log on the hosts, and choosing what `provision rollback` goes back to.
//!
//! Rollback is a normal `up` with the var `ref` set to an earlier release's id, so the
//! playbook's git step (`ref = "{{ ref }}"`) checks it out, its image already exists, its
//! migration marker is there, and `docker_run` swaps the container back.

use super::lock::read_log_sh;
use crate::transport::ssh::SshConnector;
use crate::transport::{ConnectSpec, Connector, Transport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest release id or recorded var value `rollback` accepts.
pub const MAX_ID_LEN: usize = 128;

/// One line of `releases.log`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Record {
    pub time: String,
    pub release: String,
    pub user: String,
    pub result: String,
    #[serde(default)]
    pub changed: usize,
    /// The command-line vars the release was deployed with (absent in older records).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
}

/// What `rollback` sets: the release id (as `ref`) and the vars it was deployed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub release: String,
    pub vars: BTreeMap<String, String>,
}

/// A release id (or a recorded var's value) read from a host is only trusted when it looks
/// like one: git SHAs, tags, branch names, version strings. The log is a file on the host, and
/// the id becomes a var that playbooks put into commands run as root, so a forged line must
/// not get further than this.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._/+-".contains(c);
    let why = if id.is_empty() {
        Some("it is empty".to_string())
    } else if id.len() > MAX_ID_LEN {
        Some(format!("it is longer than {MAX_ID_LEN} characters"))
    } else if id.starts_with('-') {
        Some("it starts with `-`".to_string())
    } else {
        id.chars()
            .find(|c| !allowed(*c))
            .map(|c| format!("it contains {c:?}"))
    };
    match why {
        None => Ok(()),
        // The value itself is not printed: it is whatever the host's log says.
        Some(why) => Err(format!(
            "the release log on the host records {what} that is not a valid release id ({why}; allowed: A-Z a-z 0-9 . _ / + -, not starting with `-`, at most {MAX_ID_LEN} characters); refusing to roll back to it — check the host's releases.log"
        )),
    }
}

/// Var names `rollback` sets again: identifiers only.
fn check_var_name(name: &str) -> Result<(), String> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err("the release log on the host records a var whose name is not an identifier; refusing to roll back — check the host's releases.log".into())
    }
}

/// The target of a record, once its id and every recorded var are checked.
fn checked(r: &Record) -> Result<Target, String> {
    check_id("a release", &r.release)?;
    for (k, v) in &r.vars {
        check_var_name(k)?;
        check_id(&format!("var `{k}` with a value"), v)?;
    }
    Ok(Target {
        release: r.release.clone(),
        vars: r.vars.clone(),
    })
}

pub fn parse_log(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The release to roll back to: `to` (a prefix of a recorded successful release), or the
/// newest successful release that differs from the current one. The one picked must pass
/// [`check_id`] (and its vars too).
pub fn rollback_target(records: &[Record], to: Option<&str>) -> Result<Target, String> {
    checked(pick(records, to)?)
}

fn pick<'a>(records: &'a [Record], to: Option<&str>) -> Result<&'a Record, String> {
    let ok: Vec<&Record> = records
        .iter()
        .filter(|r| r.result == "ok" && !r.release.is_empty())
        .collect();
    let Some(current) = ok.last() else {
        return Err("no successful release is recorded on the host yet".into());
    };
    if let Some(to) = to {
        let found: Vec<&&Record> = ok.iter().filter(|r| r.release.starts_with(to)).collect();
        return match found.last() {
            Some(r) if found.iter().all(|x| x.release == r.release) => Ok(r),
            Some(_) => Err(format!(
                "`{to}` matches several releases; give more characters"
            )),
            None => Err(format!(
                "no successful release `{to}` in the release log (see `provision releases`)"
            )),
        };
    }
    ok.iter()
        .rev()
        .find(|r| r.release != current.release)
        .copied()
        .ok_or_else(|| match check_id("a release", &current.release) {
            Ok(()) => format!("no release before {} is recorded", current.release),
            Err(e) => e,
        })
}

/// Read the release log of one host.
pub async fn read(
    name: &str,
    connect: &ConnectSpec,
    app: &str,
    env: &str,
) -> Result<Vec<Record>, String> {
    let session = SshConnector
        .connect(connect)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let out = session
        .exec(&read_log_sh(app, env), None, Duration::from_secs(60))
        .await;
    session.close().await;
    let out = out.map_err(|e| format!("{name}: {e}"))?;
    Ok(parse_log(&out.stdout_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(release: &str, result: &str) -> Record {
        Record {
            time: "t".into(),
            release: release.into(),
            user: "u".into(),
            result: result.into(),
            changed: 1,
            vars: BTreeMap::new(),
        }
    }

    #[test]
    fn picks_previous_successful_release() {
        let log = vec![
            rec("aaa111", "ok"),
            rec("bbb222", "ok"),
            rec("ccc333", "failed"),
            rec("bbb222", "ok"),
        ];
        assert_eq!(rollback_target(&log, None).unwrap().release, "aaa111");
        assert_eq!(
            rollback_target(&log, Some("bbb")).unwrap().release,
            "bbb222"
        );
        assert!(rollback_target(&log, Some("ccc")).is_err());
        assert!(rollback_target(&[rec("aaa", "ok")], None).is_err());
        assert!(rollback_target(&[], None).is_err());
    }

    #[test]
    fn parses_log_lines_and_skips_garbage() {
        let text = "{\"time\":\"2026-01-01T00:00:00Z\",\"release\":\"abc\",\"user\":\"me\",\"result\":\"ok\",\"changed\":2}\nnot json\n";
        assert_eq!(
            parse_log(text),
            vec![Record {
                time: "2026-01-01T00:00:00Z".into(),
                release: "abc".into(),
                user: "me".into(),
                result: "ok".into(),
                changed: 2,
                vars: BTreeMap::new(),
            }]
        );
    }

    #[test]
    fn a_forged_release_or_var_is_refused_without_printing_it() {
        for forged in ["$(touch /tmp/x)", "-rf", "a b", "v1;id", "x\ny", ""] {
            let mut log = vec![rec("aaa111", "ok"), rec("bbb222", "ok")];
            log[0].release = forged.into();
            let e = rollback_target(&log, None).unwrap_err();
            if !forged.is_empty() {
                assert!(e.contains("not a valid release id"), "{forged}: {e}");
                assert!(!e.contains(forged), "{e}");
            }
        }
        let long = "a".repeat(MAX_ID_LEN + 1);
        assert!(check_id("a release", &long).is_err());
        for good in ["3f2a9c1", "v1.2.3", "release/2026-01", "1.0+build.7", "a_b"] {
            check_id("a release", good).unwrap();
        }
        let mut log = vec![rec("aaa111", "ok"), rec("bbb222", "ok")];
        log[0].vars.insert("version".into(), "1 $(id)".into());
        assert!(
            rollback_target(&log, None)
                .unwrap_err()
                .contains("var `version`")
        );
        log[0].vars = BTreeMap::from([("bad name".into(), "1".into())]);
        assert!(rollback_target(&log, None).is_err());
        log[0].vars = BTreeMap::from([("version".into(), "1".into())]);
        let t = rollback_target(&log, None).unwrap();
        assert_eq!(t.vars["version"], "1");
    }
}
