//! Secret values and the one [`Redactor`] that scrubs them from everything provision prints.
//!
//! Secrets come from the environment's dotenv file, or, for a key the file does not have (or
//! when there is no file), from provision's own process environment. Every value handed out
//! is registered with the redactor first, so no code path can print a secret it obtained.

use crate::error::ConfigError;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

const MASK: &str = "********";
/// Shorter values are not masked (see [`Redactor::add`]).
pub const MIN_SECRET_CHARS: usize = 4;

/// Replaces every known secret value in a text with `********`.
#[derive(Clone, Default)]
pub struct Redactor {
    needles: Arc<RwLock<Vec<String>>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Redactor({} values)",
            self.needles.read().map(|n| n.len()).unwrap_or(0)
        )
    }
}

impl Redactor {
    pub fn add(&self, value: &str) {
        // A value of one to three characters ("1", "x", "yes") cannot be told apart from
        // ordinary text: masking it would garble all output and make every path that happens
        // to contain it look like a leaked secret. Such values are not treated as secret.
        if value.chars().count() < MIN_SECRET_CHARS {
            return;
        }
        let mut n = self.needles.write().expect("redactor lock");
        if !n.iter().any(|v| v == value) {
            n.push(value.to_string());
            // Longest first, so a secret containing another is masked whole.
            n.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let n = self.needles.read().expect("redactor lock");
        let mut out = text.to_string();
        for v in n.iter() {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }

    /// Redact every string inside a JSON value.
    pub fn redact_json(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = self.redact(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.redact_json(x)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| self.redact_json(x)),
            _ => {}
        }
    }
}

/// The secrets of one environment. Values are never Debug-printed.
#[derive(Clone, Default)]
pub struct Secrets {
    file: Option<PathBuf>,
    values: BTreeMap<String, String>,
    redactor: Redactor,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("file", &self.file)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Secrets {
    /// Load the dotenv file if it exists; a missing file means "use the process environment".
    pub fn load(file: Option<&Path>, redactor: Redactor) -> Result<Secrets, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some(path) = file.filter(|p| p.exists()) {
            let text = crate::error::read(path, "the secrets file")?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    continue;
                }
                // dotenvy parses one line at a time here so an error names its line.
                let item = dotenvy::from_read_iter(line.as_bytes())
                    .next()
                    .transpose()
                    .map_err(|e| {
                        ConfigError::new(
                            path,
                            format!("not a KEY=value line ({})", describe_bad_line(line, &e)),
                        )
                        .at_line(i + 1)
                        .with_help("write one KEY=value per line; quote values with spaces")
                    })?;
                if let Some((k, v)) = item {
                    redactor.add(&v);
                    values.insert(k, v);
                }
            }
        }
        Ok(Secrets {
            file: file.map(Path::to_path_buf),
            values,
            redactor,
        })
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Keys defined in the secrets file.
    pub fn file_keys(&self) -> Vec<String> {
        self.values.keys().cloned().collect()
    }

    /// A value from the file, else from the process environment; empty counts as missing.
    pub fn get(&self, key: &str) -> Option<String> {
        let v = self
            .values
            .get(key)
            .cloned()
            .or_else(|| std::env::var(key).ok())?;
        if v.is_empty() {
            return None;
        }
        self.redactor.add(&v);
        Some(v)
    }

    /// Like [`get`](Self::get), with an error that says where the value was looked for.
    pub fn require(&self, key: &str) -> Result<String, String> {
        self.get(key).ok_or_else(|| {
            let place = match &self.file {
                Some(f) => format!("{} or provision's environment", f.display()),
                None => "provision's environment (this env has no `secrets` file)".into(),
            };
            format!("secret {key} is missing or empty: set it in {place}")
        })
    }
}

/// dotenvy errors can echo the line (and so the value); describe them without it. Only the
/// key (the part before `=`) may be named.
fn describe_bad_line(line: &str, e: &dotenvy::Error) -> String {
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_start_matches("export ").trim());
    let key =
        key.filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    let of_key = key.map(|k| format!(" of {k}")).unwrap_or_default();
    let value = line.split_once('=').map_or("", |(_, v)| v.trim_start());
    let unclosed = |q: char| value.starts_with(q) && (value.len() == 1 || !value[1..].contains(q));
    match e {
        dotenvy::Error::LineParse(..) if unclosed('"') || unclosed('\'') => {
            format!("the quoted value{of_key} has no closing quote")
        }
        dotenvy::Error::LineParse(..) if key.is_none() => {
            "expected KEY=value, with KEY made of letters, digits and `_`".into()
        }
        dotenvy::Error::LineParse(_, idx) => {
            format!("syntax error{of_key} at character {}", idx + 1)
        }
        dotenvy::Error::Io(e) => e.to_string(),
        _ => "invalid line".into(),
    }
}

/// Template access to secrets: `{{ secrets.DB_PASSWORD }}`. A missing or empty key is
/// undefined, so strict rendering fails before any host is touched.
#[derive(Debug)]
pub struct SecretsObject(pub Secrets);

impl minijinja::value::Object for SecretsObject {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        self.0.get(key.as_str()?).map(minijinja::Value::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_too_short_to_mask_are_left_alone() {
        let r = Redactor::default();
        r.add("x");
        r.add("yes");
        r.add("abcd");
        assert_eq!(r.redact("x yes abcd"), "x yes ********");
    }

    #[test]
    fn redacts_longest_first() {
        let r = Redactor::default();
        r.add("abcd");
        r.add("abcdefgh");
        assert_eq!(r.redact("x abcdefgh y abcd"), "x ******** y ********");
    }

    #[test]
    fn loads_dotenv_and_registers_values() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("prod.env");
        std::fs::write(&f, "# c\nDB_PASSWORD=s3cr3t-value\nQUOTED=\"a b\"\n\n").unwrap();
        let s = Secrets::load(Some(&f), Redactor::default()).unwrap();
        assert_eq!(s.file_keys(), vec!["DB_PASSWORD", "QUOTED"]);
        assert_eq!(s.get("QUOTED").as_deref(), Some("a b"));
        assert_eq!(s.redactor().redact("pw=s3cr3t-value"), "pw=********");
    }

    #[test]
    fn bad_line_names_line_without_value() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("prod.env");
        std::fs::write(&f, "A=1\nB=\"unterminated-secret\n").unwrap();
        let e = Secrets::load(Some(&f), Redactor::default()).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(!e.to_string().contains("unterminated-secret"), "{e}");
        assert!(e.message.contains("value of B has no closing quote"), "{e}");
        std::fs::write(&f, "A=1\nnot a line s3cr3t\n").unwrap();
        let e = Secrets::load(Some(&f), Redactor::default()).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn missing_secret_error_says_where() {
        let s = Secrets::load(None, Redactor::default()).unwrap();
        let e = s.require("PROVISION_TEST_SURELY_UNSET").unwrap_err();
        assert!(e.contains("provision's environment"), "{e}");
    }
}
