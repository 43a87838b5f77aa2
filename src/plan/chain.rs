//! The wire format of a chain: several steps' changes in one round trip, each step checked
//! first against the probe its decision came from.
//!
//! The runner decides a run of steps from the probes it already has; the chain then goes in
//! one script. Before each step (the first excepted: its probe is the current state) the
//! script runs that step's probe again and compares what it prints with what the decision
//! saw; the first difference (an earlier change in the chain touched what the step looks at)
//! stops the chain there, so every decision stands on the state right before its own change,
//! exactly as with one round trip per change. The first failed change stops the script too.
//!
//! The expected probe outputs and every change's input travel on stdin, concatenated; the
//! script keeps them in a private temp dir (`mktemp -d`, 0700) and hands each its own bytes
//! by offset, so nothing of them is in any command line. After the chain: the re-probe of the
//! steps after it (and optionally the release record) as in [`super::batch`].

use super::batch::{Parsed, probe_script};
use std::collections::BTreeMap;
use std::fmt::Write;

/// One step of a chain, as the script sees it.
#[derive(Debug, Clone, Default)]
pub struct Link {
    /// The step's id (its index in the host's plan): markers carry it.
    pub id: usize,
    /// The probe to run again and the length of its expected output on stdin.
    pub check: Option<(String, usize)>,
    /// The change and the length of its input on stdin (0: it reads nothing).
    pub apply: Option<(String, usize)>,
}

/// What a probe prints as the check compares it: its stdout, then its exit status.
pub fn expected(out: &str, rc: i32) -> String {
    format!("{out}\n{rc}\n")
}

/// The chain's script. Stdin: for each link in order, its expected probe output (when it has
/// a check), then its input (when its change reads one). `after`: run when every link went
/// through (nothing diverged, nothing failed), between its own markers (a release record).
/// `stop_flag`: a file (a shell word) whose appearance stops the chain before the next link,
/// as a diverged check does (a Ctrl-C on the controller creates it); removed at the end.
pub fn chain_script(
    nonce: &str,
    links: &[Link],
    rest: &[(usize, String)],
    after: Option<&str>,
    stop_flag: Option<&str>,
) -> String {
    let mut s = String::from(
        "pv_c=$(mktemp -d) || exit 1\ncat > \"$pv_c/in\" || { rm -rf \"$pv_c\"; exit 1; }\npv_go=1\n",
    );
    s.push_str(&split_parts(&part_lengths(links)));
    let mut part = 0usize;
    for (n, link) in links.iter().enumerate() {
        if let Some(flag) = stop_flag.filter(|_| n > 0) {
            let _ = writeln!(
                s,
                "if [ $pv_go = 1 ] && [ -e {flag} ]; then pv_go=0; printf '\\n@@D{nonce} {id}\\n'; fi",
                id = link.id
            );
        }
        if let Some((probe, _)) = &link.check {
            let _ = write!(
                s,
                "if [ $pv_go = 1 ]; then\n\
                 {{ ( {probe}\n) </dev/null 2>/dev/null; printf '\\n%d\\n' $?; }} >\"$pv_c/p\"\n\
                 cmp -s \"$pv_c/{part}\" \"$pv_c/p\" || {{ pv_go=0; printf '\\n@@D{nonce} {id}\\n'; }}\nfi\n",
                id = link.id
            );
            part += 1;
        }
        if let Some((apply, len)) = &link.apply {
            let feed = match len {
                0 => format!("( {apply}\n) </dev/null"),
                _ => format!("( {apply}\n) <\"$pv_c/{part}\""),
            };
            part += usize::from(*len > 0);
            let _ = write!(
                s,
                "if [ $pv_go = 1 ]; then\n{feed}\nrc=$?\n\
                 printf '\\n@@A{nonce} {id} %d\\n' $rc; printf '\\n@@B{nonce} {id}\\n' >&2\n\
                 [ $rc -eq 0 ] || {{ rm -rf \"$pv_c\"; exit $rc; }}\nfi\n",
                id = link.id
            );
        }
    }
    s.push_str("rm -rf \"$pv_c\"\n");
    if let Some(flag) = stop_flag {
        let _ = writeln!(s, "[ ! -e {flag} ] || rm -f {flag}");
    }
    // A chain step's own re-probe matters only when the chain stopped before it (the runner
    // goes on from there); the steps after the chain are re-probed in any case.
    let (own, later): (Vec<_>, Vec<_>) = rest
        .iter()
        .cloned()
        .partition(|(id, _)| links.iter().any(|l| l.id == *id));
    if !own.is_empty() {
        let _ = write!(
            s,
            "if [ $pv_go = 0 ]; then\n{}fi\n",
            probe_script(nonce, &own)
        );
    }
    s.push_str(&probe_script(nonce, &later));
    if let Some(after) = after {
        let _ = write!(
            s,
            "if [ $pv_go = 1 ]; then\nprintf '\\n@@R{nonce}\\n'\n( {after}\n) </dev/null\nprintf '\\n@@S{nonce} %d\\n' $?\nfi\n"
        );
    }
    s.push_str("exit 0\n");
    s
}

