//! `GET /api/whoami`: who the key in hand is — its workspace, user and scopes. Colloquy's own
//! route (the reference has none), open to any valid key, so a client (the dashboard's header)
//! can say who is signed in.

use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(whoami))
}

#[utoipa::path(
    get,
    path = "/api/whoami",
    responses((status = 200, description = "`{key_id, workspace: {id, name}, user: {id, name, email}, scopes, role}`")),
    security(("api_key" = ["any"]))
)]
async fn whoami(cx: Ctx) -> ApiResult<Json<Value>> {
    let (name, email) = cx.app.store.user_name_email(&cx.user_id).await?;
    let workspace = cx.app.store.workspace_name(&cx.workspace_id).await?;
    Ok(Json(json!({
        "key_id": cx.key_id,
        "workspace": {"id": cx.workspace_id, "name": workspace},
        "user": {"id": cx.user_id, "name": name, "email": email},
        "scopes": cx.scopes.to_string(),
        "role": cx.role().as_str(),
    })))
}
