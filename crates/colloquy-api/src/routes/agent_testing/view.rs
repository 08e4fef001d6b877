//! Wire views of tests and folders, folder paths, and the checks shared by the handlers.

use std::collections::HashMap;

use colloquy_core::ids::{TestId, ToolId};
use colloquy_core::validation::{LocItem, Violation};
use colloquy_store::TestEntityRow;
use serde_json::{Map, Value, json};

use crate::auth::{Caller, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::routes::access::access_info;

/// The workspace's folders by id, for paths and tree checks.
pub struct Folders(pub HashMap<TestId, TestEntityRow>);

impl Folders {
    /// Loads them.
    pub async fn load(cx: &Ctx) -> ApiResult<Folders> {
        let rows = cx.app.store.test_folders(&cx.workspace_id).await?;
        Ok(Folders(rows.into_iter().map(|r| (r.id.clone(), r)).collect()))
    }

    /// How many tests and folders each folder directly holds, by folder id.
    pub async fn sizes(cx: &Ctx) -> ApiResult<HashMap<String, i64>> {
        Ok(cx.app.store.test_folder_sizes(&cx.workspace_id).await?.into_iter().collect())
    }

    /// `[{id, name}, ...]` from the root down to (and including) `folder`.
    pub fn path(&self, folder: Option<&str>) -> Vec<Value> {
        let mut out = Vec::new();
        let mut current = folder.map(str::to_owned);
        while let Some(id) = current {
            let Some(f) = self.0.get(id.as_str()) else {
                break;
            };
            out.push(json!({"id": f.id, "name": f.name}));
            current = f.parent_folder_id.clone();
            if out.len() > self.0.len() {
                break;
            }
        }
        out.reverse();
        out
    }

    /// Whether `folder` is `ancestor` or inside it.
    pub fn within(&self, folder: &str, ancestor: &str) -> bool {
        let mut current = Some(folder.to_owned());
        let mut steps = 0;
        while let Some(id) = current {
            if id == ancestor {
                return true;
            }
            steps += 1;
            if steps > self.0.len() {
                return false;
            }
            current = self.0.get(id.as_str()).and_then(|f| f.parent_folder_id.clone());
        }
        false
    }
}

/// The `UnitTestSummaryResponseModel` of a test or folder.
pub fn summary(
    row: &TestEntityRow, folders: &Folders, sizes: &HashMap<String, i64>, caller: &Caller,
) -> Value {
    let folder = row.test_type == "folder";
    json!({
        "id": row.id,
        "name": row.name,
        "access_info": access_info(&row.created_by, &row.creator_name, &row.creator_email, caller),
        "created_at_unix_secs": row.created_at,
        "last_updated_at_unix_secs": row.updated_at,
        "type": row.test_type,
        "entity_type": if folder { "folder" } else { "test" },
        "folder_parent_id": row.parent_folder_id,
        "folder_path": folders.path(row.parent_folder_id.as_deref()),
        "children_count": if folder { json!(sizes.get(row.id.as_str()).copied().unwrap_or(0)) } else { Value::Null },
        "conversation_initiation_source": if folder { Value::Null } else {
            serde_json::from_str::<Value>(&row.document).ok().and_then(|d| d.get("conversation_initiation_source").cloned()).unwrap_or(Value::Null)
        },
    })
}

/// The full test (`Get*ResponseModel`): its document with id and name. The folder is not
/// part of the reference's model; lists filtered by `parent_folder_id` show where it is.
pub fn full(row: &TestEntityRow) -> ApiResult<Value> {
    let doc: Map<String, Value> = serde_json::from_str(&row.document)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("test {} document: {e}", row.id)))?;
    let mut out = Map::with_capacity(doc.len() + 2);
    out.insert("id".into(), json!(row.id));
    out.insert("name".into(), json!(row.name));
    out.extend(doc);
    Ok(Value::Object(out))
}

/// A folder a write names must be a folder of the workspace.
pub fn check_folder(folders: &Folders, folder: Option<&str>, loc: &[&str]) -> ApiResult<()> {
    match folder {
        Some(id) if !folders.0.contains_key(id) => Err(ApiError::invalid(Violation::new(
            loc.iter().map(|k| LocItem::from(*k)).collect::<Vec<_>>(),
            "value_error",
            format!("Folder {id} does not exist"),
        ))),
        _ => Ok(()),
    }
}

/// The tools a test names must exist in the workspace.
pub async fn check_tool_refs(cx: &Ctx, refs: &[(Vec<LocItem>, String)]) -> ApiResult<()> {
    let ids: Vec<ToolId> = refs.iter().map(|(_, id)| ToolId::from(id.as_str())).collect();
    let found = cx.app.store.get_tools(&cx.workspace_id, &ids).await?;
    let violations: Vec<Violation> = refs
        .iter()
        .filter(|(_, id)| !found.iter().any(|t| &t.id == id))
        .map(|(loc, id)| Violation {
            loc: loc.clone(),
            msg: format!("Tool {id} does not exist"),
            kind: "value_error".into(),
        })
        .collect();
    if violations.is_empty() { Ok(()) } else { Err(ApiError::Invalid(violations)) }
}

/// An agent's `platform_settings.testing.attached_tests` must name tests of its workspace.
pub async fn check_attached_tests(cx: &Ctx, platform_settings: Option<&Value>) -> ApiResult<()> {
    let attached: Vec<TestId> = platform_settings
        .and_then(|p| p.pointer("/testing/attached_tests"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| TestId::from(t.get("test_id").and_then(Value::as_str).unwrap_or_default()))
        .collect();
    let at = ["body", "platform_settings", "testing", "attached_tests"];
    existing_tests(cx, &attached, &at).await.map(drop)
}

/// The tests `ids` names, each of which must be a test of the workspace (not a folder); the
/// `i`-th that is not is reported at `{loc}.{i}.test_id`.
pub async fn existing_tests(
    cx: &Ctx, ids: &[TestId], loc: &[&str],
) -> ApiResult<Vec<TestEntityRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = cx.app.store.get_test_entities(&cx.workspace_id, ids).await?;
    let violations: Vec<Violation> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| !found.iter().any(|t| &t.id == *id && t.test_type != "folder"))
        .map(|(i, id)| {
            let mut at: Vec<LocItem> = loc.iter().map(|k| LocItem::from(*k)).collect();
            at.extend([LocItem::Index(i), "test_id".into()]);
            Violation::new(at, "value_error", format!("Test {id} does not exist"))
        })
        .collect();
    if violations.is_empty() { Ok(found) } else { Err(ApiError::Invalid(violations)) }
}
