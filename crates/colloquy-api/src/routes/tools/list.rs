//! The tools list and a tool's dependent agents.

use axum::extract::{Path, State};
use colloquy_core::cursor::{CursorSpec, Direction, PageSizeRule};
use colloquy_core::validation::Violation;
use colloquy_store::{SortValue, ToolFilter, ToolPage};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::view;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query};
use crate::state::AppState;

/// Tool types the `types` filter accepts.
const TYPES: [&str; 5] = [
    "webhook",
    "client",
    "system",
    "mcp",
    "api_integration_webhook",
];

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Tools whose names start with this (case-insensitive).
    search: Option<String>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// Only the caller's tools (deprecated; `created_by_user_id=@me` is the same).
    show_only_owned_documents: Option<bool>,
    /// Only tools created by this user; `@me` is the caller.
    created_by_user_id: Option<String>,
    /// Any of these types (repeat the parameter).
    #[serde(default)]
    types: Vec<String>,
    /// `asc` or `desc` (default).
    sort_direction: Option<String>,
    /// `name` or `created_at` (default).
    sort_by: Option<String>,
    /// Only tools this agent uses.
    used_by_agent_id: Option<String>,
    /// From the previous page.
    cursor: Option<String>,
}

fn direction(raw: Option<&str>) -> ApiResult<Direction> {
    match raw {
        None | Some("") | Some("desc") => Ok(Direction::Desc),
        Some("asc") => Ok(Direction::Asc),
        Some(_) => Err(ApiError::invalid(Violation::new(
            ["query", "sort_direction"],
            "enum",
            "Input should be 'asc' or 'desc'",
        ))),
    }
}

#[utoipa::path(get, path = "/v1/convai/tools", params(ListParams), security(("api_key" = ["tools:read"])))]
pub(super) async fn list_tools(
    caller: Caller,
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let limit = PageSizeRule::STANDARD
        .resolve(params.page_size)
        .map_err(ApiError::invalid)?;
    let by_name = match params.sort_by.as_deref() {
        None | Some("") | Some("created_at") => false,
        Some("name") => true,
        Some(_) => {
            return Err(ApiError::invalid(Violation::new(
                ["query", "sort_by"],
                "enum",
                "Input should be 'name' or 'created_at'",
            )));
        }
    };
    let direction = direction(params.sort_direction.as_deref())?;
    let mut types = Vec::new();
    for (i, t) in params.types.iter().enumerate() {
        if !TYPES.contains(&t.as_str()) {
            return Err(ApiError::invalid(Violation::new(
                vec![
                    "query".into(),
                    "types".into(),
                    colloquy_core::validation::LocItem::Index(i),
                ],
                "enum",
                "Input should be 'webhook', 'client', 'system', 'mcp' or 'api_integration_webhook'",
            )));
        }
        types.push(t.clone());
    }
    types.sort();
    types.dedup();
    let created_by = match params
        .created_by_user_id
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        Some("@me") => Some(caller.user_id.clone()),
        Some(user) => Some(user.to_owned()),
        None if params.show_only_owned_documents == Some(true) => Some(caller.user_id.clone()),
        None => None,
    };
    let filter = ToolFilter {
        name_prefix: params
            .search
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase),
        types,
        created_by,
        used_by_agent: params.used_by_agent_id.filter(|s| !s.is_empty()),
    };
    let spec = CursorSpec::new(
        if by_name { "name" } else { "created_at" },
        direction,
        &[
            filter.name_prefix.as_deref().unwrap_or(""),
            &filter.types.join(","),
            filter.created_by.as_deref().unwrap_or(""),
            filter.used_by_agent.as_deref().unwrap_or(""),
        ],
    );
    let after = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(raw) => {
            let c = spec.decode(raw).map_err(ApiError::invalid)?;
            let value = if by_name {
                c.last_str().map(|s| SortValue::Text(s.to_owned()))
            } else {
                c.last_i64().map(SortValue::Int)
            };
            let value = value.ok_or_else(|| {
                ApiError::invalid(Violation::new(
                    ["query", "cursor"],
                    "value_error",
                    "Invalid cursor: bad sort value",
                ))
            })?;
            Some((value, c.last_id))
        }
        None => None,
    };
    let page = ToolPage {
        by_name,
        descending: direction == Direction::Desc,
        after,
        limit: limit + 1,
    };
    let mut rows = state
        .store
        .list_tools(&caller.workspace_id, &filter, &page)
        .await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let usage = state.store.tool_usage(&caller.workspace_id, &ids).await?;
    let tools = rows
        .iter()
        .map(|r| {
            view::full(
                r,
                usage.iter().find(|(id, _)| id == &r.id).map(|(_, u)| *u),
                &caller,
            )
        })
        .collect::<ApiResult<Vec<Value>>>()?;
    let next_cursor = match rows.last() {
        Some(last) if has_more => {
            let value = if by_name {
                json!(last.name)
            } else {
                json!(last.created_at)
            };
            Some(spec.after(value, &last.id).encode())
        }
        _ => None,
    };
    Ok(Json(
        json!({ "tools": tools, "next_cursor": next_cursor, "has_more": has_more }),
    ))
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
    caller: Caller,
    State(state): State<AppState>,
    Path(tool_id): Path<String>,
    Query(params): Query<DependentParams>,
) -> ApiResult<Json<Value>> {
    let limit = PageSizeRule::STANDARD
        .resolve(params.page_size)
        .map_err(ApiError::invalid)?;
    state
        .store
        .get_tool(&caller.workspace_id, &tool_id)
        .await
        .or_not_found("tool")?;
    let spec = CursorSpec::new("created_at", Direction::Asc, &[&tool_id]);
    let after = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(raw) => {
            let c = spec.decode(raw).map_err(ApiError::invalid)?;
            let at = c.last_i64().ok_or_else(|| {
                ApiError::invalid(Violation::new(
                    ["query", "cursor"],
                    "value_error",
                    "Invalid cursor: bad sort value",
                ))
            })?;
            Some((at, c.last_id))
        }
        None => None,
    };
    let mut rows = state
        .store
        .tool_dependents(&caller.workspace_id, &tool_id, after, limit + 1)
        .await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let role = caller.role().as_str();
    let agents: Vec<Value> = rows
        .iter()
        .map(|a| {
            json!({
                "type": "available",
                "id": a.id,
                "name": a.name,
                "created_at_unix_secs": a.created_at,
                "access_level": role,
                "referenced_resource_ids": [],
            })
        })
        .collect();
    let next_cursor = match rows.last() {
        Some(last) if has_more => Some(spec.after(json!(last.created_at), &last.id).encode()),
        _ => None,
    };
    Ok(Json(
        json!({ "agents": agents, "branches": [], "next_cursor": next_cursor, "has_more": has_more }),
    ))
}
