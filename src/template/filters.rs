//! The filters provision adds to minijinja's: `shell_quote`, `b64encode`, `b64decode`,
//! `to_yaml` (`urlencode` and `tojson` are minijinja's own).
//!
//! A filter whose output is a form of its input that the redactor cannot derive by itself
//! (a decoded value, a shell-quoted or YAML-quoted one) reports `(input, output)` to the
//! [`DerivedHook`]: the secrets layer registers the output for masking when the input held a
//! secret. Forms the redactor already knows (URL, base64, case) need no report. Errors never
//! carry the value.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use minijinja::{Error, ErrorKind, Value};
use std::sync::{Arc, RwLock};

/// Called with a filter's input and its output when the output is a form of the input.
pub type DerivedHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Where the filters find the hook: set after the environment is built.
#[derive(Clone, Default)]
pub struct HookSlot(Arc<RwLock<Option<DerivedHook>>>);

impl HookSlot {
    pub fn set(&self, hook: DerivedHook) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    fn report(&self, input: &str, output: &str) {
        if input != output
            && let Some(hook) = &*self.0.read().unwrap_or_else(|e| e.into_inner())
        {
            hook(input, output);
        }
    }
}

/// Add provision's filters to `env`.
pub fn add_all(env: &mut minijinja::Environment<'static>, slot: &HookSlot) {
    let s = slot.clone();
    env.add_filter("shell_quote", move |v: Value| {
        let (input, out) = shell_quote(&v);
        s.report(&input, &out);
        out
    });
    env.add_filter("b64encode", b64encode);
    let s = slot.clone();
    env.add_filter("b64decode", move |v: Value| {
        let input = text_of(&v);
        let out = b64decode(&input)?;
        s.report(&input, &out);
        Ok::<_, Error>(out)
    });
    let s = slot.clone();
    env.add_filter("to_yaml", move |v: Value| to_yaml(&v, &s));
}

fn text_of(v: &Value) -> String {
    match v.as_str() {
        Some(s) => s.to_string(),
        None => v.to_string(),
    }
}

/// `{{ x | shell_quote }}`: the value as one POSIX sh word, so a var put into a command
/// (`command.run`, `unless`, ...) cannot add commands of its own (a forged release id, a var
/// with a space or `$(...)`). Numbers and other values are quoted as their string form.
/// Returns the text quoted and the quoted word.
fn shell_quote(v: &Value) -> (String, String) {
    let s = text_of(v);
    // shell-escape leaves the empty string unquoted; it must stay one (empty) word.
    if s.is_empty() {
        return (s, "''".into());
    }
    let quoted = shell_escape::unix::escape(std::borrow::Cow::Borrowed(&s)).into_owned();
    (s, quoted)
}

/// `{{ x | b64encode }}`: standard base64 (with padding) of the value's UTF-8 bytes.
fn b64encode(v: Value) -> String {
    STANDARD.encode(text_of(&v).as_bytes())
}

/// `{{ x | b64decode }}`: standard or URL-safe base64, padded or not, to UTF-8 text.
fn b64decode(input: &str) -> Result<String, Error> {
    let compact: String = input.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let unpadded = compact.trim_end_matches('=');
    let bytes = [STANDARD, URL_SAFE]
        .iter()
        .find_map(|e| {
            let padded = format!("{unpadded}{}", "=".repeat((4 - unpadded.len() % 4) % 4));
            e.decode(padded).ok()
        })
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "b64decode: the value is not base64",
            )
        })?;
    String::from_utf8(bytes).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            "b64decode: the decoded bytes are not UTF-8 text",
        )
    })
}

/// `{{ x | to_yaml }}`: the value as YAML (block style), without the final newline, so a
/// scalar can sit after a key. Each string in it is reported with the YAML form it took
/// (quoted, escaped), which the redactor cannot derive by itself.
fn to_yaml(v: &Value, slot: &HookSlot) -> Result<String, Error> {
    let yaml = |v: &Value| {
        yaml_serde::to_string(v).map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "to_yaml: the value cannot be written as YAML ({})",
                    short(&e)
                ),
            )
        })
    };
    report_strings(v, &|s: &str| {
        if let Ok(form) = yaml(&Value::from(s)) {
            slot.report(s, form.trim_end_matches('\n'));
        }
    });
    Ok(yaml(v)?.trim_end_matches('\n').to_string())
}

