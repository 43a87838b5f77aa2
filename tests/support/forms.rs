//! Every form a secret value may take in output, for tests that grep what provision printed.
#![allow(dead_code)]

/// Every form of `value` that must never be printed: itself, each of its lines, the
/// filtered forms the templates write (`upper`, `replace`, `tojson`; `indent` only moves
/// lines), JSON-escaped, URL-encoded, and base64 at each offset (what any base64 of a text
/// holding the value contains, wherever the value starts).
pub fn forms(value: &str) -> Vec<String> {
    use base64::Engine;
    let json = serde_json::to_string(value).unwrap();
    let json = json[1..json.len() - 1].to_string();
    let html_json = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let mut texts = vec![
        value.to_string(),
        value.to_uppercase(),
        value.replace('-', "_"),
        json,
        html_json,
    ];
    // PEM armor (`-----BEGIN … KEY-----`) is the same in every key: not a secret.
    texts.extend(
        (value.lines())
            .filter(|l| l.len() >= 8 && !l.starts_with("-----"))
            .map(str::to_string),
    );
    let mut out = texts.clone();
    for t in &texts {
        // Python's quote(safe=""): all but letters, digits and `-._~`.
        let url = percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC)
            .to_string()
            .replace("%2D", "-")
            .replace("%2E", ".")
            .replace("%5F", "_")
            .replace("%7E", "~");
        out.push(url);
        for skip in 0..3 {
            let inner = &t.as_bytes()[skip..];
            let inner = &inner[..inner.len() / 3 * 3];
            out.push(base64::engine::general_purpose::STANDARD_NO_PAD.encode(inner));
        }
    }
    out
}

/// No form of any value in `text`.
#[track_caller]
pub fn assert_no_form(what: &str, text: &str, values: &[String]) {
    for v in values {
        for f in forms(v) {
            assert!(
                !text.contains(&f),
                "{what}: a form of a secret was printed: {f:?}\n{text}"
            );
        }
    }
}
