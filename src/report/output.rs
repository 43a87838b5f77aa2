//! [`Output`]: the one channel every byte provision prints goes through (like cargo's
//! `Shell`). It holds the output mode, `-q`/`-v`, color and the env's [`Redactor`], and is
//! the one place secret values are masked: events field by field (their free text only, see
//! `redact.rs`), every other line as a whole.

use super::stdio::{self, To};
use super::{Event, OutputFormat, ReportOptions, Reporter, human, json, plain};
use crate::secrets::Redactor;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Cheap to clone: every clone prints through the same reporter.
#[derive(Clone)]
pub struct Output {
    inner: Arc<Inner>,
}

struct Inner {
    format: OutputFormat,
    opts: ReportOptions,
    redactor: Redactor,
    /// Built on the first event or note, so that a command printing only lines never starts
    /// a live view.
    reporter: OnceLock<Box<dyn Reporter>>,
    /// `--report`/`--timings`: the events as printed (masked), kept for the end of the run.
    /// None: not recording.
    recorded: Mutex<Option<Vec<Event>>>,
}

impl Output {
    /// The channel for `--output format` with `opts`, masking what `redactor` knows (values
    /// added to it later are masked from then on).
    pub fn new(format: OutputFormat, opts: ReportOptions, redactor: Redactor) -> Output {
        Output {
            inner: Arc::new(Inner {
                format,
                opts,
                redactor,
                reporter: OnceLock::new(),
                recorded: Mutex::new(None),
            }),
        }
    }

    /// [`Output::new`] under the name the runner's callers know it by.
    pub fn with_options(format: OutputFormat, opts: ReportOptions, redactor: Redactor) -> Output {
        Output::new(format, opts, redactor)
    }

    /// Events and notes to `reporter` (the runner's unit tests record them with one).
    pub fn with_reporter(
        reporter: std::sync::Arc<dyn Reporter>,
        redactor: Redactor,
        verbosity: u8,
    ) -> Output {
        let opts = ReportOptions {
            verbosity,
            ..ReportOptions::default()
        };
        let out = Output::new(OutputFormat::Plain, opts, redactor);
        let _ = out.inner.reporter.set(Box::new(Shared(reporter)));
        out
    }

    /// Plain text lines with default options (a command that has no `--output`).
    pub fn text(redactor: Redactor) -> Output {
        Output::new(OutputFormat::Plain, ReportOptions::default(), redactor)
    }

    /// -v / -vv; 0 with -q.
    pub fn verbosity(&self) -> u8 {
        let o = &self.inner.opts;
        if o.quiet { 0 } else { o.verbosity }
    }

    pub fn quiet(&self) -> bool {
        self.inner.opts.quiet
    }

    /// `--output json`: commands print events, not text lines.
    pub fn json(&self) -> bool {
        self.inner.format == OutputFormat::Json
    }

    /// The redactor, to register values found later (secrets are masked from then on).
    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// A live-view hint for the terminal view (host names and counts: nothing to mask).
    pub fn live(&self, hint: super::Live) {
        self.reporter().live(&hint);
    }

    /// Report an event: masked, then a JSON line (`--output json`) or the text reporter's
    /// rendering. `debug` events are dropped below -vv.
    pub fn emit(&self, ev: Event) {
        if matches!(ev, Event::Debug { .. }) && self.verbosity() < 2 {
            return;
        }
        let ev = ev.redacted(&self.inner.redactor);
        if let Some(kept) = self.recorded_events().as_mut() {
            kept.push(ev.clone());
        }
        self.reporter().event(&ev);
    }

    /// Keep every event emitted from now on, masked exactly as it is printed (what
    /// `--output json` would print), for [`Output::take_recorded`].
    pub fn record(&self) {
        self.recorded_events().get_or_insert_with(Vec::new);
    }

