//! Test folders: create, get, rename, delete (recursively with `force`), and moving tests and
//! folders between them.

use axum::extract::Path;
use colloquy_core::ids::TestId;
use colloquy_core::time;
use colloquy_core::validation::{LocItem, Violation};
use colloquy_store::NewTestEntity;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::view::{self, Folders};
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query};

#[derive(Debug, Deserialize)]
pub(super) struct CreateFolder {
    name: String,
    parent_folder_id: Option<String>,
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() {
        return Err(ApiError::invalid(Violation::new(
            ["body", "name"],
            "string_too_short",
            "String should have at least 1 character",
        )));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/convai/agent-testing/folders", security(("api_key" = ["tests:write"])))]
pub(super) async fn create_folder(
    cx: Ctx, Json(body): Json<CreateFolder>,
) -> ApiResult<Json<Value>> {
    check_name(&body.name)?;
    let parent = body.parent_folder_id.filter(|p| !p.is_empty());
    let folders = Folders::load(&cx).await?;
    view::check_folder(&folders, parent.as_deref(), &["body", "parent_folder_id"])?;
    let entity = NewTestEntity {
        id: TestId::generate_folder(),
        workspace_id: cx.workspace_id.clone(),
        test_type: "folder".into(),
        name: body.name.clone(),
        parent_folder_id: parent,
        created_by: cx.user_id.clone(),
        created_at: time::now_secs(),
        document: "{}".into(),
    };
    cx.app.store.insert_test_entity(&entity).await?;
    Ok(Json(json!({ "id": entity.id, "name": entity.name })))
}

async fn folder_view(cx: &Ctx, id: &str) -> ApiResult<Value> {
    let folders = Folders::load(cx).await?;
    let folder = folders.0.get(id).ok_or(ApiError::NotFound("folder"))?;
    let sizes = Folders::sizes(cx).await?;
    Ok(json!({
        "id": folder.id,
        "name": folder.name,
        "folder_path": folders.path(Some(id)),
        "children_count": sizes.get(id).copied().unwrap_or(0),
    }))
}

#[utoipa::path(get, path = "/v1/convai/agent-testing/folders/{folder_id}", params(("folder_id" = String, Path)), security(("api_key" = ["tests:read"])))]
pub(super) async fn get_folder(cx: Ctx, Path(folder_id): Path<TestId>) -> ApiResult<Json<Value>> {
    Ok(Json(folder_view(&cx, folder_id.as_str()).await?))
}

#[derive(Debug, Deserialize)]
pub(super) struct RenameFolder {
    name: String,
}

#[utoipa::path(patch, path = "/v1/convai/agent-testing/folders/{folder_id}", params(("folder_id" = String, Path)), security(("api_key" = ["tests:write"])))]
pub(super) async fn update_folder(
    cx: Ctx, Path(folder_id): Path<TestId>, Json(body): Json<RenameFolder>,
) -> ApiResult<Json<Value>> {
    check_name(&body.name)?;
    let folders = Folders::load(&cx).await?;
    let folder = folders.0.get(&folder_id).ok_or(ApiError::NotFound("folder"))?;
    cx.app
        .store
        .update_test_entity(
            &cx.workspace_id,
            &folder_id,
            &body.name,
            folder.parent_folder_id.as_deref(),
            "{}",
            time::now_secs(),
        )
        .await
        .or_not_found("folder")?;
    Ok(Json(folder_view(&cx, folder_id.as_str()).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeleteParams {
    /// Delete the folder with everything in it.
    force: Option<bool>,
}

#[utoipa::path(delete, path = "/v1/convai/agent-testing/folders/{folder_id}", params(("folder_id" = String, Path), DeleteParams), security(("api_key" = ["tests:write"])))]
pub(super) async fn delete_folder(
    cx: Ctx, Path(folder_id): Path<TestId>, Query(params): Query<DeleteParams>,
) -> ApiResult<Json<Value>> {
    let folders = Folders::load(&cx).await?;
    if !folders.0.contains_key(&folder_id) {
        return Err(ApiError::NotFound("folder"));
    }
    let contents = contents(&cx, &folders, &folder_id).await?;
    if !contents.is_empty() && params.force != Some(true) {
        return Err(ApiError::Conflict {
            status: "folder_not_empty",
            message: format!(
                "The folder holds {} test(s) or folder(s); delete with force=true to delete them too.",
                contents.len()
            ),
        });
    }
    let mut doomed = contents;
    doomed.push(folder_id);
    cx.app.store.delete_test_entities(&cx.workspace_id, &doomed).await?;
    Ok(Json(json!({})))
}

/// Every test and folder inside `folder`, at any depth.
async fn contents(cx: &Ctx, folders: &Folders, folder: &TestId) -> ApiResult<Vec<TestId>> {
    let inside: Vec<TestId> = folders
        .0
        .keys()
        .filter(|f| *f != folder && folders.within(f.as_str(), folder.as_str()))
        .cloned()
        .collect();
    let mut out = inside.clone();
    let mut parents = inside;
    parents.push(folder.clone());
    for parent in parents {
        let filter = colloquy_store::TestFilter {
            parent: colloquy_store::ParentFilter::Folder(parent.into_string()),
            types: vec!["llm".into(), "tool".into(), "simulation".into()],
            ..Default::default()
        };
        let mut after = None;
        loop {
            let page =
                colloquy_store::TestPage { folders_first: false, after: after.clone(), limit: 500 };
            let rows = cx.app.store.list_test_entities(&cx.workspace_id, &filter, &page).await?;
            let full = rows.len() == 500;
            if let Some(last) = rows.last() {
                after = Some((0, last.created_at, last.id.to_string()));
            }
            out.extend(rows.into_iter().map(|r| r.id));
            if !full {
                break;
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
pub(super) struct BulkMove {
    entity_ids: Vec<TestId>,
    move_to: Option<String>,
}

#[utoipa::path(post, path = "/v1/convai/agent-testing/bulk-move", security(("api_key" = ["tests:write"])))]
pub(super) async fn bulk_move(cx: Ctx, Json(body): Json<BulkMove>) -> ApiResult<Json<Value>> {
    if body.entity_ids.is_empty() {
        return Err(ApiError::invalid(Violation::new(
            ["body", "entity_ids"],
            "too_short",
            "List should have at least 1 item after validation, not 0",
        )));
    }
    let target = body.move_to.filter(|m| !m.is_empty());
    let folders = Folders::load(&cx).await?;
    view::check_folder(&folders, target.as_deref(), &["body", "move_to"])?;
    let found = cx.app.store.get_test_entities(&cx.workspace_id, &body.entity_ids).await?;
    let mut violations = Vec::new();
    for (i, id) in body.entity_ids.iter().enumerate() {
        let at = vec!["body".into(), "entity_ids".into(), LocItem::Index(i)];
        match found.iter().find(|r| &r.id == id) {
            None => violations.push(Violation::new(
                at,
                "value_error",
                format!("Test or folder {id} does not exist"),
            )),
            Some(r)
                if r.test_type == "folder"
                    && target.as_deref().is_some_and(|t| folders.within(t, id.as_str())) =>
            {
                violations.push(Violation::new(
                    at,
                    "value_error",
                    format!("Folder {id} cannot be moved into itself"),
                ));
            }
            Some(_) => {}
        }
    }
    if !violations.is_empty() {
        return Err(ApiError::Invalid(violations));
    }
    cx.app
        .store
        .move_test_entities(&cx.workspace_id, &body.entity_ids, target.as_deref(), time::now_secs())
        .await?;
    Ok(Json(json!({})))
}
