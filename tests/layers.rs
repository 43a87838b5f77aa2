//! The module layering of `src/` (ARCHITECTURE.md, "Layers"): every `crate::`/`super::` path
//! in non-test code must point to a lower layer (or inside its own module), and no two sibling
//! modules anywhere may import each other in a cycle. Reads the source; no build tricks.

mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bottom first. A module may use those before it in this list, never those after it.
const LAYERS: &[&str] = &[
    "error",
    "value",
    "transport",
    "template",
    "secrets",
    "remote",
    "controller",
    "steps",
    "config",
    "inventory",
    "cloud",
    "plan",
    "report",
    "runner",
    "commands",
    "cli",
];

/// A source file and its module path (`src/transport/ssh/auth.rs` → transport::ssh::auth).
struct SourceFile {
    module: Vec<String>,
    text: String,
}

/// The module path of `src/<path>`.
fn module_of(path: &str) -> Vec<String> {
    let rel = path.trim_start_matches("src/").trim_end_matches(".rs");
    rel.split('/')
        .filter(|part| !matches!(*part, "mod" | "lib" | "main"))
        .map(str::to_string)
        .collect()
}

/// Non-test code without `//` comments (test modules may reach anything they test).
fn strip_tests_and_comments(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    source::without_comments(code)
}

/// Every path that starts at `crate::`, `super::` or `self::`, expanded over `{a, b::c}` groups.
fn paths(text: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for root in ["crate::", "super::", "self::"] {
        let mut rest = text;
        while let Some(at) = rest.find(root) {
            let before = rest[..at].chars().last();
            rest = &rest[at + root.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            for p in expand(rest) {
                found.push((root.trim_end_matches("::").to_string(), p));
            }
        }
    }
    found
}

/// `a::b::{c, d::e}` at the start of `text` → [a b c], [a b d e].
fn expand(text: &str) -> Vec<Vec<String>> {
    let mut prefix = Vec::new();
    let mut rest = text;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            prefix.push(rest[..end].to_string());
            rest = &rest[end..];
        }
        if let Some(r) = rest.strip_prefix("::") {
            rest = r;
            if let Some(group) = rest.strip_prefix('{') {
                let inner = &group[..matching_brace(group)];
                return split_top(inner)
                    .into_iter()
                    .flat_map(|item| {
                        expand(item.trim()).into_iter().map(|tail| {
                            let mut p = prefix.clone();
                            p.extend(tail);
                            p
                        })
                    })
                    .collect();
            }
            continue;
        }
        return vec![prefix];
    }
}

fn matching_brace(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

fn split_top(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// The absolute module path a reference from `module` names.
fn resolve(module: &[String], root: &str, path: &[String]) -> Vec<String> {
    let mut base: Vec<String> = match root {
        "crate" => Vec::new(),
        _ => module.to_vec(),
    };
    let mut path = path;
    if root == "super" {
        base.pop();
        // `super::super::x`
        while path.first().is_some_and(|p| p == "super") {
            base.pop();
            path = &path[1..];
        }
    }
    base.extend(path.iter().cloned());
    base
}

struct Graph {
    /// parent module → (child → children it uses)
    edges: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>>,
    /// (file module, what it names) for edges between top-level modules
    top: Vec<(String, String)>,
}

fn graph() -> Graph {
    let files: Vec<SourceFile> = source::files()
        .into_iter()
        .map(|f| SourceFile {
            module: module_of(&f.path),
            text: strip_tests_and_comments(&f.text),
        })
        .collect();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    let mut g = Graph {
        edges: BTreeMap::new(),
        top: Vec::new(),
    };
    for f in &files {
        for (root, p) in paths(&f.text) {
            let target = resolve(&f.module, &root, &p);
            let k = f
                .module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if k >= f.module.len() || k >= target.len() {
                continue; // into itself or its own parent's items
            }
            let mut sibling = target[..k].to_vec();
            sibling.push(target[k].clone());
            if !modules.iter().any(|m| m.starts_with(&sibling)) {
                continue; // an item of the parent, not a sibling module
            }
            if k == 0 {
                g.top.push((f.module[0].clone(), target[0].clone()));
            }
            g.edges
                .entry(target[..k].to_vec())
                .or_default()
                .entry(f.module[k].clone())
                .or_default()
                .insert(target[k].clone());
        }
    }
    g
}

fn layer(name: &str) -> usize {
    LAYERS.iter().position(|l| *l == name).unwrap_or_else(|| {
        panic!("src/{name} is in no layer: add it to LAYERS here and to ARCHITECTURE.md")
    })
}

#[test]
fn every_top_level_import_points_down() {
    let g = graph();
    let mut up: BTreeSet<String> = BTreeSet::new();
    for (from, to) in &g.top {
        if layer(to) > layer(from) {
            up.insert(format!("{from} -> {to}"));
        }
    }
    assert!(
        g.top.len() > 50,
        "the reader found too few imports: {}",
        g.top.len()
    );
    assert!(up.is_empty(), "imports that point up a layer: {up:#?}");
}

fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == n) {
            let mut c = stack[at..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if !done.insert(n.to_string()) {
            return None;
        }
        stack.push(n.to_string());
        for next in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_sibling_modules_import_each_other_in_a_cycle() {
    let g = graph();
    let cycles: Vec<String> = g
        .edges
        .iter()
        .filter_map(|(parent, edges)| {
            cycle(edges).map(|c| format!("in crate::{}: {}", parent.join("::"), c.join(" -> ")))
        })
        .collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn the_reader_sees_grouped_and_nested_paths() {
    let p = expand("config::{ConfigError, ec2::{At, Ec2Env}}, x");
    assert_eq!(
        p,
        vec![
            vec!["config".to_string(), "ConfigError".into()],
            vec!["config".into(), "ec2".into(), "At".into()],
            vec!["config".into(), "ec2".into(), "Ec2Env".into()],
        ]
    );
    let m = vec!["transport".to_string(), "ssh".into(), "auth".into()];
    assert_eq!(
        resolve(&m, "super", &["connect".to_string(), "target".into()]),
        vec!["transport", "ssh", "connect", "target"]
    );
}

#[test]
fn architecture_md_lists_the_layers_in_order() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let line = doc
        .lines()
        .find(|l| l.starts_with("Layers, bottom first:"))
        .expect("ARCHITECTURE.md has a line `Layers, bottom first: a → b → …`");
    let listed: Vec<&str> = line["Layers, bottom first:".len()..]
        .split('→')
        .map(|s| s.trim().trim_matches('`'))
        .collect();
    assert_eq!(
        listed, LAYERS,
        "ARCHITECTURE.md's layer line and tests/layers.rs disagree"
    );
}
