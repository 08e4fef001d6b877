//! Tests: create, get, full update, delete, list, summaries by id.

use std::collections::HashMap;

use axum::extract::{Path, State};
use colloquy_core::agent_tests::{self, Write};
use colloquy_core::cursor::{CursorSpec, Direction, PageSizeRule};
use colloquy_core::validation::{LocItem, Violation};
use colloquy_core::{ids, time};
use colloquy_store::{NewTestEntity, ParentFilter, TestFilter, TestPage};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

use super::view::{self, Folders};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query};
use crate::state::AppState;

/// Id prefix of tests.
const TEST_PREFIX: &str = "test_";

async fn prepare(
    state: &AppState,
    caller: &Caller,
    body: Value,
    write: Write,
) -> ApiResult<agent_tests::TestDoc> {
    let doc = agent_tests::prepare(body, write).map_err(ApiError::Invalid)?;
    let folders = Folders::load(state, caller).await?;
    view::check_folder(
        &folders,
        doc.parent_folder_id.as_deref(),
        &["body", "parent_folder_id"],
    )?;
    view::check_tool_refs(state, caller, &doc.tool_refs).await?;
    Ok(doc)
}

fn document_text(doc: &agent_tests::TestDoc) -> ApiResult<String> {
    Ok(serde_json::to_string(&doc.document)?)
}

#[utoipa::path(post, path = "/v1/convai/agent-testing/create", security(("api_key" = ["tests:write"])))]
pub(super) async fn create_test(
    caller: Caller,
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let doc = prepare(&state, &caller, body, Write::Create).await?;
    let entity = NewTestEntity {
        id: ids::new_id(TEST_PREFIX),
        workspace_id: caller.workspace_id.clone(),
        test_type: doc.test_type.clone(),
        name: doc.name.clone(),
        parent_folder_id: doc.parent_folder_id.clone(),
        created_by: caller.user_id.clone(),
        created_at: time::now_secs(),
        document: document_text(&doc)?,
    };
    state.store.insert_test_entity(&entity).await?;
    Ok(Json(json!({ "id": entity.id })))
}

