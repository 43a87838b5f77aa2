//! `validate`, `config` and `secrets`: the commands that check or show an env without
//! contacting it. The real binary on a real project; its hosts are ports nothing listens on
//! and HOME is empty (no ~/.ssh/config), so any attempt to connect would fail the command.
//! Every output is searched for every form of every secret value (and of the SSH key given
//! in $PROVISION_SSH_KEY): none may appear.

#[path = "support/forms.rs"]
mod forms;
mod support;
use forms::forms;

use support::{ClientKey, Project, Run, closed_port};

const DB_PASSWORD: &str = "Zq9-cmds-canary-1";
/// Characters that URL-encoding and base64 change.
const API_TOKEN: &str = "Zq9/cmds+canary=2&t";
/// Only in provision's environment, not in the secrets file.
const FROM_ENV: &str = "Zq9-cmds-canary-3";
const UNUSED: &str = "Zq9-cmds-canary-4";

/// A project: three hosts in two roles (one a table with a name and vars), an identity file,
/// a jump host, vars at both levels (one rendered from a secret), a secrets file, and a
/// playbook using secrets in an env_file step and a template.
fn project() -> (Project, Vec<(String, String)>) {
    let p = Project::new();
    ClientKey::generate(&p.path("keys"));
    let inline = ClientKey::generate(&p.path("ci"));
    let inline = std::fs::read_to_string(&inline.private).expect("read the inline key");
    let [a, b, c, jump] = [(); 4].map(|_| closed_port());
    p.write(
        "provision.toml",
        &format!(
            r#"app = "shop"

[vars]
greeting = "hello"
token_url = "https://api.example/?t={{{{ secrets.API_TOKEN }}}}"
port = 8000

[ssh]
config = "none"
known_hosts = "accept-new"

[env.test]
hosts = {{ web = ["deploy@127.0.0.1:{a}", {{ host = "127.0.0.2:{b}", name = "web2", vars = {{ weight = 3 }} }}], db = ["root@127.0.0.3:{c}"] }}
secrets = "secrets/test.env"
vars = {{ port = 9000 }}
ssh = {{ identity_file = "keys/id_ed25519", jump = "bastion@127.0.0.9:{jump}" }}
"#
        ),
    );
    p.write(
        "secrets/test.env",
        &format!("DB_PASSWORD={DB_PASSWORD}\nAPI_TOKEN='{API_TOKEN}'\nUNUSED={UNUSED}\n"),
    );
    p.write(
        "templates/app.conf.j2",
        "# {{ greeting }}\ntoken = {{ secrets.API_TOKEN }}\nport = {{ port }}\n",
    );
    p.write(
        "playbooks/deploy.toml",
        r#"[[step]]
name = "app dir"
directory = { path = "/srv/shop" }

[[step]]
name = "app env"
env_file = { dest = "/srv/shop/.env", keys = ["DB_PASSWORD", "FROM_ENV"] }

[[step]]
name = "config"
template = { src = "templates/app.conf.j2", dest = "/srv/shop/app.conf" }
"#,
    );
    let env = vec![
        ("PROVISION_SSH_KEY".to_string(), inline),
        ("FROM_ENV".to_string(), FROM_ENV.to_string()),
    ];
    (p, env)
}

#[track_caller]
fn assert_no_secret(run: &Run, env: &[(String, String)]) {
    let all = format!("{}\n{}", run.stdout, run.stderr);
    let values = [DB_PASSWORD, API_TOKEN, FROM_ENV, UNUSED].map(str::to_string);
    let key = env.iter().map(|(_, v)| v.clone());
    for value in values.into_iter().chain(key) {
        for form in forms(&value) {
            assert!(
                !all.contains(&form),
                "a form of a secret ({form}) was printed\n{}",
                run.dump()
            );
        }
    }
}

