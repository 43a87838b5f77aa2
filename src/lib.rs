//! provision: provision and deploy applications over SSH.
//!
//! The modules follow the pipeline: `config` (files → typed, validated config) → `inventory`
//! (env → hosts with connection settings) → `plan` (pure: steps × host → probes, decisions,
//! actions) → `transport` (SSH) → `report` (human, plain, JSON). `runner` drives a run,
//! `cli` is the command line.

pub mod cli;
pub mod cloud;
pub mod commands;
pub mod config;
pub mod controller;
pub mod error;
pub mod inventory;
pub mod plan;
pub mod remote;
pub mod report;
pub mod runner;
pub mod secrets;
pub mod steps;
pub mod template;
pub mod transport;
pub mod value;
