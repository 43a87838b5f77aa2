//! Links are never followed with root's rights (issue 12, items 6 and 7). The recommended
//! layout has an app user owning the app directory; a `become` deploy writes into it as root.
//! That user can swap any entry of the directory for a symlink at any moment: the directory
//! a `directory` step sets up, the temp file of an upload. Here a real unprivileged user does
//! exactly that in a tight loop during real deploys, and nothing outside the target paths may
//! change owner, mode or content. And `plan` never reads through a link into a diff.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const APP_USER: &str = "provrace-app";
const DEPLOY_USER: &str = "provrace-dep";

fn chown(path: &Path, user: &str) {
    let ok = Command::new("chown")
        .arg(format!("{user}:"))
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// (uid, mode, content) of the victims, to compare before and after.
fn victims(root: &Path) -> Vec<(String, u32, u32, Vec<u8>)> {
    ["victim", "victim.txt"]
        .iter()
        .map(|n| {
            let p = root.join(n);
            let m = std::fs::metadata(&p).unwrap();
            let content = if m.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            (
                n.to_string(),
                m.uid(),
                m.permissions().mode() & 0o7777,
                content,
            )
        })
        .collect()
}

#[test]
fn an_app_user_swapping_links_gains_nothing_from_a_become_deploy() {
    ensure_user(APP_USER, false);
    ensure_user(DEPLOY_USER, true);
    let servers = Servers::start(1);
    let p = servers.project("race", DEPLOY_USER, "", "ssh = { become = true }\n");
    let root = p.remote.clone();
    let app = root.join("app");
    std::fs::create_dir_all(app.join("data")).unwrap();
    chown(&app, APP_USER);
    chown(&app.join("data"), APP_USER);
    std::fs::create_dir(root.join("victim")).unwrap();
    std::fs::set_permissions(root.join("victim"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(root.join("victim.txt"), "root's secret\n").unwrap();
    std::fs::set_permissions(
        root.join("victim.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let before = victims(&root);

    // The attacker: for 25 s, swap `data` between a directory and a link to `victim`, and
    // every upload temp entry for a link to `victim.txt`.
    let a = app.display();
    let r = root.display();
    let attack = format!(
        "end=$(( $(date +%s) + 25 ))\n\
         cd {a} || exit 1\n\
         while [ $(date +%s) -lt $end ]; do\n\
           for t in .provision.*; do [ -e \"$t\" ] || continue; [ -L \"$t\" ] && continue; \
             mv -f -- \"$t\" \"gone$t\" 2>/dev/null && ln -sf {r}/victim.txt \"$t\"; done\n\
           rm -rf data 2>/dev/null; ln -s {r}/victim data 2>/dev/null\n\
           for t in .provision.*; do [ -e \"$t\" ] || continue; [ -L \"$t\" ] && continue; \
             mv -f -- \"$t\" \"gone$t\" 2>/dev/null && ln -sf {r}/victim.txt \"$t\"; done\n\
           rm -f data 2>/dev/null; mkdir data 2>/dev/null\n\
         done\n"
    );
    let mut attacker = Command::new("runuser")
        .args(["-u", APP_USER, "--", "/bin/sh", "-c", &attack])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runuser (util-linux)");

    let started = Instant::now();
    let mut runs = 0;
    while started.elapsed() < Duration::from_secs(20) {
        runs += 1;
        p.write("files/conf.txt", &format!("run {runs}\n"));
        p.write(
            "playbooks/deploy.toml",
            &format!(
                "[[step]]\ndirectory = {{ path = \"{a}/data\", owner = \"{APP_USER}\", mode = \"0777\" }}\n\
                 [[step]]\nfile = {{ src = \"files/conf.txt\", dest = \"{a}/conf.txt\", owner = \"{APP_USER}\", mode = \"0666\" }}\n"
            ),
        );
        let out = p.run(&["up", "test"]);
        assert!(
            matches!(out.code, 0 | 3),
            "run {runs}: a deploy either lands or fails its step:\n{}",
            out.dump()
        );
    }
    let _ = attacker.wait();
    assert!(runs >= 5, "only {runs} deploys ran");
    assert_eq!(
        victims(&root),
        before,
        "a file outside the targets changed owner, mode or content"
    );
}

#[test]
fn plan_never_reads_through_a_symlinked_dest() {
    let s = Setup::new("link", 1, "");
    let secret = s.p.remote.join("shadow-like");
    std::fs::write(&secret, "root:$6$very-secret-hash\n").unwrap();
    let dest = s.p.remote.join("conf.txt");
    std::os::unix::fs::symlink(&secret, &dest).unwrap();
    s.p.write("files/conf.txt", "new\n");
    s.p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nfile = {{ src = \"files/conf.txt\", dest = \"{}\" }}\n",
            dest.display()
        ),
    );
    for cmd in [&["plan", "test", "-vv"][..], &["up", "test", "-vv"][..]] {
        let r = s.p.run(cmd);
        r.expect_code(3);
        assert!(
            !r.stdout.contains("very-secret") && !r.stderr.contains("very-secret"),
            "{cmd:?} printed what the link points to:\n{}",
            r.dump()
        );
        assert!(r.stdout.contains("link"), "{}", r.dump());
    }
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "root:$6$very-secret-hash\n",
        "up wrote through the link"
    );
}
