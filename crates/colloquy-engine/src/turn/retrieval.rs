//! The retrieval stage: what the agent's knowledge base adds to the system prompt of a turn.
//!
//! Documents the agent names with `usage_mode: "prompt"` (all of them when `prompt.rag` is
//! off, as the reference does) are placed whole in the prompt, up to
//! [`MAX_PROMPT_DOCUMENT_CHARS`]. With `prompt.rag.enabled`, each user turn ranks the chunks
//! of the other documents against the user's own words (BM25 over the database's full-text
//! index, fused by reciprocal rank with vector similarity where the documents have an
//! embedding index) and places the best ones, bounded by `max_retrieved_rag_chunks_count` and
//! `max_documents_length`; what was retrieved is kept on the agent's transcript entry in the
//! reference's `rag_retrieval_info` shape. With `query_rewrite_prompt_override`, the agent's
//! LLM first rewrites the query from the conversation. Folders the agent names stand for every
//! document inside them.

use std::time::Instant;

use colloquy_core::ids::{DocumentId, WorkspaceId};
use colloquy_core::knowledge::{UsageMode, search_terms};
use colloquy_store::{StoreError, VectorRow};
use serde_json::{Value, json};

use crate::conversation::Runtime;
use crate::conversation::state::State;
use crate::judge;
use crate::knowledge::embeddings;
use crate::llm::{ChatMessage, Role};

/// The most characters of whole documents placed in a prompt.
pub const MAX_PROMPT_DOCUMENT_CHARS: usize = 100_000;

/// The agent's documents, resolved once per conversation.
#[derive(Debug, Default)]
pub(crate) struct Knowledge {
    /// The whole documents for the prompt, already written out.
    pub(crate) in_prompt: String,
    /// Documents whose chunks are retrieved.
    retrieved: Vec<DocumentId>,
    /// Every document of the agent: what its knowledge-base tools search.
    pub(crate) searchable: Vec<DocumentId>,
}

/// Brings the chunks retrieved for this turn into `state.context` (the whole documents stay in
/// the resolved [`Knowledge`], which the system prompt reads, rather than being copied each
/// turn); the retrieval record for the agent's transcript entry when chunks were ranked.
pub(crate) async fn run(state: &mut State, rt: &Runtime) -> Result<Option<Value>, StoreError> {
    if state.knowledge.is_none() {
        state.knowledge = Some(resolve(state, rt).await?);
    }
    let Some(knowledge) = &state.knowledge else { return Ok(None) };
    let mut context = String::new();
    let rag = &state.prompt()["rag"];
    let mut info = None;
    let said = last_user_words(&state.history);
    if rag["enabled"].as_bool() == Some(true) && !knowledge.retrieved.is_empty() && !said.is_empty()
    {
        let started = Instant::now();
        let query = rewritten(state, rt, rag, said).await;
        let settings = Settings::of(rag);
        let hits =
            rank(rt, &state.agent.workspace_id, &knowledge.retrieved, &query, &settings).await?;
        if !hits.is_empty() {
            context.push_str("\n\n# Retrieved from the knowledge base\n");
            for hit in &hits {
                context.push_str(&format!("\n---\n{}\n", hit.content));
            }
        }
        info = Some(record(&hits, &settings.model, &query, started.elapsed().as_secs_f64()));
    }
    state.context = context;
    Ok(info)
}

/// The agent's RAG settings (`prompt.rag`), with the reference's defaults.
struct Settings {
    model: String,
    max_chunks: usize,
    max_chars: usize,
    max_distance: f32,
}

