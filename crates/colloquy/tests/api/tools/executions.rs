//! `GET /v1/convai/tools/{tool_id}/executions`: filters, paging, the tools that may be asked
//! for, and the usage statistics the same records feed.

use std::sync::Arc;

use colloquy_store::{AuditStore, AuditWriter, ToolExecution};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

use crate::audit::{conversation, default_ws, execution};
use crate::helpers::{Backend, TestApp, dual_db};
use crate::tools::{create_tool, webhook};

/// A server with one webhook tool and one stored conversation that records can point at.
struct Logged {
    app: TestApp,
    tool: String,
    store: Arc<colloquy_store::SqlStore>,
    ws: colloquy_core::ids::WorkspaceId,
    conv: colloquy_core::ids::ConversationId,
}

impl Logged {
    async fn new(backend: Backend) -> Logged {
        let app = TestApp::spawn(backend).await;
        let tool = create_tool(&app, &app.admin_key, webhook("weather", "https://x.example")).await;
        let store = Arc::new(app.db.store().await);
        let ws = default_ws(&store).await;
        let conv = conversation(&store, &ws, "agent_a").await;
        Logged { app, tool, store, ws, conv }
    }
}

async fn executions_page_filter_and_feed_usage_stats(backend: Backend) {
    let Logged { app, tool, store, ws, conv } = Logged::new(backend).await;
    let key = &app.admin_key;
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
    assert_eq!(count(&app.get(&path("is_error=true&page_size=100"), key).await.1), 8);
    assert_eq!(count(&app.get(&path("agent_id=agent_b&page_size=100"), key).await.1), 20);
    assert_eq!(count(&app.get(&path("branch_id=agtbrch_agent_a&page_size=100"), key).await.1), 20);
    // Inclusive bounds, fractions allowed.
    assert_eq!(
        count(
            &app.get(&path("start_time=1800000010&end_time=1800000019&page_size=100"), key).await.1
        ),
        10
    );
    assert_eq!(
        count(
            &app.get(&path("start_time=1800000010.5&end_time=1800000019.999&page_size=100"), key)
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
        app.get(&path(&format!("page_size=5&is_error=true&cursor={c}")), key).await.0,
        422,
        "cursor of other filters"
    );

    assert_eq!(app.get("/v1/convai/tools/tool_nope/executions", key).await.0, 404);
    let (s, mcp) = app.get("/v1/convai/tools/tool_mcp_0123abcd/executions", key).await;
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
    let (s, b) = app.send(reqwest::Method::DELETE, &tool_path, key, &json!({})).await;
    assert!(s < 300, "deleted: {s} {b}");
    let (s, gone) = app.get(&path(""), key).await;
    assert_eq!(s, 404, "a deleted tool's calls stay in the log, not on its page: {gone}");
}
dual_db!(executions_page_filter_and_feed_usage_stats);

/// Paging the log with any page size and filters returns exactly the filtered set, in order,
/// each record once.
async fn paging_returns_exactly_the_filtered_set(backend: Backend) {
    let Logged { app, tool, store, ws, conv } = Logged::new(backend).await;
    let key = &app.admin_key;
    let base = 1_800_000_000_000;
    let mut all = Vec::new();
    for i in 0..120i64 {
        // Repeated timestamps on purpose: ties are broken by id.
        let agent = ["agent_a", "agent_b", "agent_c"][(i % 3) as usize];
        all.push(execution(&ws, &tool, &conv, agent, base + (i / 4) * 1000, i % 7 == 0));
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
                .get(&format!("/v1/convai/tools/{tool}/executions?{query}&cursor={cursor}"), key)
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
dual_db!(paging_returns_exactly_the_filtered_set);
