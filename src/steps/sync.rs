//! `sync`: a host directory holds the files and directories of a local one, compared by
//! sha256 and mode; extra entries on the host are removed only with `delete = true`.
//!
//! The probe lists the host directory (`find -printf`, NUL-separated, so any name is read
//! exactly) and hashes its files (`sha256sum -z`). `decide` works out what differs and keeps
//! it for `apply`, which sends one tar archive (the `tar` crate) of only the entries that
//! differ, extracted by the host's `tar` in the same script that removes what must go: one
//! round trip for the changes. Local symbolic links are refused (what they point to on the
//! host is not ours to say).

use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Local directory, relative to the folder holding provision.toml.
    pub src: String,
    /// Absolute directory on the host.
    pub dest: String,
    /// Remove what is in `dest` but not in `src`.
    #[serde(default)]
    pub delete: bool,
}

impl Kind for Spec {
    const NAME: &'static str = "sync";

    fn target(&self) -> String {
        self.dest.clone()
    }

    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        let dest = self.dest.trim_end_matches('/');
        if !self.dest.starts_with('/') || dest.is_empty() {
            return Err(PrepareError::Invalid(format!(
                "dest `{}` must be an absolute directory, not `/`",
                self.dest
            )));
        }
        let root = cx.root.join(&self.src);
        let mut local = BTreeMap::new();
        walk(&root, &root, &mut local)?;
        Ok(Box::new(Desired {
            dest: dest.to_string(),
            delete: self.delete,
            local,
            found: Mutex::new(None),
        }))
    }
}

/// One entry of either side, by its path relative to the synced directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File {
        sha256: String,
        mode: u32,
    },
    Dir {
        mode: u32,
    },
    /// On the host only: a link, socket, … (always replaced or removed).
    Other,
}

#[derive(Debug, Clone)]
struct LocalFile {
    entry: Entry,
    /// The content of a file (empty for a directory).
    content: Vec<u8>,
}

/// The local tree under `dir`, keyed by path relative to `root`.
fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, LocalFile>,
) -> Result<(), PrepareError> {
    let read = |path: &Path, source| PrepareError::Read {
        path: path.to_path_buf(),
        source,
    };
    for item in std::fs::read_dir(dir).map_err(|e| read(dir, e))? {
        let path = item.map_err(|e| read(dir, e))?.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| read(&path, e))?;
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .to_string();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            out.insert(
                rel,
                LocalFile {
                    entry: Entry::Dir { mode },
                    content: Vec::new(),
                },
            );
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let content = std::fs::read(&path).map_err(|e| read(&path, e))?;
            let sha256 = hex::encode(Sha256::digest(&content));
            out.insert(
                rel,
                LocalFile {
                    entry: Entry::File { sha256, mode },
                    content,
                },
            );
        } else {
            return Err(PrepareError::Invalid(format!(
                "{} is not a regular file or directory: sync copies only those",
                path.display()
            )));
        }
    }
    Ok(())
}

/// What one run must do: entries to (re)write, in order, and host paths to remove first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Todo {
    write: Vec<String>,
    remove: Vec<String>,
}

#[derive(Debug)]
pub struct Desired {
    dest: String,
    delete: bool,
    local: BTreeMap<String, LocalFile>,
    /// What `decide` found, for `apply` (which runs right after it, on this host's step).
    found: Mutex<Option<Todo>>,
}