async fn load_test(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<colloquy_store::TestEntityRow> {
    match state.store.get_test_entity(&caller.workspace_id, id).await {
        Ok(row) if row.test_type != "folder" => Ok(row),
        Ok(_) => Err(ApiError::NotFound("test")),
        Err(e) => Err(e).or_not_found("test"),
    }
}

#[utoipa::path(get, path = "/v1/convai/agent-testing/{test_id}", params(("test_id" = String, Path)), security(("api_key" = ["tests:read"])))]
pub(super) async fn get_test(
    caller: Caller,
    State(state): State<AppState>,
    Path(test_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = load_test(&state, &caller, &test_id).await?;
    Ok(Json(view::full(&row)?))
}

#[utoipa::path(put, path = "/v1/convai/agent-testing/{test_id}", params(("test_id" = String, Path)), security(("api_key" = ["tests:write"])))]
pub(super) async fn update_test(
    caller: Caller,
    State(state): State<AppState>,
    Path(test_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let existing = load_test(&state, &caller, &test_id).await?;
    let doc = prepare(&state, &caller, body, Write::Update).await?;
    if doc.test_type != existing.test_type {
        return Err(ApiError::invalid(Violation::new(
            ["body", "type"],
            "literal_error",
            format!(
                "This test is of type '{}'; its type cannot change",
                existing.test_type
            ),
        )));
    }
    state
        .store
        .update_test_entity(
            &caller.workspace_id,
            &test_id,
            &doc.name,
            doc.parent_folder_id.as_deref(),
            &document_text(&doc)?,
            time::now_secs(),
        )
        .await
        .or_not_found("test")?;
    let row = load_test(&state, &caller, &test_id).await?;
    Ok(Json(view::full(&row)?))
}

#[utoipa::path(delete, path = "/v1/convai/agent-testing/{test_id}", params(("test_id" = String, Path)), security(("api_key" = ["tests:write"])))]
pub(super) async fn delete_test(
    caller: Caller,
    State(state): State<AppState>,
    Path(test_id): Path<String>,
) -> ApiResult<Json<Value>> {
    load_test(&state, &caller, &test_id).await?;
    state
        .store
        .delete_test_entities(&caller.workspace_id, std::slice::from_ref(&test_id))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// From the previous page.
    cursor: Option<String>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// Case-insensitive substring of the name.
    search: Option<String>,
    /// A folder, or `root` for the top level.
    parent_folder_id: Option<String>,
    /// `llm`, `tool`, `simulation`, `folder` (repeat the parameter).
    #[serde(default)]
    types: Vec<String>,
    /// Deprecated: include folders (same as adding `folder` to `types`).
    include_folders: Option<bool>,
    /// `default` (newest first) or `folders_first`.
    sort_mode: Option<String>,
    /// `all` or `shared_with_me` (created by someone else).
    sharing_mode: Option<String>,
    /// Only created by this user; `@me` is the caller.
    created_by_user_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/agent-testing", params(ListParams), security(("api_key" = ["tests:read"])))]
pub(super) async fn list_tests(
    caller: Caller,
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let limit = PageSizeRule::STANDARD
        .resolve(params.page_size)
        .map_err(ApiError::invalid)?;
    let mut types = Vec::new();
    for (i, t) in params.types.iter().enumerate() {
        if !["llm", "tool", "simulation", "folder"].contains(&t.as_str()) {
            return Err(ApiError::invalid(Violation::new(
                vec!["query".into(), "types".into(), LocItem::Index(i)],
                "enum",
                "Input should be 'llm', 'tool', 'simulation' or 'folder'",
            )));
        }
        types.push(t.clone());
    }
    if types.is_empty() {
        types = vec!["llm".into(), "tool".into(), "simulation".into()];
    }
    if params.include_folders == Some(true) && !types.iter().any(|t| t == "folder") {
        types.push("folder".into());
    }
    types.sort();
    types.dedup();
    let folders_first = match params.sort_mode.as_deref() {
        None | Some("") | Some("default") => false,
        Some("folders_first") => true,
        Some(_) => {
            return Err(ApiError::invalid(Violation::new(
                ["query", "sort_mode"],
                "enum",
                "Input should be 'default' or 'folders_first'",
            )));
        }
    };
    let not_created_by = match params.sharing_mode.as_deref() {
        None | Some("") | Some("all") => None,
        Some("shared_with_me") => Some(caller.user_id.clone()),
        Some(_) => {
            return Err(ApiError::invalid(Violation::new(
                ["query", "sharing_mode"],
                "enum",
                "Input should be 'all' or 'shared_with_me'",
            )));
        }
    };
    let parent = match params.parent_folder_id.as_deref() {
        None | Some("") => ParentFilter::Any,
        Some("root") => ParentFilter::Root,
        Some(f) => ParentFilter::Folder(f.to_owned()),
    };
    let created_by = match params
        .created_by_user_id
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        Some("@me") => Some(caller.user_id.clone()),
        other => other.map(str::to_owned),
    };
    let filter = TestFilter {
        search: params
            .search
            .filter(|s| !s.is_empty())
            .map(|s| s.to_lowercase()),
        parent,
        types,
        created_by,
        not_created_by,
    };
    let fingerprint = format!(
        "{:?}",
        (
            &filter.search,
            format!("{:?}", filter.parent),
            &filter.types,
            &filter.created_by,
            &filter.not_created_by
        )
    );
    let spec = CursorSpec::new(
        if folders_first {
            "folders_first"
        } else {
            "created_at"
        },
        Direction::Desc,
        &[&fingerprint],
    );
    let after = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(raw) => {
            let c = spec.decode(raw).map_err(ApiError::invalid)?;
            let bad = || {
                ApiError::invalid(Violation::new(
                    ["query", "cursor"],
                    "value_error",
                    "Invalid cursor: bad sort value",
                ))
            };
            let (folder, at) = c
                .last_str()
                .and_then(|s| s.split_once(':'))
                .ok_or_else(bad)?;
            Some((
                folder.parse().map_err(|_| bad())?,
                at.parse().map_err(|_| bad())?,
                c.last_id,
            ))
        }
        None => None,
    };
    let page = TestPage {
        folders_first,
        after,
        limit: limit + 1,
    };
    let mut rows = state
        .store
        .list_test_entities(&caller.workspace_id, &filter, &page)
        .await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let folders = Folders::load(&state, &caller).await?;
    let sizes: HashMap<String, i64> = state
        .store
        .test_folder_sizes(&caller.workspace_id)
        .await?
        .into_iter()
        .collect();
    let next_cursor = match rows.last() {
        Some(last) if has_more => {
            let folder = i64::from(last.test_type == "folder");
            Some(
                spec.after(json!(format!("{folder}:{}", last.created_at)), &last.id)
                    .encode(),
            )
        }
        _ => None,
    };
    let tests: Vec<Value> = rows
        .iter()
        .map(|r| view::summary(r, &folders, &sizes, &caller))
        .collect();
    Ok(Json(
        json!({ "tests": tests, "next_cursor": next_cursor, "has_more": has_more }),
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct SummariesBody {
    test_ids: Vec<String>,
}

#[utoipa::path(post, path = "/v1/convai/agent-testing/summaries", security(("api_key" = ["tests:read"])))]
pub(super) async fn get_test_summaries(
    caller: Caller,
    State(state): State<AppState>,
    Json(body): Json<SummariesBody>,
) -> ApiResult<Json<Value>> {
    let mut seen = std::collections::HashSet::new();
    for (i, id) in body.test_ids.iter().enumerate() {
        if !seen.insert(id) {
            return Err(ApiError::invalid(Violation::new(
                vec!["body".into(), "test_ids".into(), LocItem::Index(i)],
                "value_error",
                format!("Duplicate test id {id}"),
            )));
        }
    }
    let rows = state
        .store
        .get_test_entities(&caller.workspace_id, &body.test_ids)
        .await?;
    let folders = Folders::load(&state, &caller).await?;
    let sizes = HashMap::new();
    let mut out = Map::new();
    for row in rows.iter().filter(|r| r.test_type != "folder") {
        out.insert(
            row.id.clone(),
            view::summary(row, &folders, &sizes, &caller),
        );
    }
    Ok(Json(json!({ "tests": out })))
}
