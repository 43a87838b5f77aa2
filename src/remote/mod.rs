//! The host side of a deploy that is not a step: where provision keeps its state on a host
//! (the deploy lock, the release log, markers), and how that state is read back.

pub mod facts;
pub mod lock;
pub mod releases;

use crate::transport::script::quote;

/// Sets `$st` to the app's state dir: /var/lib/provision/<app>/<env> as root, else under the
/// user's ~/.local/state. Holds the deploy lock, the release log and migration markers.
/// Several parts of one script (the lock, a chain, the release) each say it: the first one
/// works it out, the others find it done (`$pv_st_of` names whose it is).
pub fn state_dir(app: &str, env: &str) -> String {
    let (a, e) = (quote(app), quote(env));
    let of = quote(&format!("{app}/{env}")).into_owned();
    format!(
        "if [ \"${{pv_st_of-}}\" != {of} ]; then if [ \"$(id -u)\" = 0 ]; then st=/var/lib/provision/{a}/{e}; else if [ -z \"$HOME\" ]; then echo \"provision: $(id -un) has no home directory for its state (~/.local/state/provision)\" >&2; exit 1; fi; st=\"$HOME/.local/state/provision/\"{a}/{e}; fi; pv_st_of={of}; fi\n"
    )
}
