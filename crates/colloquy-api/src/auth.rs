//! Who is calling, and may they call this route.
//!
//! Every route declares the one scope it needs in its OpenAPI `security` requirement
//! (`security(("api_key" = ["agents:read"]))`). At start-up [`ScopeTable::from_openapi`] reads
//! those declarations into a table keyed by method and route template, so the table cannot
//! drift from the routes the server documents. The [`Caller`] extractor looks the matched route
//! up in it; a route that is missing from the table is refused (fail closed), and a test walks
//! `/openapi.json` to prove no route is missing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::{Method, header, request::Parts};
use colloquy_core::keys;
use colloquy_core::scope::{Role, Scope, Scopes};

use crate::error::ApiError;
pub use crate::key_cache::ValidKey;
use crate::state::AppState;

/// Name of the security scheme routes declare their scope under.
pub const SECURITY_SCHEME: &str = "api_key";

/// What a route asks of the key it is called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Required {
    /// Any valid key (declared as the scope `any`): routes about the caller itself.
    AnyKey,
    /// A key holding this scope.
    Scope(Scope),
}

/// Required scope per (method, route template).
#[derive(Debug, Default, Clone)]
pub struct ScopeTable {
    /// Keyed by route alone so a lookup borrows the matched route instead of copying it.
    routes: HashMap<String, Vec<(Method, Required)>>,
}

impl ScopeTable {
    /// Reads every operation's `security` requirement from the OpenAPI document. An operation
    /// with an unparseable scope is an error: the server must not start with it.
    pub fn from_openapi(doc: &serde_json::Value) -> anyhow::Result<ScopeTable> {
        let mut routes: HashMap<String, Vec<(Method, Required)>> = HashMap::new();
        let paths = doc.get("paths").and_then(|p| p.as_object()).into_iter().flatten();
        for (path, item) in paths {
            for (method, op) in item.as_object().into_iter().flatten() {
                let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                    continue;
                };
                let declared = op
                    .get("security")
                    .and_then(|s| s.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|req| req.get(SECURITY_SCHEME))
                    .filter_map(|scopes| scopes.as_array())
                    .flatten()
                    .filter_map(|s| s.as_str())
                    .next();
                if let Some(scope) = declared {
                    let required = if scope == "any" {
                        Required::AnyKey
                    } else {
                        Required::Scope(
                            scope.parse().map_err(|e| anyhow::anyhow!("{method} {path}: {e}"))?,
                        )
                    };
                    routes.entry(path.clone()).or_default().push((method, required));
                }
            }
        }
        Ok(ScopeTable { routes })
    }

    /// What a route requires, if it is in the table.
    pub fn required(&self, method: &Method, route: &str) -> Option<Required> {
        let methods = self.routes.get(route)?;
        methods.iter().find(|(m, _)| m == method).map(|(_, required)| *required)
    }
}

/// The authenticated caller of a request: their workspace, user and scopes (the fields of
/// [`ValidKey`], which it derefs to). Extracting it checks the key and the route's scope. It
/// shares the cached key rather than copying it, so a request allocates nothing for it.
#[derive(Debug, Clone)]
pub struct Caller(Arc<ValidKey>);

impl std::ops::Deref for Caller {
    type Target = ValidKey;

    fn deref(&self) -> &ValidKey {
        &self.0
    }
}

impl Caller {
    /// The role shown in `access_info`.
    pub fn role(&self) -> Role {
        self.scopes.role()
    }
}

/// An authenticated request: who calls ([`Caller`], which it derefs to) and the application it
/// calls. Handlers and their helpers take this one value instead of the two.
#[derive(Clone)]
pub struct Ctx {
    /// Who calls.
    pub caller: Caller,
    /// The application.
    pub app: AppState,
}

impl std::ops::Deref for Ctx {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts, state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Ctx { caller, app: state.clone() })
    }
}

/// The token presented with a request: `xi-api-key: KEY`, or `Authorization: Bearer KEY`.
pub fn presented_token(parts: &Parts) -> Option<&str> {
    if let Some(key) = parts.headers.get("xi-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    let auth = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts, state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let route = parts.extensions.get::<MatchedPath>().map_or("", MatchedPath::as_str);
        let Some(required) = state.scopes.required(&parts.method, route) else {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "route {} {route} has no entry in the scope table",
                parts.method
            )));
        };
        let token = presented_token(parts).filter(|t| !t.is_empty()).ok_or(ApiError::MissingKey)?;
        let key = valid_key(state, &keys::hash_token(token)).await?;
        state.rate.check(&key.key_id).map_err(ApiError::RateLimited)?;
        let scopes = &key.scopes;
        if let Required::Scope(required) = required
            && !scopes.allows(required)
        {
            return Err(ApiError::MissingScope(required.to_string()));
        }
        if let Some(slot) = parts.extensions.get::<crate::changes::ActorSlot>() {
            slot.fill(crate::changes::Actor {
                key_id: key.key_id.clone(),
                user_id: key.user_id.clone(),
                workspace_id: key.workspace_id.to_string(),
            });
        }
        let span = tracing::Span::current();
        span.record("workspace", tracing::field::display(&key.workspace_id));
        span.record("key", key.key_id.as_str());
        Ok(Caller(key))
    }
}

/// The valid, unrevoked key with this token hash: from the [`crate::key_cache::KeyCache`] when it was read
/// recently, else from the store (and then cached).
async fn valid_key(state: &AppState, token_hash: &str) -> Result<Arc<ValidKey>, ApiError> {
    if let Some(key) = state.keys.get(token_hash) {
        return Ok(key);
    }
    let key = state
        .store
        .find_key(token_hash)
        .await?
        .filter(|k| k.revoked_at.is_none())
        .ok_or(ApiError::InvalidKey)?;
    let key = Arc::new(ValidKey {
        scopes: Scopes::parse(&key.scopes).map_err(|e| ApiError::Internal(e.into()))?,
        key_id: key.key_id,
        workspace_id: key.workspace_id,
        user_id: key.user_id,
    });
    state.keys.put(token_hash.to_owned(), Arc::clone(&key));
    Ok(key)
}
