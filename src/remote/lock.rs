//! The deploy lock and the release log, kept in the app's state dir on each host.
//!
//! The lock is taken lazily, in the same script as a run's first change, so a no-op run costs
//! no extra round trip and never blocks a deploy. It is a directory (`mkdir` is atomic) holding
//! the owner and start time; a second `up` that finds it refuses, naming both, unless it is
//! older than its TTL, in which case it is taken over. When a run that took the lock ends, one
//! script appends the release record (time, release, user, result) and removes the lock.

use super::state_dir;
use crate::transport::script::quote;
use std::time::Duration;

pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 60);
/// Exit status of a script that found the lock held.
pub const LOCKED_EXIT: i32 = 75;

#[derive(Debug, Clone)]
pub struct Lock {
    pub app: String,
    pub env: String,
    pub ttl: Duration,
    /// Who is deploying: user@machine and pid.
    pub owner: String,
}

/// Who holds a lock we could not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub owner: String,
    pub since: u64,
    pub age_secs: u64,
}

impl Lock {
    pub fn new(app: &str, env: &str, ttl: Option<Duration>) -> Lock {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Lock {
            app: app.into(),
            env: env.into(),
            ttl: ttl.unwrap_or(DEFAULT_TTL),
            owner: format!("{user}@{machine} (pid {})", std::process::id()),
        }
    }

    /// Script prefix: take the lock or stop with [`LOCKED_EXIT`] after printing who holds it.
    pub fn acquire_sh(&self, nonce: &str) -> String {
        format!(
            "{st}mkdir -p \"$st\"\nnow=$(date +%s)\n\
             if ! mkdir \"$st/lock\" 2>/dev/null; then\n\
               owner=$(sed -n 1p \"$st/lock/info\" 2>/dev/null); since=$(sed -n 2p \"$st/lock/info\" 2>/dev/null)\n\
               # The holder may be between its mkdir and writing info: give it a moment.\n\
               if [ -z \"$owner\" ]; then sleep 1; owner=$(sed -n 1p \"$st/lock/info\" 2>/dev/null); since=$(sed -n 2p \"$st/lock/info\" 2>/dev/null); fi\n\
               [ -n \"$owner\" ] || owner='unknown (no owner recorded)'\n\
               [ -n \"$since\" ] || since=$(stat -c %Y \"$st/lock\")\n\
               if [ $((now - since)) -lt {ttl} ]; then printf '\\n@@LOCKED{nonce} %s %s %s\\n' \"$since\" \"$((now - since))\" \"$owner\"; exit {LOCKED_EXIT}; fi\n\
               printf '\\n@@TAKEN{nonce} %s %s %s\\n' \"$since\" \"$((now - since))\" \"$owner\"\n\
             fi\n\
             printf '%s\\n%s\\n' {owner} \"$now\" > \"$st/lock/info\"\n",
            st = state_dir(&self.app, &self.env),
            ttl = self.ttl.as_secs(),
            owner = quote(&self.owner),
        )
    }

    /// Script: append the release record and remove the lock.
    pub fn release_sh(&self, release: &str, result: &str, changed: usize) -> String {
        self.release_record_sh(release, result, changed, &Default::default())
    }

    /// [`Lock::release_sh`] with the vars the run was given on the command line in the record,
    /// so `rollback` can set them all again (not only `ref`).
    pub fn release_record_sh(
        &self,
        release: &str,
        result: &str,
        changed: usize,
        vars: &std::collections::BTreeMap<String, String>,
    ) -> String {
        let mut rec = serde_json::json!({ "release": release, "user": self.owner, "result": result, "changed": changed });
        if !vars.is_empty() {
            rec["vars"] = serde_json::json!(vars);
        }
        let rest = rec.to_string();
        let rest = &rest[1..]; // the record's other fields follow "time"
        format!(
            "{st}mkdir -p \"$st\"\nprintf '{{\"time\":\"%s\",%s\\n' \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" {rest} >> \"$st/releases.log\"\nrm -rf \"$st/lock\"\n",
            st = state_dir(&self.app, &self.env),
            rest = quote(rest),
        )
    }
}

