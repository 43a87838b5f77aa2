//! What every command gets from the command line: the global options (without clap) and
//! the process's one [`Redactor`], so that an error printed at the end masks every secret
//! value loaded before it.

use crate::inventory::Access;
use crate::report::{Output, OutputFormat, ReportOptions};
use crate::secrets::Redactor;
use std::path::PathBuf;

/// The global options of a command, as `cli` parsed them.
#[derive(Debug, Clone)]
pub struct Context {
    /// `-C`: provision.toml or its folder (None: searched upward).
    pub config: Option<PathBuf>,
    /// `--playbook`: a name under playbooks/ or a path.
    pub playbook: Option<String>,
    /// `--limit`: hosts or roles, comma separated.
    pub limit: Option<String>,
    /// `--tags`, as given (trimmed by the planner's options).
    pub tags: Vec<String>,
    /// `--skip-tags`, as given.
    pub skip_tags: Vec<String>,
    pub forks: usize,
    /// `--serial`: batch sizes over the env's `serial`.
    pub serial: Option<crate::config::Serial>,
    pub output: OutputFormat,
    /// `-e key=value`, in order.
    pub vars: Vec<(String, String)>,
    pub report: ReportOptions,
    /// `--yes`: confirmations are answered yes.
    pub yes: bool,
    /// Connection inputs from the command line and the terminal.
    pub access: Access,
    /// Every secret value loaded so far (shared by its clones): what the command prints
    /// and the error it may end with are masked with it.
    pub redactor: Redactor,
}

impl Context {
    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }

    pub fn quiet(&self) -> bool {
        self.report.quiet
    }

    /// The channel the command prints through: `--output`, `-q`/`-v`, color, and the
    /// secrets registered with [`Context::redactor`] masked.
    pub fn out(&self) -> Output {
        Output::new(self.output, self.report, self.redactor.clone())
    }

    /// The EC2 entry points' view of it: `--yes`, and `out` to print and ask through.
    pub fn cloud<'a>(&self, out: &'a Output) -> crate::cloud::Options<'a> {
        crate::cloud::Options { yes: self.yes, out }
    }
}

/// EC2's lines through the channel: results on stdout (on stderr when stdout carries
/// NDJSON), progress on stderr, questions asked by [`Output::confirm`] (`y`/`yes` in any
/// case) or [`Output::confirm_word`] (exactly the word).
impl crate::cloud::Console for Output {
    fn say(&self, line: &str) {
        if self.json() {
            self.err_line(line);
        } else {
            self.line(line);
        }
    }

    fn progress(&self, line: &str) {
        self.err_line(line);
    }

    fn ask(&self, question: &str, word: Option<&str>) -> Option<bool> {
        if !crate::report::interactive() {
            return None;
        }
        Some(match word {
            Some(word) => self.confirm_word(question, word),
            None => self.confirm(question),
        })
    }
}
