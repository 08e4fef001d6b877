//! Tools (`/v1/convai/tools/...`), their execution log, and calls made by hand. Tool documents are validated by
//! `colloquy_core::tools`; executions are read from the audit log the engine writes.

mod by_hand;
mod crud;
mod executions;
mod list;
mod view;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The tools routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list::list_tools, crud::create_tool))
        .routes(routes!(crud::get_tool, crud::update_tool, crud::delete_tool))
        .routes(routes!(list::get_dependent_agents))
        .routes(routes!(executions::get_tool_executions))
        .routes(routes!(by_hand::test_tool))
}