/// The host's entries from the probe: `<type> <octal mode> ./<path>\0` records after
/// `entries:`, then `<sha256>  ./<path>\0` records after `sums:`.
fn parse_remote(out: &str) -> Option<BTreeMap<String, Entry>> {
    let (_, rest) = out.split_once("entries:\n")?;
    let (entries, sums) = rest.split_once("sums:\n")?;
    let mut hashes = BTreeMap::new();
    for rec in sums.split('\0').filter(|r| !r.is_empty()) {
        let (sum, path) = rec.split_once("  ")?;
        hashes.insert(path.trim_start_matches("./").to_string(), sum.to_string());
    }
    let mut map = BTreeMap::new();
    for rec in entries.split('\0').filter(|r| !r.is_empty()) {
        let mut parts = rec.splitn(3, ' ');
        let (kind, mode, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.strip_prefix("./")?.to_string();
        let mode = u32::from_str_radix(mode, 8).ok()?;
        let entry = match kind {
            "f" => Entry::File {
                sha256: hashes.get(&path).cloned().unwrap_or_default(),
                mode,
            },
            "d" => Entry::Dir { mode },
            _ => Entry::Other,
        };
        map.insert(path, entry);
    }
    Some(map)
}

impl Desired {
    fn todo(&self, remote: &BTreeMap<String, Entry>) -> Todo {
        let mut todo = Todo::default();
        for (path, local) in &self.local {
            match (remote.get(path), &local.entry) {
                (Some(r), l) if r == l => {}
                // Same type, other content or mode: rewritten in place.
                (Some(Entry::File { .. }), Entry::File { .. })
                | (Some(Entry::Dir { .. }), Entry::Dir { .. })
                | (None, _) => todo.write.push(path.clone()),
                // Another type: removed first.
                (Some(_), _) => {
                    todo.remove.push(path.clone());
                    todo.write.push(path.clone());
                }
            }
        }
        if self.delete {
            let extra = remote.keys().filter(|p| !self.local.contains_key(*p));
            // A removed directory takes what is under it: its entries need no line of their own.
            for path in extra {
                if !todo
                    .remove
                    .iter()
                    .any(|r| path.starts_with(&format!("{r}/")))
                {
                    todo.remove.push(path.clone());
                }
            }
        }
        todo
    }

    /// The tar archive of the entries to write (directories before what is in them: the
    /// local map is sorted, so a directory comes before its children).
    fn archive(&self, todo: &Todo) -> std::io::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for path in &todo.write {
            let Some(local) = self.local.get(path) else {
                continue;
            };
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(now);
            match &local.entry {
                Entry::Dir { mode } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    h.set_size(0);
                    b.append_data(&mut h, path, std::io::empty())?;
                }
                Entry::File { mode, .. } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(local.content.len() as u64);
                    b.append_data(&mut h, path, local.content.as_slice())?;
                }
                Entry::Other => {}
            }
        }
        b.into_inner()
    }
}

impl StepKind for Desired {
    fn probe(&self, _check: bool) -> Option<String> {
        let d = quote(&self.dest);
        Some(format!(
            "if [ -L {d} ]; then echo state=link; elif [ -d {d} ]; then echo state=dir; elif [ -e {d} ]; then echo state=other; else echo state=missing; fi\n\
             if [ -d {d} ] && [ ! -L {d} ]; then (cd {d} && printf 'entries:\\n' && find . -mindepth 1 -printf '%y %m %p\\0' && \
             printf 'sums:\\n' && find . -mindepth 1 -type f -exec sha256sum -z {{}} +); fi"
        ))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        let dest = &self.dest;
        let remote = match p.field("state") {
            Some("missing") => BTreeMap::new(),
            Some("dir") => match parse_remote(&p.out) {
                Some(r) => r,
                None => return Decision::Fail(format!("could not list {dest}")),
            },
            Some(other) => {
                return Decision::Fail(format!("{dest} exists but is a {other}, not a directory"));
            }
            None => return Decision::Fail(format!("could not inspect {dest}")),
        };
        let todo = self.todo(&remote);
        let summary = if todo.write.is_empty() && todo.remove.is_empty() {
            None
        } else {
            Some(format!(
                "sync {dest}: {} to write, {} to remove",
                todo.write.len(),
                todo.remove
                    .iter()
                    .filter(|r| !todo.write.contains(r))
                    .count()
            ))
        };
        *self.found.lock().unwrap_or_else(|e| e.into_inner()) = Some(todo);
        match summary {
            None => Decision::Ok(format!("{dest} in sync ({} entries)", self.local.len())),
            Some(s) => Decision::change(s),
        }
    }

