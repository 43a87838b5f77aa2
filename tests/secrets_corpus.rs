//! The secrets corpus: runs that try hard to print a secret (a template error with secrets in
//! its context, filters failing on a secret value, a remote command that prints its
//! environment after sourcing the env file, a failing command whose stderr holds the value,
//! `exec` of a command that prints it), in plain, `-vv` and JSON output. Every output is
//! grepped for every secret value: zero hits; where a value would have been, the mask is.
//! The only place a value may be is the host's 0600 env file.

mod support;

use support::{Project, Run, SECRETS_ENV, Setup, mode_of};

const IN_FILE: &str = "Kx9-corpus-canary-1";
const IN_ENV: &str = "Kx9-corpus-canary-2";
const SECRETS: [&str; 2] = [IN_FILE, IN_ENV];
const MASK: &str = "********";

fn setup() -> Setup {
    let s = Setup::with_env("corpus", 1, "", SECRETS_ENV);
    s.p.write("secrets/test.env", &format!("DB_PASSWORD={IN_FILE}\n"));
    s
}

/// Run with the second secret in provision's environment (the CI way).
fn run(p: &Project, args: &[&str]) -> Run {
    p.run_env(args, &[("API_TOKEN", IN_ENV)])
}

fn assert_clean(what: &str, r: &Run) {
    let all = format!("{}\n{}", r.stdout, r.stderr);
    for s in SECRETS {
        assert!(
            !all.contains(s),
            "{what}: the secret {s} was printed\n{}",
            r.dump()
        );
    }
    assert!(!all.contains("panicked"), "{what}\n{}", r.dump());
}

const OUTPUTS: [&[&str]; 3] = [
    &["--output", "plain"],
    &["--output", "plain", "-vv"],
    &["--output", "json", "-vv"],
];

/// Run `up test` in every output style; each must be clean and exit `code`.
fn up_everywhere(p: &Project, what: &str, code: i32) -> Vec<Run> {
    OUTPUTS
        .iter()
        .map(|extra| {
            let mut args = vec!["up", "test"];
            args.extend_from_slice(extra);
            let r = run(p, &args);
            assert_eq!(r.code, code, "{what} {extra:?}\n{}", r.dump());
            assert_clean(&format!("{what} {extra:?}"), &r);
            r
        })
        .collect()
}

#[test]
fn template_errors_with_secrets_in_context_print_no_value() {
    let s = setup();
    let p = &s.p;
    let dest = p.remote_path("app.conf");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"conf\"\ntemplate = {{ src = \"templates/app.conf.j2\", dest = \"{dest}\" }}\n"
        ),
    );
    // Each template uses both secrets, then fails in a different way.
    for (i, body) in [
        "{{ secrets.DB_PASSWORD }} {{ secrets.API_TOKEN }}\n{{ undefined_thing }}\n",
        "{{ secrets.API_TOKEN }}\n{{ secrets.DB_PASSWORD | int + 1 }}\n",
        "{{ secrets.DB_PASSWORD ~ secrets.API_TOKEN }}\n{{ (secrets.DB_PASSWORD ~ 1) / 0 }}\n",
        "{% set x = secrets.DB_PASSWORD %}{{ x.no_such_attr.deeper }}\n",
        "{{ secrets.DB_PASSWORD[99] }}\n",
        "{{ range(secrets.API_TOKEN) }}\n",
        "{{ secrets.DB_PASSWORD | join(secrets.API_TOKEN) | nosuchfilter }}\n",
        "{% for c in secrets.DB_PASSWORD %}{{ c }}{% endfor %}{{ fail }}\n",
    ]
    .iter()
    .enumerate()
    {
        p.write("templates/app.conf.j2", body);
        for r in up_everywhere(p, &format!("template #{i}"), 1) {
            assert!(r.stderr.contains("templates/app.conf.j2"), "{}", r.dump());
        }
        let plan = run(p, &["plan", "test"]);
        assert_clean(&format!("plan with template #{i}"), &plan);
        assert!(
            !std::path::Path::new(&dest).exists(),
            "a broken template was written"
        );
    }
}

#[test]
fn remote_output_and_errors_holding_secret_values_are_masked() {
    let s = setup();
    let p = &s.p;
    let env_file = p.remote_path("app.env");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"env\"\nenv_file = {{ dest = \"{env_file}\", keys = [\"DB_PASSWORD\", \"API_TOKEN\"] }}\n\n\
             [[step]]\nname = \"show env\"\ncommand = {{ run = \"set -a; . {env_file}; env; cat {env_file}\" }}\n\n\
             [[step]]\nname = \"registered\"\nregister = \"out\"\ncommand = {{ run = \"cat {env_file}\" }}\n\n\
             [[step]]\nname = \"echo registered\"\ncommand = {{ run = \"echo using {{{{ out.stdout | length }}}} bytes\" }}\n\n\
             [[step]]\nname = \"fails\"\ncommand = {{ run = \"cat {env_file} >&2; echo \\\"bad password $(cut -d= -f2 {env_file} | head -1)\\\" >&2; exit 3\" }}\n"
        ),
    );
    let runs = up_everywhere(p, "up", 3);
    // The values were there to print, and were masked.
    for r in &runs {
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(all.contains(MASK), "nothing was masked?\n{}", r.dump());
    }
    let json = &runs[2];
    let fails = json.step("fails");
    assert_eq!(fails["status"], "failed");
    assert!(
        fails["message"].as_str().unwrap().contains(MASK),
        "the failure message should show the masked value: {fails}"
    );
    // The one place the values are: the host's env file, mode 0600.
    let text = std::fs::read_to_string(&env_file).unwrap();
    assert!(text.contains(IN_FILE) && text.contains(IN_ENV));
    assert_eq!(mode_of(std::path::Path::new(&env_file)) & 0o777, 0o600);

    // `exec` of commands that print the values, and one that fails with them.
    for cmd in [
        format!("cat {env_file}"),
        format!("sh -c 'set -a; . {env_file}; env'"),
        format!("sh -c 'cat {env_file} >&2; exit 5'"),
    ] {
        for extra in OUTPUTS {
            let mut args = vec!["exec", "test"];
            args.extend_from_slice(extra);
            args.push("--");
            args.push(&cmd);
            let r = run(p, &args);
            assert_clean(&format!("exec {cmd} {extra:?}"), &r);
        }
    }
}
