//! Config errors that point at a file, line and column, and say what was expected.

use std::fmt;
use std::path::{Path, PathBuf};

/// An error in the user's input. Always names the file; line and column when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub message: String,
    pub help: Option<String>,
}

impl ConfigError {
    pub fn new(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.into(),
            line: None,
            col: None,
            message: message.into(),
            help: None,
        }
    }

    /// An error at a byte offset of `text` (the content of `file`).
    pub fn at(
        file: impl Into<PathBuf>,
        text: &str,
        offset: usize,
        message: impl Into<String>,
    ) -> Self {
        let (line, col) = line_col(text, offset);
        ConfigError {
            line: Some(line),
            col: Some(col),
            ..ConfigError::new(file, message)
        }
    }

    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Turn a toml/serde error into one that names file:line:col.
    pub fn from_toml(file: &Path, text: &str, err: &toml::de::Error) -> Self {
        // serde names a table by its Rust type (`expected struct Spec`); say what to write.
        let mut message = err.message().trim().to_string();
        if let Some(at) = message.find("expected struct ") {
            let end = message[at + 16..]
                .find(|c: char| !c.is_alphanumeric() && c != '_')
                .map_or(message.len(), |n| at + 16 + n);
            message.replace_range(at..end, "expected a table, e.g. { key = \"value\" }");
        }
        for (ty, range) in [("u16", "0 to 65535"), ("u32", "0 to 4294967295")] {
            message = message.replace(
                &format!("expected {ty}"),
                &format!("expected a whole number from {range} ({ty})"),
            );
        }
        let mut e = match err.span() {
            Some(span) => ConfigError::at(file, text, span.start, message),
            None => ConfigError::new(file, message),
        };
        e.help = help_for(&e.message);
        e
    }
}

/// A hint for the most common serde messages, so the user knows what to do next.
fn help_for(message: &str) -> Option<String> {
    if let Some(near) = closest_expected(message) {
        Some(format!("did you mean `{near}`?"))
    } else if message.starts_with("unknown field") {
        Some("remove the key or fix its spelling; the accepted keys are listed above".into())
    } else if message.starts_with("missing field") {
        Some("add the key: it is required here".into())
    } else if message.starts_with("invalid type") {
        Some("change the value to the expected type".into())
    } else if message.starts_with("invalid value") {
        Some("change the value to one the key accepts".into())
    } else {
        None
    }
}

/// For "unknown field `comand`, expected one of `command`, ..." (or "unknown variant"): the
/// accepted name closest to the one written, when it is close enough to be a typo.
fn closest_expected(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (written, expected) = rest.split_once('`')?;
    let expected = expected.split_once("expected ")?.1;
    let names = expected.split('`').skip(1).step_by(2);
    suggest(written, names)
}

/// The candidate closest to `written` (Jaro-Winkler ≥ 0.8, as clap's suggestions), if any.
pub fn suggest<'a>(written: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(written, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.col {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Read a config file, mapping IO errors to a ConfigError naming the file.
pub fn read(path: &Path, what: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(path, format!("cannot read {what}: {e}")).with_help(format!(
            "check that {} exists and is readable",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 8), (2, 3));
        assert_eq!(line_col(t, 999), (3, 1));
    }

    #[test]
    fn display_names_file_line_col_and_help() {
        let e = ConfigError::at("p.toml", "x\ny", 2, "bad").with_help("fix it");
        assert_eq!(e.to_string(), "p.toml:2:1: bad\n  help: fix it");
    }
}