    /// Without a decision first (never in a run), everything is written and nothing removed.
    fn apply(&self) -> Action {
        let todo = self
            .found
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| Todo {
                write: self.local.keys().cloned().collect(),
                remove: Vec::new(),
            });
        let mut script = format!(
            "set -e\nmkdir -p -- {d}\ncd -P -- {d}\n",
            d = quote(&self.dest)
        );
        for path in &todo.remove {
            script.push_str(&format!("rm -rf -- ./{}\n", quote(path)));
        }
        // `-p`: the archive's modes as they are, whatever the umask (the probe compares them).
        script.push_str("tar -x -p -f - --no-same-owner\n");
        match self.archive(&todo) {
            Ok(tar) => Action {
                script,
                stdin: Some(tar),
                ..Action::default()
            },
            // Writing into a Vec cannot fail short of running out of memory.
            Err(e) => Action::script(format!(
                "echo 'cannot build the archive: {e}' >&2; exit 1\n"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(delete: bool, files: &[(&str, &str)]) -> Desired {
        let mut local = BTreeMap::new();
        for (path, content) in files {
            let entry = if content.is_empty() {
                Entry::Dir { mode: 0o755 }
            } else {
                Entry::File {
                    sha256: hex::encode(Sha256::digest(content.as_bytes())),
                    mode: 0o644,
                }
            };
            local.insert(
                path.to_string(),
                LocalFile {
                    entry,
                    content: content.as_bytes().to_vec(),
                },
            );
        }
        Desired {
            dest: "/srv/site".into(),
            delete,
            local,
            found: Mutex::new(None),
        }
    }

    fn sum(s: &str) -> String {
        hex::encode(Sha256::digest(s.as_bytes()))
    }

    #[test]
    fn parses_nul_separated_listing() {
        let out = format!(
            "state=dir\nentries:\nd 755 ./a\0f 644 ./a/x y\0f 600 ./new\nline\0l 777 ./ln\0sums:\n{}  ./a/x y\0{}  ./new\nline\0",
            sum("1"),
            sum("2")
        );
        let r = parse_remote(&out).unwrap();
        assert_eq!(r["a"], Entry::Dir { mode: 0o755 });
        assert_eq!(
            r["a/x y"],
            Entry::File {
                sha256: sum("1"),
                mode: 0o644
            }
        );
        assert_eq!(
            r["new\nline"],
            Entry::File {
                sha256: sum("2"),
                mode: 0o600
            }
        );
        assert_eq!(r["ln"], Entry::Other);
    }

    #[test]
    fn todo_writes_what_differs_and_removes_extras_only_with_delete() {
        let remote = BTreeMap::from([
            ("a".to_string(), Entry::Dir { mode: 0o755 }),
            (
                "a/same".to_string(),
                Entry::File {
                    sha256: sum("s"),
                    mode: 0o644,
                },
            ),
            (
                "a/old".to_string(),
                Entry::File {
                    sha256: sum("o"),
                    mode: 0o644,
                },
            ),
            ("b".to_string(), Entry::Dir { mode: 0o755 }),
            ("extra".to_string(), Entry::Dir { mode: 0o755 }),
            (
                "extra/f".to_string(),
                Entry::File {
                    sha256: sum("e"),
                    mode: 0o644,
                },
            ),
        ]);
        let files = [
            ("a", ""),
            ("a/same", "s"),
            ("a/old", "new"),
            ("b", "now a file"),
            ("c", "c"),
        ];
        let keep = desired(false, &files).todo(&remote);
        assert_eq!(keep.write, ["a/old", "b", "c"]);
        assert_eq!(keep.remove, ["b"]);
        let del = desired(true, &files).todo(&remote);
        assert_eq!(del.remove, ["b", "extra"], "extra/f goes with extra");
    }

    #[test]
    fn decide_keeps_the_todo_for_apply() {
        let d = desired(true, &[("f", "x")]);
        let missing = Probe::with_out("state=missing\n");
        assert_eq!(
            d.decide(Some(&missing)),
            Decision::change("sync /srv/site: 1 to write, 0 to remove")
        );
        let a = d.apply();
        assert!(
            a.script.contains("tar -x -p -f - --no-same-owner"),
            "{}",
            a.script
        );
        let mut archive = tar::Archive::new(a.stdin.as_deref().unwrap());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["f"]);
        let same = Probe::with_out(format!(
            "state=dir\nentries:\nf 644 ./f\0sums:\n{}  ./f\0",
            sum("x")
        ));
        assert!(matches!(d.decide(Some(&same)), Decision::Ok(_)));
    }
}
