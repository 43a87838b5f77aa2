//! The secrets corpus: runs that try hard to print a secret (a template error with secrets in
//! its context, filters failing on a secret value, a remote command that prints its
//! environment after sourcing the env file, a failing command whose stderr holds the value,
//! `exec` of a command that prints it), in plain, `-vv` and JSON output. Every output is
//! grepped for every secret value: zero hits; where a value would have been, the mask is.
//! The only place a value may be is the host's 0600 env file.

#[path = "support/forms.rs"]
mod forms;
mod process_list;
mod support;

use forms::assert_no_form;
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
        assert_eq!(plan.code, 1, "plan with template #{i}\n{}", plan.dump());
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
    // Each must have run (its exit code) and printed the values, masked.
    for (cmd, code) in [
        (format!("cat {env_file}"), 0),
        (format!("sh -c 'set -a; . {env_file}; env'"), 0),
        (format!("sh -c 'cat {env_file} >&2; exit 5'"), 3),
    ] {
        for extra in OUTPUTS {
            let mut args = vec!["exec", "test"];
            args.extend_from_slice(extra);
            args.push("--");
            args.push(&cmd);
            let r = run(p, &args);
            let what = format!("exec {cmd} {extra:?}");
            assert_eq!(r.code, code, "{what}\n{}", r.dump());
            assert_clean(&what, &r);
            let all = format!("{}{}", r.stdout, r.stderr);
            assert!(
                all.contains(&format!("DB_PASSWORD={MASK}")),
                "{what}: nothing masked\n{}",
                r.dump()
            );
        }
    }
}

/// A value with characters every encoding changes, and a PEM key longer than the 40-line
/// tail of a failing step's output.
const FANCY: &str = "Kx9\"corpus<canary>&3 /x?y=z";

fn pem_key() -> String {
    let body: Vec<String> = (0..50)
        .map(|i| format!("Kx9pem{i:02}{}", "AbCdEfGh".repeat(7)))
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
        body.join("\n")
    )
}

#[test]
fn every_form_of_every_value_is_masked_in_plan_up_exec_and_logs() {
    let s = setup();
    let p = &s.p;
    let key = pem_key();
    p.write(
        "secrets/test.env",
        &format!("DB_PASSWORD={IN_FILE}\nFANCY='{FANCY}'\nTLS_KEY=\"{key}\"\n"),
    );
    let values = [IN_FILE, IN_ENV, FANCY, &key].map(str::to_string);
    // Masked forms: the file `show.sh` prints (as is, base64 at three offsets, URL-encoded).
    p.write(
        "templates/forms.conf.j2",
        "raw = {{ secrets.FANCY }}\nupper = {{ secrets.FANCY | upper }}\njson = {{ secrets.FANCY | tojson }}\n\
         token = {{ secrets.API_TOKEN }}\nkey:\n  {{ secrets.TLS_KEY | indent(2) }}\n",
    );
    // A form no redactor can know: never printed, since nothing diffs nor shows it.
    p.write(
        "templates/replaced.conf.j2",
        "pw = {{ secrets.DB_PASSWORD | replace('-', '_') }}\n",
    );
    let forms_conf = p.remote_path("forms.conf");
    let show = p.remote_path("show.sh");
    std::fs::write(
        &show,
        format!(
            "f={forms_conf}\ncat \"$f\"\nfor p in '' a ab; do printf '%s%s' \"$p\" \"$(cat \"$f\")\" | base64 -w0; echo; done\n\
             python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read(), safe=\"\"))' \"$f\"\n"
        ),
    )
    .unwrap();
    // `logs` runs `docker logs`: this one prints the forms.
    let bin = p.remote.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("docker"), format!("#!/bin/sh\nexec sh {show}\n")).unwrap();
    std::fs::set_permissions(
        bin.join("docker"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let toml = std::fs::read_to_string(p.path("provision.toml")).unwrap();
    p.write(
        "provision.toml",
        &format!(
            "{toml}remote_env = {{ PATH = \"{}:/usr/bin:/bin\" }}\n",
            bin.display()
        ),
    );
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"forms\"\ntemplate = {{ src = \"templates/forms.conf.j2\", dest = \"{forms_conf}\", mode = \"0600\" }}\n\n\
             [[step]]\nname = \"replaced\"\ntemplate = {{ src = \"templates/replaced.conf.j2\", dest = \"{}\", mode = \"0600\" }}\n\n\
             [[step]]\nname = \"show forms\"\ncommand = {{ run = \"sh {show}\" }}\n\n\
             [[step]]\nname = \"fails\"\ncommand = {{ run = \"sh {show} >&2; exit 3\" }}\n",
            p.remote_path("replaced.conf")
        ),
    );

    // plan: two new files whose content is not shown at all.
    for extra in OUTPUTS {
        let mut args = vec!["plan", "test"];
        args.extend_from_slice(extra);
        let r = run(p, &args);
        let what = format!("plan {extra:?}");
        assert_eq!(r.code, 0, "{what}\n{}", r.dump());
        assert_no_form(&what, &format!("{}{}", r.stdout, r.stderr), &values);
        assert!(
            r.stdout.contains("content not shown"),
            "{what}\n{}",
            r.dump()
        );
    }

    // up, watched: every output style, and the process list while it runs.
    for extra in OUTPUTS {
        let mut args = vec!["up", "test"];
        args.extend_from_slice(extra);
        let (r, ps) = process_list::watching_process_list(|| run(p, &args));
        let what = format!("up {extra:?}");
        assert_eq!(r.code, 3, "{what}\n{}", r.dump());
        let all = format!("{}{}", r.stdout, r.stderr);
        assert_no_form(&what, &all, &values);
        assert_no_form(
            &format!("the process list during {what}"),
            &ps.join("\n"),
            &values,
        );
        assert!(all.contains(MASK), "{what}: nothing masked\n{}", r.dump());
    }
    let on_host = std::fs::read_to_string(&forms_conf).unwrap();
    assert!(
        on_host.contains(FANCY) && on_host.contains("  Kx9pem49"),
        "{on_host}"
    );

    // exec and logs print the same forms: masked, and each ran.
    for cmd in ["exec", "logs"] {
        for extra in OUTPUTS {
            let mut args = vec![cmd, "test"];
            args.extend_from_slice(extra);
            if cmd == "exec" {
                args.extend(["--", "sh", &show]);
            }
            let r = run(p, &args);
            let what = format!("{cmd} {extra:?}");
            assert_eq!(r.code, 0, "{what}\n{}", r.dump());
            let all = format!("{}{}", r.stdout, r.stderr);
            assert_no_form(&what, &all, &values);
            assert!(
                all.contains(&format!("upper = {MASK}")),
                "{what}: nothing masked\n{}",
                r.dump()
            );
        }
    }
}

