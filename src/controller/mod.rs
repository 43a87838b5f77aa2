//! The controller: this machine, where provision runs. A step that does part of its work here
//! (the `image` step builds an image once and ships it to every host) calls these functions
//! from its [`StepKind::controller`](crate::steps::StepKind::controller) hook; nothing here
//! talks to a host.

pub mod docker;
