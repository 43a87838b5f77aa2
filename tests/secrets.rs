//! Secret values never leave the host's env file: not in anything provision prints (plain,
//! `-vv`, JSON, plan diffs, `exec` output, error messages) and not on any command line a
//! process list shows while a run is going on. Real sshd, real binary.

mod process_list;
mod support;

use process_list::watching_process_list;
use support::{Project, Run, SECRETS_ENV, Setup};

const DB_PASSWORD: &str = "Zq8-leak-canary-1";
const API_TOKEN: &str = "Zq8-leak-canary-2";
/// The values after rotation (the host keeps the old ones until the next `up`).
const DB_PASSWORD_NEW: &str = "Zq8-leak-canary-3";
const API_TOKEN_NEW: &str = "Zq8-leak-canary-4";
/// Every value this file ever uses: none may be printed, ever.
const ALL_SECRETS: [&str; 4] = [DB_PASSWORD, API_TOKEN, DB_PASSWORD_NEW, API_TOKEN_NEW];
const MASK: &str = "********";

/// A host and a project `leaky` whose secrets file holds `secrets` (`KEY=value` lines).
fn leaky(secrets: &str) -> Setup {
    let s = Setup::with_env("leaky", 1, "", SECRETS_ENV);
    s.p.write("secrets/test.env", secrets);
    s
}

/// A host and a project whose playbook handles the two secrets every way a playbook can.
fn setup() -> Setup {
    let s = leaky(&format!(
        "# test secrets\nDB_PASSWORD={DB_PASSWORD}\nAPI_TOKEN={API_TOKEN}\n"
    ));
    let project = &s.p;
    project.write(
        "templates/app.conf.j2",
        "# {{ app }}\ntoken = {{ secrets.API_TOKEN }}\nport = 8000\n",
    );
    let app = project.remote_path("app");
    project.write(
        "playbooks/deploy.toml",
        &format!(
            r#"[[step]]
name = "app dir"
directory = {{ path = "{app}", mode = "0755" }}

[[step]]
name = "app env"
env_file = {{ dest = "{app}/.env", keys = ["DB_PASSWORD", "API_TOKEN"] }}

[[step]]
name = "app config"
template = {{ src = "templates/app.conf.j2", dest = "{app}/app.conf", mode = "0600" }}

[[step]]
name = "show env"
command = {{ run = "cat {app}/.env" }}

[[step]]
name = "fail loudly"
command = {{ run = "cat {app}/.env >&2; cat {app}/app.conf >&2; exit 1" }}
"#
        ),
    );
    s
}

/// The env file the playbook of [`setup`] writes on the host.
fn env_file(s: &Setup) -> std::path::PathBuf {
    s.p.remote.join("app/.env")
}

/// Fail (with the whole output) if any secret value is in what the run printed.
#[track_caller]
fn assert_no_secret(what: &str, run: &Run) {
    for value in ALL_SECRETS {
        for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(
                !text.contains(value),
                "{what}: {stream} contains the secret value {value}\n{}",
                run.dump()
            );
        }
    }
}

/// Run `args` with `env` added to provision's environment: it must stop at a config error
/// (exit 1) without printing any secret value.
#[track_caller]
fn config_error(project: &Project, args: &[&str], env: &[(&str, &str)], what: &str) -> Run {
    let run = project.run_env(args, env);
    run.expect_code(1);
    assert_no_secret(what, &run);
    run
}

/// Run `provision` with `args` while sampling the process list; no secret may show up there.
fn up_watched(s: &Setup, args: &[&str]) -> Run {
    let (run, samples) = watching_process_list(|| s.p.run(args));
    assert!(!samples.is_empty(), "no process list sample was taken");
    // The sampler really saw the run: the binary's own command line is in some sample.
    let project_dir = s.p.dir.path().display().to_string();
    assert!(
        samples.iter().any(|p| p.contains(&project_dir)),
        "no sample of `ps -eo args` shows the provision process ({} samples)",
        samples.len()
    );
    for value in ALL_SECRETS {
        let hits: Vec<&str> = samples
            .iter()
            .flat_map(|p| p.lines())
            .filter(|l| l.contains(value))
            .collect();
        assert!(
            hits.is_empty(),
            "provision {args:?}: the secret {value} was on a command line:\n{}",
            hits.join("\n")
        );
    }
    run
}

