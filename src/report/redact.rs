//! Masking an event: only its free text (names, messages, outputs, diffs, errors, what a
//! host reported) goes through the [`Redactor`]. Tags, field names and enum values are never
//! touched: a secret whose value is an event word (`debug`, `changed`, `host`) must not turn
//! an event into something else, let alone one that no longer exists (issue 12).
//!
//! The matches are exhaustive, so a new variant or payload field cannot compile without a
//! decision here.

use super::event::Event;
use super::payload::{
    ContainerStatus, ExecOutput, HostInstance, HostStatus, LockStatus, Reply, Unlocked,
};
use crate::remote::releases::Record;
use crate::secrets::Redactor;
use crate::transport::capture::CUT_MARK;

/// Masking of one value's free text.
trait Mask {
    fn mask(self, r: &Redactor) -> Self;
}

impl Mask for String {
    /// Masked first, then bounded: a cut can then never leave half a secret behind.
    fn mask(self, r: &Redactor) -> String {
        bounded(r.redact(&self))
    }
}

/// One text field of an event keeps at most its first [`FIELD_HEAD`] and last [`FIELD_TAIL`]
/// bytes, so an event stays well under 1 MiB whatever a host printed (issue 12).
pub const FIELD_HEAD: usize = 16 << 10;
pub const FIELD_TAIL: usize = 64 << 10;

fn bounded(text: String) -> String {
    if text.len() <= FIELD_HEAD + FIELD_TAIL {
        return text;
    }
    let head_end = text.floor_char_boundary(FIELD_HEAD);
    let tail_start = text.ceil_char_boundary(text.len() - FIELD_TAIL);
    let cut = tail_start - head_end;
    format!(
        "{}\n{CUT_MARK}{cut} bytes here]\n{}",
        &text[..head_end],
        &text[tail_start..]
    )
}

impl<T: Mask> Mask for Option<T> {
    fn mask(self, r: &Redactor) -> Option<T> {
        self.map(|v| v.mask(r))
    }
}

impl<T: Mask> Mask for Box<T> {
    fn mask(self, r: &Redactor) -> Box<T> {
        Box::new((*self).mask(r))
    }
}

impl<T: Mask> Mask for Vec<T> {
    fn mask(self, r: &Redactor) -> Vec<T> {
        self.into_iter().map(|v| v.mask(r)).collect()
    }
}

impl<T: Mask> Mask for Reply<T> {
    fn mask(self, r: &Redactor) -> Reply<T> {
        match self {
            Reply::Answered(v) => Reply::Answered(v.mask(r)),
            Reply::Unreachable { unreachable, error } => Reply::Unreachable {
                unreachable,
                error: error.mask(r),
            },
        }
    }
}

impl Mask for ExecOutput {
    fn mask(self, r: &Redactor) -> ExecOutput {
        let ExecOutput {
            exit,
            stdout,
            stderr,
        } = self;
        ExecOutput {
            exit,
            stdout: stdout.mask(r),
            stderr: stderr.mask(r),
        }
    }
}

impl Mask for Unlocked {
    fn mask(self, r: &Redactor) -> Unlocked {
        let Unlocked { removed, owner } = self;
        Unlocked {
            removed,
            owner: owner.mask(r),
        }
    }
}

/// `result` is an enum of the log (`ok`, `failed`, `interrupted`): kept as it is.
impl Mask for Record {
    fn mask(self, r: &Redactor) -> Record {
        let Record {
            time,
            release,
            user,
            result,
            changed,
            vars,
        } = self;
        Record {
            time: time.mask(r),
            release: release.mask(r),
            user: user.mask(r),
            result,
            changed,
            vars: vars.into_iter().map(|(k, v)| (k, v.mask(r))).collect(),
        }
    }
}

/// `state` is EC2's word (`running`, `stopped`): kept as it is.
impl Mask for HostInstance {
    fn mask(self, r: &Redactor) -> HostInstance {
        let HostInstance {
            id,
            state,
            instance_address,
            instance_type,
        } = self;
        HostInstance {
            id: id.mask(r),
            state,
            instance_address: instance_address.mask(r),
            instance_type: instance_type.mask(r),
        }
    }
}

