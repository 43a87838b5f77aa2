//! Exit codes: one table for every command.

pub const OK: i32 = 0;
pub const CONFIG: i32 = 1;
pub const PENDING: i32 = 2;
pub const FAILED: i32 = 3;
pub const UNREACHABLE: i32 = 4;
/// Stopped by Ctrl-C / SIGTERM (128 + SIGINT, as shells report it).
pub const INTERRUPTED: i32 = 130;

/// The exit code of a command run on many hosts: an unreachable host outweighs a failed
/// one, which outweighs success.
pub fn of_hosts(failed: usize, unreachable: usize) -> i32 {
    if unreachable > 0 {
        UNREACHABLE
    } else if failed > 0 {
        FAILED
    } else {
        OK
    }
}
