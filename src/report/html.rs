//! `--report FILE` and `provision report`: one self-contained HTML page for a run, rendered
//! from its events as printed (masked by [`super::Output`], the same lines `--output json`
//! prints), so a secret cannot reach the page unless it reached the terminal. No network: the
//! CSS is inline, the timeline is positioned boxes, and the failed/changed filter is CSS
//! (`:has()` on radio buttons), no script.

use super::timings::{self, StepTime, natural_cmp, status_word};
use super::{Counts, Event, Mode, fmt_ms};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Lines of a failed step's output the page keeps (its end: where the error is).
const OUTPUT_TAIL_LINES: usize = 40;
/// Lines of one diff the page keeps (the terminal's `plan` shows all of it).
const DIFF_LINES: usize = 200;
/// Rows of the "slowest" tables.
const TOP: usize = 10;

/// The page for one run's events.
pub fn render(events: &[Event]) -> String {
    let run = Run::from_events(events);
    let mut page = String::with_capacity(64 * 1024);
    page.push_str(HEAD);
    run.header(&mut page);
    run.timeline(&mut page);
    run.slowest(&mut page);
    run.problems(&mut page);
    run.diffs(&mut page);
    page.push_str("</main></body></html>\n");
    page
}

/// What the page shows, gathered from the events.
#[derive(Default)]
struct Run<'a> {
    env: &'a str,
    mode: Option<Mode>,
    playbook: &'a str,
    user: &'a str,
    started_at: &'a str,
    /// By name; shown in natural order.
    hosts: BTreeMap<&'a str, HostRow<'a>>,
    steps: Vec<StepTime>,
    finished: Option<Finished<'a>>,
    /// (host, step, diff).
    diffs: Vec<(&'a str, &'a str, &'a str)>,
    /// (host, step, message, output).
    failures: Vec<(&'a str, &'a str, &'a str, Option<&'a str>)>,
    /// A rolling deploy that stopped: which batch failed and the hosts never reached.
    stopped: Option<String>,
}

#[derive(Default)]
struct HostRow<'a> {
    connect_ms: Option<u64>,
    connected_at_ms: u64,
    unreachable: Option<&'a str>,
    warnings: Vec<&'a str>,
    ms: Option<u64>,
    round_trips: Option<usize>,
    counts: Option<&'a Counts>,
    release: Option<&'a str>,
}

struct Finished<'a> {
    totals: &'a Counts,
    exit_code: i32,
    ms: u64,
}

impl<'a> Run<'a> {
    fn from_events(events: &'a [Event]) -> Run<'a> {
        let mut run = Run {
            steps: timings::step_times(events),
            ..Run::default()
        };
        for ev in events {
            run.take(ev);
        }
        run
    }

    fn take(&mut self, ev: &'a Event) {
        match ev {
            Event::RunStarted {
                env,
                mode,
                playbook,
                hosts,
                user,
                started_at,
            } => {
                (self.env, self.mode, self.playbook) = (env, Some(*mode), playbook);
                (self.user, self.started_at) = (user, started_at);
                for h in hosts {
                    self.hosts.entry(h).or_default();
                }
            }
            Event::HostConnected { host, ms, at_ms } => {
                let row = self.hosts.entry(host).or_default();
                (row.connect_ms, row.connected_at_ms) = (Some(*ms), *at_ms);
            }
            Event::HostUnreachable { host, error } => {
                self.hosts.entry(host).or_default().unreachable = Some(error);
            }
            Event::HostWarning { host, message } => {
                self.hosts.entry(host).or_default().warnings.push(message);
            }
            Event::StepFinished {
                host,
                step,
                status,
                message,
                diff,
                output,
                ..
            } => {
                self.hosts.entry(host).or_default();
                if let Some(d) = diff {
                    self.diffs.push((host, step, d));
                }
                if *status == super::Status::Failed {
                    self.failures.push((host, step, message, output.as_deref()));
                }
            }
            Event::HostFinished {
                host,
                counts,
                round_trips,
                ms,
                release,
                ..
            } => {
                let row = self.hosts.entry(host).or_default();
                (row.ms, row.round_trips, row.counts) =
                    (Some(*ms), Some(*round_trips), Some(counts));
                row.release = release.as_deref();
            }
            Event::RolloutStopped {
                batch,
                of,
                not_reached,
                limits,
                ..
            } => {
                self.stopped = Some(format!(
                    "the rollout stopped after batch {batch}/{of} ({limits}); not reached: {}",
                    not_reached.join(", ")
                ));
            }
            Event::RunFinished {
                totals,
                exit_code,
                ms,
                ..
            } => {
                self.finished = Some(Finished {
                    totals,
                    exit_code: *exit_code,
                    ms: *ms,
                })
            }
            _ => {}
        }
    }

    /// Host names in natural order (h2 before h10).
    fn host_names(&self) -> Vec<&'a str> {
        let mut names: Vec<&str> = self.hosts.keys().copied().collect();
        names.sort_by(|a, b| natural_cmp(a, b));
        names
    }

