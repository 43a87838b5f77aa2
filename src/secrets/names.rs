//! Which secrets a text names: `secrets.NAME`, `secrets["NAME"]`, `secrets['NAME']`.
//!
//! A plain text scan rather than the template's parsed references: it also sees what a
//! parser would not list (a subscript, a step that is never rendered), and naming one secret
//! too many only masks a value that was secret anyway.

use std::collections::BTreeSet;

/// The names used as `secrets.NAME` / `secrets["NAME"]` anywhere in `text`.
pub fn secret_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("secrets") {
        let before = rest[..at].chars().next_back();
        let after = rest[at + "secrets".len()..].trim_start();
        rest = &rest[at + "secrets".len()..];
        if before.is_some_and(is_ident_char) {
            continue;
        }
        if let Some(name) = name_after(after) {
            out.insert(name.to_string());
        }
    }
    out
}

/// `.NAME`, `["NAME"]` or `['NAME']` at the start of `s`.
fn name_after(s: &str) -> Option<&str> {
    if let Some(attr) = s.strip_prefix('.') {
        return ident(attr.trim_start());
    }
    let inner = s.strip_prefix('[')?.trim_start();
    let quote = inner.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let name = ident(&inner[1..])?;
    inner[1 + name.len()..].starts_with(quote).then_some(name)
}

fn ident(s: &str) -> Option<&str> {
    let end = s.find(|c: char| !is_ident_char(c)).unwrap_or(s.len());
    let name = &s[..end];
    (!name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit())).then_some(name)
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_attribute_and_subscript_names_only() {
        let text = "{{ secrets.A }} {{ secrets . B | upper }} {{ secrets['C'] }} {{ secrets[\"D\"] }}\n\
                    my_secrets.E secrets/test.env {{ secrets[x] }} secrets.9 {{ secrets['F\"] }}";
        let names: Vec<String> = secret_names(text).into_iter().collect();
        assert_eq!(names, ["A", "B", "C", "D"]);
    }
}