#[test]
fn config_shows_hosts_their_ssh_settings_vars_and_secret_names_but_no_value() {
    let (p, env) = project();
    let run = p.run_env(&["config", "test", "-e", "greeting=hi"], &env);
    run.expect_code(0);
    assert_no_secret(&run, &env);
    let text = &run.stdout;
    let toml = std::fs::read_to_string(p.path("provision.toml")).unwrap();
    let jump = toml
        .split("bastion@")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    for want in [
        "env test of app shop, playbook playbooks/deploy.toml",
        "hosts: 3",
        "  web2\n",
        "roles     db\n",
        "roles     web\n",
        "vars      {\"weight\":3}",
        "$PROVISION_SSH_KEY",
        "keys/id_ed25519",
        "hostkeys  accept-new:",
        &format!("jump      bastion@{jump}"),
        "greeting = \"hi\" (-e)",
        "port = 9000 (env)",
        // Rendered from a secret, so a secret itself: masked whole by the channel.
        "token_url = \"********\" (project)",
        "secrets needed (names only): API_TOKEN, DB_PASSWORD, FROM_ENV",
    ] {
        assert!(text.contains(want), "no `{want}` in\n{}", run.dump());
    }
    assert!(
        text.contains("address   deploy@127.0.0.1:"),
        "{}",
        run.dump()
    );

    for args in [
        &["config", "test", "--json", "-e", "greeting=hi"][..],
        &["config", "test", "--output", "json", "-e", "greeting=hi"],
    ] {
        let run = p.run_env(args, &env);
        run.expect_code(0);
        assert_no_secret(&run, &env);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("not one JSON document: {e}\n{}", run.dump()));
        let hosts = doc["hosts"].as_array().expect("hosts");
        assert_eq!(hosts.len(), 3, "{doc:#}");
        let web2 = hosts.iter().find(|h| h["name"] == "web2").expect("web2");
        assert_eq!(web2["address"], "127.0.0.2");
        assert_eq!(web2["user"], "root", "{web2:#}");
        assert_eq!(web2["vars"]["weight"], 3);
        assert_eq!(web2["roles"], serde_json::json!(["web"]));
        let deploy = hosts
            .iter()
            .find(|h| h["user"] == "deploy")
            .expect("deploy");
        let ssh = &deploy["ssh"];
        assert_eq!(ssh["known_hosts"], "accept-new");
        assert_eq!(ssh["identity_key"], "$PROVISION_SSH_KEY", "{ssh:#}");
        let files = ssh["identity_files"].as_array().expect("identity_files");
        assert!(files[0].as_str().unwrap().ends_with("keys/id_ed25519"));
        assert_eq!(ssh["jump"]["user"], "bastion");
        assert_eq!(ssh["jump"]["address"], "127.0.0.9");
        assert_eq!(doc["vars"]["greeting"]["value"], "hi");
        assert_eq!(doc["vars"]["greeting"]["from"], "-e");
        assert_eq!(doc["vars"]["port"]["value"], 9000);
        assert_eq!(doc["vars"]["token_url"]["value"], "********");
        assert_eq!(
            doc["secrets"],
            serde_json::json!(["API_TOKEN", "DB_PASSWORD", "FROM_ENV"])
        );
    }
}

#[test]
fn secrets_lists_keys_where_they_are_used_and_which_are_missing() {
    let (p, env) = project();
    let run = p.run_env(&["secrets", "test"], &env);
    run.expect_code(0);
    assert_no_secret(&run, &env);
    for want in [
        "API_TOKEN    file         templates/app.conf.j2:2 (step `config`)",
        "DB_PASSWORD  file         playbooks/deploy.toml:5 (step `app env`)",
        "FROM_ENV     environment  playbooks/deploy.toml:5 (step `app env`)",
        "UNUSED       file         (not used)",
        "3 used, none missing",
    ] {
        assert!(run.stdout.contains(want), "no `{want}` in\n{}", run.dump());
    }

    // Without FROM_ENV in provision's environment, a key the playbook uses is missing.
    let key_only = &env[..1];
    let run = p.run_env(&["secrets", "test"], key_only);
    run.expect_code(1);
    assert_no_secret(&run, &env);
    assert!(
        run.stdout
            .contains("FROM_ENV     MISSING      playbooks/deploy.toml:5"),
        "{}",
        run.dump()
    );
    assert!(
        run.stderr.contains("error: missing secrets: FROM_ENV"),
        "{}",
        run.dump()
    );

    let run = p.run_env(&["secrets", "test", "--json"], key_only);
    run.expect_code(1);
    assert_no_secret(&run, &env);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(doc["file"], "secrets/test.env");
    assert_eq!(doc["file_exists"], true);
    assert_eq!(doc["missing"], serde_json::json!(["FROM_ENV"]));
    let keys = doc["keys"].as_array().expect("keys");
    let token = keys
        .iter()
        .find(|k| k["name"] == "API_TOKEN")
        .expect("API_TOKEN");
    assert_eq!(token["source"], "file");
    assert_eq!(token["used_by"][0]["file"], "templates/app.conf.j2");
    assert_eq!(token["used_by"][0]["line"], 2);
    assert_eq!(token["used_by"][0]["step"], "config");
}

