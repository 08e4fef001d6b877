//! MCP servers (`/v1/convai/mcp-servers/...`): the workspace's registry of Model Context
//! Protocol servers that agents attach by id, with their approval policy, per-tool approvals
//! and per-tool config overrides, and a live listing of a server's tools. Configurations are
//! validated by `colloquy_core::mcp_servers`; the engine's `mcp` module talks to the servers.

mod crud;
mod tool_settings;
mod view;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The MCP server routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(crud::list_mcp_servers, crud::create_mcp_server))
        .routes(routes!(crud::get_mcp_server, crud::update_mcp_server, crud::delete_mcp_server))
        .routes(routes!(crud::update_approval_policy))
        .routes(routes!(crud::list_server_tools))
        .routes(routes!(tool_settings::add_tool_approval))
        .routes(routes!(tool_settings::remove_tool_approval))
        .routes(routes!(tool_settings::add_tool_config))
        .routes(routes!(
            tool_settings::get_tool_config,
            tool_settings::update_tool_config,
            tool_settings::remove_tool_config
        ))
}
