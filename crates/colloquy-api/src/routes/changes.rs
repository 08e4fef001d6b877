//! `GET /api/changes`: the workspace's change log (recorded by [`crate::changes`]), newest
//! first, for administrators. Colloquy's own route: the reference has no such log.

use colloquy_core::cursor::Direction;
use colloquy_store::{ChangeFilter, ChangeRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::paging::{PageSizeRule, Pager};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_changes))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ChangeParams {
    /// A resource type (`agent`, `tool`, `test`, `test_folder`, `mcp_server`, `secret`) or
    /// one resource's id.
    resource: Option<String>,
    /// An API key id or a user id.
    actor: Option<String>,
    /// Only changes at or after this Unix time (seconds).
    after: Option<i64>,
    /// From the previous page.
    cursor: Option<String>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
}

#[derive(Serialize)]
struct Actor<'a> {
    key_id: &'a str,
    user_id: &'a str,
}

#[derive(Serialize)]
struct Resource<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
}

#[derive(Serialize)]
struct ChangeView<'a> {
    id: &'a str,
    at_unix_ms: i64,
    actor: Actor<'a>,
    resource: Resource<'a>,
    operation: &'a str,
    /// The JSON paths the request wrote.
    paths: Value,
}

fn view(c: &ChangeRow) -> ChangeView<'_> {
    ChangeView {
        id: &c.id,
        at_unix_ms: c.at_ms,
        actor: Actor { key_id: &c.actor_key_id, user_id: &c.actor_user_id },
        resource: Resource { kind: &c.resource_type, id: &c.resource_id },
        operation: &c.operation,
        paths: serde_json::from_str(&c.paths).unwrap_or_else(|_| Value::Array(Vec::new())),
    }
}

#[utoipa::path(
    get,
    path = "/api/changes",
    params(ChangeParams),
    responses((status = 200, description = "`{changes: [{id, at_unix_ms, actor: {key_id, user_id}, resource: {type, id}, operation, paths}], has_more, next_cursor}`, newest first")),
    security(("api_key" = ["admin"]))
)]
async fn list_changes(
    cx: Ctx, Query(params): Query<ChangeParams>,
) -> ApiResult<axum::response::Response> {
    let after_ms = params
        .after
        .map(|secs| secs.checked_mul(1000).ok_or_else(|| bad_after(secs)))
        .transpose()?;
    let filter = ChangeFilter {
        resource: params.resource.filter(|s| !s.is_empty()),
        actor: params.actor.filter(|s| !s.is_empty()),
        after_ms,
    };
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        "at",
        Direction::Desc,
        &[
            filter.resource.as_deref().unwrap_or_default(),
            filter.actor.as_deref().unwrap_or_default(),
            &format!("{:?}", filter.after_ms),
        ],
    )?;
    let rows =
        cx.app.store.list_changes(&cx.workspace_id, &filter, pager.after()?, pager.fetch()).await?;
    let page = pager.page(rows, |r| (r.at_ms, r.id.as_str()));
    page.view(view).respond("changes")
}

fn bad_after(secs: i64) -> ApiError {
    ApiError::invalid(colloquy_core::validation::Violation::new(
        ["query", "after"],
        "value_error",
        format!("{secs} is not a Unix time in seconds"),
    ))
}
