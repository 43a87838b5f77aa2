//! The step kinds of issue 18 end to end (`state = "absent"`, `line_in_file`, `user`,
//! `group`, `sync`): the real binary, a real sshd on 127.0.0.1 logging in as root, real effects
//! on disk. Each test checks the contract of `support/target.rs`: plan lists exactly what up
//! changes, a second up changes nothing.
//!
//! Playbooks are written with placeholders: `@R` is the test's remote root, `@P` the project.

#[path = "support/docker.rs"]
mod docker_support;
mod support;
#[path = "support/target.rs"]
mod target;

use target::*;

// ---------------------------------------------------------------------------------------------
// state = "absent"
// ---------------------------------------------------------------------------------------------

#[test]
fn absent_file_and_directory_are_removed_once() {
    let t = Target::new("root");
    std::fs::write(t.remote("old.conf"), "stale\n").unwrap();
    std::fs::create_dir_all(t.remote("old-tree/a/b")).unwrap();
    std::fs::write(t.remote("old-tree/a/b/f"), "x").unwrap();
    std::fs::write(t.remote("keep"), "kept\n").unwrap();
    // A link's target outlives the link's removal.
    std::os::unix::fs::symlink(t.remote("keep"), t.remote("link.conf")).unwrap();
    t.playbook(
        r#"
[[step]]
name = "rm file"
file = { dest = "@R/old.conf", state = "absent" }

[[step]]
name = "rm tree"
directory = { path = "@R/old-tree/", state = "absent" }

[[step]]
name = "rm link"
file = { dest = "@R/link.conf", state = "absent" }

[[step]]
name = "never there"
file = { dest = "@R/nothing", state = "absent" }
"#,
    );
    let would = t.plan_changes(&["rm file", "rm tree", "rm link"]);
    let plan = t.plan();
    assert!(
        plan.step_text("rm tree").contains("remove"),
        "{}",
        plan.dump()
    );
    assert_eq!(plan.step("never there")["status"], "ok");
    assert!(t.remote("old.conf").exists(), "plan must not remove");

    t.converge(&would);
    assert!(!t.remote("old.conf").exists());
    assert!(!t.remote("old-tree").exists());
    assert!(t.remote("link.conf").symlink_metadata().is_err());
    assert_eq!(read(&t.remote("keep")), "kept\n");
}

#[test]
fn absent_refuses_a_path_of_the_other_type() {
    let t = Target::new("root");
    std::fs::create_dir_all(t.remote("adir/x")).unwrap();
    t.playbook(
        r#"
[[step]]
name = "rm as file"
file = { dest = "@R/adir", state = "absent" }
"#,
    );
    let r = t.p.run(&["up", "test", "--output", "json"]);
    assert_eq!(r.failed(), 1, "{}", r.dump());
    assert!(
        r.step_text("rm as file").contains("not a file"),
        "{}",
        r.dump()
    );
    assert!(
        t.remote("adir/x").is_dir(),
        "a directory is never removed as a file"
    );
}

/// A stopped and a running container, and the `--previous` a stop-first swap keeps, are
/// removed; a stateful one only with --allow-recreate; a name never created is ok.
#[test]
fn absent_container_is_removed_once() {
    use docker_support::*;
    let host = docker_host();
    let app = app_name("dkabsent");
    cleanup_app(&app);
    let t = Target::with_env(
        "root",
        &format!("remote_env = {{ DOCKER_HOST = {host:?} }}"),
    );
    docker(&["create", "--name", &app, BASE_IMAGE, "true"]);
    let previous = format!("{app}--previous");
    docker(&["run", "-d", "--name", &previous, BASE_IMAGE, "sleep", "600"]);
    let db = format!("{app}-db");
    docker(&["create", "--name", &db, BASE_IMAGE, "true"]);
    t.playbook(&format!(
        r#"
[[step]]
name = "rm app"
docker_run = {{ name = "{app}", state = "absent" }}

[[step]]
name = "rm never made"
docker_run = {{ name = "{app}-none", state = "absent" }}
"#
    ));
    let would = t.plan_changes(&["rm app"]);
    assert!(container_id(&app).is_some(), "plan must not remove");
    t.converge(&would);
    assert!(container_id(&app).is_none());
    assert!(container_id(&previous).is_none());

    t.playbook(&format!(
        r#"
[[step]]
name = "rm db"
docker_run = {{ name = "{db}", state = "absent", stateful = true }}
"#
    ));
    let refused = t.p.run(&["up", "test", "--output", "json"]);
    assert_eq!(refused.failed(), 1, "{}", refused.dump());
    assert!(
        container_id(&db).is_some(),
        "a stateful container needs --allow-recreate"
    );
    let forced =
        t.p.run(&["up", "test", "--allow-recreate", "--output", "json"]);
    assert_eq!(forced.changed(), 1, "{}", forced.dump());
    assert!(container_id(&db).is_none());
    cleanup_app(&app);
}

