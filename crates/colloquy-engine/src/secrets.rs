//! Workspace secrets opened for the moment they are used: a webhook's header, an MCP server's
//! URL, token or headers, a custom LLM's key. The plain value never leaves the call that asked
//! for it, and callers scrub it from what they record.

use colloquy_core::ids::WorkspaceId;
use colloquy_core::secret_key::secret_context;
use colloquy_store::StoreError;

use crate::EngineDeps;

/// Why a secret could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The workspace has no such secret.
    #[error("secret {0} does not exist")]
    Missing(String),
    /// Reading it failed.
    #[error("secret {0} could not be read: {1}")]
    Store(String, #[source] StoreError),
    /// Its sealed value does not open with this server's key.
    #[error("secret {0} cannot be opened: {1}")]
    Sealed(String, String),
    /// Its value is not text.
    #[error("secret {0} is not text")]
    NotText(String),
}

/// The plain value of the workspace's secret `secret_id`.
pub async fn open(
    deps: &EngineDeps, workspace_id: &WorkspaceId, secret_id: &str,
) -> Result<String, SecretError> {
    let secret = deps.store.get_secret(workspace_id, secret_id).await.map_err(|e| match e {
        StoreError::NotFound => SecretError::Missing(secret_id.to_owned()),
        other => SecretError::Store(secret_id.to_owned(), other),
    })?;
    let plain = deps
        .keyring
        .open(&secret.sealed_value, &secret_context(workspace_id, secret_id))
        .map_err(|e| SecretError::Sealed(secret_id.to_owned(), e.to_string()))?;
    String::from_utf8(plain).map_err(|_| SecretError::NotText(secret_id.to_owned()))
}