/// `state` and `health` are docker's words (`running`, `healthy`): kept as they are.
impl Mask for ContainerStatus {
    fn mask(self, r: &Redactor) -> ContainerStatus {
        let ContainerStatus {
            name,
            state,
            health,
            image,
            started_at,
            exit_code,
            error,
        } = self;
        ContainerStatus {
            name: name.mask(r),
            state,
            health,
            image: image.mask(r),
            started_at: started_at.mask(r),
            exit_code,
            error: error.mask(r),
        }
    }
}

impl Mask for LockStatus {
    fn mask(self, r: &Redactor) -> LockStatus {
        let LockStatus {
            owner,
            since,
            age_secs,
        } = self;
        LockStatus {
            owner: owner.mask(r),
            since,
            age_secs,
        }
    }
}

impl Mask for HostStatus {
    fn mask(self, r: &Redactor) -> HostStatus {
        let HostStatus {
            release,
            last_deploy,
            container,
            lock,
        } = self;
        HostStatus {
            release: release.mask(r),
            last_deploy: last_deploy.mask(r),
            container: container.mask(r),
            lock: lock.mask(r),
        }
    }
}

impl Event {
    /// The event with every secret value masked in its free text. `mode`, `status`, `kind`
    /// (a step kind's fixed name), counts, numbers and the tag stay as they are.
    pub fn redacted(self, r: &Redactor) -> Event {
        match self {
            Event::RunStarted {
                env,
                mode,
                playbook,
                hosts,
                user,
                started_at,
            } => Event::RunStarted {
                env: env.mask(r),
                mode,
                playbook: playbook.mask(r),
                hosts: hosts.mask(r),
                user: user.mask(r),
                started_at: started_at.mask(r),
            },
            Event::HostConnected { host, ms, at_ms } => Event::HostConnected {
                host: host.mask(r),
                ms,
                at_ms,
            },
            Event::HostUnreachable { host, error } => Event::HostUnreachable {
                host: host.mask(r),
                error: error.mask(r),
            },
            Event::StepStarted {
                host,
                index,
                step,
                kind,
                at_ms,
            } => Event::StepStarted {
                host: host.mask(r),
                index,
                step: step.mask(r),
                kind,
                at_ms,
            },
            Event::StepFinished {
                host,
                index,
                step,
                kind,
                status,
                message,
                diff,
                output,
                ms,
                at_ms,
            } => Event::StepFinished {
                host: host.mask(r),
                index,
                step: step.mask(r),
                kind,
                status,
                message: message.mask(r),
                diff: diff.mask(r),
                output: output.mask(r),
                ms,
                at_ms,
            },
            Event::HostWarning { host, message } => Event::HostWarning {
                host: host.mask(r),
                message: message.mask(r),
            },
            Event::Debug { host, message } => Event::Debug {
                host: host.mask(r),
                message: message.mask(r),
            },
            Event::HostFinished {
                host,
                counts,
                unreachable,
                stopped_at,
                round_trips,
                ms,
                release,
            } => Event::HostFinished {
                host: host.mask(r),
                counts,
                unreachable,
                stopped_at: stopped_at.mask(r),
                round_trips,
                ms,
                release: release.mask(r),
            },
            Event::RunFinished {
                mode,
                totals,
                failed_hosts,
                unreachable_hosts,
                exit_code,
                ms,
            } => Event::RunFinished {
                mode,
                totals,
                failed_hosts: failed_hosts.mask(r),
                unreachable_hosts: unreachable_hosts.mask(r),
                exit_code,
                ms,
            },
            ev @ (Event::Exec { .. }
            | Event::Status { .. }
            | Event::Release { .. }
            | Event::Host { .. }
            | Event::Unlock { .. }) => ev.redacted_operator(r),
            ev @ (Event::BatchStarted { .. } | Event::RolloutStopped { .. }) => {
                ev.redacted_rollout(r)
            }
        }
    }

    /// A rolling deploy's events: host names are the only free text.
    fn redacted_rollout(self, r: &Redactor) -> Event {
        match self {
            Event::BatchStarted { batch, of, hosts } => Event::BatchStarted {
                batch,
                of,
                hosts: hosts.mask(r),
            },
            Event::RolloutStopped {
                batch,
                of,
                failed_hosts,
                not_reached,
                limits,
            } => Event::RolloutStopped {
                batch,
                of,
                failed_hosts: failed_hosts.mask(r),
                not_reached: not_reached.mask(r),
                limits: limits.mask(r),
            },
            other => other,
        }
    }

