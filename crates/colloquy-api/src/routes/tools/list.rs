//! The tools list and a tool's dependent agents.

use axum::extract::Path;
use colloquy_core::cursor::Direction;
use colloquy_core::ids::{AgentId, ToolId};
use colloquy_core::tools::{ToolKind, ToolSort};
use colloquy_store::{ToolFilter, ToolPage};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::view;
use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::extract::{Json, Query, empty_as_none};
use crate::paging::{Page, PageSizeRule, Pager};
use crate::routes::access::created_by;
use crate::routes::agents;
use axum::response::Response;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Tools whose names start with this (case-insensitive).
    search: Option<String>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// Only the caller's tools (deprecated; `created_by_user_id=@me` is the same).
    show_only_owned_documents: Option<bool>,
    /// Only tools created by this user; `@me` is the cx.
    created_by_user_id: Option<String>,
    /// Any of these types (repeat the parameter): `webhook`, `client`, `system`, `mcp`,
    /// `api_integration_webhook`.
    #[serde(default)]
    #[param(value_type = Vec<String>)]
    types: Vec<ToolKind>,
    /// `asc` or `desc` (default).
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sort_direction: Option<Direction>,
    /// `name` or `created_at` (default).
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sort_by: Option<ToolSort>,
    /// Only tools this agent uses.
    used_by_agent_id: Option<String>,
    /// From the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/tools", params(ListParams), security(("api_key" = ["tools:read"])))]
pub(super) async fn list_tools(cx: Ctx, Query(params): Query<ListParams>) -> ApiResult<Response> {
    let sort = params.sort_by.unwrap_or_default();
    let by_name = sort == ToolSort::Name;
    let direction = params.sort_direction.unwrap_or_default();
    let mut types = params.types;
    types.sort();
    types.dedup();
    let filter = ToolFilter {
        name_prefix: params.search.as_deref().filter(|s| !s.is_empty()).map(str::to_lowercase),
        types,
        created_by: created_by(
            &cx,
            params.created_by_user_id.as_deref(),
            params.show_only_owned_documents,
        ),
        used_by_agent: params.used_by_agent_id.filter(|s| !s.is_empty()).map(AgentId::from),
    };
    let types: Vec<&str> = filter.types.iter().map(|t| t.as_str()).collect();
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        sort.as_str(),
        direction,
        &[
            filter.name_prefix.as_deref().unwrap_or(""),
            &types.join(","),
            filter.created_by.as_deref().unwrap_or(""),
            filter.used_by_agent.as_ref().map_or("", AgentId::as_str),
        ],
    )?;
    let page = ToolPage {
        sort,
        descending: direction == Direction::Desc,
        after: pager.after_value(by_name)?,
        limit: pager.fetch(),
    };
    let rows = cx.app.store.list_tools(&cx.workspace_id, &filter, &page).await?;
    let page = pager.page(rows, |r| {
        let key = if by_name { json!(r.name) } else { json!(r.created_at) };
        (key, r.id.as_str())
    });
    let ids: Vec<ToolId> = page.items.iter().map(|r| r.id.clone()).collect();
    let usage = cx.app.store.tool_usage(&cx.workspace_id, &ids).await?;
    let tools = page.items.iter().map(|r| {
        let used = usage.iter().find(|(id, _)| id == &r.id).map(|(_, u)| *u);
        view::full(r, used, &cx)
    });
    let tools = Page {
        items: tools.collect::<ApiResult<Vec<Value>>>()?,
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    };
    tools.respond("tools")
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DependentParams {
    /// From the previous page.
    cursor: Option<String>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
}

#[utoipa::path(get, path = "/v1/convai/tools/{tool_id}/dependent-agents", params(("tool_id" = String, Path), DependentParams), security(("api_key" = ["tools:read"])))]
pub(super) async fn get_dependent_agents(
    cx: Ctx, Path(tool_id): Path<ToolId>, Query(params): Query<DependentParams>,
) -> ApiResult<Json<Value>> {
    cx.tool(&tool_id).await?;
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        "created_at",
        Direction::Asc,
        &[tool_id.as_str()],
    )?;
    let rows = cx
        .app
        .store
        .tool_dependents(&cx.workspace_id, &tool_id, pager.after()?, pager.fetch())
        .await?;
    let page = pager.page(rows, |a| (a.created_at, a.id.as_str()));
    let role = cx.role().as_str();
    let agents: Vec<Value> = page.items.iter().map(|a| agents::dependent(a, role)).collect();
    Ok(Json(
        json!({ "agents": agents, "branches": [], "next_cursor": page.next_cursor, "has_more": page.has_more }),
    ))
}
