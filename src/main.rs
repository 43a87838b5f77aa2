//! The one place the process exits: with the command's exit code, or with the code of the
//! error that stopped it (which `cli::main` has printed, as one `error: ` line, through the
//! channel that masks secret values).

fn main() {
    std::process::exit(provision::cli::main());
}
