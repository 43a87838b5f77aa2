//! The contract every step kind's test checks, shared by `steps.rs` and `kinds.rs`: a
//! [`Target`] (a project and one sshd) whose `plan_changes` and `converge` assert plan → up →
//! up (0 changes). Included with `#[path = "support/target.rs"] mod target;` beside `mod support;`.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// A project with one sshd, logging in as `user`.
pub struct Target {
    pub p: Project,
    pub sshd: Sshd,
    pub key: ClientKey,
    pub user: String,
    /// Unique per test: provision keeps per-app state (the deploy lock) in the login user's
    /// home, which tests logging in as the same non-root user share.
    pub app: String,
}

impl Target {
    pub fn new(user: &str) -> Target {
        Target::with_env(user, "")
    }

    /// `env_extra` is appended to `[env.test]`.
    pub fn with_env(user: &str, env_extra: &str) -> Target {
        let p = Project::new();
        let key = ClientKey::generate(&p.path("keys"));
        let sshd = Sshd::start(&key);
        let app = format!("app-{}", sshd.port);
        let t = Target {
            p,
            sshd,
            key,
            user: user.to_string(),
            app,
        };
        t.set_env(env_extra);
        t
    }

    pub fn set_env(&self, env_extra: &str) {
        let mut toml = project_toml(
            &self.app,
            &[self.sshd.addr(&self.user)],
            &self.key,
            "connect_timeout = \"10s\"",
        );
        toml.push_str(env_extra);
        toml.push('\n');
        self.p.write("provision.toml", &toml);
    }

    pub fn fill(&self, text: &str) -> String {
        text.replace("@R", &self.p.remote.display().to_string())
            .replace("@P", &self.p.dir.path().display().to_string())
    }

    pub fn playbook(&self, text: &str) {
        self.p.write("playbooks/deploy.toml", &self.fill(text));
    }

    pub fn remote(&self, rel: &str) -> PathBuf {
        self.p.remote.join(rel)
    }

    pub fn plan(&self) -> Run {
        let r = self.p.run(&["plan", "test", "--output", "json"]);
        r.expect_code(0);
        assert_eq!(r.failed(), 0, "plan failed a step\n{}", r.dump());
        r
    }

    pub fn up(&self) -> Run {
        let r = self.p.run(&["up", "test", "--output", "json"]);
        r.expect_code(0);
        r
    }

    /// `plan` on a fresh target: the steps it would change, which must be `expect`.
    pub fn plan_changes(&self, expect: &[&str]) -> BTreeSet<String> {
        let plan = self.plan();
        let would = plan.steps_with("changed");
        assert_eq!(
            would,
            names(expect),
            "plan listed other changes\n{}",
            plan.dump()
        );
        assert_eq!(plan.changed(), expect.len(), "{}", plan.dump());
        assert_eq!(plan.finished()["mode"], "check");
        self.p
            .run(&["plan", "test", "--detailed-exitcode"])
            .expect_code(2);
        would
    }

    /// `up` changes exactly `would`; a second `up` changes nothing; then
    /// `plan --detailed-exitcode` exits 0.
    pub fn converge(&self, would: &BTreeSet<String>) -> Run {
        let up = self.up();
        assert_eq!(
            &up.steps_with("changed"),
            would,
            "up changed other steps than plan listed\n{}",
            up.dump()
        );
        assert_eq!(up.changed(), would.len(), "{}", up.dump());
        assert_eq!(up.failed(), 0, "{}", up.dump());
        assert_eq!(up.finished()["exit_code"], 0);

        let again = self.up();
        assert_eq!(
            again.changed(),
            0,
            "second up changed something\n{}",
            again.dump()
        );
        assert!(again.steps_with("changed").is_empty());

        let check = self.p.run(&["plan", "test", "--detailed-exitcode"]);
        check.expect_code(0);
        up
    }
}

pub fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn sh(script: &str) -> (bool, String) {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("run sh");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Removes a path outside the remote root (e.g. under /etc) when the test ends, even on panic.
pub struct Cleanup(pub PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
