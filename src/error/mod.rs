//! The bottom layer: the program's one error type ([`Error`], with its exit code), the
//! user-input error every layer can return ([`ConfigError`], pointing at file:line:col), the
//! cloud API error ([`CloudError`]) and the process exit codes.

mod cloud;
mod config;
pub mod exit;
mod program;

pub use cloud::CloudError;
pub use config::{ConfigError, line_col, read, suggest};
pub use program::Error;
