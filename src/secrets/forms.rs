//! The forms a secret value takes in what provision and remote tools print, each a needle
//! for the [`Redactor`](super::Redactor): the value itself, each line of a multi-line value
//! (a diff prefixes lines with `+`, a log tail starts mid-value), its case variants, and its
//! JSON-escaped, URL-encoded and base64 encodings (`docker inspect` JSON-escapes env values,
//! tools log URLs and `Authorization: Basic` headers).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 3986 unreserved characters stay; everything else is `%XX` (encodeURIComponent,
/// Python's `quote(safe="")`).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Also keeps `/` (Python's default `quote`, minijinja's `urlencode`).
const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// Every form of `value` to mask, at least `min_chars` long, without duplicates.
pub fn needles(value: &str, min_chars: usize) -> Vec<String> {
    // The texts a value becomes before a tool encodes it again (a config file holding it in
    // upper case or JSON, then URL-encoded or base64'd whole): each one's encodings too.
    let mut texts = vec![
        value.to_string(),
        value.to_uppercase(),
        value.to_lowercase(),
    ];
    texts.extend(json_forms(value));
    if value.contains('\n') {
        texts.extend(value.lines().map(|l| l.trim().to_string()));
    }
    let mut out = texts.clone();
    for t in &texts {
        out.extend(url_forms(t));
        out.extend(base64_forms(t.as_bytes()));
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|n| n.chars().count() >= min_chars && seen.insert(n.clone()));
    out
}

/// The value inside a JSON string: escaped as serde_json does, and as Go and minijinja's
/// `tojson` do (`<`, `>`, `&` and `'` as `\u00XX` too).
fn json_forms(value: &str) -> [String; 2] {
    let json = serde_json::to_string(value).expect("a string serializes");
    let json = json[1..json.len() - 1].to_string();
    let html_safe = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027");
    [json, html_safe]
}

/// Percent-encoded, with and without `/` kept, with a space as `%20` or `+` (forms).
fn url_forms(value: &str) -> Vec<String> {
    [COMPONENT, PATH]
        .iter()
        .map(|set| utf8_percent_encode(value, set).to_string())
        .flat_map(|e| [e.replace("%20", "+"), e])
        .collect()
}

/// Base64 of the value wherever it starts in the encoded stream: a value at offset 0, 1 or 2
/// (mod 3) shares its first 0, 2 or 1 bytes with the bytes before it, and its last group with
/// the bytes after it. What does not depend on its neighbours is the encoding of the whole
/// 3-byte groups in between, which is what any base64 of a text holding the value contains.
fn base64_forms(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for skip in 0..3.min(bytes.len()) {
        let inner = &bytes[skip..];
        let inner = &inner[..inner.len() / 3 * 3];
        out.push(STANDARD_NO_PAD.encode(inner));
        out.push(URL_SAFE_NO_PAD.encode(inner));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_a_text_holding_the_value_contains_a_needle_at_every_offset() {
        let value = "pa$$-w0rd/with+stuff?";
        let forms = needles(value, 4);
        for prefix in ["", "a", "ab", "abc", "user:"] {
            for suffix in ["", "x", "xy"] {
                let text = format!("{prefix}{value}{suffix}");
                for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
                    let b64 = engine.encode(text.as_bytes());
                    assert!(
                        forms.iter().any(|n| b64.contains(n.as_str())),
                        "{text:?} → {b64}"
                    );
                }
            }
        }
    }

    #[test]
    fn json_url_case_and_line_forms() {
        let forms = needles("a\"b<c> d/e&f'g\nsecond-line\n", 4);
        for f in [
            "a\\\"b<c> d/e&f'g\\nsecond-line\\n",
            "a\\\"b\\u003cc\\u003e d/e\\u0026f\\u0027g\\nsecond-line\\n",
            "a%22b%3Cc%3E%20d%2Fe%26f%27g%0Asecond-line%0A",
            "a%22b%3Cc%3E+d/e%26f%27g%0Asecond-line%0A",
            "A\"B<C> D/E&F'G\nSECOND-LINE\n",
            "a\"b<c> d/e&f'g",
            "second-line",
        ] {
            assert!(forms.iter().any(|n| n == f), "{f} not in {forms:#?}");
        }
        assert!(needles("abcd", 4).iter().all(|n| n.chars().count() >= 4));
    }
}
