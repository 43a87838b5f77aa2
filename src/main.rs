//! The one place the process exits: with the command's exit code, or with the code of the
//! error that stopped it, printed as one `error: ` line.

fn main() {
    // A second Ctrl-C during a run quits at once: the runner asks for it, main exits.
    std::thread::spawn(|| std::process::exit(provision::runner::quit_requested()));
    let code = match provision::cli::main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
