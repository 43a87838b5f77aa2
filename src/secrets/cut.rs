//! Where output was cut (a line too long, the middle of long output; see
//! [`crate::transport::capture`]), a secret can be cut in half: its start kept before the
//! note, its end after it. Neither half is the value, so whole-value masking misses them.

use crate::transport::capture::CUT_MARK;

/// `text` with the start of any needle just before a cut note, and the end of any needle
/// just after one, replaced by `mask`.
pub fn mask_cut_edges(text: &str, needles: &[String], mask: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(CUT_MARK) {
        let note_end = rest[at..].find(']').map_or(rest.len(), |e| at + e + 1);
        let body = rest[..at].trim_end_matches('\n');
        let half = longest_start(body, needles);
        out.push_str(&body[..body.len() - half]);
        if half > 0 {
            out.push_str(mask);
        }
        out.push_str(&rest[body.len()..note_end]);
        rest = &rest[note_end..];
        let after = rest.trim_start_matches('\n');
        out.push_str(&rest[..rest.len() - after.len()]);
        let cut = longest_end(after, needles);
        if cut > 0 {
            out.push_str(mask);
        }
        rest = &after[cut..];
    }
    out.push_str(rest);
    out
}

/// Bytes at the end of `text` that are a proper start of some needle (the longest).
fn longest_start(text: &str, needles: &[String]) -> usize {
    needles
        .iter()
        .flat_map(|n| n.char_indices().skip(1).map(move |(i, _)| &n[..i]))
        .filter(|start| text.ends_with(start))
        .map(str::len)
        .max()
        .unwrap_or(0)
}

/// Bytes at the start of `text` that are a proper end of some needle (the longest).
fn longest_end(text: &str, needles: &[String]) -> usize {
    needles
        .iter()
        .flat_map(|n| n.char_indices().skip(1).map(move |(i, _)| &n[i..]))
        .filter(|end| text.starts_with(end))
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needles() -> Vec<String> {
        vec!["hunter2-long".to_string()]
    }

    #[test]
    fn halves_at_a_line_cut_and_a_middle_cut_are_masked() {
        let line_cut = "token=hunter[provision cut 99 bytes of this line]\nnext\n";
        assert_eq!(
            mask_cut_edges(line_cut, &needles(), "***"),
            "token=***[provision cut 99 bytes of this line]\nnext\n"
        );
        let middle = "abc hun\n[provision cut 5 bytes here]\nter2-long and on";
        assert_eq!(
            mask_cut_edges(middle, &needles(), "***"),
            "abc ***\n[provision cut 5 bytes here]\n*** and on"
        );
    }

    #[test]
    fn text_without_a_cut_or_a_half_is_left_alone() {
        for text in ["plain", "x [provision cut 3 bytes here]\ny", ""] {
            assert_eq!(mask_cut_edges(text, &needles(), "***"), text);
        }
    }
}
