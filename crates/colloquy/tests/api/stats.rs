//! `GET /api/stats`: a workspace's numbers by day, as the per-day tables keep them while
//! conversations start and end and tool calls are recorded.

use std::time::Duration;

use serde_json::json;

use crate::fakes::{FakeLlm, Webhook, call, is_analysis, text, with_llm};
use crate::helpers::{Backend, TestApp, dual_db, ended_conversation};

async fn a_workspaces_numbers_follow_its_conversations_and_tool_calls(backend: Backend) {
    let llm = FakeLlm::openai(|req: &serde_json::Value| {
        let last = req["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
        if is_analysis(req) {
            call(
                "record_analysis",
                json!({"transcript_summary": "s", "call_summary_title": "t",
                "evaluation_criteria_results": {}, "data_collection_results": {}}),
            )
        } else if last["role"] == "tool" {
            text("Done.")
        } else {
            call("get_order", json!({"city": "A1"}))
        }
    })
    .await;
    let hook = Webhook::start(200, r#"{"ok":true}"#, Duration::from_millis(30)).await;
    let app = TestApp::spawn_with(backend, |c| {
        with_llm(&llm)(c);
        c.webhook_allow = "127.0.0.1".into();
    })
    .await;
    let key = app.admin_key.clone();
    let (s, empty) = app.get("/api/stats", &key).await;
    assert_eq!(s, 200, "{empty}");
    assert_eq!(empty["days"], 7);
    assert_eq!(
        empty["conversations"]["per_day"].as_array().unwrap().len(),
        7,
        "every day, none left out"
    );
    assert_eq!(
        (
            empty["conversations"]["total"].as_i64(),
            empty["conversations"]["success_rate"].is_null()
        ),
        (Some(0), true)
    );

    let tool =
        crate::tools::create_tool(&app, &key, crate::tools::webhook("get_order", &hook.base)).await;
    let (_, agent) = app
        .post(
            "/v1/convai/agents/create",
            &key,
            &json!({"conversation_config": {"agent": {
        "first_message": "", "prompt": {"prompt": "p", "llm": "gpt-4o", "tool_ids": [tool]}}}}),
        )
        .await;
    let agent = agent["agent_id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for status in [200, 500] {
        hook.set_status(status);
        let (mut socket, id) = crate::ws::open(
            &crate::ws::url(&app.base, &format!("agent_id={agent}")),
            colloquy_core::protocol::InitiationData::default(),
        )
        .await;
        crate::ws::turn(&mut socket, "where is my order?").await;
        drop(socket);
        ended_conversation(&app, &id).await;
        ids.push(id);
    }
    let (_, stats) = app.get("/api/stats?days=30", &key).await;
    let conversations = &stats["conversations"];
    assert_eq!(conversations["total"], 2, "{stats}");
    let today = conversations["per_day"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(today["started"], 2);
    assert_eq!(today["date"], stats["to"]);
    // How they ended, as the conversations themselves say (kept by the database's triggers
    // as `call_successful` changes after the start).
    let mut ended = (0, 0);
    for id in &ids {
        let (_, c) = app.get(&format!("/v1/convai/conversations/{id}"), &key).await;
        match c["analysis"]["call_successful"].as_str() {
            Some("success") => ended.0 += 1,
            Some("failure") => ended.1 += 1,
            _ => {}
        }
    }
    assert_eq!(
        (conversations["successes"].as_i64(), conversations["failures"].as_i64()),
        (Some(ended.0), Some(ended.1)),
        "{stats}"
    );
    assert_eq!(stats["tool_calls"], json!({"total": 2, "errors": 1, "error_rate": 0.5}));
    let tool_row = &stats["tools"][0];
    assert_eq!(
        (tool_row["tool_id"].as_str(), tool_row["tool_name"].as_str()),
        (Some(tool.as_str()), Some("get_order"))
    );
    let p95 = tool_row["p95_latency_secs"].as_f64().unwrap();
    assert!(
        (0.025..=0.25).contains(&p95) && tool_row["p95_beyond_histogram"] == false,
        "the 30 ms webhook: {tool_row}"
    );
    let mean = tool_row["mean_latency_secs"].as_f64().unwrap();
    assert!(mean >= 0.03 && mean <= p95, "{tool_row}");

    for bad in ["0", "91", "x"] {
        assert_eq!(app.get(&format!("/api/stats?days={bad}"), &key).await.0, 422, "days={bad}");
    }
    let other = app.key("elsewhere", "eve@example.com", "admin").await;
    let (_, theirs) = app.get("/api/stats?days=30", &other).await;
    assert_eq!(
        (theirs["conversations"]["total"].as_i64(), theirs["tools"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
    app.stop().await;
}
dual_db!(a_workspaces_numbers_follow_its_conversations_and_tool_calls);
