//! The host side of a deploy that is not a step: where provision keeps its state on a host
//! (the deploy lock, the release log, markers), and how that state is read back.

pub mod facts;
pub mod lock;
pub mod releases;

use crate::transport::script::quote;

/// Sets `$st` to the app's state dir: /var/lib/provision/<app>/<env> as root, else under the
/// user's ~/.local/state. Holds the deploy lock, the release log and migration markers.
pub fn state_dir(app: &str, env: &str) -> String {
    let (a, e) = (quote(app), quote(env));
    format!(
        "if [ \"$(id -u)\" = 0 ]; then st=/var/lib/provision/{a}/{e}; else if [ -z \"$HOME\" ]; then echo \"provision: $(id -un) has no home directory for its state (~/.local/state/provision)\" >&2; exit 1; fi; st=\"$HOME/.local/state/provision/\"{a}/{e}; fi\n"
    )
}