#[test]
fn secret_values_are_never_printed_nor_on_a_command_line() {
    let s = setup();

    // plan: everything would change; the template uses a secret, so its content is not
    // shown even for a new file (a diff prefixes lines, filters change values).
    let plan = s.p.run(&["plan", "test"]);
    plan.expect_code(0);
    assert_no_secret("plan", &plan);
    assert!(
        plan.stdout.contains("content not shown") && !plan.stdout.contains("token ="),
        "plan should not show the content of a template using a secret\n{}",
        plan.dump()
    );
    assert!(
        plan.stdout.contains("+ DB_PASSWORD=<hidden>"),
        "plan should name the env_file keys, values hidden\n{}",
        plan.dump()
    );

    // up: the failing step's stderr (the env file) is shown, masked.
    let up = up_watched(&s, &["up", "test"]);
    up.expect_code(3);
    assert_no_secret("up", &up);
    assert!(
        up.stdout.contains(&format!("DB_PASSWORD={MASK}")),
        "the failing step's output should be shown with the values masked\n{}",
        up.dump()
    );

    // The values are really on the host, in a 0600 file: the test can see them, provision
    // just never shows them.
    let on_host = std::fs::read_to_string(env_file(&s)).expect("env file on the host");
    assert_eq!(
        on_host,
        format!("API_TOKEN={API_TOKEN}\nDB_PASSWORD={DB_PASSWORD}\n")
    );
    assert_eq!(support::mode_of(&env_file(&s)), 0o600);
    let conf = std::fs::read_to_string(s.p.remote.join("app/app.conf")).expect("app.conf");
    assert!(conf.contains(&format!("token = {API_TOKEN}")), "{conf}");

    // -vv: scripts and raw remote output, still masked; stdin payloads never shown.
    let vv = up_watched(&s, &["up", "test", "-vv"]);
    vv.expect_code(3);
    assert_no_secret("up -vv", &vv);
    assert!(
        vv.stdout.contains("debug: exec") && vv.stdout.contains(&format!("API_TOKEN={MASK}")),
        "-vv should print the scripts and the (masked) raw output\n{}",
        vv.dump()
    );

    // JSON: every line an event, every string field masked.
    let json = up_watched(&s, &["up", "test", "--output", "json"]);
    json.expect_code(3);
    assert_no_secret("up --output json", &json);
    let show = json.step("show env");
    assert_eq!(show["status"], "changed", "{show}");
    let output = show["output"].as_str().unwrap_or_default();
    assert!(
        output.contains(&format!("DB_PASSWORD={MASK}")),
        "`show env` output in JSON should be masked, not missing: {show}"
    );
    let fail = json.step("fail loudly");
    assert_eq!(fail["status"], "failed", "{fail}");
    assert!(
        fail["output"].as_str().unwrap_or_default().contains(MASK),
        "{fail}"
    );

    // exec: the command's output is masked too.
    let cat = s.p.run(&[
        "exec",
        "test",
        "--",
        "cat",
        &env_file(&s).display().to_string(),
    ]);
    cat.expect_code(0);
    assert_no_secret("exec cat", &cat);
    assert!(
        cat.stdout.contains(&format!("API_TOKEN={MASK}")),
        "{}",
        cat.dump()
    );

    // Rotate both secrets. plan -vv fetches what is on the host to diff it: the env_file diff
    // names keys only, and neither the old values (still on the host, no longer in the
    // secrets file) nor the new ones may be printed.
    s.p.write(
        "secrets/test.env",
        &format!("DB_PASSWORD={DB_PASSWORD_NEW}\nAPI_TOKEN={API_TOKEN_NEW}\n"),
    );
    let plan = s.p.run(&["plan", "test", "-vv"]);
    plan.expect_code(0);
    assert_no_secret("plan -vv after rotating the secrets", &plan);
    for key in ["DB_PASSWORD", "API_TOKEN"] {
        assert!(
            plan.stdout
                .contains(&format!("~ {key}=<hidden> (value changed)")),
            "the env_file diff should name {key} as changed\n{}",
            plan.dump()
        );
    }

    // Converge to the new values, then look again.
    let up = up_watched(&s, &["up", "test", "-v"]);
    up.expect_code(3);
    assert_no_secret("up -v after rotating the secrets", &up);
    let on_host = std::fs::read_to_string(env_file(&s)).expect("env file on the host");
    assert_eq!(
        on_host,
        format!("API_TOKEN={API_TOKEN_NEW}\nDB_PASSWORD={DB_PASSWORD_NEW}\n")
    );
    let cat = s.p.run(&[
        "exec",
        "test",
        "--",
        "cat",
        &env_file(&s).display().to_string(),
    ]);
    cat.expect_code(0);
    assert_no_secret("exec cat after rotating", &cat);
}