// ---------------------------------------------------------------------------------------------
// line_in_file
// ---------------------------------------------------------------------------------------------

#[test]
fn line_in_file_sets_adds_removes_and_creates() {
    let t = Target::new("root");
    let conf = t.remote("app.conf");
    std::fs::write(
        &conf,
        "# app\nport = 1\nname = x\n# old comment\nkeep = $HOME \\t\n",
    )
    .unwrap();
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    };
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    std::fs::write(t.remote("already"), "x = 1\n").unwrap();
    t.playbook(
        r#"
[[step]]
name = "port"
line_in_file = { path = "@R/app.conf", regexp = "^port *=", line = "port = 8080" }

[[step]]
name = "add"
line_in_file = { path = "@R/app.conf", line = "debug = false" }

[[step]]
name = "no comments"
line_in_file = { path = "@R/app.conf", regexp = "^#", state = "absent" }

[[step]]
name = "created"
line_in_file = { path = "@R/new/made.conf", line = "a = b", create = true, mode = "0600" }

[[step]]
name = "already there"
line_in_file = { path = "@R/already", line = "x = 1" }

[[step]]
name = "already gone"
line_in_file = { path = "@R/nothing", line = "x", state = "absent" }
"#,
    );
    let before = read(&conf);
    let would = t.plan_changes(&["port", "add", "no comments", "created"]);
    assert_eq!(read(&conf), before, "plan must not edit");
    let plan = t.plan();
    assert!(
        plan.step_text("port").contains("matching /^port *=/"),
        "{}",
        plan.dump()
    );

    t.converge(&would);
    assert_eq!(
        read(&conf),
        "port = 8080\nname = x\nkeep = $HOME \\t\ndebug = false\n"
    );
    assert_eq!(mode(&conf), 0o640, "an edited file keeps its mode");
    assert_eq!(read(&t.remote("new/made.conf")), "a = b\n");
    assert_eq!(mode(&t.remote("new/made.conf")), 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(t.remote(""))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".provision."))
        .collect();
    assert!(
        leftovers.is_empty(),
        "staging directories left: {leftovers:?}"
    );
}

#[test]
fn line_in_file_needs_create_for_a_missing_file() {
    let t = Target::new("root");
    t.playbook(
        r#"
[[step]]
name = "edit missing"
line_in_file = { path = "@R/missing.conf", line = "a = b" }
"#,
    );
    let r = t.p.run(&["up", "test", "--output", "json"]);
    assert_eq!(r.failed(), 1, "{}", r.dump());
    assert!(
        r.step_text("edit missing").contains("create = true"),
        "{}",
        r.dump()
    );
    assert!(!t.remote("missing.conf").exists());
}

// ---------------------------------------------------------------------------------------------
// user and group
// ---------------------------------------------------------------------------------------------

/// Removes the test's users, then its groups, from this machine when the test ends (the sshd
/// runs as root on loopback, so `user` steps make real accounts here).
struct Accounts {
    users: Vec<String>,
    groups: Vec<String>,
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = std::process::Command::new("userdel")
                .args(["-r", u])
                .output();
        }
        for g in &self.groups {
            let _ = std::process::Command::new("groupdel").arg(g).output();
        }
    }
}

