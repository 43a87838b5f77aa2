//! Step timings read from a run's events (as printed, so already masked): the slowest steps
//! for `--timings`, and the bars of the HTML report's timeline.

use super::{Event, Status, fmt_ms};
use std::cmp::Ordering;
use std::collections::HashMap;

/// One finished step on one host, placed on the run's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTime {
    pub host: String,
    pub index: usize,
    pub step: String,
    pub status: Status,
    /// Milliseconds since the run started, when the step started.
    pub start_ms: u64,
    pub ms: u64,
}

/// Every finished step, in event order. A step starts where its `step_started` says; events
/// without offsets (a file from before `at_ms`) are laid end to end per host instead.
pub fn step_times(events: &[Event]) -> Vec<StepTime> {
    let mut started: HashMap<(&str, usize), u64> = HashMap::new();
    let mut host_cursor: HashMap<&str, u64> = HashMap::new();
    let mut times = Vec::new();
    for ev in events {
        match ev {
            Event::StepStarted {
                host, index, at_ms, ..
            } => {
                started.insert((host, *index), *at_ms);
            }
            Event::StepFinished {
                host,
                index,
                step,
                status,
                ms,
                at_ms,
                ..
            } => {
                let cursor = host_cursor.entry(host).or_default();
                let start_ms = match started.get(&(host.as_str(), *index)) {
                    Some(&s) if s > 0 || *at_ms > 0 => s,
                    _ if *at_ms > 0 => at_ms.saturating_sub(*ms),
                    _ => *cursor,
                };
                *cursor = start_ms + ms;
                times.push(StepTime {
                    host: host.clone(),
                    index: *index,
                    step: step.clone(),
                    status: *status,
                    start_ms,
                    ms: *ms,
                });
            }
            _ => {}
        }
    }
    times
}

/// The `n` slowest steps, slowest first (ties: hosts in natural order, then playbook order).
pub fn slowest(events: &[Event], n: usize) -> Vec<StepTime> {
    slowest_of(step_times(events), n)
}

/// The `n` slowest of `times`, in [`slowest`]'s order.
pub fn slowest_of(mut times: Vec<StepTime>, n: usize) -> Vec<StepTime> {
    times.sort_by(|a, b| {
        b.ms.cmp(&a.ms)
            .then_with(|| natural_cmp(&a.host, &b.host))
            .then(a.index.cmp(&b.index))
    });
    times.truncate(n);
    times
}

/// `--timings`: a small table of the ten slowest steps, one line each (empty: no steps ran).
pub fn table(events: &[Event]) -> Vec<String> {
    let rows = slowest(events, 10);
    if rows.is_empty() {
        return Vec::new();
    }
    let host_w = column_width("host", rows.iter().map(|r| r.host.as_str()));
    let step_w = column_width("step", rows.iter().map(|r| r.step.as_str()));
    let mut lines = vec![format!(
        "{:host_w$}  {:step_w$}  {:8}  {:>8}",
        "host", "step", "status", "time"
    )];
    for r in rows {
        lines.push(format!(
            "{:host_w$}  {:step_w$}  {:8}  {:>8}",
            r.host,
            r.step,
            status_word(r.status),
            fmt_ms(r.ms)
        ));
    }
    lines
}

fn column_width<'a>(title: &str, cells: impl Iterator<Item = &'a str>) -> usize {
    cells
        .map(|c| c.chars().count())
        .chain([title.len()])
        .max()
        .unwrap_or(0)
}

/// The word a status is in events and CSS classes.
pub fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Changed => "changed",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
    }
}

/// Natural order: digit runs compare as numbers, so `h2` sorts before `h10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a, b);
    loop {
        match (x.chars().next(), y.chars().next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let (n, rest_x) = split_digits(x);
                let (m, rest_y) = split_digits(y);
                let by_number = n
                    .trim_start_matches('0')
                    .len()
                    .cmp(&m.trim_start_matches('0').len())
                    .then_with(|| n.trim_start_matches('0').cmp(m.trim_start_matches('0')));
                if by_number != Ordering::Equal {
                    return by_number;
                }
                (x, y) = (rest_x, rest_y);
            }
            (Some(c), Some(d)) if c != d => return c.cmp(&d),
            (Some(c), Some(_)) => {
                x = &x[c.len_utf8()..];
                y = &y[c.len_utf8()..];
            }
        }
    }
}

fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(host: &str, index: usize, ms: u64, at_ms: u64) -> Event {
        Event::StepFinished {
            host: host.into(),
            index,
            step: format!("step {index}"),
            kind: "command".into(),
            status: Status::Ok,
            message: String::new(),
            diff: None,
            output: None,
            ms,
            at_ms,
        }
    }

    #[test]
    fn natural_order_puts_h2_before_h10() {
        let mut hosts = vec!["h10", "h2", "h1", "web-10", "web-9", "h02", "a"];
        hosts.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(hosts, ["a", "h1", "h02", "h2", "h10", "web-9", "web-10"]);
    }

    #[test]
    fn slowest_first_and_at_most_n() {
        let events: Vec<Event> = (0..15)
            .map(|i| finished("h", i, i as u64 * 10, 0))
            .collect();
        let top = slowest(&events, 10);
        assert_eq!(top.len(), 10);
        assert_eq!(top[0].ms, 140);
        assert_eq!(top[9].ms, 50);
        let lines = table(&events);
        assert_eq!(lines.len(), 11);
        assert!(lines[0].starts_with("host") && lines[1].contains("step 14"));
        assert!(table(&[]).is_empty());
    }

    #[test]
    fn a_step_starts_at_its_started_offset_or_end_to_end_without_offsets() {
        let started = Event::StepStarted {
            host: "h".into(),
            index: 0,
            step: "step 0".into(),
            kind: "command".into(),
            at_ms: 40,
        };
        let t = step_times(&[started, finished("h", 0, 10, 50)]);
        assert_eq!((t[0].start_ms, t[0].ms), (40, 10));
        let t = step_times(&[finished("h", 0, 10, 0), finished("h", 1, 5, 0)]);
        assert_eq!((t[1].start_ms, t[1].ms), (10, 5));
    }
}
