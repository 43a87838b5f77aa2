//! The program's one error type: why a command stopped before its normal end. `main` prints
//! it (`error: ` and one sentence) and exits with [`Error::exit_code`]; nothing else exits.
//!
//! A command that ran to its end returns its exit code instead (`Ok(code)`): a failed step,
//! an unreachable host or Ctrl-C during a run are outcomes its reporter has shown already,
//! not errors to print again.

use super::exit;
use super::{CloudError, ConfigError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's input is wrong (file:line:col and help): no host or cloud was touched.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A cloud API call failed; nothing after it was tried.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// A destructive change was asked about and not confirmed: nothing was changed.
    #[error("not confirmed: nothing was changed")]
    NotConfirmed,
    /// A host the command needs an answer from (e.g. its release log) could not be reached.
    #[error("{0}")]
    Unreachable(String),
    /// The command line or the process itself (stdin, the async runtime) cannot be used.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The process exit code (the table in [`exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::NotConfirmed | Error::Usage(_) => exit::CONFIG,
            Error::Cloud(_) => exit::FAILED,
            Error::Unreachable(_) => exit::UNREACHABLE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_exit_code_and_one_sentence() {
        let config = Error::from(ConfigError::new("p.toml", "bad").at_line(3));
        assert_eq!(
            (config.exit_code(), config.to_string()),
            (1, "p.toml:3: bad".into())
        );
        let cloud = Error::from(CloudError {
            op: "RunInstances".into(),
            code: None,
            message: "boom".into(),
        });
        assert_eq!(cloud.exit_code(), 3);
        assert_eq!(cloud.to_string(), "EC2 RunInstances failed: boom");
        assert_eq!(Error::NotConfirmed.exit_code(), 1);
        assert_eq!(Error::Unreachable("gone".into()).exit_code(), 4);
        assert_eq!(Error::Usage("no stdin".into()).exit_code(), 1);
    }
}
