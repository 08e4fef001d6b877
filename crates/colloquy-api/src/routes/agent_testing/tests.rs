//! Tests: create, get, full update, delete, list, summaries by id.

use std::collections::HashMap;

use axum::extract::Path;
use colloquy_core::agent_tests::{self, Write};
use colloquy_core::cursor::Direction;
use colloquy_core::ids::TestId;
use colloquy_core::time;
use colloquy_core::validation::{LocItem, Violation};
use colloquy_store::{NewTestEntity, ParentFilter, TestFilter, TestPage};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

use super::view::{self, Folders};
use crate::auth::{Caller, Ctx};
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query, empty_as_none};
use crate::paging::{PageSizeRule, Pager, SortKey};
use crate::routes::access::created_by;
use axum::response::Response;

async fn prepare(cx: &Ctx, body: Value, write: Write) -> ApiResult<agent_tests::TestDoc> {
    let doc = agent_tests::prepare(body, write).map_err(ApiError::Invalid)?;
    let folders = Folders::load(cx).await?;
    view::check_folder(&folders, doc.parent_folder_id.as_deref(), &["body", "parent_folder_id"])?;
    view::check_tool_refs(cx, &doc.tool_refs).await?;
    Ok(doc)
}

fn document_text(doc: &agent_tests::TestDoc) -> ApiResult<String> {
    Ok(serde_json::to_string(&doc.document)?)
}

#[utoipa::path(post, path = "/v1/convai/agent-testing/create", security(("api_key" = ["tests:write"])))]
pub(super) async fn create_test(cx: Ctx, Json(body): Json<Value>) -> ApiResult<Json<Value>> {
    let doc = prepare(&cx, body, Write::Create).await?;
    let entity = NewTestEntity {
        id: TestId::generate_test(),
        workspace_id: cx.workspace_id.clone(),
        test_type: doc.test_type.clone(),
        name: doc.name.clone(),
        parent_folder_id: doc.parent_folder_id.clone(),
        created_by: cx.user_id.clone(),
        created_at: time::now_secs(),
        document: document_text(&doc)?,
    };
    cx.app.store.insert_test_entity(&entity).await?;
    Ok(Json(json!({ "id": entity.id })))
}

async fn load_test(cx: &Ctx, id: &TestId) -> ApiResult<colloquy_store::TestEntityRow> {
    match cx.app.store.get_test_entity(&cx.workspace_id, id).await {
        Ok(row) if row.test_type != "folder" => Ok(row),
        Ok(_) => Err(ApiError::NotFound("test")),
        Err(e) => Err(e).or_not_found("test"),
    }
}

#[utoipa::path(get, path = "/v1/convai/agent-testing/{test_id}", params(("test_id" = String, Path)), security(("api_key" = ["tests:read"])))]
pub(super) async fn get_test(cx: Ctx, Path(test_id): Path<TestId>) -> ApiResult<Json<Value>> {
    let row = load_test(&cx, &test_id).await?;
    Ok(Json(view::full(&row)?))
}

#[utoipa::path(put, path = "/v1/convai/agent-testing/{test_id}", params(("test_id" = String, Path)), security(("api_key" = ["tests:write"])))]
pub(super) async fn update_test(
    cx: Ctx, Path(test_id): Path<TestId>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let existing = load_test(&cx, &test_id).await?;
    let doc = prepare(&cx, body, Write::Update).await?;
    if doc.test_type != existing.test_type {
        return Err(ApiError::invalid(Violation::new(
            ["body", "type"],
            "literal_error",
            format!("This test is of type '{}'; its type cannot change", existing.test_type),
        )));
    }
    cx.app
        .store
        .update_test_entity(
            &cx.workspace_id,
            &test_id,
            &doc.name,
            doc.parent_folder_id.as_deref(),
            &document_text(&doc)?,
            time::now_secs(),
        )
        .await
        .or_not_found("test")?;
    let row = load_test(&cx, &test_id).await?;
    Ok(Json(view::full(&row)?))
}

#[utoipa::path(delete, path = "/v1/convai/agent-testing/{test_id}", params(("test_id" = String, Path)), security(("api_key" = ["tests:write"])))]
pub(super) async fn delete_test(cx: Ctx, Path(test_id): Path<TestId>) -> ApiResult<Json<Value>> {
    load_test(&cx, &test_id).await?;
    cx.app.store.delete_test_entities(&cx.workspace_id, std::slice::from_ref(&test_id)).await?;
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
    #[param(value_type = Vec<String>)]
    types: Vec<EntityType>,
    /// Deprecated: include folders (same as adding `folder` to `types`).
    include_folders: Option<bool>,
    /// `default` (newest first) or `folders_first`.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sort_mode: Option<SortMode>,
    /// `all` or `shared_with_me` (created by someone else).
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sharing_mode: Option<SharingMode>,
    /// Only created by this user; `@me` is the cx.
    created_by_user_id: Option<String>,
}

