//! `run_once` steps: the host the rollout chose runs the step; every other host reaching it
//! waits (on a watch channel, no polling) for that host's result, takes its registered value
//! and reports the step skipped. A chosen host that stops before the step, or fails it,
//! fails the step on the waiting hosts, so none of them waits for a result that never comes.

use super::outcome::HostOutcome;
use std::collections::BTreeMap;
use tokio::sync::watch;

/// What the host that ran a `run_once` step tells the others.
#[derive(Debug, Clone)]
pub(super) enum Shared {
    /// It ran (ok, changed or skipped by `when`): the value it registered, and whether that
    /// value is a prediction (plan mode).
    Ran {
        value: Option<serde_json::Value>,
        predicted: bool,
    },
    /// It did not: why, for the waiting hosts' failure.
    Failed(String),
}

/// One `run_once` step.
struct Slot {
    host: String,
    step: String,
    result: watch::Sender<Option<Shared>>,
}

/// Every `run_once` step of a run, shared by its hosts.
#[derive(Default)]
pub(super) struct Once {
    /// By the step's playbook index.
    slots: BTreeMap<usize, Slot>,
}

impl Once {
    /// `hosts`: playbook step index → the host that runs it; `name` its step name.
    pub(super) fn new(hosts: &BTreeMap<usize, String>, name: impl Fn(usize) -> String) -> Once {
        let slots = hosts
            .iter()
            .map(|(i, host)| {
                let slot = Slot {
                    host: host.clone(),
                    step: name(*i),
                    result: watch::Sender::new(None),
                };
                (*i, slot)
            })
            .collect();
        Once { slots }
    }

    /// The host that runs step `index` when it is a `run_once` step and not `host`.
    pub(super) fn elsewhere(&self, index: usize, host: &str) -> Option<&str> {
        let slot = self.slots.get(&index)?;
        (slot.host != host).then_some(slot.host.as_str())
    }

    /// Whether `host` runs step `index` for every host.
    pub(super) fn runs_here(&self, index: usize, host: &str) -> bool {
        self.slots.get(&index).is_some_and(|s| s.host == host)
    }

    /// Step `index` ran: the first result is the one every host sees.
    pub(super) fn publish(&self, index: usize, result: Shared) {
        if let Some(slot) = self.slots.get(&index) {
            slot.result.send_if_modified(|r| {
                let first = r.is_none();
                if first {
                    *r = Some(result);
                }
                first
            });
        }
    }

    /// `host` is done (`outcome`): each of its steps without a result never ran.
    pub(super) fn abandon(&self, outcome: &HostOutcome) {
        let host = &outcome.name;
        for (i, slot) in self.slots.iter().filter(|(_, s)| s.host == *host) {
            let why = if outcome.stopped_at.as_deref() == Some(&slot.step) && outcome.interrupted {
                "was interrupted before it".to_string()
            } else if outcome.stopped_at.as_deref() == Some(&slot.step) {
                "failed it".to_string()
            } else if outcome.unreachable {
                "is unreachable".to_string()
            } else if outcome.interrupted {
                "was interrupted".to_string()
            } else {
                match &outcome.stopped_at {
                    Some(at) => format!("stopped at `{at}` before it"),
                    None => "ended without running it".to_string(),
                }
            };
            self.publish(
                *i,
                Shared::Failed(format!("runs once on {host}, which {why}")),
            );
        }
    }

    /// The result of step `index` once its host has one.
    pub(super) async fn wait(&self, index: usize) -> Shared {
        let Some(slot) = self.slots.get(&index) else {
            return Shared::Failed("internal error: not a run_once step".into());
        };
        let mut rx = slot.result.subscribe();
        // The sender lives as long as `self`, so the wait ends only with a result.
        match rx.wait_for(Option::is_some).await {
            Ok(r) => r
                .clone()
                .unwrap_or_else(|| Shared::Failed("no result".into())),
            Err(_) => Shared::Failed(format!("runs once on {}, which ended", slot.host)),
        }
    }
}

/// Abandons the host's `run_once` steps when its task ends, however it ends (a panic
/// included): no host waits for it after that.
pub(super) struct Guard<'a> {
    pub once: &'a Once,
    pub host: &'a str,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.once.abandon(&HostOutcome::new(self.host));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn once() -> Once {
        Once::new(&BTreeMap::from([(3, "a".to_string())]), |i| format!("s{i}"))
    }

    #[tokio::test]
    async fn the_first_result_is_the_one_every_host_sees() {
        let o = once();
        assert_eq!(o.elsewhere(3, "b"), Some("a"));
        assert_eq!(o.elsewhere(3, "a"), None);
        assert_eq!(o.elsewhere(2, "b"), None);
        assert!(o.runs_here(3, "a") && !o.runs_here(3, "b"));
        let (waited, ()) = tokio::join!(o.wait(3), async {
            o.publish(
                3,
                Shared::Ran {
                    value: Some(serde_json::json!({"stdout": "v"})),
                    predicted: false,
                },
            );
            o.publish(3, Shared::Failed("late".into()));
        });
        assert!(matches!(waited, Shared::Ran { value: Some(_), .. }));
        assert!(matches!(o.wait(3).await, Shared::Ran { .. }));
    }

    #[tokio::test]
    async fn a_host_that_stops_first_fails_its_steps_for_the_others() {
        let o = once();
        let mut out = HostOutcome::new("a");
        out.stopped_at = Some("s1".into());
        out.counts.failed = 1;
        o.abandon(&out);
        let Shared::Failed(why) = o.wait(3).await else {
            panic!("a result")
        };
        assert_eq!(why, "runs once on a, which stopped at `s1` before it");
        let o = once();
        out.stopped_at = Some("s3".into());
        o.abandon(&out);
        assert!(matches!(o.wait(3).await, Shared::Failed(w) if w.ends_with("which failed it")));
        let o = once();
        drop(Guard {
            once: &o,
            host: "a",
        });
        assert!(matches!(o.wait(3).await, Shared::Failed(_)));
    }
}
