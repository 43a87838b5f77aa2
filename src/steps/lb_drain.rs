//! Taking a host out of a load balancer for its start-first swap, and putting it back
//! (`proxy.lb` of `docker_run`): the front proxy answers a readiness path that a load
//! balancer in front of all hosts health-checks (HAProxy `option httpchk`, Envoy, an ALB).
//!
//! Why here and not on the LB: the host being swapped cannot reach into the LB's config (it
//! may be another host, or a managed LB), but it can see the LB's checks arrive. So the swap
//! makes the path answer 503 and waits, bounded, until every checker seen has had `checks`
//! answers of 503 (the LB's `fall` must be at most that): from then on the LB sends this host
//! nothing new. After the switch the path answers 200 again and the swap waits for `checks`
//! answers of 200 per checker (`rise` ≤ `checks`), so the next batch of a rolling deploy only
//! takes a host out once this one is back in.
//!
//! The checks are counted from an access log that only the two temporary confs write
//! (`$remote_addr $status`, truncated at each phase); the steady conf answers 200 and logs
//! nothing, so the log does not grow between deploys. A swap killed half way leaves a
//! temporary conf, which the next probe sees as a conf to rewrite.

use crate::value::Dur;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where the proxy's answers to the LB's checks are logged while a swap counts them.
pub const LOG: &str = "/var/log/nginx/provision-ready.log";

/// Reads the log (`address status` lines): "ok" when every checker has had `k` answers of
/// status `s`, "wait" when one has had fewer, "none" when no checker has had one.
const COUNT_AWK: &str = "$2 == s { n[$1]++ } END { st = \"none\"; for (a in n) { if (n[a] < k) { print \"wait\"; exit } st = \"ok\" } print st }";

/// `proxy.lb = { … }` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbSpec {
    /// The path the LB checks (default "/.provision/ready").
    pub path: Option<String>,
    /// Answers per checker before the LB is taken to have seen a change (default 2): at least
    /// the LB's `fall` and `rise`.
    pub checks: Option<u32>,
    /// Longest wait for each of the two changes (default 30s).
    pub timeout: Option<Dur>,
}

/// The prepared drain: defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbDrain {
    pub path: String,
    pub checks: u32,
    pub timeout: Duration,
}

/// Which answer the readiness path gives in a conf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Between deploys: 200, nothing logged.
    Steady,
    /// Taking the host out: 503, logged.
    Draining,
    /// Putting it back: 200, logged.
    Back,
}

impl LbDrain {
    pub fn prepare(spec: &LbSpec) -> Result<LbDrain, String> {
        let path = spec
            .path
            .clone()
            .unwrap_or_else(|| "/.provision/ready".into());
        let path_ok = path.starts_with('/')
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-~".contains(c));
        if !path_ok {
            return Err(format!(
                "proxy.lb.path `{path}` must be a path of letters, digits and `/._-~`, e.g. \"/.provision/ready\""
            ));
        }
        let checks = spec.checks.unwrap_or(2);
        if !(1..=100).contains(&checks) {
            return Err(format!(
                "proxy.lb.checks = {checks}: give 1 to 100 (at least the LB's fall and rise)"
            ));
        }
        let timeout = spec
            .timeout
            .map_or(Duration::from_secs(30), |d| d.0)
            .max(Duration::from_secs(1));
        Ok(LbDrain {
            path,
            checks,
            timeout,
        })
    }

    /// The `log_format` line (inside `http { }`) the temporary confs log with.
    pub const LOG_FORMAT: &'static str = "  log_format provision_ready '$remote_addr $status';\n";

    /// The readiness `location` (inside `server { }`) of a conf of the given kind.
    pub fn location(&self, ready: Ready) -> String {
        let (log, code, body) = match ready {
            Ready::Steady => ("access_log off;".to_string(), 200, "ready"),
            Ready::Draining => (
                format!("access_log {LOG} provision_ready;"),
                503,
                "draining",
            ),
            Ready::Back => (format!("access_log {LOG} provision_ready;"), 200, "ready"),
        };
        format!(
            "    location = {path} {{ {log} default_type text/plain; return {code} \"{body}\\n\"; }}\n",
            path = self.path,
        )
    }