impl Settings {
    fn of(rag: &Value) -> Settings {
        let max_chunks = rag["max_retrieved_rag_chunks_count"].as_u64().unwrap_or(20).clamp(1, 20);
        Settings {
            model: rag["embedding_model"].as_str().unwrap_or("e5_mistral_7b_instruct").to_owned(),
            max_chunks: usize::try_from(max_chunks).unwrap_or(20),
            max_chars: rag["max_documents_length"]
                .as_u64()
                .map_or(50_000, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            max_distance: rag["max_vector_distance"].as_f64().unwrap_or(0.6) as f32,
        }
    }
}

/// A retrieved chunk.
#[derive(Debug, Clone, PartialEq)]
struct Hit {
    chunk_id: String,
    document_id: String,
    content: String,
    /// Its cosine distance to the query, when vectors ranked it.
    distance: Option<f32>,
    /// Its fused score.
    score: f64,
}

/// Reciprocal-rank fusion's constant: how much the first ranks outweigh the rest.
const RRF_K: f64 = 60.0;

/// The best chunks of `documents` for `query`: BM25 over the full-text index, fused by
/// reciprocal rank with vector similarity where the documents have an index of the agent's
/// embedding model and a provider computes it; bounded by the agent's settings.
async fn rank(
    rt: &Runtime, workspace: &WorkspaceId, documents: &[DocumentId], query: &str, s: &Settings,
) -> Result<Vec<Hit>, StoreError> {
    let store = &rt.deps.store;
    let limit = u32::try_from(s.max_chunks).unwrap_or(20);
    let lexical =
        store.search_chunks(workspace, Some(documents), &search_terms(query), limit).await?;
    let mut hits: Vec<Hit> = Vec::new();
    let mut add = |chunk_id: &str, document_id: &str, content: &str, rank: usize, distance| {
        let share = 1.0 / (RRF_K + rank as f64 + 1.0);
        match hits.iter_mut().find(|h| h.chunk_id == chunk_id) {
            Some(hit) => {
                hit.score += share;
                hit.distance = hit.distance.or(distance);
            }
            None => hits.push(Hit {
                chunk_id: chunk_id.to_owned(),
                document_id: document_id.to_owned(),
                content: content.to_owned(),
                distance,
                score: share,
            }),
        }
    };
    for (rank, c) in lexical.iter().enumerate() {
        add(&c.id, &c.document_id, &c.content, rank, None);
    }
    for (rank, (v, distance)) in
        nearest(rt, workspace, documents, query, s).await?.iter().enumerate()
    {
        add(&v.chunk_id, &v.document_id, &v.content, rank, Some(*distance));
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    hits.truncate(s.max_chunks);
    Ok(within_length(hits, s.max_chars))
}

/// The chunks nearest the query's vector within `max_vector_distance`, nearest first; none
/// when no provider computes the model or no document has its index. A provider that fails
/// leaves the turn to lexical retrieval.
async fn nearest(
    rt: &Runtime, workspace: &WorkspaceId, documents: &[DocumentId], query: &str, s: &Settings,
) -> Result<Vec<(VectorRow, f32)>, StoreError> {
    let deps = &rt.deps;
    if !deps.embeddings.has(&s.model) {
        return Ok(Vec::new());
    }
    let vectors = deps.store.indexed_vectors(workspace, &s.model, Some(documents)).await?;
    if vectors.is_empty() {
        return Ok(Vec::new());
    }
    let question = match deps.embeddings.embed_one(&s.model, query).await {
        Ok(question) => question,
        Err(e) => {
            tracing::warn!(error = %e, "the query could not be embedded; retrieval stays lexical");
            return Ok(Vec::new());
        }
    };
    let mut near = embeddings::rank(&question, vectors);
    near.retain(|(_, d)| *d <= s.max_distance);
    near.truncate(s.max_chunks);
    Ok(near)
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
    let searchable = whole.iter().chain(&retrieved).cloned().collect();
    Ok(Knowledge { in_prompt, retrieved, searchable })
}

/// The retrieval query: the user's own words, after what the agent's LLM makes of the
/// conversation when `query_rewrite_prompt_override` asks for a rewrite (the conversation is
/// appended to that prompt, as the reference does). The user's words stay, so a rare word they
/// said still matches lexically; a rewrite that fails leaves them alone.
async fn rewritten(state: &State, rt: &Runtime, rag: &Value, said: String) -> String {
    let Some(prompt) =
        rag["query_rewrite_prompt_override"].as_str().filter(|p| !p.trim().is_empty())
    else {
        return said;
    };
    let conversation: String = state
        .history
        .iter()
        .filter(|m| matches!(m.role, Role::User | Role::Assistant) && !m.content.is_empty())
        .map(|m| {
            format!("{}: {}\n", if m.role == Role::User { "user" } else { "agent" }, m.content)
        })
        .collect();
    let model = Some(state.agent.llm()).filter(|m| !m.is_empty()).unwrap_or("gemini-2.5-flash");
    match judge::ask(&rt.deps, model, prompt, &conversation).await {
        Ok(query) if !query.trim().is_empty() => format!("{} {said}", query.trim()),
        Ok(_) => said,
        Err(e) => {
            tracing::warn!(error = %e, "the query could not be rewritten; retrieving with the user's words");
            said
        }
    }
}

/// What the user said last, in their own words.
fn last_user_words(history: &[ChatMessage]) -> String {
    history
        .iter()
        .rev()
        .find(|m| m.role == Role::User && !m.content.starts_with('['))
        .map(|m| m.content.clone())
        .unwrap_or_default()
}

/// The best chunks whose texts together fit in `max_chars`.
fn within_length(hits: Vec<Hit>, max_chars: usize) -> Vec<Hit> {
    let mut total = 0;
    hits.into_iter()
        .take_while(|h| {
            total += h.content.chars().count();
            total <= max_chars
        })
        .collect()
}

/// `RagRetrievalInfo`. A chunk that only lexical ranking found has no vector distance; it is
/// given its fused score's distance from the best one's (0 for the best, towards 1 for the
/// weakest), so the order and the spread read as they would for vectors.
fn record(hits: &[Hit], model: &str, query: &str, secs: f64) -> Value {
    let best = hits.first().map_or(1.0, |h| h.score).max(f64::MIN_POSITIVE);
    let chunks: Vec<Value> = hits
        .iter()
        .map(|h| {
            let distance =
                h.distance.map_or((1.0 - h.score / best).clamp(0.0, 1.0), f64::from);
            json!({"document_id": h.document_id, "chunk_id": h.chunk_id, "vector_distance": distance})
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
