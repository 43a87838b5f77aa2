//! The one seam to hosts (ARCHITECTURE.md): russh is named only inside `src/transport/ssh`,
//! and connections are opened through `transport::Connector` (`SshConnector`), never by
//! calling `SshSession::connect` outside `src/transport`. Reads the source, like layers.rs.

use std::path::{Path, PathBuf};

/// Files that still call `SshSession::connect` directly, to be moved to the connector. The
/// list may only shrink: a file here that no longer calls it fails the test too.
const PENDING: &[&str] = &[];

/// Every `.rs` file under `src/`, as (path relative to the crate, code without `//` comments).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, without_comments(&std::fs::read_to_string(&p).unwrap()))
        })
        .collect()
}

fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |at| &l[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `word` as an identifier of its own (not part of a longer one).
fn names(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(at, _)| {
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        let before = code[..at].chars().last().is_some_and(ident);
        let after = code[at + word.len()..].chars().next().is_some_and(ident);
        !before && !after
    })
}

#[test]
fn russh_is_named_only_inside_transport_ssh() {
    let files = sources();
    assert!(files.len() > 50, "the reader found too few files");
    let (inside, outside): (Vec<_>, Vec<_>) = files
        .iter()
        .partition(|(path, _)| path.starts_with("src/transport/ssh/"));
    assert!(
        inside.iter().any(|(_, code)| names(code, "russh")),
        "the reader must see russh in src/transport/ssh"
    );
    let offenders: Vec<&str> = outside
        .iter()
        .filter(|(_, code)| names(code, "russh"))
        .map(|(path, _)| path.as_str())
        .collect();
    assert!(
        offenders.is_empty(),
        "russh outside src/transport/ssh (wrap what you need in transport::ssh): {offenders:#?}"
    );
}

#[test]
fn connections_are_opened_through_the_connector() {
    let calling: Vec<String> = sources()
        .into_iter()
        .filter(|(path, code)| {
            !path.starts_with("src/transport/") && code.contains("SshSession::connect")
        })
        .map(|(path, _)| path)
        .collect();
    let new: Vec<&String> = calling
        .iter()
        .filter(|p| !PENDING.contains(&p.as_str()))
        .collect();
    assert!(
        new.is_empty(),
        "SshSession::connect called outside src/transport: open connections with a \
         transport::Connector (transport::ssh::SshConnector) instead: {new:#?}"
    );
    let done: Vec<&&str> = PENDING
        .iter()
        .filter(|p| !calling.iter().any(|c| c == *p))
        .collect();
    assert!(
        done.is_empty(),
        "these no longer call SshSession::connect: remove them from PENDING: {done:#?}"
    );
}

#[test]
fn the_reader_tells_words_from_parts_of_words() {
    assert!(names("use russh::keys;", "russh"));
    assert!(!names("let my_russh_thing = 1;", "russh"));
    assert!(!names(&without_comments("x // russh here"), "russh"));
}