#[test]
fn a_missing_secret_is_named_without_printing_the_others() {
    let s = leaky(&format!(
        "DB_PASSWORD={DB_PASSWORD}\nAPI_TOKEN={API_TOKEN}\n"
    ));
    let project = &s.p;
    let marker = project.remote_path("marker");
    let dest = project.remote_path(".env");
    let playbook = |keys: &str| {
        format!(
            "[[step]]\nname = \"marker\"\ndirectory = {{ path = \"{marker}\" }}\n\n[[step]]\nname = \"app env\"\nenv_file = {{ dest = \"{dest}\", keys = [{keys}] }}\n"
        )
    };
    // From provision's environment too: a value there is a secret like the file's.
    let env = [("REDIS_PASSWORD", DB_PASSWORD_NEW)];

    // A key missing from both the file and the environment.
    project.write(
        "playbooks/deploy.toml",
        &playbook(r#""DB_PASSWORD", "API_TOKEN", "REDIS_PASSWORD", "SMTP_PASSWORD""#),
    );
    for args in [
        &["plan", "test"][..],
        &["up", "test", "-vv"],
        &["up", "test", "--output", "json"],
    ] {
        let run = config_error(
            project,
            args,
            &env,
            &format!("{args:?} with a missing secret"),
        );
        assert!(
            run.stderr
                .contains("secret SMTP_PASSWORD is missing or empty"),
            "{}",
            run.dump()
        );
        assert!(
            run.stderr.contains("playbooks/deploy.toml:7:1"),
            "{}",
            run.dump()
        );
    }

    // An empty value counts as missing, and says so without printing its neighbours.
    project.write(
        "secrets/test.env",
        &format!("DB_PASSWORD={DB_PASSWORD}\nAPI_TOKEN=\n"),
    );
    project.write(
        "playbooks/deploy.toml",
        &playbook(r#""DB_PASSWORD", "API_TOKEN""#),
    );
    let run = config_error(project, &["up", "test"], &env, "an empty secret");
    assert!(
        run.stderr.contains("secret API_TOKEN is missing or empty"),
        "{}",
        run.dump()
    );

    // A template that uses a secret nobody defined.
    project.write(
        "secrets/test.env",
        &format!("DB_PASSWORD={DB_PASSWORD}\nAPI_TOKEN={API_TOKEN}\n"),
    );
    project.write(
        "templates/app.conf.j2",
        "db = {{ secrets.DB_PASSWORD }}\ntoken = {{ secrets.API_TOKEN }}\nredis = {{ secrets.REDIS_PASSWORD }}\nsmtp = {{ secrets.SMTP_PASSWORD }}\n",
    );
    project.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"marker\"\ndirectory = {{ path = \"{marker}\" }}\n\n[[step]]\nname = \"config\"\ntemplate = {{ src = \"templates/app.conf.j2\", dest = \"{}\" }}\n",
            project.remote_path("app.conf")
        ),
    );
    let run = config_error(
        project,
        &["up", "test", "-vv"],
        &env,
        "a template using a missing secret",
    );
    assert!(
        run.stderr.contains("templates/app.conf.j2:4") && run.stderr.contains("SMTP_PASSWORD"),
        "the error should name the template line and the missing key\n{}",
        run.dump()
    );

    assert!(
        !project.remote.join("marker").exists(),
        "a config error must not touch the host"
    );
}