/// What the tests list holds: tests of each type, and folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum EntityType {
    Llm,
    Tool,
    Simulation,
    Folder,
}

impl EntityType {
    fn as_str(self) -> &'static str {
        match self {
            EntityType::Llm => "llm",
            EntityType::Tool => "tool",
            EntityType::Simulation => "simulation",
            EntityType::Folder => "folder",
        }
    }
}

/// The tests list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum SortMode {
    /// Newest first.
    #[default]
    Default,
    /// Folders, then tests, each newest first.
    FoldersFirst,
}

/// Whose tests the list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum SharingMode {
    /// Everyone's.
    #[default]
    All,
    /// Those created by someone else.
    SharedWithMe,
}

/// Where a page of tests ended: `(is_folder, created_at)`, in a cursor as `"f:t"`.
struct TestOrder(i64, i64);

impl SortKey for TestOrder {
    fn to_cursor(&self) -> Value {
        json!(format!("{}:{}", self.0, self.1))
    }

    fn from_cursor(value: &Value) -> Option<Self> {
        let (folder, at) = value.as_str()?.split_once(':')?;
        Some(TestOrder(folder.parse().ok()?, at.parse().ok()?))
    }
}

/// The list's filters from its parameters.
fn filter(params: ListParams, caller: &Caller) -> TestFilter {
    let mut types = params.types;
    if types.is_empty() {
        types = vec![EntityType::Llm, EntityType::Tool, EntityType::Simulation];
    }
    if params.include_folders == Some(true) {
        types.push(EntityType::Folder);
    }
    let mut types: Vec<String> = types.iter().map(|t| t.as_str().to_owned()).collect();
    types.sort();
    types.dedup();
    TestFilter {
        search: params.search.filter(|s| !s.is_empty()).map(|s| s.to_lowercase()),
        parent: match params.parent_folder_id.as_deref() {
            None | Some("") => ParentFilter::Any,
            Some("root") => ParentFilter::Root,
            Some(f) => ParentFilter::Folder(f.to_owned()),
        },
        types,
        created_by: created_by(caller, params.created_by_user_id.as_deref(), None),
        not_created_by: (params.sharing_mode == Some(SharingMode::SharedWithMe))
            .then(|| caller.user_id.clone()),
    }
}

#[utoipa::path(get, path = "/v1/convai/agent-testing", params(ListParams), security(("api_key" = ["tests:read"])))]
pub(super) async fn list_tests(cx: Ctx, Query(params): Query<ListParams>) -> ApiResult<Response> {
    let folders_first = params.sort_mode == Some(SortMode::FoldersFirst);
    let (page_size, cursor) = (params.page_size, params.cursor.clone());
    let filter = filter(params, &cx);
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
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        page_size,
        cursor.as_deref(),
        if folders_first { "folders_first" } else { "created_at" },
        Direction::Desc,
        &[&fingerprint],
    )?;
    let page = TestPage {
        folders_first,
        after: pager.after::<TestOrder>()?.map(|(TestOrder(folder, at), id)| (folder, at, id)),
        limit: pager.fetch(),
    };
    let rows = cx.app.store.list_test_entities(&cx.workspace_id, &filter, &page).await?;
    let page = pager.page(rows, |r| {
        let folder = i64::from(r.test_type == "folder");
        (TestOrder(folder, r.created_at), r.id.as_str())
    });
    let folders = Folders::load(&cx).await?;
    let sizes = Folders::sizes(&cx).await?;
    page.view(|r| view::summary(r, &folders, &sizes, &cx)).respond("tests")
}

#[derive(Debug, Deserialize)]
pub(super) struct SummariesBody {
    test_ids: Vec<TestId>,
}

#[utoipa::path(post, path = "/v1/convai/agent-testing/summaries", security(("api_key" = ["tests:read"])))]
pub(super) async fn get_test_summaries(
    cx: Ctx, Json(body): Json<SummariesBody>,
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
    let rows = cx.app.store.get_test_entities(&cx.workspace_id, &body.test_ids).await?;
    let folders = Folders::load(&cx).await?;
    let sizes = HashMap::new();
    let mut out = Map::new();
    for row in rows.iter().filter(|r| r.test_type != "folder") {
        out.insert(row.id.to_string(), view::summary(row, &folders, &sizes, &cx));
    }
    Ok(Json(json!({ "tests": out })))
}
