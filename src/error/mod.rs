//! The bottom layer: the user-input error every layer can return ([`ConfigError`], pointing at
//! file:line:col) and the process exit codes.

mod config;
pub mod exit;

pub use config::{ConfigError, line_col, read};
