//! Sampling the process list while a run goes on: a secret on any command line (provision's,
//! ssh's, the host's shells) shows up in `ps -eo args`. The hosts are sshd on loopback, so
//! this machine's process list is theirs too.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `ps -eo args` every 20 ms while `f` runs; returns `f`'s result and every sample.
pub fn watching_process_list<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (stop, samples) = (stop.clone(), samples.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let out = Command::new("ps")
                    .args(["-eo", "args"])
                    .stdin(Stdio::null())
                    .output()
                    .expect("ps is required for this test (procps)");
                assert!(out.status.success(), "ps -eo args failed");
                samples
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&out.stdout).into_owned());
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let result = f();
    stop.store(true, Ordering::SeqCst);
    sampler.join().expect("ps sampler");
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    (result, samples)
}
