//! The routers of every resource, one module each, and the top-level composition.

pub mod access;
pub mod agent_testing;
pub mod agents;
pub mod changes;
pub mod conversation_analysis;
pub mod conversation_files;
pub mod conversation_timing;
pub mod conversation_ws;
pub mod conversations;
pub mod environments;
pub mod knowledge_base;
pub mod llm_usage;
pub mod llms;
pub mod mcp_servers;
pub mod ops;
pub mod review;
pub mod search;
pub mod secrets;
pub mod settings;
pub mod simulate;
pub mod stats;
pub mod test_invocations;
pub mod tickets;
pub mod tool_calls;
pub mod tools;
pub mod topics;
pub mod webhook_deliveries;
pub mod webhooks;
pub mod whoami;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every documented route (the `/v1/convai/...` API). Operational endpoints are added by
/// [`crate::router`] outside the document.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<crate::openapi::ApiDoc as utoipa::OpenApi>::openapi())
        .merge(agents::router())
        .merge(agent_testing::router())
        .merge(conversation_ws::router())
        .merge(conversations::router())
        .merge(conversation_analysis::router())
        .merge(conversation_timing::router())
        .merge(stats::router())
        .merge(review::router())
        .merge(search::router())
        .merge(conversation_files::router())
        .merge(topics::router())
        .merge(tickets::router())
        .merge(secrets::router())
        .merge(environments::router())
        .merge(settings::router())
        .merge(webhooks::router())
        .merge(webhook_deliveries::router())
        .merge(tools::router())
        .merge(knowledge_base::router())
        .merge(mcp_servers::router())
        .merge(test_invocations::router())
        .merge(simulate::router())
        .merge(llm_usage::router())
        .merge(llms::router())
        .merge(tool_calls::router())
        .merge(changes::router())
        .merge(whoami::router())
}