/// One link's change as it ran.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    pub rc: i32,
}

/// What a chain's round trip returned, split up.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChainParsed {
    /// The changes that ran, by link id.
    pub ran: BTreeMap<usize, Ran>,
    /// The link whose check found the state changed: it and the links after it did not run.
    pub diverged: Option<usize>,
    /// The re-probe after the chain.
    pub rest: Parsed,
    /// What `after` printed and its status, when it ran.
    pub after: Option<(String, i32)>,
}

/// The lengths of the parts on stdin, in order: each check's expected output, then each
/// change's input (when it reads one).
fn part_lengths(links: &[Link]) -> Vec<usize> {
    let each = |l: &Link| [l.check.as_ref().map(|c| c.1), l.apply.as_ref().map(|a| a.1)];
    links
        .iter()
        .flat_map(each)
        .flatten()
        .filter(|n| *n > 0)
        .collect()
}

/// Cut the spooled stdin into one file per part (`$pv_c/0`, `$pv_c/1`, …), one `dd` each
/// reading on from where the last one stopped: on a regular file a read returns all it asks
/// for, so each takes exactly its bytes (`head -c` may read ahead: busybox's does). A part
/// over 64 KiB is read in 64 KiB blocks, then the rest: no buffer the size of an upload.
fn split_parts(lens: &[usize]) -> String {
    const BLOCK: usize = 64 * 1024;
    if lens.is_empty() {
        return String::new();
    }
    let mut s = String::from("{ :");
    for (k, len) in lens.iter().enumerate() {
        let (blocks, rest) = (len / BLOCK, len % BLOCK);
        let mut reads = Vec::new();
        if blocks > 0 {
            reads.push(format!("dd bs={BLOCK} count={blocks}"));
        }
        if rest > 0 {
            reads.push(format!("dd bs={rest} count=1"));
        }
        let _ = write!(s, " && {{ {}; }} >\"$pv_c/{k}\"", reads.join(" && "));
    }
    s.push_str("; } <\"$pv_c/in\" 2>/dev/null || { rm -rf \"$pv_c\"; exit 1; }\n");
    s
}

