//! The caller's resources by id, each found in the caller's workspace or answered 404 with its
//! own name (`tool_not_found`, ...): the first line of most handlers.

use colloquy_core::ids::{AgentId, ConversationId, DocumentId, InvocationId, ToolId};
use colloquy_store::{
    AgentRow, ConversationRow, DocumentRow, InvocationRow, McpServerRow, SecretRecord, ToolRow,
};

use crate::auth::Ctx;
use crate::error::{ApiResult, OrNotFound};

/// `Ctx::$name(id)`: the store's `$get` in the caller's workspace, or 404 `$what`.
macro_rules! lookups {
    ($($(#[$doc:meta])* $name:ident($id:ty) -> $row:ty = $get:ident, $what:literal;)*) => {
        impl Ctx {
            $(
                $(#[$doc])*
                pub async fn $name(&self, id: &$id) -> ApiResult<$row> {
                    self.app.store.$get(&self.workspace_id, id).await.or_not_found($what)
                }
            )*
        }
    };
}

lookups! {
    /// An agent, with its document.
    agent(AgentId) -> AgentRow = get_agent, "agent";
    /// A tool.
    tool(ToolId) -> ToolRow = get_tool, "tool";
    /// An MCP server.
    mcp_server(str) -> McpServerRow = get_mcp_server, "MCP server";
    /// A test invocation.
    invocation(InvocationId) -> InvocationRow = get_invocation, "test invocation";
    /// A conversation, with its document.
    conversation(ConversationId) -> ConversationRow = get_conversation, "conversation";
    /// A knowledge-base document or folder.
    document(DocumentId) -> DocumentRow = get_document, "document";
    /// A secret (sealed).
    secret(str) -> SecretRecord = get_secret, "secret";
}
