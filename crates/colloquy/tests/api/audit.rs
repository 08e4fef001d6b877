//! The tool-call audit log itself: the group-commit writer and durability across kill -9, and
//! the records the read APIs' tests seed (`tools::executions`, `tool_calls`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use colloquy_core::ids::{ConversationId, WorkspaceId};
use colloquy_store::{
    AuditStore, AuditWriter, ConversationProgress, ConversationRecord, ConversationStore, SqlStore,
    ToolExecution, WorkspaceStore,
};

use crate::helpers::{Backend, TestDb, dual_db};

pub fn execution(
    ws: &WorkspaceId, tool: &str, conversation: &ConversationId, agent: &str, ts_ms: i64,
    is_error: bool,
) -> ToolExecution {
    ToolExecution {
        id: colloquy_core::ids::new_uuid(),
        workspace_id: ws.clone(),
        tool_id: tool.into(),
        tool_name: "weather".into(),
        tool_type: "webhook".into(),
        tool_request_id: format!("call_{ts_ms}"),
        conversation_id: conversation.clone(),
        agent_id: agent.into(),
        branch_id: Some(format!("agtbrch_{agent}")),
        timestamp_ms: ts_ms,
        latency_us: 1500,
        status: if is_error { "error".into() } else { "success".into() },
        is_error,
        error_type: is_error.then(|| "external_server".into()),
        error_message: is_error.then(|| "upstream 502".into()),
        request_payload: Some(r#"{"city":"Paris"}"#.into()),
        response_payload: Some(if is_error { "Bad Gateway".into() } else { r#"{"temp":21.5}"#.into() }),
        tool_call_details: Some(r#"{"type":"webhook","method":"POST","url":"https://x.example","headers":{"Authorization":"[REDACTED]"}}"#.into()),
    }
}

pub async fn conversation(store: &SqlStore, ws: &WorkspaceId, agent: &str) -> ConversationId {
    let id = ConversationId::generate();
    let record = ConversationRecord {
        id: id.clone(),
        workspace_id: ws.clone(),
        agent_id: agent.into(),
        branch_id: None,
        version_id: None,
        source: "ws".into(),
        started_at: colloquy_core::time::now_secs(),
        external_reference: None,
    };
    let progress = ConversationProgress { status: "done".into(), ..Default::default() };
    store.start_conversation(&record, &progress).await.unwrap();
    id
}

pub async fn default_ws(store: &SqlStore) -> WorkspaceId {
    store.get_workspace_by_name("default").await.unwrap().unwrap().id
}

/// The writer batches concurrent records into few transactions and loses none.
async fn writer_batches_and_acknowledges_every_record(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = Arc::new(db.store().await);
    let ws = store.ensure_workspace("w").await.unwrap();
    let conv = conversation(&store, &ws.id, "agent_a").await;
    let (writer, task) = AuditWriter::spawn(store.clone());
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let w = writer.clone();
        let rec = execution(&ws.id, "tool_x", &conv, "agent_a", 1_800_000_000_000 + i, false);
        tasks.push(tokio::spawn(async move { w.record(rec).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    drop(writer);
    task.await.unwrap();
    assert_eq!(store.conversation_executions(&ws.id, &conv).await.unwrap().len(), 2000);
}
dual_db!(writer_batches_and_acknowledges_every_record);

/// A child process writing through the writer is killed with SIGKILL mid-load; every record it
/// was told is durable is in the database afterwards. The child is this test binary running
/// `audit::writer_child` (ignored unless invoked this way).
async fn acknowledged_records_survive_kill_9(backend: Backend) {
    let db = TestDb::new(backend).await;
    {
        let store = db.store().await;
        let ws = store.ensure_workspace("crash").await.unwrap();
        conversation(&store, &ws.id, "agent_a").await;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "audit::writer_child", "--nocapture", "--test-threads=1"])
        .env("COLLOQUY_CHILD_DB", &db.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(id) = line.strip_prefix("ACK ") {
                acked.push(id.to_owned());
            }
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let acked = reader.join().unwrap();
    assert!(acked.len() > 50, "the child acknowledged only {} records", acked.len());

    let store = db.store().await;
    let ws = store.get_workspace_by_name("crash").await.unwrap().unwrap();
    let stored = store
        .list_tool_executions(&ws.id, &"tool_crash".into(), &Default::default(), None, u32::MAX)
        .await
        .unwrap();
    let stored: std::collections::HashSet<String> = stored.into_iter().map(|e| e.id).collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
}
dual_db!(acknowledged_records_survive_kill_9);

/// The writer side of [`acknowledged_records_survive_kill_9`]: writes forever, printing the id
/// of each record once it is durable.
#[tokio::test]
#[ignore = "run as a child process by acknowledged_records_survive_kill_9"]
#[allow(clippy::print_stdout)]
async fn writer_child() {
    let Ok(url) = std::env::var("COLLOQUY_CHILD_DB") else {
        return;
    };
    let store = Arc::new(SqlStore::connect(&url, &Default::default()).await.unwrap());
    let ws = store.get_workspace_by_name("crash").await.unwrap().unwrap();
    let (writer, _task) = AuditWriter::spawn(store.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for worker in 0..16 {
        let w = writer.clone();
        let tx = tx.clone();
        let ws = ws.id.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let rec = execution(
                    &ws,
                    "tool_crash",
                    &"conv".into(),
                    "agent_a",
                    1_800_000_000_000 + i * 16 + worker,
                    false,
                );
                let id = rec.id.clone();
                if w.record(rec).await.is_ok() {
                    let _ = tx.send(id);
                }
            }
        });
    }
    drop(tx);
    while let Some(id) = rx.recv().await {
        println!("ACK {id}");
    }
}
