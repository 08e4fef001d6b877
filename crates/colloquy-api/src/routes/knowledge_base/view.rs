//! The wire views of a document: the summary lists show (`GetKnowledgeBaseSummary*`), the
//! full document a GET shows (`GetKnowledgeBase*ResponseModel`), and the HTML of `/content`.

use colloquy_core::knowledge::DocType;
use colloquy_store::{AgentSummaryRow, DocumentRow};
use serde_json::{Map, Value, json};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::routes::access::access_info;
use crate::routes::agents;

/// The fields every view shares: id, name, metadata, usages, access, type.
fn common(row: &DocumentRow, cx: &Ctx) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".into(), json!(row.id));
    out.insert("name".into(), json!(row.name));
    out.insert(
        "metadata".into(),
        json!({
            "created_at_unix_secs": row.created_at,
            "last_updated_at_unix_secs": row.updated_at,
            "size_bytes": row.size_bytes,
        }),
    );
    let usages =
        if row.doc_type == DocType::Folder { json!([]) } else { json!(["prompt", "auto"]) };
    out.insert("supported_usages".into(), usages);
    out.insert(
        "access_info".into(),
        json!(access_info(&row.created_by, &row.creator_name, &row.creator_email, cx)),
    );
    out.insert("folder_parent_id".into(), json!(row.parent_id));
    out.insert("type".into(), json!(row.doc_type));
    out
}

/// `AutoSyncInfo`, or null when auto-sync is off (a folder has no due time of its own).
fn auto_sync_info(row: &DocumentRow) -> Value {
    match row.auto_sync() {
        Some(sync) => json!({
            "minimum_frequency_days": sync.days,
            "auto_remove": sync.auto_remove,
            "consec_failures": row.sync_failures,
            "next_refresh_by": row.sync_due_at,
        }),
        None => Value::Null,
    }
}

/// The fields of one type beyond the common ones; `full` adds those only a GET has.
fn typed(out: &mut Map<String, Value>, row: &DocumentRow, full: bool) {
    match row.doc_type {
        DocType::Url => {
            out.insert("url".into(), json!(row.url.as_deref().unwrap_or_default()));
            out.insert("auto_sync_info".into(), auto_sync_info(row));
        }
        DocType::File => {
            if full {
                out.insert("filename".into(), json!(row.filename.as_deref().unwrap_or_default()));
            }
            out.insert("external_sync_info".into(), Value::Null);
            out.insert("auto_sync_info".into(), Value::Null);
            out.insert("refresh_status".into(), Value::Null);
            out.insert("is_frozen".into(), json!(false));
        }
        DocType::Text => {}
        DocType::Folder => {
            out.insert("children_count".into(), json!(row.children_count));
            out.insert("document_count".into(), json!(row.document_count));
            out.insert("auto_sync_info".into(), auto_sync_info(row));
            out.insert("external_sync_info".into(), Value::Null);
            out.insert("is_frozen".into(), json!(false));
            if full {
                out.insert("active_sync_job".into(), Value::Null);
            }
        }
    }
}

/// A document as lists show it, with the folders holding it (ids only) and the agents that
/// name it.
pub fn summary(
    row: &DocumentRow, path: &[(String, String)], dependents: &[&AgentSummaryRow], cx: &Ctx,
) -> Value {
    let mut out = common(row, cx);
    let path: Vec<Value> = path.iter().map(|(id, _)| json!({ "id": id })).collect();
    out.insert("folder_path".into(), json!(path));
    let role = cx.role().as_str();
    let agents: Vec<Value> = dependents.iter().map(|a| agents::dependent(a, role)).collect();
    out.insert("dependent_agents".into(), json!(agents));
    typed(&mut out, row, false);
    Value::Object(out)
}

/// A document as a GET shows it, with its text.
pub fn full(row: &DocumentRow, path: &[(String, String)], text: &str, cx: &Ctx) -> Value {
    let mut out = common(row, cx);
    let path: Vec<Value> =
        path.iter().map(|(id, name)| json!({ "id": id, "name": name })).collect();
    out.insert("folder_path".into(), json!(path));
    if row.doc_type != DocType::Folder {
        out.insert("extracted_inner_html".into(), json!(text));
        out.insert("content_format".into(), json!("markdown"));
    }
    typed(&mut out, row, true);
    Value::Object(out)
}

/// Summaries of `rows`, each with its folder path and dependent agents, read in two queries
/// plus one per distinct parent folder.
pub async fn summaries(cx: &Ctx, rows: &[DocumentRow]) -> ApiResult<Vec<Value>> {
    let ids: Vec<_> = rows.iter().map(|r| r.id.clone()).collect();
    let dependents = cx.app.store.dependents_by_document(&cx.workspace_id, &ids).await?;
    let mut paths: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let path = match &row.parent_id {
            None => Vec::new(),
            Some(parent) => match paths.iter().find(|(p, _)| p == parent) {
                Some((_, path)) => path.clone(),
                None => {
                    let path = folder_path(cx, &row.id).await?;
                    paths.push((parent.clone(), path.clone()));
                    path
                }
            },
        };
        let agents: Vec<&AgentSummaryRow> =
            dependents.iter().filter(|(d, _)| d == row.id.as_str()).map(|(_, a)| a).collect();
        out.push(summary(row, &path, &agents, cx));
    }
    Ok(out)
}

/// The folders holding a document, from the root down.
pub async fn folder_path(
    cx: &Ctx, id: &colloquy_core::ids::DocumentId,
) -> ApiResult<Vec<(String, String)>> {
    Ok(cx.app.store.folder_path(&cx.workspace_id, id).await?)
}

/// A document's text as an HTML page body: each paragraph a `<p>`, headings as `<hN>`.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for block in text.split("\n\n").map(str::trim).filter(|b| !b.is_empty()) {
        let level = block.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&level) && block[level..].starts_with(' ') && !block.contains('\n') {
            let inner = escape(block[level..].trim());
            out.push_str(&format!("<h{level}>{inner}</h{level}>\n"));
        } else {
            out.push_str(&format!("<p>{}</p>\n", escape(block).replace('\n', "<br>")));
        }
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_html_escapes_and_keeps_structure() {
        assert_eq!(
            html("# Title <x>\n\nA & b\nc\n\n#no heading"),
            "<h1>Title &lt;x&gt;</h1>\n<p>A &amp; b<br>c</p>\n<p>#no heading</p>\n"
        );
    }
}
