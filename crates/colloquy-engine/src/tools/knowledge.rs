//! The knowledge-base system tools (`knowledge_base_rag`, `knowledge_base`): the LLM asks the
//! agent's documents a question and gets the chunks that answer it, ranked as the turn's
//! retrieval ranks them (BM25 over the full-text index), reported in the reference's result
//! shapes with the chunks the LLM reads.

use colloquy_core::knowledge::search_terms;
use serde_json::{Value, json};

use super::{CallScope, CallStatus, ToolOutcome};

/// Chunks one call returns.
const CHUNKS: u32 = 5;
/// The `knowledge_base_rag` tool's result type (`KnowledgeBaseRagToolResultModel`).
pub(super) const RAG: &str = "knowledge_base_rag_success";
/// The `knowledge_base` tool's (`KnowledgeBaseToolResultModel`).
pub(super) const SEARCH: &str = "knowledge_base_success";

/// Searches the agent's documents for `args.query`.
pub(super) async fn call(scope: &CallScope<'_>, args: &Value, result_type: &str) -> ToolOutcome {
    let Some(query) = args.get("query").and_then(Value::as_str).filter(|q| !q.trim().is_empty())
    else {
        return ToolOutcome::error(
            CallStatus::Error,
            "customer_config",
            "The search needs a query",
        );
    };
    let (status, chunks) = if scope.documents.is_empty() {
        let none = if result_type == RAG { "no_documents" } else { "no_matching_documents" };
        (none, Vec::new())
    } else {
        let hits = scope
            .deps
            .store
            .search_chunks(scope.workspace_id, Some(scope.documents), &search_terms(query), CHUNKS)
            .await;
        match hits {
            Ok(hits) if hits.is_empty() => ("no_results", Vec::new()),
            Ok(hits) => ("success", hits),
            Err(e) => {
                return ToolOutcome::error(
                    CallStatus::Error,
                    "internal_error",
                    format!("The knowledge base could not be searched: {e}"),
                );
            }
        }
    };
    let chunks: Vec<Value> = chunks
        .iter()
        .map(|c| json!({"chunk_id": c.id, "document_id": c.document_id, "content": c.content}))
        .collect();
    let result = json!({
        "result_type": result_type,
        "status": status,
        "chunk_count": chunks.len(),
        "message": "Referenced knowledge base.",
        "chunks": chunks,
    });
    ToolOutcome::ok(result.to_string())
}
