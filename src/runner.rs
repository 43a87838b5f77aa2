//! Runs a plan: hosts in parallel (bounded by `--forks`), steps in order on each host, one SSH
//! connection per host. Round trips are kept to a minimum: all probes of a host go in one
//! script; a change and the re-probe of the steps after it share another.

use crate::inventory::Host;
use crate::plan::{HostPlan, Planner, batch};
use crate::remote::lock::{self, Lock};
use crate::report::{Counts, Event, Mode, Sink, Status};
use crate::steps::{Decision, Outcome, Probe, StepKind, tail};
use crate::transport::ssh::SshSession;
use crate::transport::{ExecError, ExecOutput, Transport};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A step without its own `timeout` may run this long.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub mode: Mode,
    pub forks: usize,
}

/// How one host ended.
#[derive(Debug, Clone)]
pub struct HostOutcome {
    pub name: String,
    pub counts: Counts,
    pub unreachable: bool,
    pub stopped_at: Option<String>,
    pub round_trips: usize,
    /// Stopped by Ctrl-C (or SIGTERM) before its last step.
    pub interrupted: bool,
}

impl HostOutcome {
    fn new(name: &str) -> HostOutcome {
        HostOutcome {
            name: name.to_string(),
            counts: Counts::default(),
            unreachable: false,
            stopped_at: None,
            round_trips: 0,
            interrupted: false,
        }
    }
}

/// Exit codes, documented in the README.
pub use crate::error::exit;