/// The kind of a YAML error, never the data it was about.
fn short(e: &yaml_serde::Error) -> &'static str {
    if e.to_string().contains("recursion") {
        "nested too deeply"
    } else {
        "unsupported value"
    }
}

/// Every string inside `v` (map keys and values, sequence items), depth first.
fn report_strings(v: &Value, report: &dyn Fn(&str)) {
    if let Some(s) = v.as_str() {
        report(s);
        return;
    }
    let Ok(items) = v.try_iter() else {
        return;
    };
    let is_map = v.kind() == minijinja::value::ValueKind::Map;
    for item in items {
        if is_map && let Ok(value) = v.get_item(&item) {
            report_strings(&value, report);
        }
        report_strings(&item, report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;
    use std::sync::Mutex;

    fn env_with(seen: Arc<Mutex<Vec<(String, String)>>>) -> minijinja::Environment<'static> {
        let mut env = minijinja::Environment::new();
        let slot = HookSlot::default();
        slot.set(Arc::new(move |i: &str, o: &str| {
            seen.lock().unwrap().push((i.to_string(), o.to_string()))
        }));
        add_all(&mut env, &slot);
        env
    }

    fn render(src: &str, v: &str) -> (Result<String, String>, Vec<(String, String)>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let env = env_with(seen.clone());
        let out = env
            .render_str(src, context! { v => v })
            .map_err(|e| e.to_string());
        let seen = seen.lock().unwrap().clone();
        (out, seen)
    }

    #[test]
    fn base64_round_trips_and_decoding_reports_the_plain_value() {
        let (enc, _) = render("{{ v | b64encode }}", "pa$$:wörd/+?");
        let enc = enc.unwrap();
        assert_eq!(enc, STANDARD.encode("pa$$:wörd/+?"));
        let (dec, seen) = render("{{ v | b64decode }}", &enc);
        assert_eq!(dec.unwrap(), "pa$$:wörd/+?");
        assert_eq!(seen, vec![(enc.clone(), "pa$$:wörd/+?".to_string())]);
        // URL-safe and unpadded input decode too.
        let url = URL_SAFE.encode("??>>").trim_end_matches('=').to_string();
        assert_eq!(render("{{ v | b64decode }}", &url).0.unwrap(), "??>>");
    }

    #[test]
    fn bad_base64_is_an_error_without_the_value() {
        for bad in ["not base64 at all!", &STANDARD.encode([0xff, 0xfe, 0x00])] {
            let e = render("{{ v | b64decode }}", bad).0.unwrap_err();
            assert!(e.contains("b64decode"), "{e}");
            assert!(!e.contains(bad), "{e}");
        }
    }

    #[test]
    fn shell_quote_reports_the_quoted_word() {
        let (out, seen) = render("{{ v | shell_quote }}", "it's-a-secret");
        assert_eq!(out.unwrap(), "'it'\\''s-a-secret'");
        assert_eq!(seen[0].1, "'it'\\''s-a-secret'");
    }

    #[test]
    fn to_yaml_writes_block_yaml_and_reports_each_quoted_string() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let env = env_with(seen.clone());
        let out = env
            .render_str(
                "{{ m | to_yaml }}",
                context! { m => context! { user => "app", pw => "it's: #x", n => 3, l => vec!["a b", "c"] } },
            )
            .unwrap();
        let back: serde_json::Value = yaml_serde::from_str(&out).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"user": "app", "pw": "it's: #x", "n": 3, "l": ["a b", "c"]})
        );
        let seen = seen.lock().unwrap();
        let pw_form = seen.iter().find(|(i, _)| i == "it's: #x").map(|(_, o)| o);
        let pw_form = pw_form.expect("the quoted string is reported");
        assert!(out.contains(pw_form.as_str()), "{out} lacks {pw_form}");
    }
}
