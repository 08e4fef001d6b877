//! The retrieval stage: what the agent's knowledge base adds to the system prompt of a turn.
//!
//! Documents the agent names with `usage_mode: "prompt"` (all of them when `prompt.rag` is
//! off, as the reference does) are placed whole in the prompt, up to
//! [`MAX_PROMPT_DOCUMENT_CHARS`]. With `prompt.rag.enabled`, each user turn ranks the chunks
//! of the other documents against the user's own words (BM25 over the database's full-text
//! index) and places the best ones, bounded by `max_retrieved_rag_chunks_count` and
//! `max_documents_length`; what was retrieved is kept on the agent's transcript entry in the
//! reference's `rag_retrieval_info` shape. Folders the agent names stand for every document
//! inside them.

use std::time::Instant;

use colloquy_core::ids::DocumentId;
use colloquy_core::knowledge::{UsageMode, search_terms};
use colloquy_store::{ChunkRow, StoreError};
use serde_json::{Value, json};

use crate::conversation::Runtime;
use crate::conversation::state::State;
use crate::llm::{ChatMessage, Role};

/// The most characters of whole documents placed in a prompt.
pub const MAX_PROMPT_DOCUMENT_CHARS: usize = 100_000;

/// The agent's documents, resolved once per conversation.
#[derive(Debug, Default)]
pub(crate) struct Knowledge {
    /// The whole documents for the prompt, already written out.
    in_prompt: String,
    /// Documents whose chunks are retrieved.
    retrieved: Vec<DocumentId>,
}

/// Brings the turn's knowledge into `state.context`; the retrieval record for the agent's
/// transcript entry when chunks were ranked.
pub(crate) async fn run(state: &mut State, rt: &Runtime) -> Result<Option<Value>, StoreError> {
    if state.knowledge.is_none() {
        state.knowledge = Some(resolve(state, rt).await?);
    }
    let Some(knowledge) = &state.knowledge else { return Ok(None) };
    let mut context = knowledge.in_prompt.clone();
    let rag = &state.prompt()["rag"];
    let query = last_user_words(&state.history);
    let mut info = None;
    if rag["enabled"].as_bool() == Some(true)
        && !knowledge.retrieved.is_empty()
        && !query.is_empty()
    {
        let started = Instant::now();
        let max_chunks = rag["max_retrieved_rag_chunks_count"].as_u64().unwrap_or(20).clamp(1, 20);
        let max_chars = rag["max_documents_length"].as_u64().unwrap_or(50_000);
        let hits = rt
            .deps
            .store
            .search_chunks(
                &state.agent.workspace_id,
                Some(&knowledge.retrieved),
                &search_terms(&query),
                u32::try_from(max_chunks).unwrap_or(20),
            )
            .await?;
        let hits = within_length(hits, usize::try_from(max_chars).unwrap_or(usize::MAX));
        if !hits.is_empty() {
            context.push_str("\n\n# Retrieved from the knowledge base\n");
            for hit in &hits {
                context.push_str(&format!("\n---\n{}\n", hit.content));
            }
        }
        let model = rag["embedding_model"].as_str().unwrap_or("e5_mistral_7b_instruct");
        info = Some(record(&hits, model, &query, started.elapsed().as_secs_f64()));
    }
    state.context = context;
    Ok(info)
}

/// The agent's documents: folders expanded, the prompt's written out.
async fn resolve(state: &State, rt: &Runtime) -> Result<Knowledge, StoreError> {
    let prompt = state.prompt();
    let Some(locators) = prompt["knowledge_base"].as_array().filter(|l| !l.is_empty()) else {
        return Ok(Knowledge::default());
    };
    let rag_on = prompt["rag"]["enabled"].as_bool() == Some(true);
    let store = &rt.deps.store;
    let workspace = &state.agent.workspace_id;
    let (mut whole, mut retrieved) = (Vec::new(), Vec::new());
    for locator in locators {
        let Some(id) = locator["id"].as_str().map(DocumentId::from) else { continue };
        let mode: UsageMode =
            serde_json::from_value(locator["usage_mode"].clone()).unwrap_or_default();
        let mut ids = vec![id.clone()];
        if locator["type"] == "folder" {
            ids = store.descendants(workspace, &id).await?;
        }
        if rag_on && mode == UsageMode::Auto { &mut retrieved } else { &mut whole }.extend(ids);
    }
    let mut in_prompt = String::new();
    let texts = store.document_texts(workspace, &whole).await?;
    if !texts.is_empty() {
        in_prompt.push_str("\n\n# Knowledge base\n");
    }
    for (_, name, text) in texts {
        let room = MAX_PROMPT_DOCUMENT_CHARS.saturating_sub(in_prompt.len());
        if room == 0 {
            break;
        }
        let section = format!("\n## {name}\n{text}\n");
        in_prompt.push_str(cut(&section, room));
    }
    Ok(Knowledge { in_prompt, retrieved })
}

/// What the user said last, in their own words: the retrieval query.
fn last_user_words(history: &[ChatMessage]) -> String {
    history
        .iter()
        .rev()
        .find(|m| m.role == Role::User && !m.content.starts_with('['))
        .map(|m| m.content.clone())
        .unwrap_or_default()
}

/// The best chunks whose texts together fit in `max_chars`.
fn within_length(hits: Vec<ChunkRow>, max_chars: usize) -> Vec<ChunkRow> {
    let mut total = 0;
    hits.into_iter()
        .take_while(|h| {
            total += h.content.chars().count();
            total <= max_chars
        })
        .collect()
}

/// `RagRetrievalInfo`. Lexical ranking has no vector distance; each chunk's is its score's
/// distance from the best one's (0 for the best, towards 1 for the weakest), so the order and
/// the spread read as they would for vectors.
fn record(hits: &[ChunkRow], model: &str, query: &str, secs: f64) -> Value {
    let best = hits.first().map_or(1.0, |h| h.score).max(f64::MIN_POSITIVE);
    let chunks: Vec<Value> = hits
        .iter()
        .map(|h| {
            json!({
                "document_id": h.document_id,
                "chunk_id": h.id,
                "vector_distance": (1.0 - h.score / best).clamp(0.0, 1.0),
            })
        })
        .collect();
    json!({
        "chunks": chunks,
        "embedding_model": model,
        "retrieval_query": query,
        "rag_latency_secs": secs,
    })
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
