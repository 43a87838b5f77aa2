//! The one seam to hosts (ARCHITECTURE.md): russh is named only inside `src/transport/ssh`,
//! and connections are opened through `transport::Connector` (`SshConnector`), never by
//! calling `SshSession::connect` outside `src/transport`. Reads the source, like layers.rs.

mod source;

use source::without_comments;

/// Every `.rs` file under `src/`, as (path relative to the crate, code without `//` comments).
fn sources() -> Vec<(String, String)> {
    source::files()
        .into_iter()
        .map(|f| (f.path, without_comments(&f.text)))
        .collect()
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
    assert!(
        calling.is_empty(),
        "SshSession::connect called outside src/transport: open connections with a \
         transport::Connector (transport::ssh::SshConnector) instead: {calling:#?}"
    );
}

#[test]
fn the_reader_tells_words_from_parts_of_words() {
    assert!(names("use russh::keys;", "russh"));
    assert!(!names("let my_russh_thing = 1;", "russh"));
    assert!(!names(&without_comments("x // russh here"), "russh"));
}
