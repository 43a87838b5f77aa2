//! `.provision/last-failed-<env>`: the hosts the last `up` did not finish, for
//! `up --retry-failed`.

use super::outcome::RunSummary;
use std::path::{Path, PathBuf};

/// Where `up` records the hosts it did not finish.
fn unfinished_file(root: &Path, env: &str) -> PathBuf {
    root.join(".provision").join(format!("last-failed-{env}"))
}

/// After an `up`: write the names of the hosts that failed, were unreachable, were
/// interrupted or not reached by a stopped rollout (one a line), or remove the file when every host finished. Best effort: a
/// read-only project folder must not fail the run.
pub fn record_unfinished(root: &Path, env: &str, summary: &RunSummary) {
    let file = unfinished_file(root, env);
    let names: Vec<&str> = summary
        .hosts
        .iter()
        .filter(|h| h.unreachable || h.interrupted || h.not_reached || h.counts.failed > 0)
        .map(|h| h.name.as_str())
        .collect();
    if names.is_empty() {
        let _ = std::fs::remove_file(&file);
    } else {
        let _ = std::fs::create_dir_all(root.join(".provision"));
        let _ = std::fs::write(&file, format!("{}\n", names.join("\n")));
    }
}

/// The hosts recorded by [`record_unfinished`]; `Err(file)` when there are none.
pub fn read_unfinished(root: &Path, env: &str) -> Result<Vec<String>, PathBuf> {
    let file = unfinished_file(root, env);
    let names: Vec<String> = std::fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        Err(file)
    } else {
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::HostOutcome;

    fn summary(hosts: Vec<HostOutcome>) -> RunSummary {
        RunSummary {
            hosts,
            exit_code: 0,
        }
    }

    #[test]
    fn records_unfinished_hosts_and_forgets_them_when_all_finish() {
        let dir = tempfile::tempdir().unwrap();
        let (mut failed, mut lost, done) = (
            HostOutcome::new("web1"),
            HostOutcome::new("web2"),
            HostOutcome::new("db"),
        );
        failed.counts.failed = 1;
        lost.unreachable = true;
        record_unfinished(dir.path(), "prod", &summary(vec![failed, lost, done]));
        assert_eq!(
            read_unfinished(dir.path(), "prod").unwrap(),
            vec!["web1", "web2"]
        );
        assert!(read_unfinished(dir.path(), "staging").is_err());
        record_unfinished(dir.path(), "prod", &summary(vec![HostOutcome::new("db")]));
        let file = read_unfinished(dir.path(), "prod").unwrap_err();
        assert!(!file.exists(), "{}", file.display());
    }
}
