//! Keeping what a command prints, bounded: one stream of one command, and all of them in a
//! run together. A step that prints 60 MiB on one line must not cost hundreds of MiB (issue
//! 12): output that is only shown keeps its lines short and only its beginning and its end;
//! output that is parsed or registered is kept whole up to a hard cap.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How much of a command's output is kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    /// Every byte up to [`ALL_CAP`] per stream: output that is parsed or registered.
    #[default]
    All,
    /// Output that is only shown: each line cut at [`LINE_CAP`], then the first
    /// [`HEAD_CAP`] and the last [`TAIL_CAP`] bytes of the stream (the end says why it failed,
    /// and holds the markers of the probes that follow an apply).
    Shown,
}

pub const ALL_CAP: usize = 64 << 20;
pub const LINE_CAP: usize = 64 << 10;
pub const HEAD_CAP: usize = 1 << 20;
pub const TAIL_CAP: usize = 4 << 20;
/// All streams of all commands of a run being collected at once.
pub const RUN_CAP: usize = 512 << 20;

/// Starts every note that stands where bytes were cut, so the redactor can also mask a
/// secret cut in half there.
pub const CUT_MARK: &str = "[provision cut ";

/// Bytes a set of captures may hold at once.
#[derive(Debug)]
pub struct Budget {
    kept: AtomicUsize,
    cap: usize,
}

impl Budget {
    pub const fn new(cap: usize) -> Budget {
        Budget {
            kept: AtomicUsize::new(0),
            cap,
        }
    }
}

/// The one budget of the process: provision runs one command at a time.
static RUN: Budget = Budget::new(RUN_CAP);

/// One stream being collected.
#[derive(Debug)]
pub struct Capture {
    keep: Keep,
    budget: &'static Budget,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    /// Bytes of the current line kept and cut (`Keep::Shown` only).
    line_kept: usize,
    cut_in_line: u64,
    /// Bytes cut from lines, dropped between head and tail, and refused by a cap.
    line_cut: u64,
    middle: u64,
    over: u64,
    reserved: usize,
}

impl Capture {
    pub fn new(keep: Keep) -> Capture {
        Capture::within(keep, &RUN)
    }

    pub fn within(keep: Keep, budget: &'static Budget) -> Capture {
        Capture {
            keep,
            budget,
            head: Vec::new(),
            tail: VecDeque::new(),
            line_kept: 0,
            cut_in_line: 0,
            line_cut: 0,
            middle: 0,
            over: 0,
            reserved: 0,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        match self.keep {
            Keep::All => self.store(data),
            Keep::Shown => self.push_lines(data),
        }
    }

    /// Bytes this stream did not keep.
    pub fn dropped(&self) -> u64 {
        self.line_cut + self.cut_in_line + self.middle + self.over
    }

    /// What was kept, with a note where the middle was dropped; the run's budget is given
    /// back (what the caller does with the bytes next is short-lived or itself bounded).
    pub fn finish(mut self) -> Vec<u8> {
        self.end_line(false);
        let reserved = self.reserved;
        self.give_back(reserved);
        let mut out = std::mem::take(&mut self.head);
        if self.middle > 0 {
            let note = format!("\n{CUT_MARK}{} bytes here]\n", self.middle);
            out.extend_from_slice(note.as_bytes());
        }
        out.extend(self.tail.drain(..));
        out
    }

    fn push_lines(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let (line, rest, newline) = match data.iter().position(|&b| b == b'\n') {
                Some(at) => (&data[..at], &data[at + 1..], true),
                None => (data, &data[data.len()..], false),
            };
            let keep = line.len().min(LINE_CAP.saturating_sub(self.line_kept));
            self.store(&line[..keep]);
            self.line_kept += keep;
            self.cut_in_line += (line.len() - keep) as u64;
            if newline {
                self.end_line(true);
            }
            data = rest;
        }
    }

    /// A line that was cut says so at its end, before its newline.
    fn end_line(&mut self, newline: bool) {
        if self.cut_in_line > 0 {
            let note = format!("{CUT_MARK}{} bytes of this line]", self.cut_in_line);
            self.line_cut += self.cut_in_line;
            self.cut_in_line = 0;
            self.store(note.as_bytes());
        }
        if newline {
            self.store(b"\n");
        }
        self.line_kept = 0;
    }

    fn store(&mut self, data: &[u8]) {
        let granted = self.reserve(data.len());
        let (kept, refused) = data.split_at(granted);
        self.over += refused.len() as u64;
        match self.keep {
            Keep::All => self.head.extend_from_slice(kept),
            Keep::Shown => self.store_shown(kept),
        }
    }

    fn store_shown(&mut self, data: &[u8]) {
        let to_head = data.len().min(HEAD_CAP.saturating_sub(self.head.len()));
        self.head.extend_from_slice(&data[..to_head]);
        self.tail.extend(&data[to_head..]);
        let spill = self.tail.len().saturating_sub(TAIL_CAP);
        if spill > 0 {
            self.tail.drain(..spill);
            self.middle += spill as u64;
            self.give_back(spill);
        }
    }

