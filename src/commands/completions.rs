//! `provision completions <shell>`: a shell completion script for the command tree.

use crate::error::{Error, exit};
use crate::report::Output;

/// `cmd`: the whole command line definition (clap's, from `cli`).
pub fn run(
    shell: clap_complete::Shell,
    mut cmd: clap::Command,
    out: &Output,
) -> Result<i32, Error> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "provision", &mut script);
    // The script is text clap wrote: UTF-8.
    out.write(&String::from_utf8_lossy(&script));
    Ok(exit::OK)
}
