//! The wire view of a tool: `ToolResponseModel`.

use colloquy_store::{ToolRow, ToolUsage};
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::access::access_info;

/// The full tool with its usage statistics.
pub fn full(row: &ToolRow, usage: Option<ToolUsage>, caller: &Caller) -> Result<Value, ApiError> {
    let mut doc: Map<String, Value> = serde_json::from_str(&row.document)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("tool {} document: {e}", row.id)))?;
    let usage = usage.unwrap_or(ToolUsage { total_calls: 0, avg_latency_secs: 0.0 });
    let mut out = Map::with_capacity(doc.len() + 3);
    out.insert("id".into(), json!(row.id));
    out.insert("tool_config".into(), doc.remove("tool_config").unwrap_or(Value::Null));
    out.insert(
        "access_info".into(),
        json!(access_info(&row.created_by, &row.creator_name, &row.creator_email, caller,)),
    );
    out.insert(
        "usage_stats".into(),
        json!({"total_calls": usage.total_calls, "avg_latency_secs": usage.avg_latency_secs}),
    );
    out.insert("response_mocks".into(), doc.remove("response_mocks").unwrap_or_else(|| json!([])));
    out.extend(doc);
    Ok(Value::Object(out))
}