    /// The run's length: its own `ms`, or the end of the last bar (a run cut short).
    fn span_ms(&self) -> u64 {
        let last_bar = self.steps.iter().map(|s| s.start_ms + s.ms);
        let last_connect = self.hosts.values().map(|h| h.connected_at_ms);
        let seen = last_bar.chain(last_connect).max().unwrap_or(0);
        self.finished
            .as_ref()
            .map_or(seen, |f| f.ms.max(seen))
            .max(1)
    }

    fn header(&self, page: &mut String) {
        let mode = match self.mode {
            Some(Mode::Check) => "plan",
            Some(Mode::Apply) => "up",
            None => "run",
        };
        let _ = write!(
            page,
            "<header><h1>provision {mode} <b>{}</b></h1><dl>",
            esc(self.env)
        );
        let mut item = |term: &str, value: &str| {
            let _ = write!(page, "<dt>{term}</dt><dd>{}</dd>", esc(value));
        };
        item("playbook", self.playbook);
        let releases: BTreeSet<&str> = self.hosts.values().filter_map(|h| h.release).collect();
        if !releases.is_empty() {
            item(
                "release",
                &releases.into_iter().collect::<Vec<_>>().join(", "),
            );
        }
        item("run by", self.user);
        item("started", self.started_at);
        item("hosts", &self.hosts.len().to_string());
        if let Some(f) = &self.finished {
            item("duration", &fmt_ms(f.ms));
            item("exit code", &f.exit_code.to_string());
        }
        page.push_str("</dl>");
        if let Some(f) = &self.finished {
            let t = f.totals;
            let _ = write!(
                page,
                "<p class=\"totals\"><span class=\"ok\">ok {}</span> <span class=\"changed\">changed {}</span> <span class=\"failed\">failed {}</span> <span class=\"skipped\">skipped {}</span></p>",
                t.ok, t.changed, t.failed, t.skipped
            );
        } else {
            page.push_str("<p class=\"totals\">the run did not finish (no run_finished event)</p>");
        }
        page.push_str("</header><main>");
    }

    fn timeline(&self, page: &mut String) {
        let span = self.span_ms();
        let mut bars: BTreeMap<&str, Vec<&StepTime>> = BTreeMap::new();
        for s in &self.steps {
            bars.entry(s.host.as_str()).or_default().push(s);
        }
        page.push_str(FILTER);
        let _ = write!(
            page,
            "<section id=\"timeline\"><h2>Timeline</h2><div class=\"axis\"><span>0</span><span>{}</span><span>{}</span></div>",
            fmt_ms(span / 2),
            fmt_ms(span)
        );
        for name in self.host_names() {
            let row = &self.hosts[name];
            let steps = bars.get(name).map(Vec::as_slice).unwrap_or_default();
            host_row(page, name, row, steps, span);
        }
        page.push_str("</section>");
    }

