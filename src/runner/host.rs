//! One host: connect, run its steps in order, release the deploy lock, report how it ended.
//! Every round trip goes through [`HostRun::exec`], which counts it.

use super::once::{self, Once};
use super::outcome::HostOutcome;
use super::{Interrupt, RunOptions};
use crate::inventory::Host;
use crate::plan::{HostPlan, Planner, batch};
use crate::remote::lock::{self, Lock};
use crate::report::{Event, Mode, Sink, Status};
use crate::steps::{StepKind, tail};
use crate::transport::{Connector, ExecError, ExecOutput, Input, Keep, Transport};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What every host of a run shares.
#[derive(Clone, Copy)]
pub(super) struct RunCx<'a> {
    pub opts: RunOptions,
    pub sink: &'a Sink,
    pub interrupt: &'a Interrupt,
    /// When the run started: events carry their offset from it (`at_ms`), for timelines.
    pub started: Instant,
    /// `--forks`: a host holds a permit while it works, not while it waits for a
    /// `run_once` step another host runs.
    pub forks: &'a Arc<Semaphore>,
    pub once: &'a Once,
}

/// Connect, run, close; an unreachable host is reported here and its steps never start.
pub(super) async fn connect_and_run<C: Connector>(
    connector: &C,
    planner: &Planner,
    plan: &HostPlan,
    run: RunCx<'_>,
    permit: OwnedSemaphorePermit,
) -> HostOutcome {
    let RunCx {
        sink,
        interrupt,
        started: run_started,
        once,
        ..
    } = run;
    let started = Instant::now();
    let host = &plan.host;
    if interrupt.is_set() {
        let mut o = HostOutcome::new(&host.name);
        o.interrupted = true;
        once.abandon(&o);
        return o;
    }
    let mut outcome = match connector.connect(&host.connect).await {
        Ok(session) => {
            sink.emit(Event::HostConnected {
                host: host.name.clone(),
                ms: started.elapsed().as_millis() as u64,
                at_ms: run_started.elapsed().as_millis() as u64,
            });
            HostRun::new(connector, planner, plan, run, session, permit)
                .run()
                .await
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
    once.abandon(&outcome);
    sink.emit(Event::HostFinished {
        host: host.name.clone(),
        counts: outcome.counts.clone(),
        unreachable: outcome.unreachable,
        stopped_at: outcome.stopped_at.clone(),
        round_trips: outcome.round_trips,
        ms: started.elapsed().as_millis() as u64,
        release: outcome.release.clone(),
    });
    outcome
}

/// `run`, with two things on the side while it runs (each on a channel of its own, not
/// counted as round trips): refreshing the lock every `beat.1` (a step longer than
/// `lock_stale` keeps its lock; the beat checks the token, so it is harmless before the lock
/// is taken or once it is lost), and running `on_interrupt.1` once the first Ctrl-C comes
/// (it tells a chain of changes to stop before its next step).
async fn beside<T: Transport, R>(
    t: &T,
    run: impl std::future::Future<Output = R>,
    beat: Option<(String, Duration)>,
    on_interrupt: Option<(&Interrupt, String)>,
) -> R {
    let beating = async {
        let Some((beat, every)) = beat else {
            return std::future::pending().await;
        };
        let every = every.max(Duration::from_secs(1));
        loop {
            tokio::time::sleep(every).await;
            let _ = t.exec(&beat, None, every).await;
        }
    };
    let stopping = async {
        if let Some((interrupt, script)) = on_interrupt {
            interrupt.wait().await;
            let _ = t.exec(&script, None, Duration::from_secs(30)).await;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        r = run => r,
        _ = beating => unreachable!("the heartbeat never ends on its own"),
        _ = stopping => unreachable!("waits for ever once it ran"),
    }
}

/// What a panic said (`panic!` gives a `&str` or a `String`).
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

/// The state of one host's run. The step itself is in `step.rs`, its round trips in
/// `probe.rs` and `apply.rs`.
pub(super) struct HostRun<'a, C: Connector> {
    /// Kept to log in again when a step changed what a login fixes (see `reconnect`).
    connector: &'a C,
    pub(super) planner: &'a Planner,
    pub(super) plan: &'a HostPlan,
    pub(super) host: &'a Host,
    opts: RunOptions,
    pub(super) sink: &'a Sink,
    t: C::Session,
    pub(super) nonce: String,
    /// Each step's kind once rendered (at plan time, or on its turn when it is deferred).
    pub(super) prepared: Vec<Option<Arc<dyn StepKind>>>,
    /// Probe results still valid (cleared after every change).
    pub(super) probes: BTreeMap<usize, crate::steps::Probe>,
    /// Gates whose probe result is a look ahead (`StepKind::probe_once`), not their wait.
    pub(super) looked_once: BTreeSet<usize>,
    /// Steps rendered with guessed registers not known yet, and the guesses (`guess.rs`).
    pub(super) guessed: BTreeMap<usize, BTreeMap<String, serde_json::Value>>,
    pub(super) registers: BTreeMap<String, serde_json::Value>,
    pub(super) outcome: HostOutcome,
    /// The deploy lock (apply mode only) and whether this run holds it.
    pub(super) lock: Option<Lock>,
    pub(super) locked: bool,
    /// Whether the first probe batch has looked for a lock, and what it found.
    pub(super) lock_probed: bool,
    pub(super) lock_seen: Option<lock::Held>,
    interrupt: &'a Interrupt,
    /// Run on a channel of its own when Ctrl-C comes during the next round trips (a chain's
    /// stop flag).
    pub(super) on_interrupt: Option<String>,
    /// What the last round trip had printed when its connection was lost.
    pub(super) lost_output: Option<ExecOutput>,
    /// The step in progress: where a panic is reported.
    pub(super) current: Option<String>,
    /// Plan mode: host files earlier steps would rewrite.
    pub(super) predicted: BTreeSet<String>,
    /// Plan mode: registers whose value is a prediction, and which step registers it.
    pub(super) unknown: BTreeMap<String, String>,
    /// Changes later `when`s react to, recorded on the host until they did.
    pub(super) pending: super::pending::Pending,
    /// When the run started (events' `at_ms`).
    run_started: Instant,
    /// The `--forks` permit, let go while waiting for another host's `run_once` step.
    permit: Option<OwnedSemaphorePermit>,
    forks: &'a Arc<Semaphore>,
    pub(super) once: &'a Once,
}

/// Why a step stopped the host.
pub(super) enum Stop {
    Failed,
    Lost(String),
    /// A script ran past its timeout; the step fails, the connection is still usable.
    TimedOut(String),
}

impl<'a, C: Connector> HostRun<'a, C> {
    fn new(
        connector: &'a C,
        planner: &'a Planner,
        plan: &'a HostPlan,
        run: RunCx<'a>,
        t: C::Session,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        let RunCx {
            opts,
            sink,
            interrupt,
            started,
            forks,
            once,
        } = run;
        HostRun {
            permit: Some(permit),
            forks,
            once,
            connector,
            run_started: started,
            planner,
            plan,
            host: &plan.host,
            opts,
            sink,
            t,
            nonce: batch::nonce(),
            prepared: plan.steps.iter().map(|s| s.prepared.clone()).collect(),
            probes: BTreeMap::new(),
            looked_once: BTreeSet::new(),
            guessed: BTreeMap::new(),
            registers: BTreeMap::new(),
            outcome: HostOutcome::new(&plan.host.name),
            lock: (opts.mode == Mode::Apply)
                .then(|| Lock::new(&planner.app, &planner.env, planner.playbook.lock_stale)),
            locked: false,
            lock_probed: false,
            lock_seen: None,
            interrupt,
            current: None,
            on_interrupt: None,
            lost_output: None,
            predicted: Default::default(),
            unknown: Default::default(),
            pending: super::pending::Pending::new(planner, plan),
        }
    }

    /// The steps, then the lock's release. A panic in a step (a bug) is caught here, while
    /// the session is still open, so the host is reported failed, its lock released, and
    /// the other hosts finish.
    async fn run(mut self) -> HostOutcome {
        let steps = std::panic::AssertUnwindSafe(self.steps());
        if let Err(panic) = futures::FutureExt::catch_unwind(steps).await {
            self.panicked(&panic_message(&*panic));
        }
        if self.locked && !self.outcome.unreachable {
            self.release_lock().await;
        }
        self.warn_of_left_lock();
        self.t.close().await;
        self.outcome
    }

    /// Report the host failed by an internal error, naming it.
    fn panicked(&mut self, why: &str) {
        self.outcome.counts.failed += 1;
        let at = self.current.clone().unwrap_or_else(|| "its start".into());
        self.outcome.stopped_at = Some(at.clone());
        self.sink.emit(Event::HostWarning {
            host: self.host.name.clone(),
            message: format!("internal error (a bug in provision) while at `{at}`: {why}; this host is counted as failed"),
        });
    }

    async fn steps(&mut self) {
        let mut i = 0;
        while i < self.plan.steps.len() {
            let name = self.plan.steps[i].step.name.clone();
            // Checked between steps only: a step in progress finishes, so no change is cut in half.
            if self.interrupt.is_set() {
                self.outcome.interrupted = true;
                self.outcome.stopped_at = Some(name);
                break;
            }
            self.current = Some(name.clone());
            let index = self.plan.steps[i].step.index;
            let done = match self.once.elsewhere(index, &self.host.name) {
                Some(by) => self.ran_elsewhere(i, by.to_string()).await.map(|()| i + 1),
                None => self.step(i).await,
            };
            let next = match done {
                Ok(next) => next,
                Err(stop) => {
                    // A chain of changes may have stopped at a later step than `i`.
                    let at = self.current.clone().unwrap_or(name);
                    self.stopped(at, stop);
                    break;
                }
            };
            if self.once.runs_here(index, &self.host.name) {
                self.once.publish(index, self.once_result(i));
            }
            i = next;
        }
    }

    /// What this host tells the others after running `run_once` step `i`.
    fn once_result(&self, i: usize) -> once::Shared {
        let register = self.plan.steps[i].step.register.as_ref();
        once::Shared::Ran {
            value: register.and_then(|r| self.registers.get(r).cloned()),
            predicted: register.is_some_and(|r| self.unknown.contains_key(r)),
        }
    }

    /// `run_once` step `i`, which host `by` runs: wait for its result (without holding a
    /// fork, and keeping this host's lock fresh), take its registered value and report the
    /// step skipped; or fail it when `by` did not run it.
    async fn ran_elsewhere(&mut self, i: usize, by: String) -> Result<(), Stop> {
        let started = Instant::now();
        self.emit_started(i);
        let index = self.plan.steps[i].step.index;
        drop(self.permit.take());
        let once = self.once;
        let beat = self
            .lock
            .as_ref()
            .filter(|_| self.locked)
            .map(|lock| self.beat(lock));
        let result = beside(&self.t, once.wait(index), beat, None).await;
        self.permit = self.forks.clone().acquire_owned().await.ok();
        match result {
            once::Shared::Ran { value, predicted } => {
                if let Some(v) = value {
                    self.register(i, v);
                }
                if predicted {
                    self.register_is_predicted(i);
                }
                let verb = if self.check() { "runs" } else { "ran" };
                let msg = format!("{verb} once on {by}");
                self.finish(i, Status::Skipped, msg, None, None, started);
                Ok(())
            }
            once::Shared::Failed(why) => Err(self.fail(i, why, None, started)),
        }
    }

    /// Record where the host stopped; a lost connection makes it unreachable.
    fn stopped(&mut self, step: String, stop: Stop) {
        if let Stop::Lost(e) = stop {
            self.sink.emit(Event::HostUnreachable {
                host: self.host.name.clone(),
                error: format!("lost during step `{step}`: {e}"),
            });
            self.outcome.unreachable = true;
        }
        self.outcome.stopped_at = Some(step);
    }

    /// A lock the first probe saw and this run never took (a killed deploy's, or a no-op run
    /// beside a running one) is worth a warning.
    fn warn_of_left_lock(&mut self) {
        if let Some(held) = self.lock_seen.take().filter(|_| !self.locked) {
            let stale = self
                .planner
                .playbook
                .lock_stale
                .unwrap_or(lock::DEFAULT_STALE);
            self.sink.emit(Event::HostWarning {
                host: self.host.name.clone(),
                message: held.left_behind(stale, &self.planner.env, self.check()),
            });
        }
    }

    /// Record the release and drop the lock, in one round trip.
    async fn release_lock(&mut self) {
        let Some(lock) = self.lock.clone() else {
            return;
        };
        let (release, script) = self.release_sh(&lock, self.outcome.counts.changed);
        let out = self
            .exec(&script, None, Duration::from_secs(60), Keep::All)
            .await;
        match out {
            Ok(out) => self.released(
                release,
                &out.stdout_lossy(),
                out.success(),
                &out.stderr_lossy(),
            ),
            Err(_) => self.sink.note(&format!(
                "[{}] could not release the deploy lock (connection lost)",
                self.host.name
            )),
        }
    }

    /// The release's name and the script recording it (with `changed` changes) and dropping
    /// the lock.
    pub(super) fn release_sh(&self, lock: &Lock, changed: usize) -> (String, String) {
        let ctx = self.planner.context(Some(self.host), &self.registers);
        let result = if self.outcome.counts.failed > 0 {
            "failed"
        } else if self.outcome.interrupted {
            "interrupted"
        } else {
            "ok"
        };
        let release = self.planner.release(&ctx);
        let vars = self.planner.release_vars();
        let script = lock.release_record_sh(&release, result, changed, &vars);
        (release, script)
    }

    /// The release script ran (`ok`: it exited 0) and printed `stdout`: the lock is no
    /// longer this run's either way.
    pub(super) fn released(&mut self, release: String, stdout: &str, ok: bool, stderr: &str) {
        self.locked = false;
        if ok {
            self.outcome.release = Some(release).filter(|r| !r.is_empty());
            self.warn_if_taken_over(stdout)
        } else {
            self.sink.note(&format!(
                "[{}] could not release the deploy lock: {}",
                self.host.name,
                tail(stderr, 3)
            ))
        }
    }

    /// The release found another run's lock: ours was taken over (not refreshed for
    /// `lock_stale`, or judged gone), and theirs is left alone.
    fn warn_if_taken_over(&self, stdout: &str) {
        if let Some(holder) = lock::parse_not_ours(stdout) {
            self.sink.emit(Event::HostWarning {
                host: self.host.name.clone(),
                message: format!(
                    "the deploy lock was taken over while this run held it (now held by {holder}); it is left to them"
                ),
            });
        }
    }

    /// Whether Ctrl-C was pressed.
    pub(super) fn interrupt_set(&self) -> bool {
        self.interrupt.is_set()
    }

    pub(super) fn check(&self) -> bool {
        self.opts.mode == Mode::Check
    }

    /// Report step `i` done with `status`.
    pub(super) fn finish(
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
            at_ms: self.at_ms(),
        });
    }

    /// Milliseconds since the run started.
    pub(super) fn at_ms(&self) -> u64 {
        self.run_started.elapsed().as_millis() as u64
    }

    /// Report step `i` failed: the host stops there.
    pub(super) fn fail(
        &mut self,
        i: usize,
        message: String,
        output: Option<String>,
        started: Instant,
    ) -> Stop {
        self.finish(i, Status::Failed, message, None, output, started);
        Stop::Failed
    }

    /// One round trip: the env's prelude and `script`, with -vv showing both directions.
    pub(super) async fn exec(
        &mut self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
        keep: Keep,
    ) -> Result<ExecOutput, Stop> {
        self.exec_input(script, Input::from(stdin), timeout, keep)
            .await
    }

    /// [`HostRun::exec`] with any [`Input`] (a file streamed on stdin).
    pub(super) async fn exec_input(
        &mut self,
        script: &str,
        stdin: Input<'_>,
        timeout: Duration,
        keep: Keep,
    ) -> Result<ExecOutput, Stop> {
        self.outcome.round_trips += 1;
        let script = &format!("{}{script}", self.planner.prelude);
        self.debug(|| {
            let what = match stdin {
                Input::None => "0 bytes".to_string(),
                Input::Bytes(b) => format!("{} bytes", b.len()),
                Input::Parts(p) => format!("{} bytes", p.iter().map(|b| b.len()).sum::<usize>()),
                Input::File(path) => format!("the file {}", path.display()),
            };
            format!("exec ({what} on stdin):\n{script}")
        });
        // The heartbeat: every round trip of the holder refreshes its lock.
        let script = &match self.lock.as_ref().filter(|_| self.locked) {
            Some(lock) => format!("{}{script}", lock.heartbeat_sh()),
            None => script.clone(),
        };
        let run = self.t.exec_input(script, stdin, timeout, keep);
        let beat = self.lock.as_ref().map(|lock| self.beat(lock));
        let stop = (self.on_interrupt.clone())
            .map(|sh| (self.interrupt, format!("{}{sh}", self.planner.prelude)));
        let out = match beside(&self.t, run, beat, stop).await {
            Ok(out) => out,
            Err(e @ ExecError::Timeout(_)) => return Err(Stop::TimedOut(e.to_string())),
            Err(ExecError::Disconnected(m)) => return Err(Stop::Lost(m)),
            Err(ExecError::LostMidway { message, partial }) => {
                self.lost_output = Some(*partial);
                return Err(Stop::Lost(message));
            }
        };
        self.debug(|| {
            format!(
                "exit {:?}\nstdout:\n{}\nstderr:\n{}",
                out.exit,
                out.stdout_lossy(),
                out.stderr_lossy()
            )
        });
        Ok(out)
    }

    /// Log in again (the step just applied changed what a login fixes, e.g. the user's
    /// groups) and drop the old session. Counted as a round trip; the probes the old session
    /// sent are stale. A failed login makes the host unreachable at that step.
    pub(super) async fn reconnect(&mut self) -> Result<(), Stop> {
        let started = Instant::now();
        self.outcome.round_trips += 1;
        let session = (self.connector.connect(&self.host.connect).await)
            .map_err(|e| Stop::Lost(format!("could not log in again: {e}")))?;
        std::mem::replace(&mut self.t, session).close().await;
        self.probes.clear();
        self.sink.emit(Event::HostConnected {
            host: self.host.name.clone(),
            ms: started.elapsed().as_millis() as u64,
            at_ms: self.run_started.elapsed().as_millis() as u64,
        });
        Ok(())
    }

    /// The lock's heartbeat script and how often it goes.
    fn beat(&self, lock: &Lock) -> (String, Duration) {
        let script = format!("{}{}", self.planner.prelude, lock.heartbeat_sh());
        (script, lock.stale / 3)
    }

    /// A -vv event, built only when it will be shown.
    fn debug(&self, message: impl FnOnce() -> String) {
        if self.sink.verbosity() >= 2 {
            self.sink.emit(Event::Debug {
                host: self.host.name.clone(),
                message: message(),
            });
        }
    }
}
