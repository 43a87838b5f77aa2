//! Reading `src/` for the structure tests (layers.rs, seams.rs, output_channel.rs): every
//! `.rs` file with its path relative to the crate, in a stable order.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// One source file: `src/...` (with `/`) and its text.
pub struct Source {
    pub path: String,
    pub text: String,
}

/// Every `.rs` file under `src/`, sorted by path.
pub fn files() -> Vec<Source> {
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
    let mut paths = Vec::new();
    walk(&root.join("src"), &mut paths);
    paths.sort();
    let files: Vec<Source> = paths
        .into_iter()
        .map(|p| Source {
            path: p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/"),
            text: std::fs::read_to_string(&p).unwrap(),
        })
        .collect();
    assert!(files.len() > 50, "src/ was not read: {} files", files.len());
    files
}

/// The code without `//` comments (docs may name what the tests look for).
pub fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |at| &l[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}