    fn slowest(&self, page: &mut String) {
        page.push_str("<section id=\"slowest\"><h2>Slowest</h2><div class=\"tables\">");
        let steps = timings::slowest_of(self.steps.clone(), TOP);
        table(
            page,
            "Steps",
            &["host", "step", "status", "time"],
            steps.iter().map(|s| {
                vec![
                    s.host.clone(),
                    s.step.clone(),
                    status_word(s.status).into(),
                    fmt_ms(s.ms),
                ]
            }),
        );
        let mut hosts: Vec<(&str, &HostRow)> = self.hosts.iter().map(|(n, r)| (*n, r)).collect();
        hosts.sort_by(|a, b| b.1.ms.cmp(&a.1.ms).then_with(|| natural_cmp(a.0, b.0)));
        table(
            page,
            "Hosts",
            &["host", "time", "round trips"],
            hosts.iter().take(TOP).map(|(n, r)| {
                vec![
                    n.to_string(),
                    r.ms.map(fmt_ms).unwrap_or_default(),
                    r.round_trips.map(|n| n.to_string()).unwrap_or_default(),
                ]
            }),
        );
        let mut connects: Vec<(&str, u64)> = self
            .hosts
            .iter()
            .filter_map(|(n, r)| r.connect_ms.map(|ms| (*n, ms)))
            .collect();
        connects.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| natural_cmp(a.0, b.0)));
        let title = connect_title(&connects);
        table(
            page,
            &title,
            &["host", "connect"],
            connects
                .iter()
                .take(TOP)
                .map(|(n, ms)| vec![n.to_string(), fmt_ms(*ms)]),
        );
        page.push_str("</div></section>");
    }

    /// Failures with their output's tail, unreachable hosts, warnings.
    fn problems(&self, page: &mut String) {
        let unreachable: Vec<(&str, &str)> = self
            .host_names()
            .into_iter()
            .filter_map(|n| self.hosts[n].unreachable.map(|e| (n, e)))
            .collect();
        let warnings: Vec<(&str, &str)> = self
            .host_names()
            .into_iter()
            .flat_map(|n| self.hosts[n].warnings.iter().map(move |w| (n, *w)))
            .collect();
        if self.failures.is_empty()
            && unreachable.is_empty()
            && warnings.is_empty()
            && self.stopped.is_none()
        {
            return;
        }
        page.push_str("<section id=\"failures\"><h2>Failures</h2>");
        if let Some(stopped) = &self.stopped {
            let _ = write!(
                page,
                "<div class=\"failure\"><h3>rollout stopped</h3><p>{}</p></div>",
                esc(stopped)
            );
        }
        for (host, step, message, output) in &self.failures {
            let _ = write!(
                page,
                "<div class=\"failure\" data-host=\"{}\" data-step=\"{}\"><h3>{} · {}</h3><p>{}</p>",
                esc(host),
                esc(step),
                esc(host),
                esc(step),
                esc(message)
            );
            if let Some(out) = output.filter(|o| !o.trim().is_empty()) {
                let _ = write!(page, "<pre>{}</pre>", esc(&tail(out, OUTPUT_TAIL_LINES)));
            }
            page.push_str("</div>");
        }
        for (host, error) in unreachable {
            let _ = write!(
                page,
                "<div class=\"failure\" data-host=\"{}\"><h3>{} · unreachable</h3><p>{}</p></div>",
                esc(host),
                esc(host),
                esc(error)
            );
        }
        for (host, message) in warnings {
            let _ = write!(
                page,
                "<div class=\"warning\" data-host=\"{}\"><h3>{} · warning</h3><p>{}</p></div>",
                esc(host),
                esc(host),
                esc(message)
            );
        }
        page.push_str("</section>");
    }

    fn diffs(&self, page: &mut String) {
        if self.diffs.is_empty() {
            return;
        }
        page.push_str("<section id=\"diffs\"><h2>Diffs</h2>");
        for (host, step, diff) in &self.diffs {
            let _ = write!(
                page,
                "<details data-host=\"{}\"><summary>{} · {}</summary><pre>",
                esc(host),
                esc(host),
                esc(step)
            );
            diff_lines(page, diff);
            page.push_str("</pre></details>");
        }
        page.push_str("</section>");
    }
}

