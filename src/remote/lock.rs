//! The deploy lock and the release log, kept in the app's state dir on each host.
//!
//! The lock is taken lazily, in the same script as a run's first change, so a no-op run costs
//! no extra round trip and never blocks a deploy. It is a directory (`mkdir` is atomic) whose
//! `info` file names the holder: owner, start time, the run's random token, and the
//! controller's hostname, pid and process start time. Every round trip of the holder touches
//! `info` (the heartbeat; a long step is refreshed on the side, see `runner/host.rs`), so:
//!
//! * a lock not refreshed for `lock_stale` (default 2 min) is stale and taken over;
//! * a lock whose holder is provably gone (same controller host, that process no longer
//!   alive) is taken over at once, by a second attempt naming its token ([`Lock::acquire_sh`]);
//! * otherwise a second `up` refuses, naming the holder.
//!
//! A takeover is atomic: it first makes `lock.claim.<old token>` (`mkdir`), so of two runs
//! taking over the same lock one wins and the other finds it held. The release claims the
//! same directory with its own token and removes the lock only if it still holds its token,
//! so a run whose lock was taken over never removes the new holder's.

use super::state_dir;
use crate::transport::script::quote;
use std::time::Duration;

/// How long a lock may go without a heartbeat before it is stale.
pub const DEFAULT_STALE: Duration = Duration::from_secs(120);
/// Exit status of a script that found the lock held.
pub const LOCKED_EXIT: i32 = 75;
/// What the release prints when the lock is no longer this run's.
const NOT_OURS: &str = "@@LOCK-NOT-OURS ";

#[derive(Debug, Clone)]
pub struct Lock {
    pub app: String,
    pub env: String,
    /// Without a heartbeat for this long, the lock is stale.
    pub stale: Duration,
    /// Who is deploying: user@machine and pid.
    pub owner: String,
    /// This run's, random: what the release and the heartbeat check.
    pub token: String,
    pub holder: Holder,
}

/// The controller process holding a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub hostname: String,
    pub pid: u32,
    /// Field 22 of /proc/<pid>/stat: tells a reused pid from the holder.
    pub start: u64,
}

/// Who holds a lock we could not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub owner: String,
    pub since: u64,
    pub age_secs: u64,
    /// Since the last heartbeat.
    pub idle_secs: u64,
    pub token: Option<String>,
    pub holder: Option<Holder>,
}

impl Holder {
    /// This process.
    pub fn me() -> Holder {
        Holder {
            hostname: hostname(),
            pid: std::process::id(),
            start: process_start(std::process::id()).unwrap_or(0),
        }
    }

    /// True only when it is certain: the lock was taken from this machine and that process
    /// (that pid with that start time) is no longer running.
    pub fn is_gone(&self) -> bool {
        self.hostname == hostname() && process_start(self.pid) != Some(self.start)
    }
}

/// A run's random lock token.
fn token() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// A process's start time (clock ticks after boot), None when there is no such process.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Who runs provision here: `$USER@hostname` (`$LOGNAME`, or the uid, without `$USER`: a
/// CI job or cron may set neither), as run reports name them.
pub fn local_user() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        // SAFETY: getuid has no preconditions and cannot fail.
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }));
    format!("{user}@{}", hostname())
}

impl Lock {
    pub fn new(app: &str, env: &str, stale: Option<Duration>) -> Lock {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        let holder = Holder::me();
        Lock {
            app: app.into(),
            env: env.into(),
            stale: stale.unwrap_or(DEFAULT_STALE),
            owner: format!("{user}@{} (pid {})", holder.hostname, holder.pid),
            token: token(),
            holder,
        }
    }