fn getent(db: &str, name: &str) -> Option<String> {
    let out = std::process::Command::new("getent")
        .args([db, name])
        .output()
        .expect("getent");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A free uid/gid above the ones the machine uses (the test picks, so it can check it).
fn free_id(t: &Target) -> u32 {
    (41000 + u32::from(t.sshd.port) % 20000..)
        .find(|id| {
            getent("passwd", &id.to_string()).is_none()
                && getent("group", &id.to_string()).is_none()
        })
        .unwrap()
}

#[test]
fn user_and_group_are_made_changed_and_removed() {
    let t = Target::new("root");
    let tag = format!("pvk{}", t.sshd.port);
    let (user, team, extra) = (format!("{tag}u"), format!("{tag}g"), format!("{tag}x"));
    let _cleanup = Accounts {
        users: vec![user.clone()],
        groups: vec![team.clone(), extra.clone(), user.clone()],
    };
    let id = free_id(&t);
    let home = t.remote("home-u").display().to_string();
    let play = |shell: &str, groups: &str| {
        format!(
            r#"
[[step]]
name = "team"
group = {{ name = "{team}", gid = {id} }}

[[step]]
name = "extra"
group = {{ name = "{extra}", system = true }}

[[step]]
name = "user"
user = {{ name = "{user}", uid = {id}, groups = [{groups}], shell = "{shell}", home = "{home}" }}
"#
        )
    };
    t.playbook(&play("/bin/sh", &format!("\"{team}\"")));
    let would = t.plan_changes(&["team", "extra", "user"]);
    assert!(getent("passwd", &user).is_none(), "plan must not create");
    t.converge(&would);
    let passwd = getent("passwd", &user).expect("user made");
    assert_eq!(
        passwd,
        format!(
            "{user}:x:{id}:{}::{home}:/bin/sh",
            passwd.split(':').nth(3).unwrap()
        )
    );
    assert!(
        std::path::Path::new(&home).is_dir(),
        "useradd -m makes the home"
    );
    assert_eq!(
        getent("group", &team).unwrap(),
        format!("{team}:x:{id}:{user}")
    );

    // A changed shell and group list is one change, made with usermod.
    t.playbook(&play("/bin/bash", &format!("\"{team}\", \"{extra}\"")));
    let would = t.plan_changes(&["user"]);
    let plan = t.plan();
    assert!(
        plan.step_text("user").contains("shell /bin/sh → /bin/bash"),
        "{}",
        plan.dump()
    );
    t.converge(&would);
    assert!(getent("passwd", &user).unwrap().ends_with(":/bin/bash"));
    assert!(
        getent("group", &extra)
            .unwrap()
            .ends_with(&format!(":{user}"))
    );

    // Absent: the user first (a group that is a primary group cannot go before its user).
    t.playbook(&format!(
        r#"
[[step]]
name = "no user"
user = {{ name = "{user}", state = "absent" }}

[[step]]
name = "no extra"
group = {{ name = "{extra}", state = "absent" }}

[[step]]
name = "no ghost"
group = {{ name = "{tag}none", state = "absent" }}
"#
    ));
    let would = t.plan_changes(&["no user", "no extra"]);
    t.converge(&would);
    assert!(getent("passwd", &user).is_none());
    assert!(getent("group", &extra).is_none());
    assert!(
        std::path::Path::new(&home).is_dir(),
        "userdel keeps the home"
    );
}

// ---------------------------------------------------------------------------------------------
// sync
// ---------------------------------------------------------------------------------------------

#[test]
fn sync_writes_what_differs_and_deletes_only_when_asked() {
    use std::os::unix::fs::PermissionsExt;
    let t = Target::new("root");
    t.p.write("site/index.html", "<h1>hi</h1>\n");
    t.p.write("site/css/app.css", "body {}\n");
    t.p.write("site/bin/run", "#!/bin/sh\necho run\n");
    std::fs::set_permissions(t.p.path("site/bin/run"), PermissionsExt::from_mode(0o755)).unwrap();
    t.p.write("site/odd name\nline", "odd\n");
    std::fs::create_dir_all(t.remote("www/old")).unwrap();
    std::fs::write(t.remote("www/old/stale.html"), "stale").unwrap();
    std::fs::write(t.remote("www/index.html"), "old\n").unwrap();
    let play = |delete: bool| {
        t.playbook(&format!(
            "[[step]]\nname = \"site\"\nsync = {{ src = \"site\", dest = \"@R/www\", delete = {delete} }}\n"
        ))
    };
    play(false);
    let would = t.plan_changes(&["site"]);
    assert_eq!(
        read(&t.remote("www/index.html")),
        "old\n",
        "plan must not write"
    );
    t.converge(&would);
    assert_eq!(read(&t.remote("www/index.html")), "<h1>hi</h1>\n");
    assert_eq!(read(&t.remote("www/css/app.css")), "body {}\n");
    assert_eq!(read(&t.remote("www/odd name\nline")), "odd\n");
    let mode = std::fs::metadata(t.remote("www/bin/run"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert!(
        t.remote("www/old/stale.html").exists(),
        "no delete: extras stay"
    );

    // One file changed locally: one entry written; then delete = true removes the extras.
    t.p.write("site/css/app.css", "body { color: red }\n");
    let would = t.plan_changes(&["site"]);
    let plan = t.plan();
    assert!(
        plan.step_text("site").contains("1 to write, 0 to remove"),
        "{}",
        plan.dump()
    );
    t.converge(&would);
    assert_eq!(read(&t.remote("www/css/app.css")), "body { color: red }\n");
    play(true);
    let would = t.plan_changes(&["site"]);
    assert!(
        t.plan()
            .step_text("site")
            .contains("0 to write, 1 to remove")
    );
    t.converge(&would);
    assert!(!t.remote("www/old").exists());
    assert_eq!(read(&t.remote("www/index.html")), "<h1>hi</h1>\n");
}
