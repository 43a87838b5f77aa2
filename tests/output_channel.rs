//! Every byte provision prints goes through `report::Output` (src/report/output.rs), the one
//! place secret values are masked; `src/report/stdio.rs` is the only code that writes to
//! stdout or stderr. This test reads `src/` and fails on a print macro or a direct
//! `io::stdout()`/`io::stderr()` anywhere else. (A child process with inherited stdio, as
//! `provision ssh` runs `ssh`, is not provision writing.)

mod source;

/// The one file allowed to write to the process's streams.
const WRITER: &str = "src/report/stdio.rs";

/// What prints without the channel.
const PRINTS: &[&str] = &[
    "println!",
    "eprintln!",
    "print!",
    "eprint!",
    "dbg!",
    "io::stdout",
    "io::stderr",
];

/// `line:text` of every line that prints (comment lines aside: docs may name the macros).
fn prints(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .filter(|(_, l)| PRINTS.iter().any(|p| l.contains(p)))
        .map(|(i, l)| format!("{}: {}", i + 1, l.trim()))
        .collect()
}

#[test]
fn nothing_prints_outside_the_output_channel() {
    let mut offenders = Vec::new();
    for file in source::files() {
        let rel = file.path;
        let found = prints(&file.text);
        if rel == WRITER {
            assert!(
                !found.is_empty(),
                "{WRITER} no longer writes: update this test"
            );
        } else {
            offenders.extend(found.into_iter().map(|f| format!("{rel}:{f}")));
        }
    }
    assert!(
        offenders.is_empty(),
        "print through report::Output (line, err_line, emit, note, confirm), not directly:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_check_sees_every_form_and_skips_comments() {
    for line in [
        "println!(\"{x}\");",
        "    eprintln!(\"e\")",
        "print!(\"q\")",
        "eprint!(\"{question}\")",
        "let _ = dbg!(x);",
        "let mut o = std::io::stdout().lock();",
        "writeln!(std::io::stderr(), \"x\")",
        "use std::io::stdout;",
    ] {
        assert_eq!(prints(line).len(), 1, "missed: {line}");
    }
    assert!(prints("// println! is not used here\n  /// eprintln! neither").is_empty());
    assert!(prints("out.line(\"printed\");").is_empty());
}
