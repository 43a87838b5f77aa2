//! provision.toml and playbook loaders: any text gives a value or a ConfigError, never a
//! panic, and the error's location is inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provision::config::{Playbook, Project};
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