#[test]
fn validate_accepts_a_valid_project_in_one_line_and_names_a_missing_secret() {
    let (p, env) = project();
    let run = p.run_env(&["validate"], &env);
    run.expect_code(0);
    assert_no_secret(&run, &env);
    assert_eq!(
        run.stdout.trim(),
        "valid: env test (3 hosts); 1 playbook, 3 steps, 1 template (nothing was contacted)",
        "{}",
        run.dump()
    );
    let run = p.run_env(&["validate", "test"], &env[..1]);
    run.expect_code(1);
    assert_no_secret(&run, &env);
    assert!(
        run.stderr.contains(
            "error: playbooks/deploy.toml:7:1: step `app env`: secret FROM_ENV is missing"
        ),
        "{}",
        run.dump()
    );
}

/// The `error:` lines of a run.
fn error_lines(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

#[track_caller]
fn assert_reported(run: &Run, wanted: &[&str]) {
    run.expect_code(1);
    let errors = error_lines(run);
    for want in wanted {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "no error line with `{want}`\n{}",
            run.dump()
        );
    }
    assert_eq!(errors.len(), wanted.len(), "{}", run.dump());
    let summary = format!("{} errors; nothing was contacted", wanted.len());
    assert!(run.stderr.contains(&summary), "{}", run.dump());
}

#[test]
fn validate_reports_several_errors_of_one_file_and_of_two_files_together() {
    let (p, env) = project();
    let toml = std::fs::read_to_string(p.path("provision.toml")).unwrap();
    // Two errors in provision.toml: a top-level key and a host string of another env.
    let toml = toml.replace("app = \"shop\"\n", "app = \"shop\"\ncolour = \"blue\"\n")
        + "\n[env.prod]\nhosts = [\"root@web 1\"]\n";
    p.write("provision.toml", &toml);
    // Three in the playbook, one per step.
    p.write(
        "playbooks/deploy.toml",
        r#"[[step]]
name = "app dir"
directory = { path = "/srv/shop", mdoe = "0755" }

[[step]]
comand = { run = "x" }

[[step]]
name = "web"
command = { run = "y" }

[[step]]
name = "web"
command = { run = "z" }
"#,
    );
    let run = p.run_env(&["validate"], &env);
    assert_no_secret(&run, &env);
    assert_reported(
        &run,
        &[
            "provision.toml:2:1: unknown field `colour`",
            "provision.toml:20:10: env `prod`: `root@web 1` is not a host",
            "playbooks/deploy.toml:3:35: unknown field `mdoe`",
            "playbooks/deploy.toml:6:1: unknown field `comand`",
            "playbooks/deploy.toml:12:1: two steps are named `web`",
        ],
    );
}

#[test]
fn validate_reports_every_step_and_template_error_of_an_env_together() {
    let (p, env) = project();
    p.write(
        "playbooks/deploy.toml",
        r#"[[step]]
name = "greet"
command = { run = "echo {{ greting }}" }

[[step]]
name = "config"
template = { src = "templates/app.conf.j2", dest = "/srv/shop/app.conf" }

[[step]]
name = "nginx"
template = { src = "templates/nginx.conf.j2", dest = "/srv/shop/nginx.conf" }

[[step]]
name = "migrate"
on = "workers"
command = { run = "true" }

[[step]]
name = "rel"
directory = { path = "srv/shop" }
"#,
    );
    p.write(
        "templates/app.conf.j2",
        "# {{ greeting }}\ntoken = {{ secrets.NOPE }}\n",
    );
    p.write("templates/nginx.conf.j2", "a\nb\n{% if %}\n");
    let run = p.run_env(&["validate", "test"], &env);
    assert_no_secret(&run, &env);
    assert_reported(
        &run,
        &[
            "playbooks/deploy.toml:3:1: step `greet`: field `command.run`: undefined variable `greting`; did you mean `greeting`?",
            "playbooks/deploy.toml:7:1: step `config`: ",
            "playbooks/deploy.toml:11:1: step `nginx`: templates/nginx.conf.j2:3: syntax error",
            "playbooks/deploy.toml:13: step `migrate` runs on role `workers`",
            "playbooks/deploy.toml:20:1: step `rel`",
        ],
    );
    let errors = error_lines(&run).join("\n");
    assert!(errors.contains("NOPE"), "{}", run.dump());
}