    /// Script prefix: take the lock or stop with [`LOCKED_EXIT`] after printing who holds it.
    /// `gone`: the token of a lock whose holder is known to be gone, taken over however fresh.
    pub fn acquire_sh(&self, nonce: &str, gone: Option<&str>) -> String {
        let h = &self.holder;
        format!(
            "{st}[ -d \"$st\" ] || mkdir -p \"$st\"\nnow=$(date +%s)\n\
             provision_lock_write() {{ printf '%s\\n%s\\n%s\\n%s\\n%s\\n%s\\n' {owner} \"$now\" {token} {host} {pid} {start} > \"$st/lock.new.\"{token} && mv -f \"$st/lock.new.\"{token} \"$st/lock/info\"; }}\n\
             provision_lock_read() {{ i=\"$st/lock/info\"; owner=$(sed -n 1p \"$i\" 2>/dev/null); since=$(sed -n 2p \"$i\" 2>/dev/null); tok=$(sed -n 3p \"$i\" 2>/dev/null); lh=$(sed -n 4p \"$i\" 2>/dev/null); lp=$(sed -n 5p \"$i\" 2>/dev/null); ls=$(sed -n 6p \"$i\" 2>/dev/null); }}\n\
             provision_lock_fields() {{ printf '%s %s %s %s %s %s %s %s' \"$since\" \"$((now - since))\" \"$idle\" \"${{tok:--}}\" \"${{lh:--}}\" \"${{lp:--}}\" \"${{ls:--}}\" \"$owner\"; }}\n\
             provision_lock_held() {{ printf '\\n@@LOCKED{nonce} %s\\n' \"$(provision_lock_fields)\"; exit {LOCKED_EXIT}; }}\n\
             if mkdir \"$st/lock\" 2>/dev/null; then provision_lock_write || exit 1\n\
             else\n\
               provision_lock_read\n\
               # The holder may be between its mkdir and writing info: poll a moment (1 s at most).\n\
               j=0; while [ -z \"$owner\" ] && [ $j -lt 20 ]; do sleep 0.05; j=$((j+1)); provision_lock_read; done\n\
               [ -n \"$owner\" ] || owner='unknown (no owner recorded)'\n\
               [ -n \"$since\" ] || since=$(stat -c %Y \"$st/lock\")\n\
               beat=$(stat -c %Y \"$st/lock/info\" 2>/dev/null || stat -c %Y \"$st/lock\")\n\
               idle=$((now - beat))\n\
               if [ \"$idle\" -lt {stale} ] && {{ [ -z \"$tok\" ] || [ \"$tok\" != {gone} ]; }}; then provision_lock_held; fi\n\
               # Stale, or its holder is gone: claim the takeover (atomic), then check the lock is still the one judged.\n\
               claim=\"$st/lock.claim.${{tok:-none}}\"\n\
               if ! mkdir \"$claim\" 2>/dev/null; then\n\
                 # A claim a minute old is a takeover killed midway; a younger one is in progress.\n\
                 [ $((now - $(stat -c %Y \"$claim\" 2>/dev/null || echo \"$now\"))) -ge 60 ] || provision_lock_held\n\
                 rmdir \"$claim\" 2>/dev/null; mkdir \"$claim\" 2>/dev/null || provision_lock_held\n\
               fi\n\
               if [ \"$(sed -n 3p \"$st/lock/info\" 2>/dev/null)\" != \"$tok\" ] || ! provision_lock_write; then rmdir \"$claim\"; provision_lock_read; idle=0; provision_lock_held; fi\n\
               rmdir \"$claim\"\n\
               printf '\\n@@TAKEN{nonce} %s\\n' \"$(provision_lock_fields)\"\n\
             fi\n",
            st = state_dir(&self.app, &self.env),
            stale = self.stale.as_secs(),
            owner = quote(&self.owner),
            token = quote(&self.token),
            host = quote(&h.hostname),
            pid = h.pid,
            start = h.start,
            gone = quote(gone.unwrap_or("-none-")),
        )
    }

    /// Script prefix refreshing the lock while it is still this run's (the heartbeat).
    pub fn heartbeat_sh(&self) -> String {
        format!(
            "{st}[ \"$(sed -n 3p \"$st/lock/info\" 2>/dev/null)\" != {token} ] || touch \"$st/lock/info\"\n",
            st = state_dir(&self.app, &self.env),
            token = quote(&self.token),
        )
    }

