//! What every command gets from the command line (the global options, without clap), and
//! the two questions about the person at the terminal: is one there, and do they agree.

use crate::inventory::Access;
use crate::report::{OutputFormat, ReportOptions};
use std::io::IsTerminal;
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
    pub forks: usize,
    pub output: OutputFormat,
    /// `-e key=value`, in order.
    pub vars: Vec<(String, String)>,
    pub report: ReportOptions,
    /// `--yes`: confirmations are answered yes.
    pub yes: bool,
    /// Connection inputs from the command line and the terminal.
    pub access: Access,
}

impl Context {
    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }

    pub fn quiet(&self) -> bool {
        self.report.quiet
    }

    /// The EC2 entry points' view of it.
    pub fn cloud(&self) -> crate::cloud::Options {
        crate::cloud::Options {
            yes: self.yes,
            interactive: interactive(),
            json: self.json(),
        }
    }
}

/// Prompts (key passphrases, confirmations) only when a person is there to answer: stdin is
/// a terminal and `CI` is not set. (stdout may well be piped: `provision up prod | tee log`.)
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::env::var_os("CI").is_none()
}

/// Ask a yes/no question on the terminal (only called when one is there).
pub fn confirm(question: &str) -> bool {
    eprint!("{question}");
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
