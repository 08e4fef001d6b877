//! Integration tests of the server, one module per area, all in one test binary.

#![allow(clippy::unwrap_used)]

mod agent_testing;
mod agents;
mod audit;
mod auth;
mod dashboard;
mod engine;
mod errors;
mod fakes;
mod helpers;
mod lifecycle;
mod live;
mod mcp;
mod multinode;
mod ops;
mod secrets;
mod security;
mod store;
mod test_runs;
mod tools;