    /// Script: append the release record and remove the lock if it is still ours. The claim
    /// is the one a takeover of our lock makes: holding it, no takeover is halfway.
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
            "{st}[ -d \"$st\" ] || mkdir -p \"$st\"\nprintf '{{\"time\":\"%s\",%s\\n' \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" {rest} >> \"$st/releases.log\"\n\
             claim=\"$st/lock.claim.\"{token}\n\
             if mkdir \"$claim\" 2>/dev/null; then\n\
               pv_t=; {{ read -r _; read -r _; read -r pv_t; }} 2>/dev/null < \"$st/lock/info\"\n\
               if [ \"$pv_t\" = {token} ]; then rm -rf \"$st/lock\"\n\
               else printf '{NOT_OURS}%s\\n' \"$(sed -n 1p \"$st/lock/info\" 2>/dev/null)\"; fi\n\
               rmdir \"$claim\"\n\
             else printf '{NOT_OURS}%s\\n' 'a run taking it over'; fi\n",
            st = state_dir(&self.app, &self.env),
            rest = quote(rest),
            token = quote(&self.token),
        )
    }
}

/// Who holds the lock now, when a release found it was no longer this run's.
pub fn parse_not_ours(stdout: &str) -> Option<String> {
    let who = stdout.lines().find_map(|l| l.strip_prefix(NOT_OURS))?;
    Some(match who.trim() {
        "" => "nobody (it was removed)".to_string(),
        who => who.to_string(),
    })
}

/// Script printing the release log (empty when there is none).
pub fn read_log_sh(app: &str, env: &str) -> String {
    format!(
        "{}cat \"$st/releases.log\" 2>/dev/null || true\n",
        state_dir(app, env)
    )
}

