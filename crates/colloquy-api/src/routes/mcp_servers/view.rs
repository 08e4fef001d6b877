//! The wire view of an MCP server: `MCPServerResponseModel`.

use colloquy_store::{AgentSummaryRow, McpServerRow};
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::access::access_info;
use crate::routes::agents;

/// The stored configuration of a server.
pub fn config(row: &McpServerRow) -> Result<Map<String, Value>, ApiError> {
    serde_json::from_str(&row.document)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("MCP server {} document: {e}", row.id)))
}

/// The server with the agents that use it.
pub fn full(
    row: &McpServerRow, dependents: &[AgentSummaryRow], caller: &Caller,
) -> Result<Value, ApiError> {
    let role = caller.role();
    let agents: Vec<Value> =
        dependents.iter().map(|a| agents::dependent(a, role.as_str())).collect();
    Ok(json!({
        "id": row.id,
        "config": config(row)?,
        "access_info": access_info(&row.created_by, &row.creator_name, &row.creator_email, caller),
        "dependent_agents": agents,
        "metadata": {"created_at": row.created_at, "owner_user_id": row.created_by},
    }))
}
