fn main() {
    // A second Ctrl-C during a run quits at once: the runner asks for it, main exits.
    std::thread::spawn(|| std::process::exit(provision::runner::quit_requested()));
    std::process::exit(provision::cli::main());
}
