//! provision.toml and playbook loaders: any text gives a value or a ConfigError, never a
//! panic, and the error's location is inside the text. The collecting path (`validate`'s)
//! too: its first error is the normal path's, and every location is inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provision::config::{ConfigError, Playbook, Project};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count() + 1;
    match Project::parse(Path::new("/nonexistent/provision.toml"), text) {
        Ok(project) => {
            for env in project.envs.values() {
                let _ = project.playbook_path(env, None);
            }
        }
        Err(e) => {
            assert!(e.line.is_none_or(|l| l <= lines), "line out of range: {e}");
            let _ = e.to_string();
        }
    }
    let file = Path::new("/nonexistent/provision.toml");
    check_all(
        Project::parse(file, text).err(),
        Project::parse_all(file, text).err(),
        lines,
    );
    let (file, shown) = (Path::new("/nonexistent/p.toml"), "playbooks/p.toml");
    check_all(
        Playbook::parse(file, shown, text).err(),
        Playbook::parse_all(file, shown, text).err(),
        lines,
    );
    match Playbook::parse(Path::new("/nonexistent/p.toml"), "playbooks/p.toml", text) {
        Ok(playbook) => {
            let _ = playbook.check_roles(&["all".to_string(), "web".to_string()], "fuzz");
        }
        Err(e) => {
            assert!(e.line.is_none_or(|l| l <= lines), "line out of range: {e}");
            let _ = e.to_string();
        }
    }
});

/// The collecting path fails exactly when the normal one does, starting with its error.
fn check_all(first: Option<ConfigError>, all: Option<Vec<ConfigError>>, lines: usize) {
    match (first, all) {
        (None, None) => {}
        (Some(first), Some(all)) => {
            assert_eq!(all.first(), Some(&first), "the first error differs");
            for e in &all {
                assert!(e.line.is_none_or(|l| l <= lines), "line out of range: {e}");
                let _ = e.to_string();
            }
        }
        (first, all) => panic!("the paths disagree: {first:?} / {all:?}"),
    }
}