    /// The events kept since [`Output::record`] (none when not recording); recording goes on.
    pub fn take_recorded(&self) -> Vec<Event> {
        self.recorded_events()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The recording; a panic elsewhere while it was held leaves it usable (the output path
    /// never panics).
    fn recorded_events(&self) -> MutexGuard<'_, Option<Vec<Event>>> {
        self.inner
            .recorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A message that is not an event (warnings, summaries): where the reporter puts notes
    /// (stderr in JSON mode, so stdout stays NDJSON).
    pub fn note(&self, msg: &str) {
        self.reporter().note(&self.mask(msg));
    }

    /// A line on stdout, masked and flushed.
    pub fn line(&self, text: &str) {
        stdio::write(To::Stdout, &self.mask(text), true);
    }

    /// A line on stderr, masked and flushed.
    pub fn err_line(&self, text: &str) {
        stdio::write(To::Stderr, &self.mask(text), true);
    }

    /// Text on stdout as it is (no newline added), masked: a man page, a completion script.
    pub fn write(&self, text: &str) {
        stdio::write(To::Stdout, &self.mask(text), false);
    }

    /// Ask a yes/no question on stderr; true for `y` or `yes` in any case. No one can answer
    /// when stdin is not a terminal or `CI` is set: then nothing is printed and the answer is
    /// no (callers that need an answer say `pass --yes` before asking).
    pub fn confirm(&self, question: &str) -> bool {
        self.ask(question).is_some_and(|a| is_yes(&a))
    }

    /// Ask for `word` to be typed (a destructive change); true only for exactly `word`.
    /// No terminal: no, as [`Output::confirm`].
    pub fn confirm_word(&self, question: &str, word: &str) -> bool {
        self.ask(question).is_some_and(|a| a.trim() == word)
    }

    fn ask(&self, question: &str) -> Option<String> {
        if !stdio::interactive() {
            return None;
        }
        stdio::write(To::Stderr, &self.mask(question), false);
        stdio::read_line()
    }

    fn mask(&self, text: &str) -> String {
        self.inner.redactor.redact(text)
    }

    fn reporter(&self) -> &dyn Reporter {
        let Inner { format, opts, .. } = &*self.inner;
        self.inner
            .reporter
            .get_or_init(|| reporter(*format, *opts))
            .as_ref()
    }
}

/// Human output becomes plain lines when stdout is not a terminal, when `CI` is set, and
/// in quiet mode.
fn reporter(format: OutputFormat, opts: ReportOptions) -> Box<dyn Reporter> {
    let ReportOptions {
        verbosity,
        quiet,
        color,
    } = opts;
    let plain_only =
        quiet || !console::Term::stdout().is_term() || std::env::var_os("CI").is_some();
    match format {
        OutputFormat::Json => Box::new(json::Json),
        OutputFormat::Human if !plain_only => Box::new(human::Human::new(verbosity, color)),
        _ => Box::new(plain::Plain::new(verbosity, color, quiet)),
    }
}

/// The answers that mean yes: `y` and `yes`, in any case, around any whitespace.
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// A reporter someone else holds too (a test's recorder).
struct Shared(Arc<dyn Reporter>);

impl Reporter for Shared {
    fn event(&self, ev: &Event) {
        self.0.event(ev)
    }
    fn note(&self, msg: &str) {
        self.0.note(msg)
    }
    fn live(&self, hint: &super::Live) {
        self.0.live(hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_is_y_or_yes_in_any_case() {
        for a in ["y\n", "Y", " yes ", "YES\r\n", "Yes"] {
            assert!(is_yes(a), "{a:?}");
        }
        for a in ["", "\n", "n", "no", "yess", "ye", "sure", "y y"] {
            assert!(!is_yes(a), "{a:?}");
        }
    }

    #[test]
    fn quiet_means_verbosity_zero_and_json_is_the_format() {
        let opts = ReportOptions {
            verbosity: 2,
            quiet: true,
            color: false,
        };
        let out = Output::new(OutputFormat::Json, opts, Redactor::default());
        assert_eq!(out.verbosity(), 0);
        assert!(out.json() && out.quiet());
        let out = Output::text(Redactor::default());
        assert!(!out.json() && !out.quiet());
    }

    #[test]
    fn recorded_events_are_the_masked_ones_and_only_after_record() {
        struct Nothing;
        impl Reporter for Nothing {
            fn event(&self, _: &Event) {}
            fn note(&self, _: &str) {}
        }
        let redactor = Redactor::default();
        redactor.add("hunter2-secret");
        let out = Output::with_reporter(Arc::new(Nothing), redactor, 0);
        let warning = |m: &str| Event::HostWarning {
            host: "a".into(),
            message: m.into(),
        };
        out.emit(warning("before"));
        assert!(out.take_recorded().is_empty());
        out.record();
        out.emit(warning("pw=hunter2-secret"));
        let kept = out.take_recorded();
        assert_eq!(kept.len(), 1);
        let Event::HostWarning { message, .. } = &kept[0] else {
            panic!("{kept:?}")
        };
        assert!(!message.contains("hunter2"), "{message}");
    }
}
