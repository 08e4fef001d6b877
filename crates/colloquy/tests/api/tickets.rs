//! Triage tickets: raised on a conversation (with turn comments, one pointing at a tool call),
//! by hand, or by the analysis; discussed, assigned, prioritised, listed with filters and
//! cursors, searched, merged, deleted; surviving a restart; kept to their workspace.

use std::time::Duration;

use colloquy_core::protocol::InitiationData;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fakes::{FakeLlm, call, is_analysis, text, with_llm};
use crate::helpers::{Backend, TestApp, dual_db, ended_conversation, poll};
use crate::ws;

/// An agent that ends the call when asked to, so a conversation has a tool call to point at;
/// its analysis fails the `refund` criterion.
async fn agent(app: &TestApp) -> String {
    let (s, b) = app.post("/v1/convai/agents/create", &app.admin_key, &json!({
        "conversation_config": {"agent": {"first_message": "", "prompt": {"prompt": "p", "llm": "gpt-4o",
            "built_in_tools": {"end_call": {"name": "end_call", "description": "End", "params": {"system_tool_type": "end_call"}}}}}},
        "platform_settings": {"evaluation": {"criteria": [
            {"id": "refund", "name": "Refund", "conversation_goal_prompt": "The agent offers a refund"}]}},
    })).await;
    assert_eq!(s, 200, "{b}");
    b["agent_id"].as_str().unwrap().to_owned()
}

