//! The Colloquy server: command line, configuration, start-up wiring and graceful shutdown.
//! Each subcommand is a module; [`server::Server`] is what `serve` runs and what tests start
//! in-process on port 0.

pub mod backup;
pub mod cli;
pub mod config;
pub mod keys;
pub mod models;
pub mod secret_file;
pub mod secrets;
pub mod server;
pub mod telemetry;
pub mod transfer;
