//! `provision plan <env>`: check mode; probe the hosts and show what `up` would change.

use super::context::Context;
use super::converge::{self, Converge};
use super::report::RunReport;
use crate::error::Error;
use crate::report::Mode;

/// `detailed`: exit 2 when changes are pending (`--detailed-exitcode`).
/// `report`: `--report FILE`, `--timings`.
pub async fn run(cx: &Context, env: &str, detailed: bool, report: RunReport) -> Result<i32, Error> {
    let how = Converge {
        mode: Mode::Check,
        detailed,
        allow_recreate: false,
        report,
    };
    converge::run(cx, env, how).await
}
