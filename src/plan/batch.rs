//! The wire format of one round trip: many probes (optionally after one apply) in a single
//! script, their outputs told apart by markers carrying a per-run random nonce.
//!
//! Batching is what keeps a no-op run at one round trip per host: every step's probe goes in
//! the first script, and after a change the apply and the re-probe of the remaining steps
//! share one script.

use crate::steps::Probe;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A random token no step output will contain by accident.
pub fn nonce() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

/// A script running each `(id, probe)` in its own subshell with stdin and stderr closed
/// (the batch's stdin stays open on [`PROBE_INPUT_FD`] for probes that read input).
use crate::steps::PROBE_INPUT_FD;

pub fn probe_script(nonce: &str, probes: &[(usize, String)]) -> String {
    let mut s = format!("exec {PROBE_INPUT_FD}<&0\n");
    for (id, probe) in probes {
        let _ = write!(
            s,
            "printf '\\n@@P{nonce} {id}\\n'\n( {probe}\n) </dev/null 2>/dev/null\nprintf '\\n@@E{nonce} {id} %d\\n' $?\n"
        );
    }
    s
}

/// Apply first (it reads stdin); if it succeeds, re-probe; exit with the apply's status.
pub fn apply_script(nonce: &str, apply: &str, probes: &[(usize, String)]) -> String {
    format!(
        // `:` keeps the `then` branch non-empty when there is nothing left to re-probe.
        "( {apply}\n)\nrc=$?\nprintf '\\n@@A{nonce} %d\\n' $rc\nif [ $rc -eq 0 ]; then\n:\n{}fi\nexit $rc\n",
        probe_script(nonce, probes)
    )
}

/// What one round trip returned, split up.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// stdout of the apply part (everything before its marker).
    pub apply_out: String,
    pub apply_rc: Option<i32>,
    pub probes: BTreeMap<usize, Probe>,
}

pub fn parse(nonce: &str, stdout: &[u8]) -> Parsed {
    let text = String::from_utf8_lossy(stdout);
    let mut parsed = Parsed::default();
    let a_mark = format!("\n@@A{nonce} ");
    let rest: &str = match text.find(&a_mark) {
        Some(pos) => {
            parsed.apply_out = text[..pos].to_string();
            let after = &text[pos + a_mark.len()..];
            let (rc, tail) = after.split_once('\n').unwrap_or((after, ""));
            parsed.apply_rc = rc.trim().parse().ok();
            tail
        }
        None => &text,
    };
    let p_mark = format!("@@P{nonce} ");
    let mut cursor = rest;
    while let Some(pos) = cursor.find(&p_mark) {
        let after = &cursor[pos + p_mark.len()..];
        let Some((id, body)) = after.split_once('\n') else {
            break;
        };
        let Ok(id) = id.trim().parse::<usize>() else {
            break;
        };
        let e_mark = format!("\n@@E{nonce} {id} ");
        let Some(end) = body.find(&e_mark) else { break };
        let after_end = &body[end + e_mark.len()..];
        let (rc, tail) = after_end.split_once('\n').unwrap_or((after_end, ""));
        parsed.probes.insert(
            id,
            Probe {
                out: body[..end].to_string(),
                rc: rc.trim().parse().unwrap_or(-1),
            },
        );
        cursor = tail;
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(script: &str, stdin: &str) -> Vec<u8> {
        crate::transport::script::run_in_sh(script, stdin.as_bytes())
    }

    #[test]
    fn probes_round_trip_through_a_real_shell() {
        let n = nonce();
        let probes = vec![
            (0, "echo state=dir".to_string()),
            (3, "printf 'no newline'; exit 4".to_string()),
            (7, "cat; echo read-nothing".to_string()),
        ];
        let p = parse(
            &n,
            &sh(&probe_script(&n, &probes), "stdin must not reach probes"),
        );
        assert_eq!(
            p.probes[&0],
            Probe {
                out: "state=dir\n".into(),
                rc: 0
            }
        );
        assert_eq!(
            p.probes[&3],
            Probe {
                out: "no newline".into(),
                rc: 4
            }
        );
        assert_eq!(p.probes[&7].out, "read-nothing\n");
        assert_eq!(p.apply_rc, None);
    }

    #[test]
    fn apply_then_reprobe() {
        let n = nonce();
        let script = apply_script(&n, "cat; echo applied", &[(1, "echo again".into())]);
        let p = parse(&n, &sh(&script, "IN\n"));
        assert_eq!(p.apply_out, "IN\napplied\n");
        assert_eq!(p.apply_rc, Some(0));
        assert_eq!(p.probes[&1].out, "again\n");
    }

    #[test]
    fn apply_with_nothing_left_to_probe_is_valid_sh() {
        let n = nonce();
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(apply_script(&n, "echo done", &[]))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(parse(&n, &out.stdout).apply_rc, Some(0));
    }

    #[test]
    fn failed_apply_skips_probes() {
        let n = nonce();
        let script = apply_script(&n, "set -e\nfalse\necho never", &[(1, "echo again".into())]);
        let p = parse(&n, &sh(&script, ""));
        assert_eq!(p.apply_rc, Some(1));
        assert!(p.probes.is_empty());
    }

    #[test]
    fn noise_before_markers_is_ignored() {
        let n = nonce();
        let mut out = b"motd from a chatty rc file\n".to_vec();
        out.extend(sh(&probe_script(&n, &[(0, "echo x=1".into())]), ""));
        assert_eq!(parse(&n, &out).probes[&0].out, "x=1\n");
    }
}
