//! Runs a plan: batches one after another (`serial`; one batch by default), the hosts of a
//! batch in parallel (bounded by `--forks`), steps in order on each host, one connection per
//! host. A batch that fails beyond the env's limits stops the rollout: later batches are
//! never connected to. Round trips are kept to a minimum: all probes of a host go in one
//! script; a change and the re-probe of the steps after it share another.
//!
//! * `host`: one host's connection and step loop, the deploy lock, every round trip.
//! * `step`: one step: `when`, render, decide, register. `probe` and `apply` its round trips.
//! * `once`: `run_once` steps, run by one host and waited for by the others.
//! * `outcome`: how hosts ended → exit code. `interrupt`: Ctrl-C. `last_failed`: `--retry-failed`.
//!
//! Generic over the [`Connector`], so the unit tests (`tests.rs`) drive it with a fake.

mod apply;
mod chain;
mod guess;
mod host;
mod interrupt;
mod last_failed;
mod once;
mod outcome;
mod pending;
mod probe;
mod step;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod unknown;

use crate::plan::{HostPlan, Planner, Rollout};
use crate::report::{Event, Live, Mode, Sink};
use crate::transport::Connector;
use crate::transport::ssh::SshConnector;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Exit codes, documented in the README.
pub use crate::error::exit;
pub use guess::{fill as fill_guesses, record as record_guesses};
pub use interrupt::{Interrupt, quit_requested};
pub use last_failed::{read_unfinished, record_unfinished};
pub use outcome::{HostOutcome, RunSummary};

/// A step without its own `timeout` may run this long.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub mode: Mode,
    pub forks: usize,
}

/// Run over SSH, stopping on Ctrl-C / SIGTERM.
pub async fn run(
    planner: Arc<Planner>,
    rollout: Rollout,
    opts: RunOptions,
    sink: Sink,
    detailed_exitcode: bool,
) -> RunSummary {
    let interrupt = Interrupt::listen(sink.clone());
    let ssh = Arc::new(SshConnector);
    run_with(
        ssh,
        interrupt,
        planner,
        rollout,
        opts,
        sink,
        detailed_exitcode,
    )
    .await
}

/// A host task that panicked outside its steps (the steps' own panics are caught in
/// `host.rs`, with the lock released): that host failed; the others go on.
fn task_lost(host: &str, e: tokio::task::JoinError, sink: &Sink) -> HostOutcome {
    let why = match e.try_into_panic() {
        Ok(panic) => host::panic_message(&*panic),
        Err(e) => e.to_string(),
    };
    sink.emit(Event::HostWarning {
        host: host.to_string(),
        message: format!(
            "internal error (a bug in provision): {why}; this host is counted as failed"
        ),
    });
    let mut o = HostOutcome::new(host);
    o.counts.failed = 1;
    o.stopped_at = Some("internal error".into());
    o
}

/// Run with hosts reached through `connector`, stopping between steps once `interrupt` is set.
pub async fn run_with<C: Connector + 'static>(
    connector: Arc<C>,
    interrupt: Interrupt,
    planner: Arc<Planner>,
    rollout: Rollout,
    opts: RunOptions,
    sink: Sink,
    detailed_exitcode: bool,
) -> RunSummary {
    let started = Instant::now();
    sink.emit(Event::RunStarted {
        env: planner.env.clone(),
        mode: opts.mode,
        playbook: planner.playbook.display.clone(),
        hosts: rollout.host_names(),
        user: crate::remote::lock::local_user(),
        started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    });
    sink.live(Live::Planned(
        (rollout.batches.iter().flatten())
            .map(|p| (p.host.name.clone(), p.steps.len()))
            .collect(),
    ));
    let shared = Shared {
        connector,
        interrupt,
        once: Arc::new(once::Once::new(&rollout.once, |i| {
            planner.playbook.steps[i].name.clone()
        })),
        planner,
        forks: Arc::new(Semaphore::new(opts.forks.max(1))),
        opts,
        sink: sink.clone(),
        started,
    };
    let of = rollout.batches.len();
    let mut hosts = Vec::new();
    let mut batches = rollout.batches.into_iter().enumerate();
    while let Some((b, batch)) = batches.next() {
        if rollout.serial {
            sink.emit(Event::BatchStarted {
                batch: b + 1,
                of,
                hosts: batch.iter().map(|p| p.host.name.clone()).collect(),
            });
        }
        let size = batch.len();
        let done = run_batch(&shared, batch).await;
        let failed = |o: &&HostOutcome| o.unreachable || o.counts.failed > 0;
        let batch_failed: Vec<String> =
            done.iter().filter(failed).map(|o| o.name.clone()).collect();
        hosts.extend(done);
        let all_failed = hosts.iter().filter(failed).count();
        if b + 1 < of && rollout.limits.stops(size, batch_failed.len(), all_failed) {
            let rest: Vec<HostPlan> = batches.by_ref().flat_map(|(_, batch)| batch).collect();
            let not_reached: Vec<String> = rest.iter().map(|p| p.host.name.clone()).collect();
            sink.emit(Event::RolloutStopped {
                batch: b + 1,
                of,
                failed_hosts: batch_failed,
                not_reached: not_reached.clone(),
                limits: rollout.limits.limits(),
            });
            hosts.extend(not_reached.iter().map(|h| HostOutcome::not_reached(h)));
        }
    }
    let ms = started.elapsed().as_millis() as u64;
    outcome::summarize(hosts, opts.mode, detailed_exitcode, &sink, ms)
}

/// What every host task of a run shares.
struct Shared<C> {
    connector: Arc<C>,
    interrupt: Interrupt,
    planner: Arc<Planner>,
    once: Arc<once::Once>,
    forks: Arc<Semaphore>,
    opts: RunOptions,
    sink: Sink,
    started: Instant,
}

/// One batch: its hosts in parallel, as many at once as `--forks` lets.
async fn run_batch<C: Connector + 'static>(
    shared: &Shared<C>,
    batch: Vec<HostPlan>,
) -> Vec<HostOutcome> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut names = std::collections::BTreeMap::new();
    for plan in batch {
        let connector = shared.connector.clone();
        let planner = shared.planner.clone();
        let (sink, forks) = (shared.sink.clone(), shared.forks.clone());
        let (interrupt, once) = (shared.interrupt.clone(), shared.once.clone());
        let (opts, started) = (shared.opts, shared.started);
        let name = plan.host.name.clone();
        let task = tasks.spawn(async move {
            let _guard = once::Guard {
                once: &once,
                host: &plan.host.name,
            };
            let permit = forks.clone().acquire_owned().await.expect("semaphore open");
            sink.live(Live::Started(plan.host.name.clone()));
            let run = host::RunCx {
                opts,
                sink: &sink,
                interrupt: &interrupt,
                started,
                forks: &forks,
                once: &once,
            };
            host::connect_and_run(&*connector, &planner, &plan, run, permit).await
        });
        names.insert(task.id(), name);
    }
    let mut hosts = Vec::new();
    while let Some(r) = tasks.join_next_with_id().await {
        hosts.push(match r {
            Ok((_, outcome)) => outcome,
            Err(e) => task_lost(&names[&e.id()], e, &shared.sink),
        });
    }
    hosts
}