/// Script printing the release log (empty when there is none).
pub fn read_log_sh(app: &str, env: &str) -> String {
    format!(
        "{}cat \"$st/releases.log\" 2>/dev/null || true\n",
        state_dir(app, env)
    )
}

/// Probe printing `<since> <age> <owner>` when a lock is present, nothing otherwise. It runs in
/// a run's first probe batch, so a run that changes nothing still sees (and reports) a lock a
/// killed deploy left behind, at no extra round trip.
pub fn status_probe_sh(app: &str, env: &str) -> String {
    format!(
        "{st}[ -d \"$st/lock\" ] || exit 0\nnow=$(date +%s)\n\
         owner=$(sed -n 1p \"$st/lock/info\" 2>/dev/null); since=$(sed -n 2p \"$st/lock/info\" 2>/dev/null)\n\
         [ -n \"$owner\" ] || owner='unknown (no owner recorded)'\n\
         [ -n \"$since\" ] || since=$(stat -c %Y \"$st/lock\")\n\
         printf '%s %s %s\\n' \"$since\" \"$((now - since))\" \"$owner\"\n",
        st = state_dir(app, env),
    )
}

/// What [`status_probe_sh`] printed.
pub fn parse_status(out: &str) -> Option<Held> {
    parse_fields(out.lines().find(|l| !l.trim().is_empty())?)
}

/// Find the "lock held" marker in a script's stdout.
pub fn parse_held(nonce: &str, stdout: &str) -> Option<Held> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("@@LOCKED{nonce} ")))?;
    parse_fields(line)
}

/// Remove the "took over a stale lock" marker from an apply's stdout, returning whose it was.
pub fn take_taken_over(nonce: &str, stdout: &mut String) -> Option<Held> {
    let mark = format!("\n@@TAKEN{nonce} ");
    let start = stdout.find(&mark)?;
    let rest = &stdout[start + mark.len()..];
    let line = rest.split('\n').next().unwrap_or_default();
    let held = parse_fields(line)?;
    let end = (start + mark.len() + line.len() + 1).min(stdout.len());
    stdout.replace_range(start..end, "");
    Some(held)
}

fn parse_fields(line: &str) -> Option<Held> {
    let mut parts = line.splitn(3, ' ');
    let since = parts.next()?.parse().ok()?;
    let age_secs = parts.next()?.parse().ok()?;
    Some(Held {
        owner: parts.next().unwrap_or("unknown").to_string(),
        since,
        age_secs,
    })
}

impl Held {
    /// What a run that changed nothing says about a lock it found (and left alone).
    pub fn left_behind(&self, ttl: Duration, env: &str, check_mode: bool) -> String {
        let state = if self.age_secs >= ttl.as_secs() {
            "older than its TTL: the next change takes it over".to_string()
        } else {
            format!(
                "a change now would be refused until it is released or older than {}",
                humantime::format_duration(ttl)
            )
        };
        let this_run = if check_mode {
            ""
        } else {
            "; this run changed nothing and left it alone"
        };
        format!(
            "the deploy lock is held by {} since {}s ago ({state}){this_run}. If that deploy is gone, run `provision unlock {env}`",
            self.owner, self.age_secs
        )
    }

    /// What a run says after taking over a stale lock.
    pub fn taken_over(&self) -> String {
        format!(
            "took over the deploy lock of {}, left {}s ago (older than its TTL)",
            self.owner, self.age_secs
        )
    }

