//! The one place the process exits: with the command's exit code, or with the code of the
//! error that stopped it (which `cli::main` has printed, as one `error: ` line, through the
//! channel that masks secret values).

fn main() {
    // A second Ctrl-C during a run quits at once: the runner asks for it, main exits.
    std::thread::spawn(|| std::process::exit(provision::runner::quit_requested()));
    std::process::exit(provision::cli::main());
}
