//! Secret values and the one [`Redactor`] that scrubs them from everything provision prints.
//!
//! Secrets come from the environment's dotenv file, or, for a key the file does not have (or
//! when there is no file), from provision's own process environment. Every value handed out
//! is registered with the redactor first, so no code path can print a secret it obtained.
//! The redactor masks every form of a value a tool may print ([`forms`]); what it cannot know
//! (a value through `| replace`) is caught earlier: [`Secrets::track`] tells which rendered
//! texts read a secret, and those are never diffed nor put on a command line.

mod command;
mod cut;
mod forms;
mod names;

use crate::error::ConfigError;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

pub use command::SecretsCommand;
pub use names::secret_names;

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
            self.needles.read().map_or(0, |n| n.len())
        )
    }
}

impl Redactor {
    /// Mask `value` and its other forms (lines, case, JSON, URL, base64) from now on.
    pub fn add(&self, value: &str) {
        // A value of one to three characters ("1", "x", "yes") cannot be told apart from
        // ordinary text: masking it would garble all output and make every path that happens
        // to contain it look like a leaked secret. Such values (and such short forms or lines
        // of longer ones) are not treated as secret.
        if value.chars().count() < MIN_SECRET_CHARS {
            return;
        }
        let mut n = self.needles.write().unwrap_or_else(|e| e.into_inner());
        if n.iter().any(|v| v == value) {
            return;
        }
        for form in forms::needles(value, MIN_SECRET_CHARS) {
            if !n.contains(&form) {
                n.push(form);
            }
        }
        // Longest first, so a secret containing another (or its own line) is masked whole.
        n.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    /// For [`Templates::on_derived`](crate::template::Templates::on_derived): a filter's
    /// output made from a text holding a secret (a decoded or quoted value) is masked too.
    pub fn derived_hook(&self) -> crate::template::DerivedHook {
        let r = self.clone();
        std::sync::Arc::new(move |input: &str, output: &str| {
            if r.redact(input) != input {
                r.add(output);
            }
        })
    }

    pub fn redact(&self, text: &str) -> String {
        // A panic elsewhere while the list was being written leaves it whole (values are
        // pushed one by one): keep masking with it rather than panic in the output path.
        let n = self.needles.read().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for v in n.iter() {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        if out.contains(crate::transport::capture::CUT_MARK) {
            out = cut::mask_cut_edges(&out, &n, MASK);
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
    /// Template variables whose values were rendered from secrets (besides `secrets`).
    derived: BTreeSet<String>,
    /// Keys whose value came from `secrets_command` (over the file's).
    from_command: BTreeSet<String>,
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
        Secrets::load_with(file, None, redactor)
    }

    /// The file (if it exists), then the env's `secrets_command` (its keys win over the
    /// file's). Every value is registered with the redactor before this returns.
    pub fn load_with(
        file: Option<&Path>,
        command: Option<&SecretsCommand>,
        redactor: Redactor,
    ) -> Result<Secrets, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some(path) = file.filter(|p| p.exists()) {
            let text = crate::error::read(path, "the secrets file")?;
            values = parse_dotenv(path, &text)?;
            values.values().for_each(|v| redactor.add(v));
        }
        let mut from_command = BTreeSet::new();
        if let Some(cmd) = command {
            for (k, v) in cmd.load(&redactor)? {
                from_command.insert(k.clone());
                values.insert(k, v);
            }
        }
        Ok(Secrets {
            file: file.map(Path::to_path_buf),
            values,
            redactor,
            derived: BTreeSet::new(),
            from_command,
        })
    }

    /// Whether `key`'s value came from `secrets_command`.
    pub fn from_command(&self, key: &str) -> bool {
        self.from_command.contains(key)
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Keys defined in the secrets file or printed by `secrets_command`.
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

    /// Register the value of each `secrets.NAME` a text names (a playbook field, a template),
    /// so that it is masked even before (or without) the step using it being rendered.
    pub fn register_named_in(&self, text: &str) {
        for name in secret_names(text) {
            self.get(&name);
        }
    }

    /// Note that template variable `name` holds a value rendered from secrets: it is
    /// registered for masking, and texts reading it count as reading a secret.
    pub fn mark_derived(&mut self, name: &str, value: &str) {
        self.redactor.add(value);
        self.derived.insert(name.to_string());
    }

    /// Render with `ctx` and tell whether the rendering read `secrets` or a variable derived
    /// from them. This is what decides that a text depends on a secret, whatever filters
    /// transformed the value on the way (the output need not contain it).
    pub fn track<R>(
        &self,
        ctx: &minijinja::Value,
        render: impl FnOnce(&minijinja::Value) -> R,
    ) -> (R, bool) {
        let hit = Arc::new(AtomicBool::new(false));
        let tracked = minijinja::Value::from_object(Tracked {
            ctx: ctx.clone(),
            derived: self.derived.clone(),
            hit: hit.clone(),
        });
        let out = render(&tracked);
        (out, hit.load(Ordering::SeqCst))
    }

    /// The env's secrets file when it names one that does not exist (a typo in the path, or a
    /// fresh checkout without the gitignored file): messages say so instead of "no keys".
    pub fn missing_file(&self) -> Option<&Path> {
        self.file.as_deref().filter(|f| !f.exists())
    }

    /// Like [`get`](Self::get), with an error that says where the value was looked for.
    pub fn require(&self, key: &str) -> Result<String, String> {
        self.get(key).ok_or_else(|| {
            if let Some(f) = self.missing_file() {
                return format!(
                    "secret {key} is missing: the secrets file {} does not exist and provision's environment has no {key}; create the file with a {key}=value line, or set {key} in the environment",
                    f.display()
                );
            }
            let place = match &self.file {
                Some(f) => format!("{} or provision's environment", f.display()),
                None => "provision's environment (this env has no `secrets` file)".into(),
            };
            format!("secret {key} is missing or empty: set it in {place}")
        })
    }
}

/// The whole file through dotenvy at once: quoted values may span lines (PEM keys) and
/// `${VAR}` may refer to an earlier line. Nothing is put in the process environment.
fn parse_dotenv(path: &Path, text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut values = BTreeMap::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (k, v) = item.map_err(|e| bad_line(path, text, &e))?;
        values.insert(k, v);
    }
    Ok(values)
}

/// The error for a line dotenvy refused, at its line number, without its value.
fn bad_line(path: &Path, text: &str, e: &dotenvy::Error) -> ConfigError {
    let line = match e {
        dotenvy::Error::LineParse(line, _) => line.as_str(),
        _ => "",
    };
    let at = text
        .find(line)
        .filter(|_| !line.is_empty())
        .map(|i| text[..i].matches('\n').count() + 1);
    let err = ConfigError::new(
        path,
        format!("not a KEY=value line ({})", describe_bad_line(line, e)),
    )
    .with_help("write one KEY=value per line; quote values with spaces");
    match at {
        Some(n) => err.at_line(n),
        None => err,
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

/// The template context, noting reads of `secrets` and of variables derived from them.
#[derive(Debug)]
struct Tracked {
    ctx: minijinja::Value,
    derived: BTreeSet<String>,
    hit: Arc<AtomicBool>,
}

impl minijinja::value::Object for Tracked {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let name = key.as_str()?;
        if name == "secrets" || self.derived.contains(name) {
            self.hit.store(true, Ordering::SeqCst);
        }
        self.ctx.get_attr(name).ok().filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        match self.ctx.try_iter() {
            Ok(keys) => minijinja::value::Enumerator::Values(keys.collect()),
            Err(_) => minijinja::value::Enumerator::Empty,
        }
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
    fn multi_line_values_are_masked_line_by_line_too() {
        let r = Redactor::default();
        r.add("-----BEGIN KEY-----\nAAAAline-one\nBBBBline-two\n-----END KEY-----\n");
        // A diff of a new file prefixes each line; a log tail starts in the middle.
        assert_eq!(
            r.redact("+AAAAline-one\n+BBBBline-two\n"),
            "+********\n+********\n"
        );
        assert_eq!(r.redact("  BBBBline-two"), "  ********");
    }

    #[test]
    fn whole_file_parse_keeps_quoted_lines_and_earlier_references() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("prod.env");
        std::fs::write(
            &f,
            "KEY=\"-----BEGIN KEY-----\nAAAA\n-----END KEY-----\"\nPROVISION_T_USER=app\nURL=\"pg://${PROVISION_T_USER}:x@h\"\nAFTER=1\n",
        )
        .unwrap();
        let s = Secrets::load(Some(&f), Redactor::default()).unwrap();
        assert_eq!(
            s.get("KEY").as_deref(),
            Some("-----BEGIN KEY-----\nAAAA\n-----END KEY-----")
        );
        assert_eq!(s.get("URL").as_deref(), Some("pg://app:x@h"));
        assert_eq!(s.file_keys(), ["AFTER", "KEY", "PROVISION_T_USER", "URL"]);
        assert!(
            std::env::var("PROVISION_T_USER").is_err(),
            "the process env was touched"
        );
    }

    #[test]
    fn tracking_tells_which_renders_read_a_secret() {
        let mut s = Secrets::load(None, Redactor::default()).unwrap();
        s.values.insert("PW".into(), "tr4ck-secret".into());
        s.mark_derived("dsn", "pg://u:tr4ck-secret@h");
        let ctx = minijinja::context! {
            secrets => minijinja::Value::from_object(SecretsObject(s.clone())),
            dsn => "pg://u:tr4ck-secret@h", port => 5,
        };
        let env = minijinja::Environment::new();
        let render = |src: &str| s.track(&ctx, |c| env.render_str(src, c).unwrap());
        assert_eq!(
            render("{{ secrets.PW | upper }}"),
            ("TR4CK-SECRET".into(), true)
        );
        assert!(render("{{ dsn | replace('u', 'v') }}").1);
        assert_eq!(render("{{ port }}"), ("5".into(), false));
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
