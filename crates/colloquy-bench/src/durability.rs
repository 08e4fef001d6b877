//! Kill -9 during audit ingest: a child process writes through the group-commit writer and
//! prints each record's id once `record` has returned (the writer's acknowledgement); the parent
//! kills it mid-load, then counts acknowledged ids missing from the database.

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use colloquy_store::{AuditWriter, ConnectOptions, DynStore, SqlStore};

use crate::report::{Goal, Row};
use crate::scenarios::{Sizes, record};

/// The child: ingests until killed, printing acknowledged ids, one per line.
pub async fn child(db: &Path) -> anyhow::Result<()> {
    let url = format!("sqlite://{}", db.display());
    let store = SqlStore::connect(&url, &ConnectOptions::default()).await?;
    store.migrate().await?;
    let store: DynStore = Arc::new(store);
    let ws = store.ensure_workspace("bench").await?;
    let (writer, _task) = AuditWriter::spawn(store);
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel::<String>();
    for c in 0..128usize {
        let writer = writer.clone();
        let ws = ws.id.clone();
        let acks = acks.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let r = record(
                    &ws,
                    "tool_kill",
                    "agent",
                    "conv",
                    colloquy_core::time::now_ms(),
                    c * 1_000_000_000 + i,
                );
                let id = r.id.clone();
                if writer.record(r).await.is_err() {
                    break;
                }
                if acks.send(id).is_err() {
                    break;
                }
            }
        });
    }
    drop(acks);
    let mut out = std::io::stdout().lock();
    while let Some(id) = acked.recv().await {
        writeln!(out, "{id}")?;
    }
    Ok(())
}

/// The parent: runs the child for the ingest window, kills it with SIGKILL, and checks.
pub async fn kill_during_ingest(sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("kill.db");
    let mut child = Command::new(std::env::current_exe()?)
        .args(["ingest-child", "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let window = sizes.ingest_window;
    let reader = std::thread::spawn(move || {
        let mut ids = Vec::new();
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(id) => ids.push(id),
                Err(_) => break,
            }
        }
        ids
    });
    let started = Instant::now();
    // Let it load the writer first: the kill lands in the middle of the batches.
    tokio::time::sleep(window.max(Duration::from_millis(500))).await;
    child.kill()?;
    child.wait()?;
    let elapsed = started.elapsed();
    let acknowledged = reader.join().map_err(|_| anyhow::anyhow!("reader panicked"))?;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT id FROM tool_executions").fetch_all(&pool).await?;
    let stored: HashSet<String> = stored.into_iter().collect();
    let missing = acknowledged.iter().filter(|id| !stored.contains(*id)).count();
    anyhow::ensure!(!acknowledged.is_empty(), "the child acknowledged nothing before the kill");
    Ok(vec![Row {
        scenario: format!(
            "kill -9 during ingest: acknowledged records missing after restart (of {} acknowledged, {:.0}/s)",
            acknowledged.len(),
            acknowledged.len() as f64 / elapsed.as_secs_f64()
        ),
        unit: "records".into(),
        ours: missing as f64,
        baseline: None,
        goal: Goal::AtMost(0.0),
    }])
}