    /// Shell functions for the apply (after `conf`, `now_ms`, `say`, `workers`,
    /// `workers_gone` and `$p`): `lb_set KIND UPSTREAM` writes and reloads the conf of that
    /// kind with the log emptied, and waits until the workers of the previous conf are gone
    /// (so every answer from then on is the new conf's); `lb_wait
    /// STATUS WHAT` waits until every checker has had `checks` answers of STATUS. `swap_in`:
    /// the proxy's own conf swap command, emptying the log before its reload.
    pub fn shell_fns(&self, swap_in: &str) -> String {
        format!(
            "lb_set() {{ lb_old=$(workers); conf \"$2\" \"$1\" | docker exec -i \"$p\" sh -c {swap_in} || return 1; workers_gone \"$lb_old\" || true; }}\n\
             lb_wait() {{\n\
               lb_start=$(now_ms)\n\
               while :; do\n\
                 seen=$(docker exec \"$p\" cat {LOG} 2>/dev/null | awk -v s=\"$1\" -v k={checks} {awk})\n\
                 [ \"$seen\" = ok ] && {{ say \"$2 ({checks} checks of {path} answered $1)\"; return 0; }}\n\
                 if [ $(( $(now_ms) - lb_start )) -ge {timeout} ]; then\n\
                   echo \"the load balancer did not check {path} {checks} times within {timeout_s}s ($2): is it checking this proxy's port with fall and rise at most {checks}?\" >&2\n\
                   return 1\n\
                 fi\n\
                 sleep 0.1\n\
               done\n\
             }}\n",
            awk = crate::transport::script::quote(COUNT_AWK),
            checks = self.checks,
            path = self.path,
            timeout = self.timeout.as_millis(),
            timeout_s = self.timeout.as_secs_f64(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let d = LbDrain::prepare(&LbSpec::default()).unwrap();
        assert_eq!(d.path, "/.provision/ready");
        assert_eq!(d.checks, 2);
        assert_eq!(d.timeout, Duration::from_secs(30));
        let bad = |s: LbSpec| LbDrain::prepare(&s).unwrap_err();
        assert!(
            bad(LbSpec {
                path: Some("/x; }".into()),
                ..LbSpec::default()
            })
            .contains("proxy.lb.path")
        );
        assert!(
            bad(LbSpec {
                checks: Some(0),
                ..LbSpec::default()
            })
            .contains("proxy.lb.checks")
        );
    }

    #[test]
    fn only_the_temporary_confs_log_and_only_draining_answers_503() {
        let d = LbDrain::prepare(&LbSpec::default()).unwrap();
        let steady = d.location(Ready::Steady);
        assert!(steady.contains("access_log off;") && steady.contains("return 200"));
        let draining = d.location(Ready::Draining);
        assert!(draining.contains(LOG) && draining.contains("return 503"));
        let back = d.location(Ready::Back);
        assert!(back.contains(LOG) && back.contains("return 200"));
    }

    /// The awk counting of `lb_wait`, run on logs: every checker needs `checks` answers.
    #[test]
    fn every_checker_must_have_seen_the_answer() {
        let count = |log: &str, status: &str| {
            let out = std::process::Command::new("sh")
                .args([
                    "-c",
                    "printf '%s' \"$1\" | awk -v s=\"$2\" -v k=2 \"$3\"",
                    "sh",
                    log,
                    status,
                    COUNT_AWK,
                ])
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        assert_eq!(count("", "503"), "none");
        assert_eq!(count("10.0.0.9 200\n10.0.0.9 503\n", "503"), "wait");
        assert_eq!(count("10.0.0.9 503\n10.0.0.9 503\n", "503"), "ok");
        assert_eq!(
            count("10.0.0.9 503\n10.0.0.9 503\n10.0.0.8 503\n", "503"),
            "wait"
        );
        assert_eq!(count("10.0.0.9 503\n10.0.0.9 503\n", "200"), "none");
    }
}