    pub fn message(&self, ttl: Duration) -> String {
        format!(
            "the deploy lock is held by {} since {}s ago; wait for that deploy to finish (the lock is taken over once older than {})",
            self.owner,
            self.age_secs,
            humantime::format_duration(ttl)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(script: &str, home: &std::path::Path) -> std::process::Output {
        // Run as a non-root user's state dir by pointing HOME somewhere private; as root the
        // script uses /var/lib/provision, so give the app a unique name.
        Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .env("HOME", home)
            .output()
            .unwrap()
    }

    #[test]
    fn second_acquire_is_refused_then_released() {
        let home = tempfile::tempdir().unwrap();
        let app = format!("locktest-{}", std::process::id());
        let a = Lock {
            owner: "alice@box (pid 1)".into(),
            ..Lock::new(&app, "prod", None)
        };
        let b = Lock {
            owner: "bob@box (pid 2)".into(),
            ..Lock::new(&app, "prod", None)
        };
        assert!(sh(&a.acquire_sh("n"), home.path()).status.success());
        let out = sh(&b.acquire_sh("n"), home.path());
        assert_eq!(out.status.code(), Some(LOCKED_EXIT));
        let held = parse_held("n", &String::from_utf8_lossy(&out.stdout)).unwrap();
        assert_eq!(held.owner, "alice@box (pid 1)");
        assert!(held.message(DEFAULT_TTL).contains("alice@box"));
        assert!(
            sh(&a.release_sh("abc123", "ok", 3), home.path())
                .status
                .success()
        );
        assert!(sh(&b.acquire_sh("n"), home.path()).status.success());
        let log = sh(&read_log_sh(&app, "prod"), home.path());
        let line: serde_json::Value = serde_json::from_slice(&log.stdout).unwrap();
        assert_eq!(line["release"], "abc123");
        assert_eq!(line["user"], "alice@box (pid 1)");
        sh(&b.release_sh("x", "ok", 0), home.path());
        let _ = std::fs::remove_dir_all(format!("/var/lib/provision/{app}"));
    }

    #[test]
    fn lock_without_owner_info_is_named_unknown() {
        // What a second run sees between the holder's mkdir and its writing the owner.
        let home = tempfile::tempdir().unwrap();
        let app = format!("locktest-noinfo-{}", std::process::id());
        let a = Lock::new(&app, "prod", None);
        let make = format!("{}mkdir -p \"$st/lock\"\n", state_dir(&app, "prod"));
        assert!(sh(&make, home.path()).status.success());
        let out = sh(&a.acquire_sh("n"), home.path());
        assert_eq!(out.status.code(), Some(LOCKED_EXIT));
        let held = parse_held("n", &String::from_utf8_lossy(&out.stdout)).unwrap();
        assert_eq!(held.owner, "unknown (no owner recorded)");
        let _ = std::fs::remove_dir_all(format!("/var/lib/provision/{app}"));
        let _ = std::fs::remove_dir_all(home.path().join(".local/state/provision").join(&app));
    }

    #[test]
    fn stale_lock_is_taken_over() {
        let home = tempfile::tempdir().unwrap();
        let app = format!("locktest-stale-{}", std::process::id());
        let a = Lock {
            ttl: Duration::from_secs(0),
            ..Lock::new(&app, "prod", None)
        };
        assert!(sh(&a.acquire_sh("n"), home.path()).status.success());
        assert_eq!(
            parse_status(&String::from_utf8_lossy(
                &sh(&status_probe_sh(&app, "prod"), home.path()).stdout
            ))
            .map(|h| h.owner),
            Some(a.owner.clone())
        );
        let out = sh(&a.acquire_sh("n"), home.path());
        assert!(out.status.success());
        let mut stdout = format!("before\n{}after\n", String::from_utf8_lossy(&out.stdout));
        let held = take_taken_over("n", &mut stdout).expect("takeover reported");
        assert_eq!(held.owner, a.owner);
        assert!(held.taken_over().contains("took over"));
        assert_eq!(stdout, "before\nafter\n");
        sh(&a.release_sh("x", "ok", 0), home.path());
        assert!(
            sh(&status_probe_sh(&app, "prod"), home.path())
                .stdout
                .is_empty()
        );
        let _ = std::fs::remove_dir_all(format!("/var/lib/provision/{app}"));
    }
}
