//! The tool-call audit log: the group-commit writer, `GET /v1/convai/tools/{id}/executions`,
//! `GET /api/tool-calls`, usage statistics, and durability across kill -9.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use colloquy_core::ids::{ConversationId, WorkspaceId};
use colloquy_store::{
    AuditStore, AuditWriter, ConversationProgress, ConversationRecord, ConversationStore, SqlStore,
    ToolExecution, WorkspaceStore,
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, backends, status_json};
use crate::tools::{create_tool, webhook};

fn execution(
    ws: &WorkspaceId,
    tool: &str,
    conversation: &ConversationId,
    agent: &str,
    ts_ms: i64,
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

async fn conversation(store: &SqlStore, ws: &WorkspaceId, agent: &str) -> ConversationId {
    let id = ConversationId::generate();
    let record = ConversationRecord {
        id: id.clone(),
        workspace_id: ws.clone(),
        agent_id: agent.into(),
        branch_id: None,
        source: "ws".into(),
        started_at: colloquy_core::time::now_secs(),
    };
    let progress = ConversationProgress {
        status: "done".into(),
        ..Default::default()
    };
    store.start_conversation(&record, &progress).await.unwrap();
    id
}

async fn default_ws(store: &SqlStore) -> WorkspaceId {
    store
        .get_workspace_by_name("default")
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn executions_page_filter_and_feed_usage_stats() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let key = &app.admin_key;
        let tool = create_tool(&app, key, webhook("weather", "https://x.example")).await;
        let store = Arc::new(app.db.store().await);
        let ws = default_ws(&store).await;
        let conv = conversation(&store, &ws, "agent_a").await;
        let (writer, task) = AuditWriter::spawn(store.clone());
        let base = 1_800_000_000_000;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let agent = if i % 2 == 0 { "agent_a" } else { "agent_b" };
            let rec = execution(&ws, &tool, &conv, agent, base + i * 1000, i % 5 == 0);
            let w = writer.clone();
            tasks.push(tokio::spawn(async move { w.record(rec).await }));
        }
        for t in tasks {
            t.await.unwrap().expect("durable");
        }
        drop(writer);
        task.await.unwrap();

        let path = |q: &str| format!("/v1/convai/tools/{tool}/executions?{q}");
        let (s, page) = app.get(&path("page_size=7"), key).await;
        assert_eq!(s, 200, "{page}");
        let first = &page["executions"][0];
        assert_eq!(first["timestamp"], json!(1_800_000_039.0), "newest first");
        assert_eq!(first["latency_secs"], json!(0.0015));
        assert_eq!(first["tool_call_details"]["type"], "webhook");
        assert_eq!(first["conversation_id"], conv.as_str());
        assert_eq!(page["has_more"], true);
        for field in [
            "tool_id",
            "tool_request_id",
            "conversation_id",
            "agent_id",
            "branch_id",
            "timestamp",
            "latency_secs",
            "is_error",
            "request_payload",
            "response_payload",
            "error_message",
            "error_type",
            "id",
            "tool_call_details",
        ] {
            assert!(first.get(field).is_some(), "{field}");
        }

        let count = |v: &Value| v["executions"].as_array().unwrap().len();
        assert_eq!(
            count(&app.get(&path("is_error=true&page_size=100"), key).await.1),
            8
        );
        assert_eq!(
            count(
                &app.get(&path("agent_id=agent_b&page_size=100"), key)
                    .await
                    .1
            ),
            20
        );
        assert_eq!(
            count(
                &app.get(&path("branch_id=agtbrch_agent_a&page_size=100"), key)
                    .await
                    .1
            ),
            20
        );
        // Inclusive bounds, fractions allowed.
        assert_eq!(
            count(
                &app.get(
                    &path("start_time=1800000010&end_time=1800000019&page_size=100"),
                    key
                )
                .await
                .1
            ),
            10
        );
        assert_eq!(
            count(
                &app.get(
                    &path("start_time=1800000010.5&end_time=1800000019.999&page_size=100"),
                    key
                )
                .await
                .1
            ),
            9
        );
        assert_eq!(
            count(
                &app.get(
                    &path("is_error=false&agent_id=agent_a&start_time=1800000020&page_size=100"),
                    key
                )
                .await
                .1
            ),
            8
        );

        for bad in [
            "page_size=0",
            "page_size=101",
            "is_error=perhaps",
            "start_time=yesterday",
            "start_time=inf",
            "cursor=zzz",
        ] {
            let (s, b) = app.get(&path(bad), key).await;
            assert_eq!(s, 422, "{bad}: {b}");
        }
        let (_, p1) = app.get(&path("page_size=5&is_error=false"), key).await;
        let c = p1["next_cursor"].as_str().unwrap();
        assert_eq!(
            app.get(&path(&format!("page_size=5&is_error=true&cursor={c}")), key)
                .await
                .0,
            422,
            "cursor of other filters"
        );

        assert_eq!(
            app.get("/v1/convai/tools/tool_nope/executions", key)
                .await
                .0,
            404
        );
        let (s, mcp) = app
            .get("/v1/convai/tools/tool_mcp_0123abcd/executions", key)
            .await;
        assert_eq!(s, 200, "derived MCP tool ids are accepted");
        assert_eq!(mcp["executions"], json!([]));

        let (_, t) = app.get(&format!("/v1/convai/tools/{tool}"), key).await;
        assert_eq!(t["usage_stats"]["total_calls"], 40);
        assert_eq!(t["usage_stats"]["avg_latency_secs"], json!(0.0015));
        let (_, list) = app.get("/v1/convai/tools", key).await;
        assert_eq!(list["tools"][0]["usage_stats"]["total_calls"], 40);

        let theirs = app.key("globex", "g@globex.test", "admin").await;
        assert_eq!(app.get(&path(""), &theirs).await.0, 404);

        let (s, none) = app.get(&path("agent_id=agent_z"), key).await;
        assert_eq!(s, 200, "a filter that matches nothing: {none}");
        assert_eq!(none["executions"], json!([]));
        let tool_path = format!("/v1/convai/tools/{tool}");
        let (s, b) = app
            .send(reqwest::Method::DELETE, &tool_path, key, &json!({}))
            .await;
        assert!(s < 300, "deleted: {s} {b}");
        let (s, gone) = app.get(&path(""), key).await;
        assert_eq!(
            s, 404,
            "a deleted tool's calls stay in the log, not on its page: {gone}"
        );
    }
}

