//! Integration tests of the server, all in one test binary: one module per resource of the API
//! (named as its module in `colloquy-api/src/routes/`), and one per concern that crosses them.
//! `tests/README.md` says which is where and how to run one test.

#![allow(clippy::unwrap_used)]
// A test tells one story from set-up to the last assertion; its length is that story's.
#![allow(clippy::too_many_lines)]

// Resources.
mod agent_testing;
mod agent_versions;
mod agents;
mod analysis;
mod conversation_files;
mod conversation_voice;
mod conversation_ws;
mod environments;
mod knowledge_base;
mod llms;
mod mcp_servers;
mod review;
mod secrets;
mod stats;
mod test_invocations;
mod tickets;
mod tool_calls;
mod tools;
mod webhooks;

// Across resources.
mod audit;
mod auth;
mod backups;
mod changes;
mod dashboard;
mod engine;
mod errors;
mod faults;
mod guardrails;
mod lifecycle;
mod multinode;
mod ops;
mod security;
mod store;
mod telemetry;
mod transfers;
mod workflows;

// Harness.
mod fakes;
mod helpers;
mod ws;
