//! Ctrl-C and SIGTERM during a run. The first signal sets a flag the hosts check between
//! steps (so nothing is left half-applied); the second asks `main` to exit at once. The runner
//! never exits the process itself: [`quit_requested`] is what `main` waits on.

use crate::error::exit;
use crate::report::Sink;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// Set on the first Ctrl-C or SIGTERM: hosts finish the step they are on, release their
/// deploy lock and stop.
#[derive(Clone, Default)]
pub struct Interrupt(Arc<(AtomicBool, tokio::sync::Notify)>);

impl Interrupt {
    /// Listen for SIGINT and SIGTERM in the background.
    pub fn listen(sink: Sink) -> Interrupt {
        let flag = Interrupt::default();
        let f = flag.clone();
        tokio::spawn(async move {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
            f.trigger();
            sink.note("interrupted: finishing the steps in progress, then stopping (press Ctrl-C again to quit at once)");
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
            request_quit(exit::INTERRUPTED);
        });
        flag
    }

    /// What the first signal does (tests call it directly).
    pub fn trigger(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        self.0.1.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.0.0.load(Ordering::SeqCst)
    }

    /// Until the first signal (at once when it came already).
    pub async fn wait(&self) {
        loop {
            // Created before the check: a trigger in between still wakes it.
            let woken = self.0.1.notified();
            if self.is_set() {
                return;
            }
            woken.await;
        }
    }
}

/// The exit code a second signal asked for; process-wide, as signals are.
static QUIT: (Mutex<Option<i32>>, Condvar) = (Mutex::new(None), Condvar::new());

fn request_quit(code: i32) {
    *QUIT.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(code);
    QUIT.1.notify_all();
}

/// Blocks until a second signal asks to quit, then returns the exit code to quit with.
/// `main` waits on this in a thread of its own and exits there.
pub fn quit_requested() -> i32 {
    let mut code = QUIT.0.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Some(c) = *code {
            return c;
        }
        code = QUIT.1.wait(code).unwrap_or_else(PoisonError::into_inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_quit_request_wakes_the_waiter_with_the_interrupted_code() {
        let waiter = std::thread::spawn(quit_requested);
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished(), "nothing asked to quit yet");
        request_quit(exit::INTERRUPTED);
        assert_eq!(waiter.join().unwrap(), exit::INTERRUPTED);
    }

    #[tokio::test]
    async fn wait_returns_once_triggered_and_at_once_after() {
        let a = Interrupt::default();
        let b = a.clone();
        let waiting = tokio::spawn(async move { b.wait().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        a.trigger();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), a.wait())
            .await
            .unwrap();
    }

    #[test]
    fn trigger_sets_the_flag_for_every_clone() {
        let a = Interrupt::default();
        let b = a.clone();
        assert!(!b.is_set());
        a.trigger();
        assert!(b.is_set());
    }
}
