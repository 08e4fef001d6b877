//! Knowledge-base retrieval: lexical search latency at several corpus sizes against the same
//! full-text query run directly on the database file, how fast documents are chunked and
//! indexed, and the time retrieval adds to a conversation turn.

use std::time::{Duration, Instant};

use colloquy_core::ids::{DocumentId, WorkspaceId};
use colloquy_core::knowledge::{DocType, STOPWORDS, search_terms};
use colloquy_store::{
    ConnectOptions, DocumentBody, KnowledgeStore as _, NewDocument, SqlStore, WorkspaceStore as _,
};
use serde_json::json;

use crate::live;
use crate::load;
use crate::node::{self, Node};
use crate::report::{Goal, Row};
use crate::scenarios::Sizes;

/// Chunks per synthetic document.
const CHUNKS_PER_DOCUMENT: usize = 100;
/// Words per synthetic chunk (about the 1000 characters of a real one).
const WORDS_PER_CHUNK: usize = 150;
/// Distinct words of the synthetic corpus.
const VOCABULARY: f64 = 50_000.0;
/// Chunks a search returns (the reference's largest `max_retrieved_rag_chunks_count`).
const TOP: u32 = 20;

/// A deterministic word stream whose frequencies fall off like a natural language's (word k is
/// about 1/k as common as the first), whose most common words are, as in English, stopwords.
pub(crate) struct Words(pub(crate) u64);

impl Words {
    pub(crate) fn next(&mut self) -> String {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let u = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        let rank = VOCABULARY.powf(u) as usize;
        match STOPWORDS.get(rank.saturating_sub(1)) {
            Some(word) => (*word).to_owned(),
            None => format!("w{rank}"),
        }
    }

    pub(crate) fn text(&mut self, words: usize) -> String {
        (0..words).map(|_| self.next()).collect::<Vec<_>>().join(" ")
    }
}

/// Every retrieval figure.
pub async fn retrieval(binary: &std::path::Path, sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &chunks in sizes.kb_chunks {
        // A million chunks take minutes to index and each search tens of milliseconds: fewer
        // samples there keep the run within reason (p99 of 200 is still the second worst).
        let samples = if chunks >= 1_000_000 { 200 } else { sizes.samples.min(1000) };
        rows.extend(search_latency(chunks, samples).await?);
    }
    rows.extend(turn_overhead(binary, sizes).await?);
    Ok(rows)
}

/// Indexes `chunks` chunks, then times searches through the store against the same FTS5 query
/// on a connection of this process, alternating one of each.
async fn search_latency(chunks: usize, samples: usize) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kb.db");
    let store =
        SqlStore::connect(&format!("sqlite://{}", path.display()), &ConnectOptions::default())
            .await?;
    store.migrate().await?;
    let ws = store.ensure_workspace("bench").await?.id;
    let mut words = Words(0x2545_f491_4f6c_dd1d);
    let started = Instant::now();
    index(&store, &ws, chunks, &mut words).await?;
    let ingest = chunks as f64 / started.elapsed().as_secs_f64();
    let raw = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let (mut ours, mut direct) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        let terms = search_terms(&words.text(5));
        let sent = Instant::now();
        store.search_chunks(&ws, None, &terms, TOP).await?;
        ours.push(sent.elapsed().as_micros() as u64);
        let sent = Instant::now();
        raw_search(&raw, &ws, &terms)?;
        direct.push(sent.elapsed().as_micros() as u64);
    }
    Ok(search_rows(chunks, ours, direct, ingest))
}

/// Stores `chunks` chunks of synthetic text, a hundred per document.
async fn index(
    store: &SqlStore, ws: &WorkspaceId, chunks: usize, words: &mut Words,
) -> anyhow::Result<()> {
    let user = store.ensure_user(ws, "bench", "bench@localhost").await?;
    for _ in 0..chunks.div_ceil(CHUNKS_PER_DOCUMENT) {
        let parts: Vec<String> =
            (0..CHUNKS_PER_DOCUMENT).map(|_| words.text(WORDS_PER_CHUNK)).collect();
        let doc = NewDocument {
            id: DocumentId::generate(),
            workspace_id: ws.clone(),
            doc_type: DocType::Text,
            name: "bench".into(),
            parent_id: None,
            created_by: user.id.clone(),
            created_at: colloquy_core::time::now_secs(),
            body: DocumentBody {
                content: parts.join("\n\n"),
                chunks: parts,
                ..DocumentBody::default()
            },
            sync: None,
        };
        store.insert_document(&doc).await?;
    }
    Ok(())
}

/// The rows of one step of the search series.
fn search_rows(chunks: usize, ours: Vec<u64>, direct: Vec<u64>, ingest: f64) -> Vec<Row> {
    let absolute = match chunks {
        n if n >= 1_000_000 => Goal::AtMost(20.0),
        n if n >= 100_000 => Goal::AtMost(5.0),
        _ => Goal::None,
    };
    search_series_rows(
        &format!("knowledge-base lexical search, {chunks} chunks, top {TOP}"),
        (ours, direct),
        absolute,
        Row {
            scenario: format!("knowledge-base ingestion (chunk, index, commit), {chunks} chunks"),
            unit: "chunks/s".into(),
            ours: ingest,
            baseline: None,
            goal: Goal::None,
        },
    )
}

