//! `provision report <events.ndjson>`: the HTML run report of a run saved with
//! `--output json`; and what `up`/`plan --report FILE --timings` make of their own run's
//! events at its end. Both render the events as printed, so already masked.

use super::context::Context;
use crate::config::ConfigError;
use crate::error::{Error, exit};
use crate::report::{Event, Output, html, timings};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `up`/`plan`: `--report FILE` and `--timings`.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub html: Option<PathBuf>,
    pub timings: bool,
}

/// A run's report file, created before the run touches anything (an unwritable path stops
/// it there), written at its end.
pub struct ReportFile {
    path: PathBuf,
    file: File,
}

impl RunReport {
    /// Create the report file (if any) and start recording `out`'s events.
    pub fn start(&self, out: &Output) -> Result<Option<ReportFile>, Error> {
        let file = match &self.html {
            Some(path) => Some(ReportFile {
                file: File::create(path).map_err(|e| cannot_write(path, &e))?,
                path: path.clone(),
            }),
            None => None,
        };
        if file.is_some() || self.timings {
            out.record();
        }
        Ok(file)
    }

    /// At the run's end: the timings table through `out`, the page into `file`.
    pub fn finish(&self, out: &Output, file: Option<ReportFile>) -> Result<(), Error> {
        let events = out.take_recorded();
        if self.timings {
            print_timings(out, &events);
        }
        match file {
            Some(f) => f.write(&html::render(&events)),
            None => Ok(()),
        }
    }
}

impl ReportFile {
    fn write(mut self, page: &str) -> Result<(), Error> {
        self.file
            .write_all(page.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| cannot_write(&self.path, &e))
    }
}

/// Notes, so that with `--output json` the table goes to stderr and stdout stays NDJSON.
fn print_timings(out: &Output, events: &[Event]) {
    let table = timings::table(events);
    if table.is_empty() {
        out.note("timings: no step ran");
        return;
    }
    out.note("slowest steps:");
    for line in table {
        out.note(&format!("  {line}"));
    }
}

fn cannot_write(path: &Path, e: &std::io::Error) -> Error {
    Error::Usage(format!(
        "cannot write the report to {}: {e}",
        path.display()
    ))
}

/// `provision report FILE [-o OUT]`: the page on stdout, or in OUT.
pub fn run(cx: &Context, events_file: &Path, to: Option<&Path>) -> Result<i32, Error> {
    let text = std::fs::read_to_string(events_file)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", events_file.display())))?;
    let events = parse_events(events_file, &text)?;
    let page = html::render(&events);
    match to {
        Some(path) => {
            let file = File::create(path).map_err(|e| cannot_write(path, &e))?;
            ReportFile {
                path: path.to_path_buf(),
                file,
            }
            .write(&page)?
        }
        None => cx.out().write(&page),
    }
    Ok(exit::OK)
}

/// Every non-blank line is one event (`--output json`); the first that is not one is an
/// error naming the file and line.
fn parse_events(file: &Path, text: &str) -> Result<Vec<Event>, ConfigError> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ev = serde_json::from_str(line).map_err(|e| {
            ConfigError::new(
                file,
                format!("not a provision event (`--output json` line): {e}"),
            )
            .at_line(i + 1)
            .with_help("save a run with `provision up <env> --output json > events.ndjson`")
        })?;
        events.push(ev);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_line_names_the_file_and_line() {
        let good = r#"{"event":"host_connected","host":"a","ms":3,"at_ms":4}"#;
        let text = format!("{good}\n\n{good}\n{{\"event\":\"nope\"}}\n");
        let e = parse_events(Path::new("run.ndjson"), &text).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("run.ndjson:4: not a provision event"),
            "{e}"
        );
        let events = parse_events(Path::new("run.ndjson"), &format!("{good}\n{good}")).unwrap();
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn events_read_back_as_they_were_printed() {
        let ev = Event::StepFinished {
            host: "a".into(),
            index: 1,
            step: "s".into(),
            kind: "command".into(),
            status: crate::report::Status::Changed,
            message: "m".into(),
            diff: Some("d".into()),
            output: None,
            ms: 5,
            at_ms: 9,
        };
        let line = serde_json::to_string(&ev).unwrap();
        assert_eq!(parse_events(Path::new("f"), &line).unwrap(), vec![ev]);
    }

    #[test]
    fn operator_lines_read_back_too() {
        use crate::report::ExecOutput;
        let events = vec![
            Event::exec(
                "a",
                Ok(ExecOutput {
                    exit: Some(0),
                    stdout: "up".into(),
                    stderr: String::new(),
                }),
            ),
            Event::exec("b", Err("no route".into())),
            Event::status("c", Err("refused".into())),
            Event::unlock("d", Ok(Some("alice@box (pid 1)".into()))),
        ];
        let text: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        assert_eq!(
            parse_events(Path::new("f"), &text.join("\n")).unwrap(),
            events
        );
    }

    #[test]
    fn an_unwritable_report_path_is_named() {
        let r = RunReport {
            html: Some("/nonexistent-dir/run.html".into()),
            timings: false,
        };
        let out = Output::text(crate::secrets::Redactor::default());
        let e = r.start(&out).err().expect("cannot create it");
        assert!(
            e.to_string()
                .starts_with("cannot write the report to /nonexistent-dir/run.html:"),
            "{e}"
        );
    }
}
