//! A [`Connector`] for the runner's unit tests: each host is a local folder, and every
//! script is run by a real `/bin/sh` through the same command line SSH sends
//! ([`script::command_line`]), so the batch wire format, the lock scripts and the steps' own
//! scripts are exercised for real. Unreachable hosts, lost connections and a Ctrl-C are
//! scripted. Also: a reporter that records events, and a planner for a playbook.

use super::{Interrupt, RunOptions, RunSummary, run_with};
use crate::config::{Playbook, Project};
use crate::plan::{HostPlan, PlanOptions, Planner, Rollout};
use crate::report::{Event, Mode, Reporter, Sink};
use crate::secrets::{Redactor, Secrets};
use crate::transport::capture::{Capture, finish_streams};
use crate::transport::{
    ConnectError, ConnectSpec, Connector, ExecError, ExecOutput, Input, Keep, Transport, script,
};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Hosts as folders under one temp dir (each host's `$HOME` and working directory).
pub(super) struct LocalHosts {
    dir: tempfile::TempDir,
    unreachable: BTreeSet<String>,
    /// Host → how many scripts run before its connection is lost.
    lose_after: BTreeMap<String, usize>,
    /// Host → the script (0-based) whose exec panics, as a bug in a step would.
    panic_at: BTreeMap<String, usize>,
    /// Set `.0` once `.1` scripts have run (over all hosts): a Ctrl-C mid-run.
    interrupt_after: Option<(Interrupt, usize)>,
    log: Arc<Log>,
}

/// What the fake saw, shared with its sessions.
#[derive(Default)]
struct Log {
    live: AtomicUsize,
    max_live: AtomicUsize,
    execs: AtomicUsize,
    /// Host → how many times it was connected to.
    logins: Mutex<BTreeMap<String, usize>>,
    scripts: Mutex<BTreeMap<String, Vec<String>>>,
}

impl LocalHosts {
    pub(super) fn new() -> LocalHosts {
        LocalHosts {
            dir: tempfile::tempdir().expect("temp dir"),
            unreachable: BTreeSet::new(),
            lose_after: BTreeMap::new(),
            panic_at: BTreeMap::new(),
            interrupt_after: None,
            log: Arc::default(),
        }
    }

    /// Connecting to `host` fails as a refused TCP connection does.
    pub(super) fn unreachable(mut self, host: &str) -> Self {
        self.unreachable.insert(host.into());
        self
    }

    /// `host` answers `scripts` scripts, then its connection drops.
    pub(super) fn lose_after(mut self, host: &str, scripts: usize) -> Self {
        self.lose_after.insert(host.into(), scripts);
        self
    }

    /// `host`'s `script`-th exec (0-based) panics.
    pub(super) fn panic_at(mut self, host: &str, script: usize) -> Self {
        self.panic_at.insert(host.into(), script);
        self
    }

    /// `interrupt` is triggered once `scripts` scripts have run.
    pub(super) fn interrupt_after(mut self, interrupt: &Interrupt, scripts: usize) -> Self {
        self.interrupt_after = Some((interrupt.clone(), scripts));
        self
    }

    /// The host's folder (created on first use).
    pub(super) fn home(&self, host: &str) -> PathBuf {
        let home = self.dir.path().join(host);
        std::fs::create_dir_all(&home).expect("host folder");
        home
    }

    /// Every script sent to `host`, in order: one per round trip.
    pub(super) fn scripts(&self, host: &str) -> Vec<String> {
        let scripts = self.log.scripts.lock().unwrap();
        scripts.get(host).cloned().unwrap_or_default()
    }

    /// How many times `host` was connected to.
    pub(super) fn logins(&self, host: &str) -> usize {
        let logins = self.log.logins.lock().unwrap();
        logins.get(host).copied().unwrap_or_default()
    }

    /// The most sessions that were open at once.
    pub(super) fn max_live(&self) -> usize {
        self.log.max_live.load(Ordering::SeqCst)
    }
}

impl Connector for LocalHosts {
    type Session = LocalSession;

    async fn connect(&self, spec: &ConnectSpec) -> Result<LocalSession, ConnectError> {
        if self.unreachable.contains(&spec.name) {
            return Err(ConnectError::Network {
                addr: spec.target(),
                reason: "Connection refused (os error 111)".into(),
            });
        }
        let login = {
            let mut logins = self.log.logins.lock().unwrap();
            let n = logins.entry(spec.name.clone()).or_default();
            *n += 1;
            *n
        };
        let live = self.log.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.log.max_live.fetch_max(live, Ordering::SeqCst);
        Ok(LocalSession {
            name: spec.name.clone(),
            home: self.home(&spec.name),
            log: self.log.clone(),
            lose_after: self.lose_after.get(&spec.name).copied(),
            panic_at: self.panic_at.get(&spec.name).copied(),
            interrupt_after: self.interrupt_after.clone(),
            ran: AtomicUsize::new(0),
            login,
        })
    }
}

/// One "connection": scripts run in the host's folder.
pub(super) struct LocalSession {
    name: String,
    home: PathBuf,
    log: Arc<Log>,
    lose_after: Option<usize>,
    panic_at: Option<usize>,
    interrupt_after: Option<(Interrupt, usize)>,
    ran: AtomicUsize,
    /// Which login to its host this is (1 = the first): scripts see it as `$login`, as a
    /// real session sees what was fixed when it logged in (its groups).
    login: usize,
}

impl LocalSession {
    fn record(&self, script: &str) {
        let mut scripts = self.log.scripts.lock().unwrap();
        let list = scripts.entry(self.name.clone()).or_default();
        list.push(script.to_string());
    }

    /// After a script: count it, and play the scripted Ctrl-C when its moment has come.
    fn ran_one(&self) {
        let total = self.log.execs.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((interrupt, after)) = &self.interrupt_after
            && total >= *after
        {
            interrupt.trigger();
        }
    }
}

impl Transport for LocalSession {
    async fn exec_input(
        &self,
        script: &str,
        stdin: Input<'_>,
        timeout: Duration,
        keep: Keep,
    ) -> Result<ExecOutput, ExecError> {
        self.record(script);
        let n = self.ran.fetch_add(1, Ordering::SeqCst);
        if self.lose_after.is_some_and(|after| n >= after) {
            return Err(ExecError::Disconnected("scripted loss".into()));
        }
        if self.panic_at == Some(n) {
            panic!("scripted panic on {}", self.name);
        }
        let script = format!("login={}\n{script}", self.login);
        let out = run_sh(&self.home, &script, stdin, timeout).await;
        self.ran_one();
        out.map(|o| kept(o, keep))
    }

    async fn close(&self) {}
}

impl Drop for LocalSession {
    fn drop(&mut self) {
        self.log.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The host's user is an unprivileged one even when the tests run as root, so provision's
/// state (lock, release log) lives under the host folder's `.local/state`, never in /var/lib.
const UNPRIVILEGED: &str =
    "id() { if [ \"$*\" = -u ]; then echo 1000; else command id \"$@\"; fi; }\n";

/// `script` through the SSH command line, by a local `/bin/sh` in `home`.
async fn run_sh(
    home: &Path,
    script: &str,
    stdin: Input<'_>,
    timeout: Duration,
) -> Result<ExecOutput, ExecError> {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script::command_line(
            &format!("{UNPRIVILEGED}{script}"),
            None,
            script::Sudo::default(),
        ))
        .env_clear()
        .env("HOME", home)
        .env("USER", "tester")
        .current_dir(home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("/bin/sh runs");
    let mut input = child.stdin.take().expect("piped stdin");
    match stdin {
        Input::None => {}
        Input::Bytes(bytes) => {
            let bytes = bytes.to_vec();
            tokio::spawn(async move {
                let _ = input.write_all(&bytes).await;
            });
        }
        Input::Parts(parts) => {
            let parts = parts.to_vec();
            tokio::spawn(async move {
                for part in parts {
                    let _ = input.write_all(&part).await;
                }
            });
        }
        Input::File(path) => {
            let path = path.to_path_buf();
            tokio::spawn(async move {
                if let Ok(mut file) = tokio::fs::File::open(&path).await {
                    let _ = tokio::io::copy(&mut file, &mut input).await;
                }
            });
        }
    }
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| ExecError::Timeout(timeout))?
        .expect("/bin/sh finishes");
    Ok(ExecOutput {
        stdout: out.stdout,
        stderr: out.stderr,
        exit: out.status.code().map(|c| c as u32),
        signal: out.status.signal().map(|s| s.to_string()),
        cut: false,
    })
}

/// What the ssh transport would have kept of `out`.
fn kept(out: ExecOutput, keep: Keep) -> ExecOutput {
    let stream = |bytes: &[u8]| {
        let mut c = Capture::new(keep);
        c.push(bytes);
        c
    };
    let (stdout, stderr, cut) = finish_streams(stream(&out.stdout), stream(&out.stderr));
    ExecOutput {
        stdout,
        stderr,
        cut,
        ..out
    }
}

/// Keeps every event and note.
#[derive(Default)]
pub(super) struct Recorder {
    events: Mutex<Vec<Event>>,
    notes: Mutex<Vec<String>>,
}

impl Reporter for Recorder {
    fn event(&self, ev: &Event) {
        self.events.lock().unwrap().push(ev.clone());
    }
    fn note(&self, msg: &str) {
        self.notes.lock().unwrap().push(msg.to_string());
    }
}

impl Recorder {
    pub(super) fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
    pub(super) fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap().clone()
    }
}

/// A planner for `playbook` over env `test` with `hosts` (app `demo`), and each host's plan.
pub(super) fn plan(hosts: &[&str], playbook: &str) -> (Arc<Planner>, Vec<HostPlan>) {
    let list: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    let project = Project::parse(
        Path::new("/nonexistent/provision.toml"),
        &format!(
            "app = \"demo\"\n[ssh]\nconfig = \"none\"\n[env.test]\nhosts = [{}]\n",
            list.join(", ")
        ),
    )
    .expect("project parses");
    let pb = Playbook::parse(Path::new("p.toml"), "playbooks/p.toml", playbook)
        .expect("playbook parses");
    let secrets = Secrets::load(None, Redactor::default()).expect("no secrets");
    let mut planner = Planner::new(&project, "test", pb, secrets, PlanOptions::default())
        .expect("planner builds");
    let env = project.env("test").expect("env test");
    let hosts = crate::inventory::resolve(&project, env, None, false).expect("hosts resolve");
    planner.set_hosts(&hosts);
    let plans = hosts
        .iter()
        .map(|h| planner.plan_host(h).expect("host plans"))
        .collect();
    (Arc::new(planner), plans)
}

/// Run `playbook` on `hosts` through `local`; the summary and what was reported.
pub(super) async fn run_local(
    local: &Arc<LocalHosts>,
    interrupt: Interrupt,
    hosts: &[&str],
    playbook: &str,
    opts: RunOptions,
) -> (RunSummary, Arc<Recorder>) {
    run_local_edited(local, interrupt, hosts, playbook, opts, |_| {}).await
}

/// `run_local` as a rolling deploy with the env settings `rollout` (`serial`, limits).
pub(super) async fn run_rolling(
    local: &Arc<LocalHosts>,
    hosts: &[&str],
    playbook: &str,
    opts: RunOptions,
    rollout: crate::config::Rollout,
) -> (RunSummary, Arc<Recorder>) {
    let (planner, plans) = plan(hosts, playbook);
    let rollout = Rollout::new(plans, &rollout, None, &planner.playbook, false)
        .expect("the rollout is valid");
    run_planned(local, Interrupt::default(), planner, rollout, opts).await
}

async fn run_planned(
    local: &Arc<LocalHosts>,
    interrupt: Interrupt,
    planner: Arc<Planner>,
    rollout: Rollout,
    opts: RunOptions,
) -> (RunSummary, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let sink = Sink::with_reporter(recorder.clone(), Redactor::default(), 0);
    let summary = run_with(
        local.clone(),
        interrupt,
        planner,
        rollout,
        opts,
        sink,
        false,
    )
    .await;
    (summary, recorder)
}

/// `run_local`, with the plans changed by `edit` first (e.g. a step's kind swapped for one
/// no playbook can express).
pub(super) async fn run_local_edited(
    local: &Arc<LocalHosts>,
    interrupt: Interrupt,
    hosts: &[&str],
    playbook: &str,
    opts: RunOptions,
    edit: impl FnOnce(&mut Vec<HostPlan>),
) -> (RunSummary, Arc<Recorder>) {
    let (planner, mut plans) = plan(hosts, playbook);
    edit(&mut plans);
    let rollout = Rollout::new(plans, &Default::default(), None, &planner.playbook, false)
        .expect("the rollout is valid");
    run_planned(local, interrupt, planner, rollout, opts).await
}

/// Apply mode with `forks` hosts at a time.
pub(super) fn apply(forks: usize) -> RunOptions {
    RunOptions {
        mode: Mode::Apply,
        forks,
    }
}