/// One Gantt row: the host's name, its connection and a bar per step, its time.
fn host_row(page: &mut String, name: &str, row: &HostRow, steps: &[&StepTime], span: u64) {
    let failed =
        row.unreachable.is_some() || steps.iter().any(|s| s.status == super::Status::Failed);
    let changed = steps.iter().any(|s| s.status == super::Status::Changed);
    let host = esc(name);
    let _ = write!(
        page,
        "<div class=\"row{}{}\" data-host=\"{host}\"><span class=\"name\" title=\"{host}\">{host}</span><div class=\"track\">",
        if failed { " has-failed" } else { "" },
        if changed { " has-changed" } else { "" },
    );
    if let Some(ms) = row.connect_ms {
        let start = row.connected_at_ms.saturating_sub(ms);
        let _ = write!(
            page,
            "<i class=\"conn\" style=\"left:{:.2}%;width:{:.2}%\" title=\"connect {}\"></i>",
            pct(start, span),
            pct(ms, span),
            fmt_ms(ms)
        );
    }
    for s in steps {
        let step = esc(&s.step);
        let status = status_word(s.status);
        let _ = write!(
            page,
            "<i class=\"b {status}\" data-host=\"{host}\" data-step=\"{step}\" data-status=\"{status}\" style=\"left:{:.2}%;width:{:.2}%\" title=\"{step}: {status}, {}\"></i>",
            pct(s.start_ms, span),
            pct(s.ms, span),
            fmt_ms(s.ms)
        );
    }
    let end = match (row.unreachable, row.ms, row.round_trips) {
        (Some(_), ..) => "unreachable".to_string(),
        (None, Some(ms), Some(trips)) => format!("{} · {trips} rt", fmt_ms(ms)),
        (None, Some(ms), None) => fmt_ms(ms),
        (None, None, _) => String::new(),
    };
    let _ = write!(page, "</div><span class=\"dur\">{end}</span></div>");
}

fn table(
    page: &mut String,
    title: &str,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) {
    let _ = write!(page, "<table><caption>{}</caption><tr>", esc(title));
    for c in columns {
        let _ = write!(page, "<th>{c}</th>");
    }
    page.push_str("</tr>");
    for row in rows {
        page.push_str("<tr>");
        for cell in row {
            let _ = write!(page, "<td>{}</td>", esc(&cell));
        }
        page.push_str("</tr>");
    }
    page.push_str("</table>");
}

/// "Connect (min 12ms, median 40ms, max 1.2s)" over every host that connected.
fn connect_title(slowest_first: &[(&str, u64)]) -> String {
    match (slowest_first.last(), slowest_first.first()) {
        (Some(min), Some(max)) => format!(
            "Connect (min {}, median {}, max {})",
            fmt_ms(min.1),
            fmt_ms(slowest_first[slowest_first.len() / 2].1),
            fmt_ms(max.1)
        ),
        _ => "Connect".into(),
    }
}

/// A diff's lines, added and removed ones marked for color; at most [`DIFF_LINES`].
fn diff_lines(page: &mut String, diff: &str) {
    let total = diff.lines().count();
    for line in diff.lines().take(DIFF_LINES) {
        let class = match line.as_bytes().first() {
            Some(b'+') if !line.starts_with("+++") => Some("add"),
            Some(b'-') if !line.starts_with("---") => Some("del"),
            _ => None,
        };
        match class {
            Some(c) => {
                let _ = writeln!(page, "<span class=\"{c}\">{}</span>", esc(line));
            }
            None => {
                let _ = writeln!(page, "{}", esc(line));
            }
        }
    }
    if total > DIFF_LINES {
        let _ = writeln!(
            page,
            "… {} more lines (see `provision plan`)",
            total - DIFF_LINES
        );
    }
}