    /// The events of the operator commands (`exec`, `status`, `releases`, `hosts`, `unlock`).
    fn redacted_operator(self, r: &Redactor) -> Event {
        match self {
            Event::Exec { host, reply } => Event::Exec {
                host: host.mask(r),
                reply: reply.mask(r),
            },
            Event::Status {
                host,
                unreachable,
                error,
                status,
            } => Event::Status {
                host: host.mask(r),
                unreachable,
                error: error.mask(r),
                status: status.mask(r),
            },
            Event::Release { host, reply } => Event::Release {
                host: host.mask(r),
                reply: reply.mask(r),
            },
            Event::Host {
                host,
                roles,
                address,
                port,
                user,
                jump,
                instance,
            } => Event::Host {
                host: host.mask(r),
                roles: roles.mask(r),
                address: address.mask(r),
                port,
                user: user.mask(r),
                jump: jump.mask(r),
                instance: instance.mask(r),
            },
            Event::Unlock { host, reply } => Event::Unlock {
                host: host.mask(r),
                reply: reply.mask(r),
            },
            // Run events are masked by `redacted` and never get here.
            run_event => run_event,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Mode, Status};

    fn redactor(values: &[&str]) -> Redactor {
        let r = Redactor::default();
        values.iter().for_each(|v| r.add(v));
        r
    }

    #[test]
    fn a_huge_field_is_bounded_after_masking() {
        let secret = "s3cret-at-the-cut";
        let r = redactor(&[secret]);
        // The secret straddles the place where the head is cut, multibyte text around it.
        let mut text = "é".repeat(FIELD_HEAD / 2 - 4);
        text.push_str(secret);
        text.push_str(&"x".repeat(60 << 20));
        text.push_str("the end");
        let out = ExecOutput {
            exit: Some(0),
            stdout: text.clone(),
            stderr: text,
        };
        let ev = Event::exec("h", Ok(out));
        let line = serde_json::to_string(&ev.redacted(&r)).unwrap();
        assert!(line.len() < 1 << 20, "{} bytes", line.len());
        assert!(!line.contains("s3cret"), "a part of the secret is left");
        assert!(line.contains("[provision cut "), "the cut is not said");
        assert!(line.contains("the end"), "the end is kept");
    }

    #[test]
    fn event_words_as_secret_values_leave_tags_alone() {
        let r = redactor(&[
            "debug",
            "changed",
            "host",
            "failed",
            "check",
            "step_finished",
        ]);
        let ev = Event::StepFinished {
            host: "web".into(),
            index: 0,
            step: "say changed".into(),
            kind: "command".into(),
            status: Status::Changed,
            message: "the host failed to debug".into(),
            diff: None,
            output: Some("step_finished".into()),
            ms: 1,
            at_ms: 2,
        };
        let json = serde_json::to_value(ev.redacted(&r)).unwrap();
        assert_eq!(json["event"], "step_finished");
        assert_eq!(json["status"], "changed");
        assert_eq!(json["step"], "say ********");
        assert_eq!(json["message"], "the ******** ******** to ********");
        assert_eq!(json["output"], "********");
        let ev = Event::RunFinished {
            mode: Mode::Check,
            totals: Default::default(),
            failed_hosts: vec!["host".into()],
            unreachable_hosts: vec![],
            exit_code: 3,
            ms: 0,
        };
        let json = serde_json::to_value(ev.redacted(&r)).unwrap();
        assert_eq!(json["mode"], "check");
        assert_eq!(json["failed_hosts"][0], "********");
    }

    #[test]
    fn operator_payloads_are_masked_but_their_enums_are_not() {
        let r = redactor(&["s3cret-v", "failed", "running"]);
        let record = Record {
            time: "t".into(),
            release: "s3cret-v1".into(),
            user: "u".into(),
            result: "failed".into(),
            changed: 1,
            vars: Default::default(),
        };
        let json = serde_json::to_value(Event::release("h", Ok(record)).redacted(&r)).unwrap();
        assert_eq!(json["release"], "********1");
        assert_eq!(json["result"], "failed");
        let ev = Event::exec("h", Err("no route to s3cret-v".into())).redacted(&r);
        let json = serde_json::to_value(ev).unwrap();
        assert_eq!(json["unreachable"], true);
        assert_eq!(json["error"], "no route to ********");
    }
}
