//! Runs a plan: hosts in parallel (bounded by `--forks`), steps in order on each host, one
//! connection per host. Round trips are kept to a minimum: all probes of a host go in one
//! script; a change and the re-probe of the steps after it share another.
//!
//! * `host`: one host's connection and step loop, the deploy lock, every round trip.
//! * `step`: one step: `when`, render, decide, register. `probe` and `apply` its round trips.
//! * `outcome`: how hosts ended → exit code. `interrupt`: Ctrl-C. `last_failed`: `--retry-failed`.
//!
//! Generic over the [`Connector`], so the unit tests (`tests.rs`) drive it with a fake.

mod apply;
mod host;
mod interrupt;
mod last_failed;
mod outcome;
mod pending;
mod probe;
mod step;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod unknown;

use crate::plan::{HostPlan, Planner};
use crate::report::{Event, Mode, Sink};
use crate::transport::Connector;
use crate::transport::ssh::SshConnector;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Exit codes, documented in the README.
pub use crate::error::exit;
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
    plans: Vec<HostPlan>,
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
        plans,
        opts,
        sink,
        detailed_exitcode,
    )
    .await
}

/// Run with hosts reached through `connector`, stopping between steps once `interrupt` is set.
pub async fn run_with<C: Connector + 'static>(
    connector: Arc<C>,
    interrupt: Interrupt,
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
    let mut tasks = tokio::task::JoinSet::new();
    for plan in plans {
        let (connector, planner, sink, forks, interrupt) = (
            connector.clone(),
            planner.clone(),
            sink.clone(),
            forks.clone(),
            interrupt.clone(),
        );
        tasks.spawn(async move {
            let _permit = forks.acquire_owned().await.expect("semaphore open");
            host::connect_and_run(&*connector, &planner, &plan, opts, &sink, &interrupt).await
        });
    }
    let mut hosts = Vec::new();
    while let Some(r) = tasks.join_next().await {
        hosts.push(r.expect("host task panicked"));
    }
    let ms = started.elapsed().as_millis() as u64;
    outcome::summarize(hosts, opts.mode, detailed_exitcode, &sink, ms)
}
