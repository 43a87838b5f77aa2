//! Issue 12, item 3: a secret whose value is a word of the event format (`debug`, `changed`,
//! `host`, `failed`) used to be masked in the events' tags and field names too, which no
//! longer deserialized, and the run panicked (exit 101) with its deploy lock left on the
//! host. Now only free text is masked: the run ends normally, every JSON line is a valid
//! event whose tags read as they should, and the values are masked where a host printed them.
//! Real sshd, real binary.

#[path = "support/schema.rs"]
mod schema;
mod support;

use serde_json::Value;
use support::{Run, SECRETS_ENV, Setup};

const MASK: &str = "********";
/// Not an event word: must appear nowhere at all.
const CANARY: &str = "debugdebug";
/// Exact event words (tags, status values, a field name), as secret values.
const WORDS: [&str; 4] = ["debug", "changed", "host", "failed"];

/// One host, a secrets file with the words and the canary, and a playbook that writes them
/// to an env file and prints it (so each value is in a step's output, and in `-vv` debug).
fn setup() -> Setup {
    let s = Setup::with_env("words", 1, "", SECRETS_ENV);
    s.p.write(
        "secrets/test.env",
        &format!(
            "X={}\nY={}\nZ={}\nW={}\nV={CANARY}\n",
            WORDS[0], WORDS[1], WORDS[2], WORDS[3]
        ),
    );
    let app = s.p.remote_path("app");
    s.p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"dir\"\ndirectory = {{ path = \"{app}\" }}\n\n\
             [[step]]\nname = \"env\"\nenv_file = {{ dest = \"{app}/.env\", keys = [\"X\", \"Y\", \"Z\", \"W\", \"V\"] }}\n\n\
             [[step]]\nname = \"show\"\ncommand = {{ run = \"cat {app}/.env\" }}\n"
        ),
    );
    s
}

#[track_caller]
fn assert_no_canary(run: &Run) {
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains(CANARY),
            "{CANARY} was printed\n{}",
            run.dump()
        );
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.dump());
}

/// The `output` of the step named `step`.
fn output_of<'a>(events: &'a [Value], step: &str) -> &'a str {
    events
        .iter()
        .find(|e| e["event"] == "step_finished" && e["step"] == step)
        .and_then(|e| e["output"].as_str())
        .unwrap_or_else(|| panic!("no output of `{step}` in {events:#?}"))
}

#[test]
fn event_words_as_secret_values_do_not_break_json_events() {
    let s = setup();
    let run = s.p.run(&["up", "test", "--output", "json", "-vv"]);
    run.expect_code(0);
    assert_no_canary(&run);
    let sch = schema::schema();
    assert!(
        schema::validate_lines(&sch, &run.stdout) > 5,
        "{}",
        run.dump()
    );
    let events = run.events();
    // Tags and enum values read as they should, masking or not.
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    for k in [
        "run_started",
        "debug",
        "step_finished",
        "host_finished",
        "run_finished",
    ] {
        assert!(kinds.contains(&k), "no `{k}` event: {kinds:?}");
    }
    let statuses: Vec<&str> = events.iter().filter_map(|e| e["status"].as_str()).collect();
    assert_eq!(
        statuses,
        ["changed", "changed", "changed"],
        "{}",
        run.dump()
    );
    assert!(events.iter().all(|e| !e.to_string().contains(CANARY)));
    let last = events.last().unwrap();
    assert_eq!(
        (&last["event"], &last["mode"]),
        (&"run_finished".into(), &"apply".into())
    );
    assert_eq!(last["exit_code"], 0);
    // In what the host printed, each value is masked.
    let shown = output_of(&events, "show");
    for key in ["X", "Y", "Z", "W", "V"] {
        assert!(
            shown.contains(&format!("{key}={MASK}")),
            "{key} in {shown:?}"
        );
    }
    for w in WORDS {
        assert!(!shown.contains(&format!("={w}")), "{w} in {shown:?}");
    }
    // The run released its lock: nothing is left on the host.
    let state = s.sshd().state_dir().join("words/test");
    assert!(state.join("releases.log").exists(), "no release recorded");
    assert!(
        !state.join("lock").exists(),
        "the deploy lock was left behind"
    );
}

#[test]
fn event_words_as_secret_values_in_plain_output() {
    let s = setup();
    s.p.run(&["up", "test", "--output", "plain", "-v"])
        .expect_code(0);
    // Nothing changes the second time; the command still runs and prints.
    let run = s.p.run(&["up", "test", "--output", "plain", "-v"]);
    run.expect_code(0);
    assert_no_canary(&run);
    for key in ["X", "Y", "Z", "W", "V"] {
        assert!(
            run.stdout.contains(&format!("{key}={MASK}")),
            "{key}\n{}",
            run.dump()
        );
    }
    // Status words come from the event's enum, not from (masked) text.
    assert!(run.stdout.contains("ok           env"), "{}", run.dump());
    assert!(run.stdout.contains("changed      show"), "{}", run.dump());
    assert!(
        run.stdout.contains("0 failed, 0 unreachable"),
        "{}",
        run.dump()
    );
}