/// Set on the first Ctrl-C or SIGTERM: hosts finish the step they are on (so nothing is left
/// half-applied), release their deploy lock and stop. A second signal exits at once.
#[derive(Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Listen for SIGINT and SIGTERM in the background.
    pub fn listen(sink: Sink) -> Interrupt {
        let flag = Interrupt::default();
        let f = flag.clone();
        tokio::spawn(async move {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
            f.0.store(true, Ordering::SeqCst);
            sink.note("interrupted: finishing the steps in progress, then stopping (press Ctrl-C again to quit at once)");
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
            std::process::exit(exit::INTERRUPTED);
        });
        flag
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct RunSummary {
    pub hosts: Vec<HostOutcome>,
    pub exit_code: i32,
}

/// Where `up` records the hosts it did not finish, for `up --retry-failed`.
fn unfinished_file(root: &std::path::Path, env: &str) -> std::path::PathBuf {
    root.join(".provision").join(format!("last-failed-{env}"))
}

/// After an `up`: write the names of the hosts that failed, were unreachable or were
/// interrupted (one a line), or remove the file when every host finished. Best effort: a
/// read-only project folder must not fail the run.
pub fn record_unfinished(root: &std::path::Path, env: &str, summary: &RunSummary) {
    let file = unfinished_file(root, env);
    let names: Vec<&str> = summary
        .hosts
        .iter()
        .filter(|h| h.unreachable || h.interrupted || h.counts.failed > 0)
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
pub fn read_unfinished(
    root: &std::path::Path,
    env: &str,
) -> Result<Vec<String>, std::path::PathBuf> {
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

pub async fn run(
    planner: Arc<Planner>,
    plans: Vec<HostPlan>,
    opts: RunOptions,
    sink: Sink,
    detailed_exitcode: bool,
) -> RunSummary {
    let started = Instant::now();
    sink.emit(Event::RunStarted {
        env: planner.env.clone(),
        mode: opts.mode,
        playbook: planner.playbook.display.clone(),
        hosts: plans.iter().map(|p| p.host.name.clone()).collect(),
    });
    let forks = Arc::new(Semaphore::new(opts.forks.max(1)));
    let interrupt = Interrupt::listen(sink.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for plan in plans {
        let (planner, sink, forks, interrupt) = (
            planner.clone(),
            sink.clone(),
            forks.clone(),
            interrupt.clone(),
        );
        tasks.spawn(async move {
            let _permit = forks.acquire_owned().await.expect("semaphore open");
            connect_and_run(&planner, &plan, opts, &sink, &interrupt).await
        });
    }
    let mut hosts = Vec::new();
    while let Some(r) = tasks.join_next().await {
        hosts.push(r.expect("host task panicked"));
    }
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut totals = Counts::default();
    for h in &hosts {
        totals.ok += h.counts.ok;
        totals.changed += h.counts.changed;
        totals.failed += h.counts.failed;
        totals.skipped += h.counts.skipped;
    }
    let unreachable: Vec<String> = hosts
        .iter()
        .filter(|h| h.unreachable)
        .map(|h| h.name.clone())
        .collect();
    let failed: Vec<String> = hosts
        .iter()
        .filter(|h| !h.unreachable && h.counts.failed > 0)
        .map(|h| h.name.clone())
        .collect();
    let interrupted: Vec<&HostOutcome> = hosts.iter().filter(|h| h.interrupted).collect();
    if !interrupted.is_empty() {
        let at: Vec<String> = interrupted
            .iter()
            .map(|h| {
                format!(
                    "{} before `{}`",
                    h.name,
                    h.stopped_at.as_deref().unwrap_or("its first step")
                )
            })
            .collect();
        sink.note(&format!("interrupted: {}", at.join("; ")));
    }
    let exit_code = if !interrupted.is_empty() {
        exit::INTERRUPTED
    } else if !unreachable.is_empty() {
        exit::UNREACHABLE
    } else if !failed.is_empty() {
        exit::FAILED
    } else if detailed_exitcode && totals.changed > 0 {
        exit::PENDING
    } else {
        exit::OK
    };
    sink.emit(Event::RunFinished {
        mode: opts.mode,
        totals,
        failed_hosts: failed,
        unreachable_hosts: unreachable,
        exit_code,
        ms: started.elapsed().as_millis() as u64,
    });
    RunSummary { hosts, exit_code }
}

async fn connect_and_run(
    planner: &Planner,
    plan: &HostPlan,
    opts: RunOptions,
    sink: &Sink,
    interrupt: &Interrupt,
) -> HostOutcome {
    let started = Instant::now();
    let host = &plan.host;
    if interrupt.is_set() {
        let mut o = HostOutcome::new(&host.name);
        o.interrupted = true;
        return o;
    }
    let mut outcome = match SshSession::connect(&host.connect).await {
        Ok(session) => {
            sink.emit(Event::HostConnected {
                host: host.name.clone(),
                ms: started.elapsed().as_millis() as u64,
            });
            let o = HostRun::new(planner, plan, opts, sink, &session, interrupt)
                .run()
                .await;
            session.close().await;
            o
        }
        Err(e) => {
            sink.emit(Event::HostUnreachable {
                host: host.name.clone(),
                error: e.to_string(),
            });
            let mut o = HostOutcome::new(&host.name);
            o.unreachable = true;
            o
        }
    };
    if outcome.unreachable && outcome.stopped_at.is_none() {
        outcome.stopped_at = Some("connect".into());
    }
    sink.emit(Event::HostFinished {
        host: host.name.clone(),
        counts: outcome.counts.clone(),
        unreachable: outcome.unreachable,
        stopped_at: outcome.stopped_at.clone(),
        round_trips: outcome.round_trips,
        ms: started.elapsed().as_millis() as u64,
    });
    outcome
}

/// The state of one host's run.
struct HostRun<'a, T: Transport> {
    planner: &'a Planner,
    plan: &'a HostPlan,
    host: &'a Host,
    opts: RunOptions,
    sink: &'a Sink,
    t: &'a T,
    nonce: String,
    prepared: Vec<Option<Arc<dyn StepKind>>>,
    /// Probe results still valid (cleared after every change).
    probes: BTreeMap<usize, Probe>,
    registers: BTreeMap<String, serde_json::Value>,
    outcome: HostOutcome,
    /// The deploy lock (apply mode only) and whether this run holds it.
    lock: Option<Lock>,
    locked: bool,
    /// Whether the first probe batch has looked for a lock, and what it found.
    lock_probed: bool,
    lock_seen: Option<lock::Held>,
    interrupt: &'a Interrupt,
    /// Plan mode: host files earlier steps would rewrite.
    predicted: std::collections::BTreeSet<String>,
}

/// The id of the deploy-lock probe in the first probe batch (no step has it).
const LOCK_PROBE: usize = usize::MAX;

/// Why a step stopped the host.
enum Stop {
    Failed,
    Lost(String),
    /// A script ran past its timeout; the step fails, the connection is still usable.
    TimedOut(String),
}

impl<'a, T: Transport> HostRun<'a, T> {
    fn new(
        planner: &'a Planner,
        plan: &'a HostPlan,
        opts: RunOptions,
        sink: &'a Sink,
        t: &'a T,
        interrupt: &'a Interrupt,
    ) -> Self {
        HostRun {
            planner,
            plan,
            host: &plan.host,
            opts,
            sink,
            t,
            nonce: batch::nonce(),
            prepared: plan.steps.iter().map(|s| s.prepared.clone()).collect(),
            probes: BTreeMap::new(),
            registers: BTreeMap::new(),
            outcome: HostOutcome::new(&plan.host.name),
            lock: (opts.mode == Mode::Apply)
                .then(|| Lock::new(&planner.app, &planner.env, planner.playbook.lock_ttl)),
            locked: false,
            lock_probed: false,
            lock_seen: None,
            interrupt,
            predicted: Default::default(),
        }
    }

    async fn run(mut self) -> HostOutcome {
        for i in 0..self.plan.steps.len() {
            let name = self.plan.steps[i].step.name.clone();
            // Checked between steps only: a step in progress finishes, so no change is cut in half.
            if self.interrupt.is_set() {
                self.outcome.interrupted = true;
                self.outcome.stopped_at = Some(name);
                break;
            }
            match self.step(i).await {
                Ok(()) => {}
                Err(Stop::Failed | Stop::TimedOut(_)) => {
                    self.outcome.stopped_at = Some(name);
                    break;
                }
                Err(Stop::Lost(e)) => {
                    self.sink.emit(Event::HostUnreachable {
                        host: self.host.name.clone(),
                        error: format!("lost during step `{name}`: {e}"),
                    });
                    self.outcome.unreachable = true;
                    self.outcome.stopped_at = Some(name);
                    break;
                }
            }
        }
        if self.locked && !self.outcome.unreachable {
            self.release_lock().await;
        }
        if let Some(held) = self.lock_seen.take().filter(|_| !self.locked) {
            let ttl = self.planner.playbook.lock_ttl.unwrap_or(lock::DEFAULT_TTL);
            self.sink.emit(Event::HostWarning {
                host: self.host.name.clone(),
                message: held.left_behind(ttl, &self.planner.env, self.check()),
            });
        }
        self.outcome
    }

    /// Record the release and drop the lock, in one round trip.
    async fn release_lock(&mut self) {
        let Some(lock) = self.lock.clone() else {
            return;
        };
        let ctx = self.planner.context(Some(self.host), &self.registers);
        let result = if self.outcome.counts.failed > 0 {
            "failed"
        } else if self.outcome.interrupted {
            "interrupted"
        } else {
            "ok"
        };
        let script = lock.release_sh(
            &self.planner.release(&ctx),
            result,
            self.outcome.counts.changed,
        );
        match self.exec(&script, None, Duration::from_secs(60)).await {
            Ok(out) if out.success() => {}
            Ok(out) => self.sink.note(&format!(
                "[{}] could not release the deploy lock: {}",
                self.host.name,
                tail(&out.stderr_lossy(), 3)
            )),
            Err(_) => self.sink.note(&format!(
                "[{}] could not release the deploy lock (connection lost)",
                self.host.name
            )),
        }
    }

    fn finish(
        &mut self,
        i: usize,
        status: Status,
        message: String,
        diff: Option<String>,
        output: Option<String>,
        started: Instant,
    ) {
        let ps = &self.plan.steps[i];
        self.outcome.counts.add(status);
        self.sink.emit(Event::StepFinished {
            host: self.host.name.clone(),
            index: ps.step.index,
            step: ps.step.name.clone(),
            kind: ps.step.spec.kind().to_string(),
            status,
            message,
            diff,
            output,
            ms: started.elapsed().as_millis() as u64,
        });
    }

    fn fail(
        &mut self,
        i: usize,
        message: String,
        output: Option<String>,
        started: Instant,
    ) -> Result<(), Stop> {
        self.finish(i, Status::Failed, message, None, output, started);
        Err(Stop::Failed)
    }

    async fn step(&mut self, i: usize) -> Result<(), Stop> {
        let started = Instant::now();
        let ps = &self.plan.steps[i];
        self.sink.emit(Event::StepStarted {
            host: self.host.name.clone(),
            index: ps.step.index,
            step: ps.step.name.clone(),
            kind: ps.step.spec.kind().to_string(),
        });
        let ctx = self.planner.context(Some(self.host), &self.registers);
        match self.planner.when(&ps.step, &ctx) {
            Ok(true) => {}
            Ok(false) => {
                self.register(i, serde_json::json!({ "changed": false, "skipped": true }));
                self.finish(
                    i,
                    Status::Skipped,
                    "`when` is false".into(),
                    None,
                    None,
                    started,
                );
                return Ok(());
            }
            Err(m) => return self.fail(i, m, None, started),
        }
        if self.prepared[i].is_none() {
            match self.planner.prepare(&ps.step, &ctx) {
                Ok(k) => self.prepared[i] = Some(k),
                Err(m) => return self.fail(i, m, None, started),
            }
        }
        let kind = self.prepared[i].clone().expect("prepared above");
        if kind.probe(self.check()).is_some() && !self.probes.contains_key(&i) {
            let mut items = self.probe_items(i);
            let timeout = self.timeout_for(&items);
            if !self.lock_probed {
                let probe = lock::status_probe_sh(&self.planner.app, &self.planner.env);
                items.push((LOCK_PROBE, probe));
            }
            let script = batch::probe_script(&self.nonce, &items);
            let out = match self.exec(&script, None, timeout).await {
                Err(Stop::TimedOut(e)) => {
                    return self.fail(i, format!("inspecting the host: {e}"), None, started);
                }
                other => other?,
            };
            let mut parsed = batch::parse(&self.nonce, &out.stdout);
            if let Some(p) = parsed.probes.remove(&LOCK_PROBE) {
                self.lock_probed = true;
                self.lock_seen = lock::parse_status(&p.out);
            }
            self.probes.extend(parsed.probes);
            if !self.probes.contains_key(&i) {
                let err = no_probe_output(&self.nonce, &out);
                return self.fail(i, err, None, started);
            }
        }
        let check = self.check();
        let mut decision = kind.decide(self.probes.get(&i));
        if check {
            decision = self.with_predicted_inputs(kind.as_ref(), decision);
        }
        match decision {
            Decision::Ok(msg) => {
                let v = kind.register(&Outcome {
                    changed: false,
                    check_mode: check,
                    probe: self.probes.get(&i),
                    applied: None,
                });
                self.register(i, v);
                self.finish(i, Status::Ok, msg, None, None, started);
            }
            Decision::Fail(msg) => return self.fail(i, msg, None, started),
            Decision::Change { summary, diff } if check => {
                self.predicted.extend(kind.outputs());
                let v = kind.register(&Outcome {
                    changed: true,
                    check_mode: true,
                    probe: self.probes.get(&i),
                    applied: None,
                });
                self.register(i, v);
                self.finish(i, Status::Changed, summary, diff, None, started);
            }
            Decision::Change { summary, diff } => {
                let probe_before = self.probes.remove(&i);
                let action = kind.apply();
                let rest = self.probe_items(i + 1);
                let mut script = batch::apply_script(&self.nonce, &action.script, &rest);
                let take_lock = self.lock.as_ref().filter(|_| !self.locked).cloned();
                if let Some(lock) = &take_lock {
                    script = format!("{}{script}", lock.acquire_sh(&self.nonce));
                }
                let timeout = self.plan.steps[i]
                    .step
                    .timeout
                    .unwrap_or(DEFAULT_STEP_TIMEOUT);
                let out = match self.exec(&script, action.stdin.as_deref(), timeout).await {
                    Ok(o) => o,
                    Err(Stop::TimedOut(e)) => {
                        return self.fail(i, format!("{summary}: {e}"), None, started);
                    }
                    Err(e) => return Err(e),
                };
                self.probes.clear();
                if let Some(lock) = &take_lock {
                    // Taken, taken over or refused: either way reported here, not at the end.
                    self.lock_seen = None;
                    if let Some(held) = lock::parse_held(&self.nonce, &out.stdout_lossy()) {
                        return self.fail(i, held.message(lock.ttl), None, started);
                    }
                    self.locked = true;
                }
                let mut parsed = batch::parse(&self.nonce, &out.stdout);
                if let Some(held) = lock::take_taken_over(&self.nonce, &mut parsed.apply_out) {
                    self.sink.emit(Event::HostWarning {
                        host: self.host.name.clone(),
                        message: held.taken_over(),
                    });
                }
                let rc = parsed.apply_rc.or(out.exit.map(|e| e as i32));
                let applied = ExecOutput {
                    stdout: parsed.apply_out.clone().into_bytes(),
                    stderr: out.stderr.clone(),
                    exit: rc.map(|r| r as u32),
                    signal: out.signal.clone(),
                };
                let output = combined_output(&applied);
                if rc != Some(0) {
                    let why = match (rc, &out.signal) {
                        (_, Some(sig)) => format!("killed by signal {sig}"),
                        (Some(code), _) => format!("exit code {code}"),
                        (None, _) => "no exit status".into(),
                    };
                    // The last line the change printed usually says why (e.g. a failed health check).
                    let last = output
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("")
                        .trim();
                    let msg = if last.is_empty() {
                        format!("{summary}: {why}")
                    } else {
                        format!("{summary}: {why}: {last}")
                    };
                    return self.fail(i, msg, Some(output), started);
                }
                self.probes.extend(parsed.probes);
                let v = kind.register(&Outcome {
                    changed: true,
                    check_mode: false,
                    probe: probe_before.as_ref(),
                    applied: Some(&applied),
                });
                self.register(i, v);
                // The transport keeps the first 64 MiB of each stream and notes the cut at the
                // end of stderr: say so where a plain report shows it too.
                let cut = out.stderr[out.stderr.len().saturating_sub(256)..]
                    .windows(10)
                    .any(|w| w == b"truncated ");
                let summary = if cut {
                    format!("{summary} (output truncated: only the first 64 MiB per stream kept)")
                } else {
                    summary
                };
                self.finish(
                    i,
                    Status::Changed,
                    summary,
                    diff,
                    Some(output).filter(|o| !o.is_empty()),
                    started,
                );
            }
        }
        Ok(())
    }

    /// Plan mode: a step that is fine now but reads a file an earlier step would rewrite
    /// (a container and its env file) would change too.
    fn with_predicted_inputs(&self, kind: &dyn StepKind, decision: Decision) -> Decision {
        match decision {
            Decision::Ok(_) => match kind
                .inputs()
                .into_iter()
                .find(|f| self.predicted.contains(f))
            {
                Some(f) => Decision::change(format!("update: {f} changes earlier in this run")),
                None => decision,
            },
            other => other,
        }
    }

    fn check(&self) -> bool {
        self.opts.mode == Mode::Check
    }

    fn register(&mut self, i: usize, value: serde_json::Value) {
        if let Some(name) = &self.plan.steps[i].step.register {
            self.registers.insert(name.clone(), value);
        }
    }

    /// Probes to send in one batch, starting at step `from`: every later step that can be
    /// rendered now and has no valid probe result yet.
    fn probe_items(&mut self, from: usize) -> Vec<(usize, String)> {
        let mut items = Vec::new();
        for j in from..self.plan.steps.len() {
            if self.probes.contains_key(&j) {
                continue;
            }
            if self.prepared[j].is_none() {
                let ps = &self.plan.steps[j];
                if ps.deps.iter().all(|d| self.registers.contains_key(d)) {
                    let ctx = self.planner.context(Some(self.host), &self.registers);
                    // Errors surface when the step's turn comes; here we only try.
                    self.prepared[j] = self.planner.prepare(&ps.step, &ctx).ok();
                }
            }
            let Some(kind) = self.prepared[j].as_ref() else {
                continue;
            };
            if j > from && !kind.probe_ahead() {
                continue;
            }
            if let Some(script) = kind.probe(self.check()) {
                items.push((j, script));
            }
        }
        items
    }

    fn timeout_for(&self, items: &[(usize, String)]) -> Duration {
        items
            .iter()
            .map(|(j, _)| {
                self.plan.steps[*j]
                    .step
                    .timeout
                    .unwrap_or(DEFAULT_STEP_TIMEOUT)
            })
            .max()
            .unwrap_or(DEFAULT_STEP_TIMEOUT)
    }

    async fn exec(
        &mut self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, Stop> {
        self.outcome.round_trips += 1;
        let script = &format!("{}{script}", self.planner.prelude);
        if self.sink.verbosity() >= 2 {
            self.sink.emit(Event::Debug {
                host: self.host.name.clone(),
                message: format!(
                    "exec ({} bytes on stdin):\n{script}",
                    stdin.map_or(0, <[u8]>::len)
                ),
            });
        }
        let out = self
            .t
            .exec(script, stdin, timeout)
            .await
            .map_err(|e| match e {
                ExecError::Timeout(_) => Stop::TimedOut(e.to_string()),
                ExecError::Disconnected(m) => Stop::Lost(m),
            })?;
        if self.sink.verbosity() >= 2 {
            self.sink.emit(Event::Debug {
                host: self.host.name.clone(),
                message: format!(
                    "exit {:?}\nstdout:\n{}\nstderr:\n{}",
                    out.exit,
                    out.stdout_lossy(),
                    out.stderr_lossy()
                ),
            });
        }
        Ok(out)
    }
}

/// stdout and stderr of a change, trimmed to the last lines.
fn combined_output(out: &ExecOutput) -> String {
    let mut s = out.stdout_lossy();
    let err = out.stderr_lossy();
    if !err.trim().is_empty() {
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&err);
    }
    tail(&s, 40)
}

/// Why a probe script gave nothing for a step, with what the host did say. When none of the
/// script's markers came back, the script never ran: the remote login shell (or an rc file it
/// reads, such as a ~/.bashrc that exits) stopped it.
fn no_probe_output(nonce: &str, out: &ExecOutput) -> String {
    let status = match (out.exit, &out.signal) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "no exit status".to_string(),
    };
    let said: Vec<String> = [out.stderr_lossy(), out.stdout_lossy()]
        .iter()
        .map(|t| tail(t, 3))
        .filter(|t| !t.trim().is_empty())
        .collect();
    let said = if said.is_empty() {
        "no output".to_string()
    } else {
        format!("output: {}", said.join(" / "))
    };
    if out.stdout_lossy().contains(nonce) {
        format!("could not inspect the host ({status}, {said})")
    } else {
        format!(
            "could not inspect the host: provision's script did not run ({status}, {said}); check the remote user's login shell and the rc files it reads (e.g. a ~/.bashrc that exits)"
        )
    }
}
