//! `secrets_command = "op read …"`: an env's secrets printed by a local command (a password
//! manager's CLI, `sops -d`, `vault kv get -format=json`). It runs through `sh -c` in the
//! project folder with provision's stdin (so a manager may ask on the terminal); its stdout
//! is a dotenv text or, when it starts with `{`, a JSON object. Every value is registered
//! with the redactor before this returns, so nothing can print one unmasked; a failure is
//! an error at the config key with the exit status and the command's stderr (masked).

use super::Redactor;
use crate::error::ConfigError;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where an env's `secrets_command` is written, and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsCommand {
    /// The shell command, as written.
    pub command: String,
    /// The folder it runs in (the project's).
    pub dir: PathBuf,
    /// provision.toml, and the key's line and column there (for errors).
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl SecretsCommand {
    fn error(&self, message: String) -> ConfigError {
        let mut e = ConfigError::new(&self.file, message).at_line(self.line);
        e.col = Some(self.col);
        e
    }

    /// Run the command and read its output, registering every value with `redactor`.
    pub fn load(&self, redactor: &Redactor) -> Result<BTreeMap<String, String>, ConfigError> {
        let out = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .current_dir(&self.dir)
            .stdin(Stdio::inherit())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| self.error(format!("secrets_command could not be started: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Whatever it printed is registered first, even when it failed: its stderr may
        // repeat a value, and that stderr goes into the error message.
        let parsed = parse(&stdout);
        if let Ok(values) = &parsed {
            values.values().for_each(|v| redactor.add(v));
        }
        if !out.status.success() {
            return Err(self.failed(&out.status, &out.stderr, redactor));
        }
        parsed.map_err(|why| {
            self.error(format!("secrets_command printed {why}"))
                .with_help("print KEY=value lines (dotenv) or one JSON object of strings")
        })
    }

    fn failed(
        &self,
        status: &std::process::ExitStatus,
        stderr: &[u8],
        redactor: &Redactor,
    ) -> ConfigError {
        let status = match status.code() {
            Some(code) => format!("exit status {code}"),
            None => format!("{status}"),
        };
        let stderr = redactor.redact(String::from_utf8_lossy(stderr).trim());
        let said = if stderr.is_empty() {
            " and printed nothing on stderr".to_string()
        } else {
            format!(": {stderr}")
        };
        self.error(format!(
            "secrets_command `{}` failed with {status}{said}",
            redactor.redact(&self.command)
        ))
        .with_help("run the command in a shell to see why (signed in to the password manager?)")
    }
}

/// The command's output as KEY → value: a JSON object when it starts with `{`, else dotenv.
/// The error says what was wrong without quoting a value.
fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
    if text.trim_start().starts_with('{') {
        return parse_json(text);
    }
    let mut values = BTreeMap::new();
    for (i, item) in dotenvy::from_read_iter(text.as_bytes()).enumerate() {
        let (k, v) = item.map_err(|e| {
            let line = match &e {
                dotenvy::Error::LineParse(line, _) => line.as_str(),
                _ => "",
            };
            format!(
                "a line that is not KEY=value (entry {}: {})",
                i + 1,
                super::describe_bad_line(line, &e)
            )
        })?;
        values.insert(k, v);
    }
    Ok(values)
}

/// `{"KEY": "value", "PORT": 5432}`: strings, numbers and booleans; nothing nested.
fn parse_json(text: &str) -> Result<BTreeMap<String, String>, String> {
    let doc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| {
            format!(
                "output starting with `{{` that is not a JSON object (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
    let mut values = BTreeMap::new();
    for (k, v) in doc {
        let text = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return Err(format!("a JSON value for {k} that is not a string")),
        };
        values.insert(k, text);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_dotenv_both_parse() {
        let j = parse("{\"A\": \"x\\ny\", \"P\": 5432, \"B\": true}").unwrap();
        assert_eq!(j["A"], "x\ny");
        assert_eq!(j["P"], "5432");
        assert_eq!(j["B"], "true");
        let d = parse("A=1\nK=\"l1\nl2\"\n").unwrap();
        assert_eq!(d["K"], "l1\nl2");
    }

    #[test]
    fn bad_output_is_described_without_values() {
        let e = parse("{\"A\": {\"n\": \"s3cr3t-nested\"}}").unwrap_err();
        assert!(e.contains("A") && !e.contains("s3cr3t"), "{e}");
        let e = parse("A=1\nB=\"s3cr3t-open\n").unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
        let e = parse("{not json s3cr3t").unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