/// Paging the log with any page size and filters returns exactly the filtered set, in order,
/// each record once.
#[tokio::test]
async fn paging_returns_exactly_the_filtered_set() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let key = &app.admin_key;
        let tool = create_tool(&app, key, webhook("weather", "https://x.example")).await;
        let store = Arc::new(app.db.store().await);
        let ws = default_ws(&store).await;
        let conv = conversation(&store, &ws, "agent_a").await;
        let base = 1_800_000_000_000;
        let mut all = Vec::new();
        for i in 0..120i64 {
            // Repeated timestamps on purpose: ties are broken by id.
            let agent = ["agent_a", "agent_b", "agent_c"][(i % 3) as usize];
            all.push(execution(
                &ws,
                &tool,
                &conv,
                agent,
                base + (i / 4) * 1000,
                i % 7 == 0,
            ));
        }
        store.insert_executions(&all).await.unwrap();

        let strategy = (
            1u32..40,
            proptest::option::of(proptest::bool::ANY),
            proptest::option::of(proptest::sample::select(vec![
                "agent_a", "agent_b", "agent_c", "agent_x",
            ])),
            proptest::option::of(0i64..35),
            proptest::option::of(0i64..35),
        );
        let mut runner = TestRunner::deterministic();
        for _ in 0..25 {
            let (page_size, is_error, agent, start, end) =
                strategy.new_tree(&mut runner).unwrap().current();
            let mut expected: Vec<&ToolExecution> = all
                .iter()
                .filter(|e| is_error.is_none_or(|x| e.is_error == x))
                .filter(|e| agent.is_none_or(|a| e.agent_id == a))
                .filter(|e| start.is_none_or(|s| e.timestamp_ms >= base + s * 1000))
                .filter(|e| end.is_none_or(|x| e.timestamp_ms <= base + x * 1000))
                .collect();
            expected.sort_by(|a, b| (b.timestamp_ms, &b.id).cmp(&(a.timestamp_ms, &a.id)));
            let mut query = format!("page_size={page_size}");
            if let Some(e) = is_error {
                query.push_str(&format!("&is_error={e}"));
            }
            if let Some(a) = agent {
                query.push_str(&format!("&agent_id={a}"));
            }
            if let Some(s) = start {
                query.push_str(&format!("&start_time={}", 1_800_000_000 + s));
            }
            if let Some(x) = end {
                query.push_str(&format!("&end_time={}", 1_800_000_000 + x));
            }
            let mut got = Vec::new();
            let mut cursor = String::new();
            loop {
                let (s, page) = app
                    .get(
                        &format!("/v1/convai/tools/{tool}/executions?{query}&cursor={cursor}"),
                        key,
                    )
                    .await;
                assert_eq!(s, 200, "{query}: {page}");
                let items = page["executions"].as_array().unwrap();
                assert!(items.len() <= page_size as usize);
                got.extend(items.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = c.to_owned(),
                    None => break,
                }
            }
            let want: Vec<String> = expected.iter().map(|e| e.id.clone()).collect();
            assert_eq!(got, want, "{query}");
        }
    }
}

