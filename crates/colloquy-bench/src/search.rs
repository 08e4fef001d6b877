//! Transcript search: the workspace's messages searched through the store (what
//! `text-search` runs) against the same FTS5 query run directly on the database file, at
//! several corpus sizes.

use std::time::Instant;

use colloquy_core::ids::WorkspaceId;
use colloquy_core::knowledge::STOPWORDS;
use colloquy_store::{
    ConnectOptions, MessageSearch, MessageStore as _, SqlStore, WorkspaceStore as _,
};

use crate::report::{Goal, Row};
use crate::retrieval::{self, Words};
use crate::scenarios::Sizes;

/// Messages per synthetic conversation.
const MESSAGES_PER_CONVERSATION: usize = 10;
/// Words per synthetic message.
const WORDS_PER_MESSAGE: usize = 12;
/// Results a page asks for (20 shown, one more to know there is more).
const PAGE: u32 = 21;
/// Rows written per transaction while the corpus is built.
const BATCH: usize = 50_000;

/// Every transcript-search figure.
pub async fn transcripts(sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &messages in sizes.messages {
        let samples = if messages >= 1_000_000 { 300 } else { sizes.samples.min(1000) };
        rows.extend(search_latency(messages, samples).await?);
    }
    Ok(rows)
}

/// Builds a corpus of `messages` messages, then times the store's search against the same
/// query on a connection of this process, alternating one of each.
async fn search_latency(messages: usize, samples: usize) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("transcripts.db");
    let store =
        SqlStore::connect(&format!("sqlite://{}", path.display()), &ConnectOptions::default())
            .await?;
    store.migrate().await?;
    let ws = store.ensure_workspace("bench").await?.id;
    let mut words = Words(0x5851_f42d_4c95_7f2d);
    let started = Instant::now();
    build(&path, &ws, messages, &mut words)?;
    let ingest = messages as f64 / started.elapsed().as_secs_f64();
    let raw = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let (mut ours, mut direct) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        let query = query_words(&mut words);
        let search =
            MessageSearch { words: query.clone(), limit: PAGE, ..MessageSearch::default() };
        let sent = Instant::now();
        store.search_messages(&ws, &search).await?;
        ours.push(sent.elapsed().as_micros() as u64);
        let sent = Instant::now();
        raw_search(&raw, &ws, &query)?;
        direct.push(sent.elapsed().as_micros() as u64);
    }
    Ok(rows(messages, ours, direct, ingest))
}

/// Two words of the language that are not stopwords, as a person searching would type.
fn query_words(words: &mut Words) -> Vec<String> {
    let mut out = Vec::with_capacity(2);
    while out.len() < 2 {
        let w = words.next();
        if !STOPWORDS.contains(&w.as_str()) && !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Writes conversations and their messages straight into the file (the search is measured,
/// not how the corpus came to be; the FTS triggers index them as the server's writes do).
fn build(
    path: &std::path::Path, ws: &WorkspaceId, messages: usize, words: &mut Words,
) -> anyhow::Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let conversations = messages.div_ceil(MESSAGES_PER_CONVERSATION);
    let now = colloquy_core::time::now_secs();
    let per_batch = BATCH / MESSAGES_PER_CONVERSATION;
    for first in (0..conversations).step_by(per_batch) {
        let tx = conn.transaction()?;
        {
            let mut conversation = tx.prepare(
                "INSERT INTO conversations (id, workspace_id, agent_id, source, status, started_at) \
                 VALUES (?1, ?2, 'agent_bench', 'ws', 'done', ?3)",
            )?;
            let mut message = tx.prepare(
                "INSERT INTO conversation_messages (conversation_id, workspace_id, \
                 transcript_index, role, message) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for c in first..(first + per_batch).min(conversations) {
                let id = format!("conv-{c:08}");
                let started = now - i64::try_from(c).unwrap_or(0);
                conversation.execute(rusqlite::params![id, ws.as_str(), started])?;
                for i in 0..MESSAGES_PER_CONVERSATION {
                    let role = if i % 2 == 0 { "user" } else { "agent" };
                    let text = words.text(WORDS_PER_MESSAGE);
                    message.execute(rusqlite::params![id, ws.as_str(), i as i64, role, text])?;
                }
            }
        }
        tx.commit()?;
    }
    Ok(())
}

/// The store's search, written directly against the file: the same two FTS5 queries (where
/// the 2,000 newest matches start, then the page ranked among them; all of them when fewer
/// match), prepared once.
fn raw_search(
    conn: &rusqlite::Connection, ws: &WorkspaceId, words: &[String],
) -> anyhow::Result<()> {
    use rusqlite::OptionalExtension as _;
    let mut terms = vec![format!("\"{}\"", words.join(" "))];
    terms.extend(words.iter().map(|w| format!("\"{w}\"")));
    let fts = terms.join(" OR ");
    let mut cutoff = conn.prepare_cached(
        "SELECT rowid FROM conversation_messages_fts WHERE conversation_messages_fts MATCH ?1 \
         ORDER BY rowid DESC LIMIT 1 OFFSET 1999",
    )?;
    let since: i64 = cutoff.query_row([&fts], |r| r.get(0)).optional()?.unwrap_or(0);
    let mut stmt = conn.prepare_cached(
        "SELECT m.conversation_id, c.agent_id, c.agent_name, m.transcript_index, m.message, \
         -bm25(conversation_messages_fts) AS score, c.started_at FROM conversation_messages_fts \
         JOIN conversation_messages m ON m.rowid = conversation_messages_fts.rowid \
         JOIN conversations c ON c.id = m.conversation_id \
         WHERE m.workspace_id = ?1 AND conversation_messages_fts MATCH ?2 \
         AND conversation_messages_fts.rowid >= ?3 AND c.deleted = FALSE \
         ORDER BY score DESC, m.conversation_id, m.transcript_index LIMIT 21 OFFSET 0",
    )?;
    let mut rows = stmt.query(rusqlite::params![ws.as_str(), fts, since])?;
    while let Some(row) = rows.next()? {
        let _: String = row.get(4)?;
    }
    Ok(())
}

/// The rows of one step of the series.
fn rows(messages: usize, ours: Vec<u64>, direct: Vec<u64>, ingest: f64) -> Vec<Row> {
    let absolute = if messages >= 1_000_000 { Goal::AtMost(20.0) } else { Goal::None };
    retrieval::search_series_rows(
        &format!("transcript text search, {messages} messages, page of 20"),
        (ours, direct),
        absolute,
        Row {
            scenario: format!("transcript corpus build (rows and FTS index), {messages} messages"),
            unit: "messages/s".into(),
            ours: ingest,
            baseline: None,
            goal: Goal::None,
        },
    )
}