    /// How many of `n` more bytes this stream and the run may still keep.
    fn reserve(&mut self, n: usize) -> usize {
        let own = match self.keep {
            Keep::All => n.min(ALL_CAP.saturating_sub(self.head.len())),
            Keep::Shown => n,
        };
        let (kept, cap) = (&self.budget.kept, self.budget.cap);
        let mut granted = 0;
        let _ = kept.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
            granted = own.min(cap.saturating_sub(now));
            Some(now + granted)
        });
        self.reserved += granted;
        granted
    }

    fn give_back(&mut self, n: usize) {
        self.budget.kept.fetch_sub(n, Ordering::SeqCst);
        self.reserved -= n;
    }
}
/// Both streams of a command, finished, and whether anything was cut; what either did not
/// keep is said at the end of stderr, where an operator reading a failure looks.
pub fn finish_streams(stdout: Capture, stderr: Capture) -> (Vec<u8>, Vec<u8>, bool) {
    let cuts = [("stdout", stdout.dropped()), ("stderr", stderr.dropped())];
    let cut = cuts.iter().any(|(_, d)| *d > 0);
    let stdout = stdout.finish();
    let mut stderr = stderr.finish();
    for (name, dropped) in cuts.into_iter().filter(|(_, d)| *d > 0) {
        let note = format!("\n[provision: {name} truncated: {dropped} bytes not kept]\n");
        stderr.extend_from_slice(note.as_bytes());
    }
    (stdout, stderr, cut)
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.budget.kept.fetch_sub(self.reserved, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(chunks: &[&[u8]]) -> (String, u64) {
        let mut c = Capture::new(Keep::Shown);
        for chunk in chunks {
            c.push(chunk);
        }
        let dropped = c.dropped();
        (String::from_utf8(c.finish()).unwrap(), dropped)
    }

    #[test]
    fn all_keeps_the_first_bytes_and_counts_the_rest() {
        let mut c = Capture::new(Keep::All);
        c.push(&vec![b'a'; ALL_CAP - 2]);
        c.push(b"bcde");
        assert_eq!(c.dropped(), 2);
        let out = c.finish();
        assert_eq!(out.len(), ALL_CAP);
        assert_eq!(&out[ALL_CAP - 2..], b"bc");
    }

    #[test]
    fn a_long_line_is_cut_and_says_so_across_chunks() {
        let long = vec![b'x'; LINE_CAP + 10];
        let (out, dropped) = shown(&[b"before\n", &long[..100], &long[100..], b"\nafter\n"]);
        assert_eq!(dropped, 10);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "before");
        assert!(lines[1].starts_with(&"x".repeat(LINE_CAP)));
        assert!(lines[1].ends_with("[provision cut 10 bytes of this line]"));
        assert_eq!(lines[2], "after");
    }

    #[test]
    fn the_middle_goes_and_the_end_stays() {
        let line = [b'y'; 1023]
            .iter()
            .chain(b"\n")
            .copied()
            .collect::<Vec<u8>>();
        let mut c = Capture::new(Keep::Shown);
        for _ in 0..(HEAD_CAP + TAIL_CAP) / 1024 + 100 {
            c.push(&line);
        }
        c.push(b"@@END 0\n");
        // Everything past the first HEAD_CAP and the last TAIL_CAP bytes.
        assert_eq!(c.dropped(), 100 * 1024 + 8);
        let out = String::from_utf8(c.finish()).unwrap();
        assert!(out.ends_with("@@END 0\n"));
        assert!(out.contains("\n[provision cut 102408 bytes here]\n"));
        assert!(out.len() < HEAD_CAP + TAIL_CAP + 100);
    }

    #[test]
    fn short_output_is_untouched() {
        let (out, dropped) = shown(&[b"one\ntwo", b" three\n", b"no newline"]);
        assert_eq!(out, "one\ntwo three\nno newline");
        assert_eq!(dropped, 0);
    }

    #[test]
    fn a_run_keeps_no_more_than_its_budget_and_gets_it_back() {
        static SMALL: Budget = Budget::new(100);
        let mut a = Capture::within(Keep::All, &SMALL);
        a.push(&[b'a'; 60]);
        let mut b = Capture::within(Keep::Shown, &SMALL);
        b.push(&[b'b'; 60]);
        assert_eq!(b.dropped(), 20, "only 40 bytes were left in the run");
        assert_eq!(a.finish().len(), 60);
        drop(b);
        assert_eq!(SMALL.kept.load(Ordering::SeqCst), 0);
        let mut c = Capture::within(Keep::All, &SMALL);
        c.push(&[b'c'; 100]);
        assert_eq!(c.dropped(), 0, "the budget came back");
    }
}
