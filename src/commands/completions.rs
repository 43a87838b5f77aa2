//! `provision completions <shell>`: a shell completion script for the command tree.

use crate::error::{Error, exit};

/// `cmd`: the whole command line definition (clap's, from `cli`).
pub fn run(shell: clap_complete::Shell, mut cmd: clap::Command) -> Result<i32, Error> {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "provision", &mut script);
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(&script);
    Ok(exit::OK)
}
