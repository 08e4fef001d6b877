//! Workspace secrets and environment variables opened for the moment they are used: a
//! webhook's header, an MCP server's URL, token or headers, a custom LLM's key. The plain value
//! never leaves the call that asked for it, and callers scrub a secret's from what they record.

use colloquy_core::environments::VarKind;
use colloquy_core::ids::WorkspaceId;
use colloquy_core::secret_key::secret_context;
use colloquy_store::StoreError;
use serde_json::Value;

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
    /// The workspace has no environment variable with this label.
    #[error("the environment variable {0:?} does not exist")]
    NoVariable(String),
    /// Reading an environment variable failed.
    #[error("the environment variable {0:?} could not be read: {1}")]
    Variable(String, #[source] StoreError),
}

/// A value a configuration names rather than writes, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The plain value.
    pub value: String,
    /// Whether it is a secret's, which must never be recorded.
    pub secret: bool,
}

/// Opens a reference: a workspace secret (`{"secret_id": ...}`) or an environment variable
/// (`{"env_var_label": ...}`, its value in `environment`, else its production value);
/// `None` when `value` is neither.
pub async fn open_reference(
    deps: &EngineDeps, workspace_id: &WorkspaceId, environment: &str, value: &Value,
) -> Result<Option<Opened>, SecretError> {
    if let Some(secret_id) = value.get("secret_id").and_then(Value::as_str) {
        let value = open(deps, workspace_id, secret_id).await?;
        return Ok(Some(Opened { value, secret: true }));
    }
    let Some(label) = value.get("env_var_label").and_then(Value::as_str) else {
        return Ok(None);
    };
    let found = deps
        .store
        .resolve_env_var(workspace_id, label, environment)
        .await
        .map_err(|e| SecretError::Variable(label.to_owned(), e))?
        .ok_or_else(|| SecretError::NoVariable(label.to_owned()))?;
    Ok(Some(match VarKind::parse(&found.kind) {
        Some(VarKind::Secret) => {
            Opened { value: open(deps, workspace_id, &found.value).await?, secret: true }
        }
        _ => Opened { value: found.value, secret: false },
    }))
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