/// A search series' rows: p50 and p99 against the same query on the file (the p99 within
/// 2×), the p99 against `absolute`, then how fast the corpus was built.
pub(crate) fn search_series_rows(
    label: &str, (mut ours, mut direct): (Vec<u64>, Vec<u64>), absolute: Goal, ingest: Row,
) -> Vec<Row> {
    ours.sort_unstable();
    direct.sort_unstable();
    let p99 = |l: &[u64]| load::quantile(l, 0.99);
    vec![
        Row {
            scenario: format!("{label}: p50 vs the same FTS query on the file"),
            unit: "ms".into(),
            ours: load::quantile(&ours, 0.5),
            baseline: Some(load::quantile(&direct, 0.5)),
            goal: Goal::None,
        },
        Row {
            scenario: format!("{label}: p99 vs the same FTS query on the file"),
            unit: "ms".into(),
            ours: p99(&ours),
            baseline: Some(p99(&direct)),
            goal: Goal::RatioAtMost(2.0),
        },
        Row {
            scenario: format!("{label}: p99"),
            unit: "ms".into(),
            ours: p99(&ours),
            baseline: None,
            goal: absolute,
        },
        ingest,
    ]
}

/// The store's search, written directly against the file: the same FTS5 query, prepared once.
fn raw_search(
    conn: &rusqlite::Connection, ws: &WorkspaceId, terms: &[String],
) -> anyhow::Result<()> {
    let query: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.document_id, c.chunk_index, c.content, -bm25(kb_chunks_fts) AS score \
         FROM kb_chunks_fts JOIN kb_chunks c ON c.rowid = kb_chunks_fts.rowid \
         WHERE c.workspace_id = ?1 AND kb_chunks_fts MATCH ?2 ORDER BY score DESC, c.id LIMIT 20",
    )?;
    let mut rows = stmt.query(rusqlite::params![ws.as_str(), query.join(" OR ")])?;
    while let Some(row) = rows.next()? {
        let _: String = row.get(3)?;
    }
    Ok(())
}

/// The same turn with and without retrieval: one agent whose 200-chunk document is retrieved
/// from on every turn, one without a knowledge base, answered by the zero-latency fake LLM,
/// one turn of each in turn.
async fn turn_overhead(binary: &std::path::Path, sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let llm = node::fake_llm(Duration::ZERO).await?;
    let node =
        Node::start(binary, &[("OPENAI_BASE_URL", llm), ("OPENAI_API_KEY", "sk-bench".into())])
            .await?;
    let client = reqwest::Client::new();
    let mut words = Words(0x9e37_79b9_7f4a_7c15);
    let text: String =
        (0..200).map(|i| format!("# Part {i}\n\n{}\n\n", words.text(WORDS_PER_CHUNK))).collect();
    let doc = node
        .post(&client, "/v1/convai/knowledge-base/text", &json!({"text": text, "name": "manual"}))
        .await?;
    let with_rag = json!({"prompt": {"prompt": "Be brief.", "llm": "gpt-4o-mini", "rag": {"enabled": true},
        "knowledge_base": [{"type": "text", "name": "manual", "id": doc["id"]}]}, "first_message": ""});
    let without =
        json!({"prompt": {"prompt": "Be brief.", "llm": "gpt-4o-mini"}, "first_message": ""});
    let mut agents = Vec::new();
    for agent in [with_rag, without] {
        let created = node
            .post(
                &client,
                "/v1/convai/agents/create",
                &json!({"conversation_config": {"conversation": {"text_only": true}, "agent": agent}}),
            )
            .await?;
        agents.push(created["agent_id"].as_str().unwrap_or_default().to_owned());
    }
    let turns = sizes.samples.min(500);
    let mut sockets = Vec::new();
    for agent in &agents {
        sockets.push(live::open(&node, agent).await?);
    }
    let mut timings = [Vec::with_capacity(turns), Vec::with_capacity(turns)];
    for k in 0..turns {
        for (socket, times) in sockets.iter_mut().zip(timings.iter_mut()) {
            times.push(live::turn(socket, &format!("{} {}", words.next(), words.next())).await?);
        }
        // A conversation's transcript grows with its turns; start new ones now and then so
        // both stay short alike.
        if k % 50 == 49 {
            for (socket, agent) in sockets.iter_mut().zip(&agents) {
                *socket = live::open(&node, agent).await?;
            }
        }
    }
    let [mut rag, mut plain] = timings;
    rag.sort_unstable();
    plain.sort_unstable();
    let (rag_p50, plain_p50) = (load::quantile(&rag, 0.5), load::quantile(&plain, 0.5));
    let label = "turn with RAG over a 200-chunk document";
    Ok(vec![
        Row {
            scenario: format!("{label} vs the same agent without: p50"),
            unit: "ms".into(),
            ours: rag_p50,
            baseline: Some(plain_p50),
            goal: Goal::None,
        },
        Row {
            scenario: format!("{label}: added p50 (the reference documents about 250 ms)"),
            unit: "ms".into(),
            ours: (rag_p50 - plain_p50).max(0.0),
            baseline: None,
            goal: Goal::AtMost(10.0),
        },
    ])
}
