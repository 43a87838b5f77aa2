//! How hosts ended, and what that makes of the run: the totals, the exit code, the
//! `run_finished` event.

use crate::error::exit;
use crate::report::{Counts, Event, Mode, Sink};

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
    /// The release id recorded in the host's release log (apply mode, when a lock was held).
    pub release: Option<String>,
    /// A rolling deploy stopped before this host's batch: it was never connected to.
    pub not_reached: bool,
    /// What its steps registered that their kinds can guess for the next run (`guess.rs`).
    pub steady: std::collections::BTreeMap<String, serde_json::Value>,
}

impl HostOutcome {
    pub(super) fn new(name: &str) -> HostOutcome {
        HostOutcome {
            name: name.to_string(),
            counts: Counts::default(),
            unreachable: false,
            stopped_at: None,
            round_trips: 0,
            interrupted: false,
            release: None,
            not_reached: false,
            steady: Default::default(),
        }
    }

    pub(super) fn not_reached(name: &str) -> HostOutcome {
        HostOutcome {
            not_reached: true,
            ..HostOutcome::new(name)
        }
    }
}

pub struct RunSummary {
    pub hosts: Vec<HostOutcome>,
    pub exit_code: i32,
}

/// The hosts' outcomes (sorted by name) → the note about interrupted hosts, the
/// `run_finished` event and the summary.
pub(super) fn summarize(
    mut hosts: Vec<HostOutcome>,
    mode: Mode,
    detailed_exitcode: bool,
    sink: &Sink,
    ms: u64,
) -> RunSummary {
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    let totals = totals(&hosts);
    let unreachable = names(&hosts, |h| h.unreachable);
    let failed = names(&hosts, |h| !h.unreachable && h.counts.failed > 0);
    let interrupted = note_interrupted(&hosts, sink);
    let exit_code = if interrupted {
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
        mode,
        totals,
        failed_hosts: failed,
        unreachable_hosts: unreachable,
        exit_code,
        ms,
    });
    RunSummary { hosts, exit_code }
}

fn totals(hosts: &[HostOutcome]) -> Counts {
    let mut totals = Counts::default();
    for h in hosts {
        totals.ok += h.counts.ok;
        totals.changed += h.counts.changed;
        totals.failed += h.counts.failed;
        totals.skipped += h.counts.skipped;
    }
    totals
}

fn names(hosts: &[HostOutcome], pick: impl Fn(&HostOutcome) -> bool) -> Vec<String> {
    hosts
        .iter()
        .filter(|h| pick(h))
        .map(|h| h.name.clone())
        .collect()
}

/// Say where each interrupted host stopped; whether any was.
fn note_interrupted(hosts: &[HostOutcome], sink: &Sink) -> bool {
    let at: Vec<String> = hosts
        .iter()
        .filter(|h| h.interrupted)
        .map(|h| {
            format!(
                "{} before `{}`",
                h.name,
                h.stopped_at.as_deref().unwrap_or("its first step")
            )
        })
        .collect();
    if !at.is_empty() {
        sink.note(&format!("interrupted: {}", at.join("; ")));
    }
    !at.is_empty()
}