const EXEC_ONLY: &str = "Qm7-exec-only-token";

/// A value from provision's environment is a secret by its name only: `exec` masks it even
/// when the one step naming it is deferred (it waits for a registered value) and unselected.
#[test]
fn exec_masks_a_secret_that_only_a_deferred_step_names() {
    let s = setup();
    let p = &s.p;
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"where\"\nregister = \"dir\"\ncommand = {{ run = \"echo {}\" }}\n\n\
             [[step]]\nname = \"env\"\ntags = [\"later\"]\nenv_file = {{ dest = \"{{{{ dir.stdout | trim }}}}/.env\", keys = [\"API_TOKEN\"] }}\n",
            p.remote_path("")
        ),
    );
    for extra in OUTPUTS {
        let mut args = vec!["exec", "test"];
        args.extend_from_slice(extra);
        // Its own value: this one is on a command line (echo's), which the process list
        // check of the test running alongside must not see.
        args.extend(["--", "echo", "token:", EXEC_ONLY]);
        let r = p.run_env(&args, &[("API_TOKEN", EXEC_ONLY)]);
        let what = format!("exec {extra:?}");
        assert_eq!(r.code, 0, "{what}\n{}", r.dump());
        assert_clean(&what, &r);
        assert!(
            r.stdout.contains(&format!("token: {MASK}")),
            "{what}\n{}",
            r.dump()
        );
    }
}

/// A value only a filter reveals: the secret is its base64.
const DECODED: &str = "Kx9-decoded-only-canary";

/// Every filter a template may apply to a secret (`urlencode`, `b64encode`, `b64decode`,
/// `shell_quote`, `to_yaml`, `tojson`), its output printed by a remote command in every
/// output style: no form of any value, nor the decoded value, nor a quoted form, appears.
#[test]
fn filtered_secret_values_are_masked_in_every_form() {
    use base64::Engine;
    let s = setup();
    let p = &s.p;
    let quoted = "Kx9 it's: #quoted";
    let encoded = base64::engine::general_purpose::STANDARD.encode(DECODED);
    p.write(
        "secrets/test.env",
        &format!(
            "DB_PASSWORD={IN_FILE}\nFANCY='{FANCY}'\nQUOTED=\"{quoted}\"\nENCODED={encoded}\n"
        ),
    );
    p.write(
        "templates/filters.conf.j2",
        "url = {{ secrets.FANCY | urlencode }}\nb64 = {{ secrets.FANCY | b64encode }}\n\
         decoded = {{ secrets.ENCODED | b64decode }}\nsh = {{ secrets.QUOTED | shell_quote }}\n\
         json = {{ secrets.QUOTED | tojson }}\n\
         {{ {'db': {'password': secrets.QUOTED, 'fancy': secrets.FANCY}} | to_yaml }}\n",
    );
    let conf = p.remote_path("filters.conf");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"filters\"\ntemplate = {{ src = \"templates/filters.conf.j2\", dest = \"{conf}\", mode = \"0600\" }}\n\n\
             [[step]]\nname = \"show\"\ncommand = {{ run = \"cat {conf}; exit 3\" }}\n"
        ),
    );
    let values = [IN_FILE, FANCY, quoted, &encoded, DECODED].map(str::to_string);
    // The quoted forms the file holds, each a text no redactor derives from the value alone.
    let on_host_forms = ["'Kx9 it'\\''s: #quoted'", "'Kx9 it''s: #quoted'"];
    for extra in OUTPUTS {
        let mut args = vec!["up", "test"];
        args.extend_from_slice(extra);
        let r = run(p, &args);
        let what = format!("up {extra:?}");
        assert_eq!(
            r.code,
            3,
            "{what}: the failing step shows its output\n{}",
            r.dump()
        );
        let all = format!("{}{}", r.stdout, r.stderr);
        assert_no_form(&what, &all, &values);
        for f in on_host_forms {
            assert!(!all.contains(f), "{what}: printed {f}\n{}", r.dump());
        }
        assert!(
            all.contains(&format!("decoded = {MASK}")) && all.contains(&format!("sh = {MASK}")),
            "{what}: nothing masked\n{}",
            r.dump()
        );
        std::fs::remove_file(&conf).ok();
    }
    // What the host got is the real thing: the filters ran.
    run(p, &["up", "test"]);
    let on_host = std::fs::read_to_string(&conf).unwrap();
    assert!(
        on_host.contains(&format!("decoded = {DECODED}")),
        "{on_host}"
    );
    for f in on_host_forms {
        assert!(on_host.contains(f), "{f} not in\n{on_host}");
    }
}