/// The last `n` lines of `text`, saying how many came before.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(n);
    let kept = lines[skip..].join("\n");
    if skip > 0 {
        format!("… {skip} earlier lines\n{kept}")
    } else {
        kept
    }
}

fn pct(ms: u64, span: u64) -> f64 {
    ms as f64 * 100.0 / span as f64
}

/// Text made inert in HTML text and in quoted attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>provision run report</title>
<style>
:root{--ok:#2e9d4f;--changed:#d89b00;--failed:#d1342f;--skipped:#7a8ca3;--conn:#c9d3df;font:14px/1.4 system-ui,sans-serif;color:#1d2330}
body{margin:0;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:12px 20px}
header h1{margin:0 0 6px;font-size:20px;font-weight:500}
header dl{display:flex;flex-wrap:wrap;gap:4px 18px;margin:0}
header dt{opacity:.65}header dd{margin:0 0 0 -12px;font-family:ui-monospace,monospace}
.totals span{margin-right:10px;font-weight:600}
header .ok{color:#7fdc98}header .changed{color:#ffd35c}header .failed{color:#ff8a84}header .skipped{color:#b8c6d8}
main{padding:8px 20px 40px}
h2{font-size:16px;margin:18px 0 8px}
.filter{margin:10px 0;display:flex;gap:14px;align-items:center}
.legend i{display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;vertical-align:-2px;border-radius:2px}
.axis{display:flex;justify-content:space-between;margin-left:170px;margin-right:70px;color:#6b7688;font-size:12px;border-bottom:1px solid #c9d3df}
.row{display:flex;align-items:center;height:18px;border-bottom:1px solid #eceff3}
.row:hover{background:#e9eef5}
.name{width:164px;padding-right:6px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font-family:ui-monospace,monospace;font-size:12px}
.track{position:relative;flex:1;height:12px}
.dur{width:64px;padding-left:6px;text-align:right;font-size:12px;color:#6b7688}
.has-failed .name,.has-failed .dur{color:var(--failed);font-weight:600}
.track i{position:absolute;top:0;height:12px;min-width:2px;border-radius:2px;box-sizing:border-box;border-right:1px solid #fff}
i.ok{background:var(--ok)}i.changed{background:var(--changed)}i.failed{background:var(--failed)}i.skipped{background:var(--skipped)}i.conn{background:var(--conn)}
body:has(#show-failed:checked) .row:not(.has-failed){display:none}
body:has(#show-changed:checked) .row:not(.has-changed){display:none}
.tables{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}
table{border-collapse:collapse;background:#fff;font-size:13px}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{padding:3px 10px;border-bottom:1px solid #eceff3;text-align:left}
td:last-child{font-variant-numeric:tabular-nums}
.failure,.warning{background:#fff;border-left:4px solid var(--failed);padding:4px 12px;margin:8px 0}
.warning{border-color:var(--changed)}
.failure h3,.warning h3{font-size:14px;margin:6px 0}
pre{background:#1d2330;color:#e6e9ef;padding:8px 10px;overflow:auto;max-height:420px;font-size:12px}
details{background:#fff;margin:6px 0;padding:4px 10px}summary{cursor:pointer;font-family:ui-monospace,monospace}
.add{color:#7fdc98}.del{color:#ff8a84}
</style></head><body>
"#;

/// The row filter: radio buttons the stylesheet reads with `:has()`.
const FILTER: &str = r#"<div class="filter"><b>Show</b><label><input type="radio" name="show" id="show-all" checked> all hosts</label><label><input type="radio" name="show" id="show-failed"> failed</label><label><input type="radio" name="show" id="show-changed"> changed</label><span class="legend"><i class="ok"></i>ok<i class="changed"></i>changed<i class="failed"></i>failed<i class="skipped"></i>skipped<i class="conn"></i>connect</span></div>"#;

#[cfg(test)]
mod tests;