/// Probe printing the lock's fields (see [`parse_status`]) when a lock is present, nothing
/// otherwise. It runs in a run's first probe batch, so a run that changes nothing still sees
/// (and reports) a lock a killed deploy left behind, at no extra round trip.
pub fn status_probe_sh(app: &str, env: &str) -> String {
    format!(
        "{st}[ -d \"$st/lock\" ] || exit 0\nnow=$(date +%s)\ni=\"$st/lock/info\"\n\
         owner=$(sed -n 1p \"$i\" 2>/dev/null); since=$(sed -n 2p \"$i\" 2>/dev/null); tok=$(sed -n 3p \"$i\" 2>/dev/null); lh=$(sed -n 4p \"$i\" 2>/dev/null); lp=$(sed -n 5p \"$i\" 2>/dev/null); ls=$(sed -n 6p \"$i\" 2>/dev/null)\n\
         [ -n \"$owner\" ] || owner='unknown (no owner recorded)'\n\
         [ -n \"$since\" ] || since=$(stat -c %Y \"$st/lock\")\n\
         beat=$(stat -c %Y \"$i\" 2>/dev/null || stat -c %Y \"$st/lock\")\n\
         printf '%s %s %s %s %s %s %s %s\\n' \"$since\" \"$((now - since))\" \"$((now - beat))\" \"${{tok:--}}\" \"${{lh:--}}\" \"${{lp:--}}\" \"${{ls:--}}\" \"$owner\"\n",
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

/// `<since> <age> <idle> <token> <hostname> <pid> <start> <owner…>`, `-` for a field the
/// lock does not record (one written by an older provision, or still being written).
fn parse_fields(line: &str) -> Option<Held> {
    let mut parts = line.splitn(8, ' ');
    let since = parts.next()?.parse().ok()?;
    let age_secs = parts.next()?.parse().ok()?;
    let idle_secs = parts.next()?.parse().ok()?;
    let field = |p: Option<&str>| p.filter(|v| *v != "-" && !v.is_empty()).map(str::to_string);
    let token = field(parts.next());
    let hostname = field(parts.next());
    let pid = field(parts.next()).and_then(|p| p.parse().ok());
    let start = field(parts.next()).and_then(|p| p.parse().ok());
    let holder = match (hostname, pid, start) {
        (Some(hostname), Some(pid), Some(start)) => Some(Holder {
            hostname,
            pid,
            start,
        }),
        _ => None,
    };
    Some(Held {
        owner: parts.next().unwrap_or("unknown").to_string(),
        since,
        age_secs,
        idle_secs,
        token,
        holder,
    })
}

impl Held {
    /// The token to take this lock over at once with: its holder is provably gone.
    pub fn gone_token(&self) -> Option<&str> {
        self.holder.as_ref().filter(|h| h.is_gone())?;
        self.token.as_deref()
    }

    /// What a run that changed nothing says about a lock it found (and left alone).
    pub fn left_behind(&self, stale: Duration, env: &str, check_mode: bool) -> String {
        let state = if self.holder.as_ref().is_some_and(Holder::is_gone) {
            "its process is gone: the next change takes it over".to_string()
        } else if self.idle_secs >= stale.as_secs() {
            "not refreshed for longer than `lock_stale`: the next change takes it over".to_string()
        } else {
            format!(
                "a change now would be refused until it is released or not refreshed for {}",
                humantime::format_duration(stale)
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

    /// What a run says after taking over a lock.
    pub fn taken_over(&self, gone: bool) -> String {
        let why = if gone {
            "its process is no longer running".to_string()
        } else {
            format!("not refreshed for {}", secs(self.idle_secs))
        };
        format!(
            "took over the deploy lock of {}, taken {} ago ({why})",
            self.owner,
            secs(self.age_secs)
        )
    }

    pub fn message(&self, stale: Duration) -> String {
        format!(
            "the deploy lock is held by {} since {}s ago (refreshed {}s ago); wait for that deploy to finish (the lock is taken over once not refreshed for {})",
            self.owner,
            self.age_secs,
            self.idle_secs,
            humantime::format_duration(stale)
        )
    }
}

/// `90` → "1m 30s": lock ages read as durations.
fn secs(n: u64) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(n))
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
            .arg(unprivileged(script))
            .env("HOME", home)
            .output()
            .unwrap()
    }

    /// As a non-root user, whoever runs the tests: the state goes under `$HOME`, never to
    /// /var/lib/provision.
    fn unprivileged(script: &str) -> String {
        format!(
            "id() {{ if [ \"$*\" = -u ]; then echo 1000; else command id \"$@\"; fi; }}\n{script}"
        )
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
        assert!(sh(&a.acquire_sh("n", None), home.path()).status.success());
        let out = sh(&b.acquire_sh("n", None), home.path());
        assert_eq!(out.status.code(), Some(LOCKED_EXIT));
        let held = parse_held("n", &String::from_utf8_lossy(&out.stdout)).unwrap();
        assert_eq!(held.owner, "alice@box (pid 1)");
        assert!(held.message(DEFAULT_STALE).contains("alice@box"));
        assert!(
            sh(&a.release_sh("abc123", "ok", 3), home.path())
                .status
                .success()
        );
        assert!(sh(&b.acquire_sh("n", None), home.path()).status.success());
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
        let out = sh(&a.acquire_sh("n", None), home.path());
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
            stale: Duration::from_secs(0),
            ..Lock::new(&app, "prod", None)
        };
        assert!(sh(&a.acquire_sh("n", None), home.path()).status.success());
        assert_eq!(
            parse_status(&String::from_utf8_lossy(
                &sh(&status_probe_sh(&app, "prod"), home.path()).stdout
            ))
            .map(|h| h.owner),
            Some(a.owner.clone())
        );
        let out = sh(&a.acquire_sh("n", None), home.path());
        assert!(out.status.success());
        let mut stdout = format!("before\n{}after\n", String::from_utf8_lossy(&out.stdout));
        let held = take_taken_over("n", &mut stdout).expect("takeover reported");
        assert_eq!(held.owner, a.owner);
        assert!(held.taken_over(false).contains("took over"));
        assert_eq!(stdout, "before\nafter\n");
        sh(&a.release_sh("x", "ok", 0), home.path());
        assert!(
            sh(&status_probe_sh(&app, "prod"), home.path())
                .stdout
                .is_empty()
        );
        let _ = std::fs::remove_dir_all(format!("/var/lib/provision/{app}"));
    }

    /// A lock of `owner` not refreshed for two hours.
    fn stale_lock(app: &str, home: &std::path::Path, owner: &str) -> Lock {
        let old = Lock {
            owner: owner.into(),
            ..Lock::new(app, "prod", None)
        };
        assert!(sh(&old.acquire_sh("n", None), home).status.success());
        let info = format!(
            "{}touch -d '2 hours ago' \"$st/lock/info\"\n",
            state_dir(app, "prod")
        );
        assert!(sh(&info, home).status.success());
        old
    }

    #[test]
    fn of_two_runs_taking_over_one_stale_lock_exactly_one_wins() {
        let home = tempfile::tempdir().unwrap();
        let app = format!("locktest-race-{}", std::process::id());
        for round in 0..20 {
            stale_lock(&app, home.path(), "dead@box (pid 1)");
            let runs: Vec<Lock> = (0..2).map(|_| Lock::new(&app, "prod", None)).collect();
            let children: Vec<_> = runs
                .iter()
                .map(|l| {
                    Command::new("/bin/sh")
                        .arg("-c")
                        .arg(unprivileged(&l.acquire_sh("n", None)))
                        .env("HOME", home.path())
                        .stdout(std::process::Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            let codes: Vec<_> = children
                .into_iter()
                .map(|c| c.wait_with_output().unwrap().status.code())
                .collect();
            let won: Vec<usize> = (0..2).filter(|&i| codes[i] == Some(0)).collect();
            assert_eq!(won.len(), 1, "round {round}: {codes:?}");
            assert!(
                codes.contains(&Some(LOCKED_EXIT)),
                "round {round}: {codes:?}"
            );
            // The lock is the winner's: its release removes it.
            let out = sh(&runs[won[0]].release_sh("x", "ok", 0), home.path());
            assert_eq!(parse_not_ours(&String::from_utf8_lossy(&out.stdout)), None);
            assert!(
                sh(&status_probe_sh(&app, "prod"), home.path())
                    .stdout
                    .is_empty()
            );
        }
    }

    #[test]
    fn a_run_whose_lock_was_taken_over_leaves_the_new_holders_lock() {
        let home = tempfile::tempdir().unwrap();
        let app = format!("locktest-lost-{}", std::process::id());
        let slow = stale_lock(&app, home.path(), "slow@box (pid 1)");
        let next = Lock {
            owner: "next@box (pid 2)".into(),
            ..Lock::new(&app, "prod", None)
        };
        assert!(
            sh(&next.acquire_sh("n", None), home.path())
                .status
                .success()
        );
        // The slow run's heartbeat no longer refreshes it, and its release leaves it.
        let out = sh(&slow.release_sh("x", "ok", 1), home.path());
        assert_eq!(
            parse_not_ours(&String::from_utf8_lossy(&out.stdout)).as_deref(),
            Some("next@box (pid 2)")
        );
        let held = parse_status(&String::from_utf8_lossy(
            &sh(&status_probe_sh(&app, "prod"), home.path()).stdout,
        ))
        .expect("the new holder's lock is still there");
        assert_eq!(held.owner, "next@box (pid 2)");
        assert_eq!(held.token.as_deref(), Some(next.token.as_str()));
        assert_eq!(held.holder, Some(Holder::me()));
        sh(&next.release_sh("x", "ok", 0), home.path());
    }

    #[test]
    fn a_fresh_lock_of_a_gone_holder_is_taken_over_only_when_named() {
        let home = tempfile::tempdir().unwrap();
        let app = format!("locktest-gone-{}", std::process::id());
        let dead = Lock {
            holder: Holder {
                pid: u32::MAX - 1, // no such process
                ..Holder::me()
            },
            ..Lock::new(&app, "prod", None)
        };
        assert!(
            sh(&dead.acquire_sh("n", None), home.path())
                .status
                .success()
        );
        let me = Lock::new(&app, "prod", None);
        let out = sh(&me.acquire_sh("n", None), home.path());
        assert_eq!(out.status.code(), Some(LOCKED_EXIT));
        let held = parse_held("n", &String::from_utf8_lossy(&out.stdout)).unwrap();
        assert_eq!(held.gone_token(), Some(dead.token.as_str()));
        // A live holder (this process) is never judged gone.
        assert!(!Holder::me().is_gone());
        let out = sh(&me.acquire_sh("n", held.gone_token()), home.path());
        assert!(out.status.success());
        let mut stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(take_taken_over("n", &mut stdout).is_some());
        sh(&me.release_sh("x", "ok", 0), home.path());
    }
}