pub fn parse_chain(nonce: &str, stdout: &[u8], stderr: &[u8]) -> ChainParsed {
    let out = String::from_utf8_lossy(stdout);
    let err = String::from_utf8_lossy(stderr);
    let mut parsed = ChainParsed::default();
    let (body, after) = match out.split_once(&format!("\n@@R{nonce}\n")) {
        Some((body, after)) => (body, Some(after)),
        None => (out.as_ref(), None),
    };
    parsed.after = after.and_then(|a| {
        let (text, rc) = a.rsplit_once(&format!("\n@@S{nonce} "))?;
        Some((text.to_string(), rc.trim().parse().ok()?))
    });
    let mut stdout_left = body;
    let mut stderr_left = err.as_ref();
    let a_mark = format!("\n@@A{nonce} ");
    while let Some((seg, tail)) = stdout_left.split_once(&a_mark) {
        let (head, rest) = tail.split_once('\n').unwrap_or((tail, ""));
        let mut words = head.split_whitespace();
        let (Some(Ok(id)), Some(Ok(rc))) = (
            words.next().map(str::parse::<usize>),
            words.next().map(str::parse::<i32>),
        ) else {
            break;
        };
        let b_mark = format!("\n@@B{nonce} {id}\n");
        let (err_seg, err_rest) = stderr_left.split_once(&b_mark).unwrap_or((stderr_left, ""));
        parsed.ran.insert(
            id,
            Ran {
                stdout: seg.to_string(),
                stderr: err_seg.to_string(),
                rc,
            },
        );
        stdout_left = rest;
        stderr_left = err_rest;
    }
    // After the last change that ran: the divergence marker (if a check stopped the chain),
    // then the re-probe.
    if let Some((_, t)) = stdout_left.split_once(&format!("\n@@D{nonce} ")) {
        parsed.diverged = t.split('\n').next().and_then(|id| id.trim().parse().ok());
    }
    parsed.rest = super::batch::parse(nonce, stdout_left.as_bytes());
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// `script` in a real `/bin/sh` with `stdin`: (stdout, stderr, exit code).
    fn sh(script: &str, stdin: &[u8]) -> (Vec<u8>, Vec<u8>, i32) {
        use std::io::Write;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.stdout, out.stderr, out.status.code().unwrap_or(-1))
    }

    fn link(
        id: usize,
        check: Option<(&str, &str)>,
        apply: Option<(&str, &str)>,
    ) -> (Link, Vec<u8>) {
        let mut input = Vec::new();
        let check = check.map(|(probe, expect)| {
            input.extend(expect.as_bytes());
            (probe.to_string(), expect.len())
        });
        let apply = apply.map(|(script, data)| {
            input.extend(data.as_bytes());
            (script.to_string(), data.len())
        });
        (Link { id, check, apply }, input)
    }

    fn run(
        links: Vec<(Link, Vec<u8>)>,
        rest: &[(usize, String)],
        after: Option<&str>,
    ) -> (ChainParsed, i32) {
        let n = super::super::batch::nonce();
        let stdin: Vec<u8> = links.iter().flat_map(|(_, i)| i.clone()).collect();
        let links: Vec<Link> = links.into_iter().map(|(l, _)| l).collect();
        let (out, err, rc) = sh(&chain_script(&n, &links, rest, after, None), &stdin);
        (parse_chain(&n, &out, &err), rc)
    }

    #[test]
    fn each_change_gets_exactly_its_own_input_and_its_own_output() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let a = format!("cat > {d}/a; echo wrote a; echo warn a >&2");
        let b_probe = format!("cat {d}/b 2>/dev/null || echo missing");
        let b = format!("cat > {d}/b; echo wrote b");
        let (p, rc) = run(
            vec![
                link(0, None, Some((&a, "A-data\nno newline at the end"))),
                link(
                    1,
                    Some((&b_probe, &expected("missing\n", 0))),
                    Some((&b, "B\n")),
                ),
                link(2, None, Some(("echo three; exit 0", ""))),
            ],
            &[(1, b_probe.clone()), (5, format!("cat {d}/b"))],
            Some("echo released"),
        );
        assert_eq!(rc, 0);
        assert!(
            !p.rest.probes.contains_key(&1),
            "a chain step is not re-probed after a chain that went through"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a")).unwrap(),
            "A-data\nno newline at the end"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("b")).unwrap(),
            "B\n"
        );
        assert_eq!(
            p.ran[&0],
            Ran {
                stdout: "wrote a\n".into(),
                stderr: "warn a\n".into(),
                rc: 0
            }
        );
        assert_eq!(p.ran[&1].stdout, "wrote b\n");
        assert_eq!(p.ran[&1].stderr, "");
        assert_eq!(p.ran[&2].stdout, "three\n");
        assert_eq!(p.diverged, None);
        assert_eq!(p.rest.probes[&5].out, "B\n");
        assert_eq!(p.after, Some(("released\n".into(), 0)));
    }

    #[test]
    fn parts_of_any_size_reach_their_change_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let sizes = [65536 * 2 + 17, 65536, 1, 70000];
        let data: Vec<String> = sizes
            .iter()
            .enumerate()
            .map(|(k, n)| {
                (0..*n)
                    .map(|i| (b'a' + ((i * 7 + k) % 26) as u8) as char)
                    .collect()
            })
            .collect();
        let links = data
            .iter()
            .enumerate()
            .map(|(k, text)| link(k, None, Some((&format!("cat > {d}/{k}"), text.as_str()))))
            .collect();
        let (p, rc) = run(links, &[], None);
        assert_eq!(rc, 0);
        for (k, text) in data.iter().enumerate() {
            assert_eq!(p.ran[&k].rc, 0);
            let got = std::fs::read_to_string(dir.path().join(k.to_string())).unwrap();
            assert!(
                got == *text,
                "part {k}: {} bytes, expected {}",
                got.len(),
                text.len()
            );
        }
    }

    #[test]
    fn a_check_that_sees_another_state_stops_the_chain_before_that_step() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let marker = format!("test -e {d}/m && echo there || echo absent");
        let (p, rc) = run(
            vec![
                link(0, None, Some((&format!("touch {d}/m"), ""))),
                link(
                    3,
                    Some((&marker, &expected("absent\n", 0))),
                    Some((&format!("touch {d}/never"), "")),
                ),
            ],
            &[(3, marker.clone())],
            Some("echo released"),
        );
        assert_eq!(rc, 0);
        assert_eq!(p.diverged, Some(3));
        assert!(p.ran.contains_key(&0) && !p.ran.contains_key(&3));
        assert!(!dir.path().join("never").exists());
        assert_eq!(
            p.rest.probes[&3].out, "there\n",
            "the re-probe sees the new state"
        );
        assert_eq!(p.after, None, "nothing after a chain that stopped");
    }

    #[test]
    fn a_failed_change_stops_the_script_with_its_status() {
        let (p, rc) = run(
            vec![
                link(0, None, Some(("echo one", ""))),
                link(1, None, Some(("echo half; echo why >&2; exit 7", ""))),
                link(2, None, Some(("echo never", ""))),
            ],
            &[(2, "echo probe".into())],
            Some("echo released"),
        );
        assert_eq!(rc, 7);
        assert_eq!(
            p.ran[&1],
            Ran {
                stdout: "half\n".into(),
                stderr: "why\n".into(),
                rc: 7
            }
        );
        assert!(!p.ran.contains_key(&2));
        assert!(p.rest.probes.is_empty() && p.after.is_none());
    }

    #[test]
    fn the_stop_flag_stops_the_chain_before_the_next_step_and_goes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let flag = format!("{d}/stop");
        let n = super::super::batch::nonce();
        let links = [
            Link {
                id: 0,
                check: None,
                apply: Some((format!("touch {d}/one {flag}"), 0)),
            },
            Link {
                id: 1,
                check: None,
                apply: Some((format!("touch {d}/two"), 0)),
            },
        ];
        let (out, err, rc) = sh(
            &chain_script(&n, &links, &[], Some("echo r"), Some(&flag)),
            b"",
        );
        let p = parse_chain(&n, &out, &err);
        assert_eq!((rc, p.diverged, p.after), (0, Some(1), None));
        assert!(dir.path().join("one").exists() && !dir.path().join("two").exists());
        assert!(!dir.path().join("stop").exists(), "the flag is removed");
    }

    #[test]
    fn a_probe_printing_the_same_with_another_status_diverges() {
        let (p, _) = run(
            vec![
                link(0, None, Some(("true", ""))),
                link(
                    1,
                    Some(("echo same; exit 1", &expected("same\n", 0))),
                    Some(("echo no", "")),
                ),
            ],
            &[],
            None,
        );
        assert_eq!(p.diverged, Some(1));
    }
}
