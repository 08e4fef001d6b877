//! One module per section of the dashboard; each renders from one to a few API calls.

pub mod agent_settings;
pub mod agents;
pub mod changes;
pub mod conversations;
pub mod home;
pub mod knowledge_base;
pub mod mcp;
pub mod playground;
pub mod review;
pub mod test_builder;
pub mod tests;
pub mod tool_builder;
pub mod tools;
pub mod versions;
pub mod webhooks;
