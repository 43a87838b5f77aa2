//! The release log on the hosts, and choosing what `provision rollback` goes back to.
//!
//! Rollback is a normal `up` with the var `ref` set to an earlier release's id, so the
//! playbook's git step (`ref = "{{ ref }}"`) checks it out, its image already exists, its
//! migration marker is there, and `docker_run` swaps the container back.

use super::lock::read_log_sh;
use crate::transport::ssh::SshConnector;
use crate::transport::{ConnectSpec, Connector, Transport};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One line of `releases.log`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Record {
    pub time: String,
    pub release: String,
    pub user: String,
    pub result: String,
    #[serde(default)]
    pub changed: usize,
}

pub fn parse_log(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The release to roll back to: `to` (a prefix of a recorded successful release), or the
/// newest successful release that differs from the current one.
pub fn rollback_target(records: &[Record], to: Option<&str>) -> Result<String, String> {
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
            Some(r) if found.iter().all(|x| x.release == r.release) => Ok(r.release.clone()),
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
        .map(|r| r.release.clone())
        .ok_or_else(|| format!("no release before {} is recorded", current.release))
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
        assert_eq!(rollback_target(&log, None).unwrap(), "aaa111");
        assert_eq!(rollback_target(&log, Some("bbb")).unwrap(), "bbb222");
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
                changed: 2
            }]
        );
    }
}