fn llm_script(req: &Value) -> crate::fakes::Reply {
    if is_analysis(req) {
        return call(
            "record_analysis",
            json!({"transcript_summary": "The user asked for a refund.", "call_summary_title": "Refund request",
                "evaluation_criteria_results": {"refund": {"result": "failure", "rationale": "No refund was offered."}},
                "data_collection_results": {}}),
        );
    }
    let last = req["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
    if last["content"].to_string().contains("bye") {
        call("end_call", json!({}))
    } else {
        text("Noted.")
    }
}

/// A conversation: a refund asked for, then goodbye (the agent ends the call).
async fn conversation(app: &TestApp, agent: &str) -> String {
    let data = InitiationData { user_id: Some("ada".into()), ..Default::default() };
    let (mut socket, id) = ws::open(&ws::url(&app.base, &format!("agent_id={agent}")), data).await;
    ws::turn(&mut socket, "I want a refund").await;
    ws::say(&mut socket, "bye").await;
    ended_conversation(app, &id).await;
    id
}

async fn tickets_are_raised_discussed_assigned_and_merged(backend: Backend) {
    let llm = FakeLlm::openai(llm_script).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = app.admin_key.clone();
    let agent = agent(&app).await;
    let id = conversation(&app, &agent).await;
    let (_, calls) = app.get(&format!("/api/tool-calls?executionId={id}"), &key).await;
    let call_id = calls[0]["id"].as_str().expect("the end_call is recorded").to_owned();

    // Raised on the conversation, a turn comment pointing at the tool call.
    let body = json!({"conversation_id": id, "qa_comment": "Refused a refund\nwithout asking why",
        "priority": "high", "turn_comments": [{"turn_index": 1, "comment": "Ended the call too soon", "tool_call_id": call_id}]});
    let (s, ticket) = app.post("/v1/convai/triage-tickets", &key, &body).await;
    assert_eq!(s, 200, "{ticket}");
    let tid = ticket["agentqa_ticket_id"].as_str().unwrap().to_owned();
    assert_eq!((ticket["status"].as_str(), ticket["source"].as_str()), (Some("open"), Some("qa")));
    assert_eq!(ticket["agent_id"], agent.as_str());
    assert_eq!(ticket["conversation_ids"], json!([id]));
    assert_eq!(ticket["qa_comment"], "Refused a refund\nwithout asking why");
    assert!(ticket["first_seen_unix_secs"].as_i64().is_some());
    let turn = &ticket["turn_comments"][0];
    assert_eq!(
        (turn["turn_index"].as_i64(), turn["comment"].as_str()),
        (Some(1), Some("Ended the call too soon"))
    );
    // Colloquy's view: the title, the priority, the tool call the turn comment points at.
    let full = async |tid: &str| app.get(&format!("/api/triage-tickets/{tid}"), &key).await.1;
    let own = full(&tid).await;
    assert_eq!(
        (own["title"].as_str(), own["priority"].as_str()),
        (Some("Refused a refund"), Some("high"))
    );
    let call = &own["turn_comments"][0]["tool_call"];
    assert_eq!(
        (call["toolName"].as_str(), call["id"].as_str()),
        (Some("end_call"), Some(call_id.as_str())),
        "{own}"
    );

    // Raising again on the same conversation adds to its open ticket.
    let (s, again) = app.post("/v1/convai/triage-tickets", &key,
        &json!({"conversation_id": id, "qa_comment": "Also rude", "title": "ignored", "priority": "urgent"})).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["agentqa_ticket_id"], tid.as_str());
    assert_eq!(again["ticket_comments"][0]["comment"], "Also rude");
    let own = full(&tid).await;
    assert_eq!(
        (own["title"].as_str(), own["priority"].as_str()),
        (Some("Refused a refund"), Some("urgent"))
    );
    assert_eq!(own["priority_changes"][0]["priority"], "urgent");

    // Bad input changes nothing.
    for (bad, loc) in [
        (
            json!({"conversation_id": id, "turn_comments": [{"turn_index": 99, "comment": "x"}]}),
            json!(["body", "turn_comments", 0, "turn_index"]),
        ),
        (
            json!({"conversation_id": id, "turn_comments": [{"turn_index": 0, "comment": "x", "tool_call_id": "nope"}]}),
            json!(["body", "turn_comments", 0, "tool_call_id"]),
        ),
        (json!({"conversation_id": id}), json!(["body", "qa_comment"])),
        (json!({"conversation_id": id, "qa_comment": ""}), json!(["body", "qa_comment"])),
        (
            json!({"conversation_id": id, "qa_comment": "x", "priority": "sometime"}),
            json!(["body", "priority"]),
        ),
    ] {
        let (s, b) = app.post("/v1/convai/triage-tickets", &key, &bad).await;
        assert_eq!(s, 422, "{bad}: {b}");
        assert_eq!(b["detail"][0]["loc"], loc, "{b}");
    }
    let (s, _) = app
        .post(
            "/v1/convai/triage-tickets",
            &key,
            &json!({"conversation_id": "conv_missing", "qa_comment": "x"}),
        )
        .await;
    assert_eq!(s, 404);
    let (_, unchanged) = app.get(&format!("/v1/convai/triage-tickets/{tid}"), &key).await;
    assert_eq!(unchanged["turn_comments"].as_array().unwrap().len(), 1);

    // A manual ticket, then assignment, status and priority.
    let (s, manual) = app.post(&format!("/v1/convai/agents/{agent}/triage-tickets"), &key,
        &json!({"qa_comment": "Add the refund policy to the knowledge base", "priority": "low"})).await;
    assert_eq!(s, 200, "{manual}");
    let mid = manual["agentqa_ticket_id"].as_str().unwrap().to_owned();
    assert_eq!(
        (manual["source"].as_str(), manual["conversation_ids"].clone()),
        (Some("manual"), json!([]))
    );
    assert_eq!(full(&mid).await["title"], "Add the refund policy to the knowledge base");
    let (s, users) =
        app.get(&format!("/v1/convai/agents/{agent}/triage-tickets/assignable-users"), &key).await;
    assert_eq!(s, 200, "{users}");
    let me = users[0]["user_id"].as_str().unwrap().to_owned();
    assert_eq!(users[0]["has_access"], true);
    let patch = |path: String, body: Value| {
        let app = &app;
        let key = key.clone();
        async move { app.send(Method::PATCH, &path, &key, &body).await }
    };
    let (s, b) = patch(
        format!("/v1/convai/triage-tickets/{tid}"),
        json!({"status": "in_progress", "assignee_user_id": me}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["status"].as_str(), b["assignee_user_id"].as_str()),
        (Some("in_progress"), Some(me.as_str()))
    );
    let own = full(&tid).await;
    assert_eq!(own["status_changes"][0]["status"], "in_progress");
    assert_eq!(own["status_changes"][0]["changed_by_user_id"], me.as_str());
    for (bad, field) in [
        (json!({"assignee_user_id": "user_nobody"}), "assignee_user_id"),
        (json!({"status": "merged"}), "status"),
        (json!({"status": "closed"}), "status"),
    ] {
        let (s, b) = patch(format!("/v1/convai/triage-tickets/{mid}"), bad).await;
        assert_eq!(s, 422, "{b}");
        assert_eq!(b["detail"][0]["loc"], json!(["body", field]));
    }
    let (s, b) = app
        .post(
            &format!("/v1/convai/triage-tickets/{mid}/turn-comments"),
            &key,
            &json!({"turn_index": 0, "comment": "x"}),
        )
        .await;
    assert_eq!(s, 422, "a manual ticket has no turns: {b}");
    let (s, b) = app
        .post(
            &format!("/v1/convai/triage-tickets/{tid}/turn-comments"),
            &key,
            &json!({"turn_index": 0, "comment": "Greeting was fine"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["turn_comments"][1]["comment"], "Greeting was fine");
    let (s, b) = app
        .post(
            &format!("/v1/convai/triage-tickets/{mid}/comments"),
            &key,
            &json!({"comment": "Drafting the refund article"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // Lists: filters, sorts, search, cursors.
    let list = async |query: &str| {
        let (s, b) = app.get(&format!("/v1/convai/triage-tickets?{query}"), &key).await;
        assert_eq!(s, 200, "{query}: {b}");
        let ids: Vec<String> = b["agent_conversation_tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["agentqa_ticket_id"].as_str().unwrap().to_owned())
            .collect();
        (ids, b)
    };
    assert_eq!(list("").await.0, [mid.as_str(), tid.as_str()], "newest first");
    assert_eq!(list("sort_by=priority").await.0, [tid.as_str(), mid.as_str()], "urgent before low");
    assert_eq!(list("assignee_user_id=unassigned").await.0, [mid.as_str()]);
    assert_eq!(list(&format!("assignee_user_id={me}")).await.0, [tid.as_str()]);
    assert_eq!(list("sources=manual&sources=agent").await.0, [mid.as_str()]);
    assert_eq!(list("priorities=urgent").await.0, [tid.as_str()]);
    assert_eq!(list(&format!("conversation_id={id}")).await.0, [tid.as_str()]);
    assert_eq!(list("status=open").await.0, [mid.as_str()]);
    assert_eq!(list("label=anything").await.0, Vec::<String>::new());
    assert_eq!(list("search=TOO%20SOON").await.0, [tid.as_str()], "a turn comment, any case");
    assert_eq!(list("search=article").await.0, [mid.as_str()], "a comment");
    assert_eq!(list("search=policy").await.0, [mid.as_str()], "the description");
    assert_eq!(list("search=50%25").await.0, Vec::<String>::new(), "% is a character");
    let (first, page) = list("page_size=1").await;
    assert_eq!((first, page["has_more"].as_bool()), (vec![mid.clone()], Some(true)));
    let (next, page) =
        list(&format!("page_size=1&cursor={}", page["next_cursor"].as_str().unwrap())).await;
    assert_eq!((next, page["has_more"].as_bool()), (vec![tid.clone()], Some(false)));
    let (s, b) =
        app.get(&format!("/v1/convai/agents/{agent}/triage-tickets?page_size=101"), &key).await;
    assert_eq!(s, 422, "{b}");

    // Merged: the manual ticket folds into the conversation's.
    let (s, b) = app
        .post(
            &format!("/v1/convai/triage-tickets/{tid}/merge"),
            &key,
            &json!({"source_ticket_ids": [tid]}),
        )
        .await;
    assert_eq!(s, 422, "not into itself: {b}");
    let (s, merged) = app
        .post(
            &format!("/v1/convai/triage-tickets/{tid}/merge"),
            &key,
            &json!({"source_ticket_ids": [mid]}),
        )
        .await;
    assert_eq!(s, 200, "{merged}");
    let (_, source) = app.get(&format!("/v1/convai/triage-tickets/{mid}"), &key).await;
    assert_eq!(source["status"], "merged");
    assert_eq!(full(&mid).await["merged_into_ticket_id"], tid.as_str());
    assert_eq!(merged["conversation_ids"], json!([id]));
    assert_eq!(list(&format!("merged_into_ticket_id={tid}")).await.0, [mid.as_str()]);

    // Stored: all of it survives a restart.
    let app = app.restart().await;
    let (s, kept) = app.get(&format!("/v1/convai/triage-tickets/{tid}"), &key).await;
    assert_eq!(s, 200);
    assert_eq!(kept, merged, "the ticket reads the same after a restart");
    let own = app.get(&format!("/api/triage-tickets/{tid}"), &key).await.1;
    assert_eq!(own["turn_comments"][0]["tool_call"]["toolName"], "end_call");

    // Another workspace sees none of it; a viewer may not delete another's ticket.
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    assert_eq!(app.get(&format!("/v1/convai/triage-tickets/{tid}"), &theirs).await.0, 404);
    assert_eq!(
        app.get("/v1/convai/triage-tickets", &theirs).await.1["agent_conversation_tickets"],
        json!([])
    );
    assert_eq!(
        app.post(
            "/v1/convai/triage-tickets",
            &theirs,
            &json!({"conversation_id": id, "qa_comment": "x"})
        )
        .await
        .0,
        404
    );
    let writer = app.key("default", "w@acme.test", "conversations:read,conversations:write").await;
    assert_eq!(
        app.send(Method::DELETE, &format!("/v1/convai/triage-tickets/{tid}"), &writer, &json!({}))
            .await
            .0,
        403
    );
    assert_eq!(
        app.send(Method::DELETE, &format!("/v1/convai/triage-tickets/{tid}"), &key, &json!({}))
            .await
            .0,
        204
    );
    assert_eq!(app.get(&format!("/v1/convai/triage-tickets/{tid}"), &key).await.0, 404);
}
dual_db!(tickets_are_raised_discussed_assigned_and_merged);

async fn a_failed_evaluation_opens_a_ticket_when_the_workspace_asks(backend: Backend) {
    let llm = FakeLlm::openai(llm_script).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let agent = agent(&app).await;
    let analysed = async |id: &str| {
        poll(Duration::from_secs(15), Duration::from_millis(50), async || {
            let (_, status) = app.get(&format!("/api/conversations/{id}/analysis"), key).await;
            (status["status"] == "succeeded").then_some(())
        })
        .await
        .expect("analysed");
    };
    let before = conversation(&app, &agent).await;
    analysed(&before).await;
    let (_, none) = app.get(&format!("/v1/convai/agents/{agent}/triage-tickets"), key).await;
    assert_eq!(none["agent_conversation_tickets"], json!([]), "not asked for: none");

    let (s, b) = app.get("/api/settings/triage", key).await;
    assert_eq!((s, b), (200, json!({"auto_ticket_failed_evaluations": false})));
    let on = json!({"auto_ticket_failed_evaluations": true});
    assert_eq!(app.send(Method::PUT, "/api/settings/triage", key, &on).await, (200, on.clone()));
    let id = conversation(&app, &agent).await;
    analysed(&id).await;
    let raised = poll(Duration::from_secs(10), Duration::from_millis(50), async || {
        let (_, page) =
            app.get(&format!("/v1/convai/agents/{agent}/triage-tickets?sources=agent"), key).await;
        page["agent_conversation_tickets"]
            .as_array()
            .filter(|t| !t.is_empty())
            .map(|t| t[0].clone())
    })
    .await
    .expect("a ticket is raised");
    assert_eq!(raised["conversation_ids"], json!([id]));
    assert_eq!(
        (raised["owner_user_id"].as_str(), raised["status"].as_str()),
        (Some("agent"), Some("open"))
    );
    assert!(
        raised["qa_comment"].as_str().unwrap().contains("refund: No refund was offered."),
        "{raised}"
    );
}
dual_db!(a_failed_evaluation_opens_a_ticket_when_the_workspace_asks);
