//! Embeds the git commit in `provision --version`: `0.1.0 (3f2a9c1)`, or `0.1.0` when the
//! source is not a git checkout (a tarball, `cargo install` from crates.io).

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PROVISION_GIT_SHA");
    // An explicit SHA (packagers building outside a checkout) wins.
    let sha = std::env::var("PROVISION_GIT_SHA")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]));
    if let (Some(git_dir), Some(common)) = (
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) {
        // Rebuild when HEAD moves: HEAD itself (checkout), the branch it points to (commit),
        // packed-refs (gc). Only existing files: a missing one would rerun every build.
        let mut watch = vec![
            Path::new(&git_dir).join("HEAD"),
            Path::new(&common).join("packed-refs"),
        ];
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(Path::new(&common).join(head_ref));
        }
        for path in watch.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let full = match sha {
        Some(sha) => format!("{version} ({sha})"),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=PROVISION_VERSION={full}");
}