#[tokio::test]
async fn tool_calls_of_a_conversation_in_the_ohallo_shape() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let key = &app.admin_key;
        let store = app.db.store().await;
        let ws = default_ws(&store).await;
        let conv = conversation(&store, &ws, "agent_a").await;
        let other_conv = conversation(&store, &ws, "agent_a").await;
        let mut recs = vec![
            execution(&ws, "tool_1", &conv, "agent_a", 1_774_438_926_000, false),
            execution(&ws, "tool_2", &conv, "agent_a", 1_774_438_927_250, true),
            execution(
                &ws,
                "tool_1",
                &other_conv,
                "agent_a",
                1_774_438_926_500,
                false,
            ),
        ];
        recs[1].status = "timeout".into();
        recs[1].latency_us = 245_400;
        recs[1].response_payload = None;
        store.insert_executions(&recs).await.unwrap();

        let bearer = |path: String, token: Option<&str>| {
            let mut r = app.client.get(app.url(&path));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send()
        };
        let (s, calls) = status_json(
            bearer(format!("/api/tool-calls?executionId={conv}"), Some(key))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s, 200, "{calls}");
        let calls = calls.as_array().unwrap();
        assert_eq!(calls.len(), 2, "only this conversation's calls");
        assert_eq!(calls[0]["id"], recs[0].id.as_str());
        assert_eq!(calls[0]["executionId"], conv.as_str());
        assert_eq!(calls[0]["toolName"], "weather");
        assert_eq!(calls[0]["input"], json!({"city": "Paris"}));
        assert_eq!(calls[0]["output"], json!({"temp": 21.5}));
        assert_eq!(calls[0]["status"], "success");
        assert_eq!(calls[0]["durationMs"], 2);
        assert_eq!(calls[0]["createdAt"], "2026-03-25T11:42:06.000Z");
        assert_eq!(calls[1]["status"], "timeout");
        assert_eq!(calls[1]["durationMs"], 245);
        assert_eq!(calls[1]["output"], Value::Null);
        assert_eq!(calls[1]["createdAt"], "2026-03-25T11:42:07.250Z");

        let r = app
            .client
            .get(app.url(&format!("/api/tool-calls?executionId={conv}")))
            .header("xi-api-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "xi-api-key works too");

        let empty = conversation(&store, &ws, "agent_a").await;
        let (s, none) = status_json(
            bearer(format!("/api/tool-calls?executionId={empty}"), Some(key))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((s, none), (200, json!([])));

        for (path, token, status) in [
            ("/api/tool-calls".to_owned(), Some(key.as_str()), 400),
            (
                "/api/tool-calls?executionId=".to_owned(),
                Some(key.as_str()),
                400,
            ),
            (
                "/api/tool-calls?executionId=not-a-uuid".to_owned(),
                Some(key.as_str()),
                400,
            ),
            (
                format!(
                    "/api/tool-calls?executionId={}",
                    colloquy_core::ids::new_uuid()
                ),
                Some(key.as_str()),
                404,
            ),
            (format!("/api/tool-calls?executionId={conv}"), None, 401),
            (
                format!("/api/tool-calls?executionId={conv}"),
                Some("sk_bad"),
                401,
            ),
        ] {
            let (s, body) = status_json(bearer(path.clone(), token).await.unwrap()).await;
            assert_eq!(s, status, "{path}: {body}");
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{path}: {body}"
            );
        }
        let (_, nf) = status_json(
            bearer(
                format!(
                    "/api/tool-calls?executionId={}",
                    colloquy_core::ids::new_uuid()
                ),
                Some(key),
            )
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(nf, json!({"error": "Conversation not found"}));

        let theirs = app.key("globex", "g@globex.test", "admin").await;
        let (s, body) = status_json(
            bearer(format!("/api/tool-calls?executionId={conv}"), Some(&theirs))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((s, body), (404, json!({"error": "Conversation not found"})));
        let no_scope = app.key("default", "t@x.test", "tools:read").await;
        let (s, _) = status_json(
            bearer(
                format!("/api/tool-calls?executionId={conv}"),
                Some(&no_scope),
            )
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(s, 403);
    }
}

/// The writer batches concurrent records into few transactions and loses none.
#[tokio::test]
async fn writer_batches_and_acknowledges_every_record() {
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let store = Arc::new(db.store().await);
        let ws = store.ensure_workspace("w").await.unwrap();
        let conv = conversation(&store, &ws.id, "agent_a").await;
        let (writer, task) = AuditWriter::spawn(store.clone());
        let mut tasks = Vec::new();
        for i in 0..2000 {
            let w = writer.clone();
            let rec = execution(
                &ws.id,
                "tool_x",
                &conv,
                "agent_a",
                1_800_000_000_000 + i,
                false,
            );
            tasks.push(tokio::spawn(async move { w.record(rec).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        drop(writer);
        task.await.unwrap();
        assert_eq!(
            store
                .conversation_executions(&ws.id, &conv)
                .await
                .unwrap()
                .len(),
            2000
        );
    }
}

/// A child process writing through the writer is killed with SIGKILL mid-load; every record it
/// was told is durable is in the database afterwards. The child is this test binary running
/// `audit::writer_child` (ignored unless invoked this way).
#[tokio::test]
async fn acknowledged_records_survive_kill_9() {
    for backend in backends() {
        let db = TestDb::new(backend).await;
        {
            let store = db.store().await;
            let ws = store.ensure_workspace("crash").await.unwrap();
            conversation(&store, &ws.id, "agent_a").await;
        }
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "audit::writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
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
        assert!(
            acked.len() > 50,
            "the child acknowledged only {} records",
            acked.len()
        );

        let store = db.store().await;
        let ws = store.get_workspace_by_name("crash").await.unwrap().unwrap();
        let stored = store
            .list_tool_executions(
                &ws.id,
                &"tool_crash".into(),
                &Default::default(),
                None,
                u32::MAX,
            )
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
}

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
