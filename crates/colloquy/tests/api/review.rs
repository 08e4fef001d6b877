//! Reviewing conversations: tags on conversations (CRUD, assigning, the list's filter, deleting
//! a tag), the people who talked to the agents, and the live count.

use std::time::Duration;

use colloquy_core::protocol::InitiationData;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fakes::{FakeLlm, call, is_analysis, text, with_llm};
use crate::helpers::{Backend, TestApp, dual_db, ended_conversation, poll};
use crate::ws::{self, Socket, turn};

async fn agent(app: &TestApp) -> String {
    let (s, b) = app.post("/v1/convai/agents/create", &app.admin_key,
        &json!({"conversation_config": {"agent": {"first_message": "", "prompt": {"prompt": "p", "llm": "gpt-4o"}}}})).await;
    assert_eq!(s, 200, "{b}");
    b["agent_id"].as_str().unwrap().to_owned()
}

/// A conversation of `user` with `agent`, one turn taken; the socket stays open.
async fn talk(app: &TestApp, agent: &str, user: &str) -> (Socket, String) {
    let data = InitiationData { user_id: Some(user.to_owned()), ..Default::default() };
    let (mut socket, id) = ws::open(&ws::url(&app.base, &format!("agent_id={agent}")), data).await;
    turn(&mut socket, "hello").await;
    (socket, id)
}

async fn tags_label_conversations(backend: Backend) {
    let llm = FakeLlm::openai(|_: &Value| text("Hi.")).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let agent = agent(&app).await;
    let (a, first) = talk(&app, &agent, "ada").await;
    let (b, second) = talk(&app, &agent, "bob").await;
    drop((a, b));

    for (body, field) in [
        (json!({"title": ""}), "title"),
        (json!({"title": "x".repeat(121)}), "title"),
        (json!({"title": "ok", "description": "d".repeat(1001)}), "description"),
        (json!({}), "title"),
    ] {
        let (s, err) = app.post("/v1/convai/tags", key, &body).await;
        assert_eq!(s, 422, "{body}: {err}");
        assert!(err.to_string().contains(field), "{err}");
    }
    let (s, refund) = app
        .post("/v1/convai/tags", key, &json!({"title": "Refund", "description": "Money back"}))
        .await;
    assert_eq!(s, 200, "{refund}");
    let refund_id = refund["tag_id"].as_str().unwrap().to_owned();
    assert_eq!(refund["title"], "Refund");
    assert!(
        refund["owner_user_id"].as_str().is_some()
            && refund["created_at_unix_secs"].as_i64().is_some()
    );
    let (_, angry) = app.post("/v1/convai/tags", key, &json!({"title": "Angry"})).await;
    let angry_id = angry["tag_id"].as_str().unwrap().to_owned();
    assert_eq!(angry["description"], Value::Null);

    let (_, page) = app.get("/v1/convai/tags?page_size=1", key).await;
    assert_eq!(page["conversation_tags"][0]["tag_id"], angry_id.as_str(), "newest first");
    assert_eq!(page["has_more"], true);
    let (_, rest) = app
        .get(
            &format!(
                "/v1/convai/tags?page_size=1&cursor={}",
                page["next_cursor"].as_str().unwrap()
            ),
            key,
        )
        .await;
    assert_eq!(rest["conversation_tags"][0]["tag_id"], refund_id.as_str());
    assert_eq!(rest["has_more"], false);

    let tag_path = format!("/v1/convai/tags/{refund_id}");
    let (s, patched) = app.send(Method::PATCH, &tag_path, key, &json!({"title": "Refunds"})).await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(
        (patched["title"].as_str(), patched["description"].as_str()),
        (Some("Refunds"), Some("Money back"))
    );
    let (_, got) = app.get(&tag_path, key).await;
    assert_eq!(got, patched);

    // Assigning: unknown tags are refused and change nothing; re-assigning is a no-op.
    let assign = |id: &str| format!("/v1/convai/conversations/{id}/tags");
    let (s, err) =
        app.post(&assign(&first), key, &json!({"tag_ids": [refund_id, "ctag_nope"]})).await;
    assert_eq!(s, 422, "{err}");
    assert_eq!(err["detail"][0]["loc"], json!(["body", "tag_ids", 1]));
    let (_, conversation) = app.get(&format!("/v1/convai/conversations/{first}"), key).await;
    assert_eq!(conversation["tag_ids"], json!([]));
    for _ in 0..2 {
        let (s, b) =
            app.post(&assign(&first), key, &json!({"tag_ids": [refund_id, angry_id]})).await;
        assert_eq!(s, 204, "{b}");
    }
    app.post(&assign(&second), key, &json!({"tag_ids": [angry_id]})).await;
    let (s, _) = app
        .post(&assign("01234567-0000-7000-8000-000000000000"), key, &json!({"tag_ids": [angry_id]}))
        .await;
    assert_eq!(s, 404);
    let (_, conversation) = app.get(&format!("/v1/convai/conversations/{first}"), key).await;
    let mut tags: Vec<String> = serde_json::from_value(conversation["tag_ids"].clone()).unwrap();
    tags.sort();
    let mut want = vec![refund_id.clone(), angry_id.clone()];
    want.sort();
    assert_eq!(tags, want);

    let listed = async |query: &str| -> Vec<String> {
        let (s, page) = app.get(&format!("/v1/convai/conversations?{query}"), key).await;
        assert_eq!(s, 200, "{page}");
        page["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["conversation_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(listed(&format!("tag_ids={refund_id}")).await, std::slice::from_ref(&first));
    assert_eq!(listed(&format!("tag_ids={angry_id}")).await.len(), 2);

    let (s, _) =
        app.send(Method::DELETE, &format!("{}/{angry_id}", assign(&second)), key, &json!({})).await;
    assert_eq!(s, 204);
    let (s, _) =
        app.send(Method::DELETE, &format!("{}/{angry_id}", assign(&second)), key, &json!({})).await;
    assert_eq!(s, 404, "no longer assigned");
    assert_eq!(listed(&format!("tag_ids={angry_id}")).await, std::slice::from_ref(&first));

    // Another workspace sees none of it.
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    let (s, _) = app.get(&tag_path, &theirs).await;
    assert_eq!(s, 404);
    let (s, _) = app.post(&assign(&first), &theirs, &json!({"tag_ids": [refund_id]})).await;
    assert_eq!(s, 404, "not their conversation");

    // Deleting a tag takes it off every conversation.
    let (s, _) = app.send(Method::DELETE, &tag_path, key, &json!({})).await;
    assert_eq!(s, 204);
    let (_, conversation) = app.get(&format!("/v1/convai/conversations/{first}"), key).await;
    assert_eq!(conversation["tag_ids"], json!([angry_id]));
    assert!(listed(&format!("tag_ids={refund_id}")).await.is_empty());
}
dual_db!(tags_label_conversations);

async fn users_and_the_live_count(backend: Backend) {
    let llm = FakeLlm::openai(|_: &Value| text("Hi.")).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let (one, two) = (agent(&app).await, agent(&app).await);
    let live = async |query: &str| {
        let (s, b) = app.get(&format!("/v1/convai/analytics/live-count{query}"), key).await;
        assert_eq!(s, 200, "{b}");
        b["count"].as_i64().unwrap()
    };
    assert_eq!(live("").await, 0);
    let (ada_1, _) = talk(&app, &one, "ada").await;
    let (ada_2, _) = talk(&app, &two, "ada").await;
    let (bob, bob_id) = talk(&app, &one, "bob").await;
    assert_eq!(live("").await, 3);
    assert_eq!(live(&format!("?agent_id={one}")).await, 2);
    assert_eq!(live(&format!("?agent_ids={one}&agent_ids={two}")).await, 3);
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    let (_, their_count) = app.get("/v1/convai/analytics/live-count", &theirs).await;
    assert_eq!(their_count["count"], 0);
    drop(bob);
    let dropped = poll(Duration::from_secs(5), Duration::from_millis(50), async || {
        (live("").await == 2).then_some(())
    })
    .await;
    assert!(dropped.is_some(), "an ended conversation leaves the count");

    // A killed node marks nothing seen: its conversations stop counting after a minute; seen
    // again, they count.
    use colloquy_store::ReviewStore as _;
    let (_, tag) = app.post("/v1/convai/tags", key, &json!({"title": "ws"})).await;
    let ws = colloquy_core::ids::WorkspaceId::from(tag["workspace_id"].as_str().unwrap());
    let store = app.db.store().await;
    let now = colloquy_core::time::now_secs();
    let stale = colloquy_core::ids::ConversationId::from("01234567-0000-7000-8000-00000000dead");
    store.live_started(&ws, &stale, &one, "worker_killed", now - 90).await.unwrap();
    assert_eq!(live("").await, 2, "not seen for 90 s: not counted");
    store.live_seen("worker_killed", now, now - 600).await.unwrap();
    assert_eq!(live("").await, 3, "seen again: counted");
    store.live_ended(&stale).await.unwrap();
    drop((ada_1, ada_2));

    let users = async |query: &str| {
        let (s, b) = app.get(&format!("/v1/convai/users{query}"), key).await;
        assert_eq!(s, 200, "{b}");
        b
    };
    let all = users("?sort_by=conversation_count").await;
    let ids: Vec<&str> =
        all["users"].as_array().unwrap().iter().filter_map(|u| u["user_id"].as_str()).collect();
    assert_eq!(ids, ["ada", "bob"]);
    let ada = &all["users"][0];
    assert_eq!(ada["conversation_count"], 2);
    assert_eq!(ada["last_contact_agent_id"], two.as_str());
    assert!(ada["first_contact_unix_secs"].as_i64() <= ada["last_contact_unix_secs"].as_i64());
    assert_eq!(ada["sentiment"]["scored_conversation_count"], 0);
    let bob_only = users("?search=bob").await;
    assert_eq!(bob_only["users"][0]["last_contact_conversation_id"], bob_id.as_str());
    assert_eq!(bob_only["users"].as_array().unwrap().len(), 1);
    let of_two = users(&format!("?agent_id={two}")).await;
    assert_eq!(of_two["users"].as_array().unwrap().len(), 1, "only ada talked to agent two");
    let page = users("?page_size=1&sort_by=conversation_count&sort_direction=asc").await;
    assert_eq!(page["users"][0]["user_id"], "bob");
    let next = users(&format!(
        "?page_size=1&sort_by=conversation_count&sort_direction=asc&cursor={}",
        page["next_cursor"].as_str().unwrap()
    ))
    .await;
    assert_eq!(next["users"][0]["user_id"], "ada");
    assert_eq!(next["has_more"], false);
    let (s, _) = app.get("/v1/convai/users?sort_by=mood", key).await;
    assert_eq!(s, 422);
    let (_, none) = app.get("/v1/convai/users", &theirs).await;
    assert_eq!(none["users"], json!([]));
}
dual_db!(users_and_the_live_count);

async fn transcripts_are_searched(backend: Backend) {
    // Asked for the opening hours, the agent ends the call: a tool call to filter on.
    let llm = FakeLlm::openai(|req: &Value| {
        let messages = req["messages"].as_array().unwrap();
        let asked = messages.last().is_some_and(|m| m["content"].to_string().contains("hours"));
        if asked { call("end_call", json!({})) } else { text("Noted.") }
    })
    .await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let one = agent(&app).await;
    let (s, b) = app.post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {
        "first_message": "", "prompt": {"prompt": "p", "llm": "gpt-4o", "built_in_tools": {"end_call": {
            "name": "end_call", "description": "End", "params": {"system_tool_type": "end_call"}}}}}}})).await;
    assert_eq!(s, 200, "{b}");
    let two = b["agent_id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for (agent, said) in [
        (&one, "my order arrived broken, maybe a refund then"),
        (&one, "please refund order 17 today"),
        (&two, "what are your opening hours"),
    ] {
        let data = InitiationData { user_id: Some("ada".into()), ..Default::default() };
        let (mut socket, id) =
            ws::open(&ws::url(&app.base, &format!("agent_id={agent}")), data).await;
        if agent == &two {
            ws::say(&mut socket, said).await;
        } else {
            turn(&mut socket, said).await;
            drop(socket);
        }
        ended_conversation(&app, &id).await;
        ids.push(id);
    }
    let search = async |query: &str| {
        let (s, b) =
            app.get(&format!("/v1/convai/conversations/messages/text-search?{query}"), key).await;
        assert_eq!(s, 200, "{b}");
        b
    };
    let found = search("text_query=Refund%20order").await;
    let results = found["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{found}");
    assert_eq!(results[0]["conversation_id"], ids[1].as_str(), "the phrase ranks first: {found}");
    assert_eq!(results[0]["chunk_text"], "please refund order 17 today");
    assert!(results[0]["score"].as_f64() > results[1]["score"].as_f64());
    let hits: Vec<&str> = results[0]["chunk_highlights"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["is_hit"] == true)
        .filter_map(|h| h["value"].as_str())
        .collect();
    assert_eq!(hits, ["refund", "order"]);
    assert_eq!(results[0]["agent_id"], one.as_str());
    assert!(results[0]["conversation_start_time_unix_secs"].as_i64().is_some());
    assert_eq!(search(&format!("text_query=refund&agent_id={two}")).await["results"], json!([]));
    assert_eq!(search("text_query=hours").await["results"][0]["conversation_id"], ids[2].as_str());
    let first = search("text_query=refund%20order&page_size=1").await;
    assert_eq!(first["has_more"], true);
    let next = search(&format!(
        "text_query=refund%20order&page_size=1&cursor={}",
        first["next_cursor"].as_str().unwrap()
    ))
    .await;
    assert_eq!(next["results"][0]["conversation_id"], ids[0].as_str());
    assert_eq!(next["has_more"], false);
    let count = async |query: &str| search(query).await["results"].as_array().unwrap().len();
    assert_eq!(count("text_query=hours&tool_names=end_call").await, 1);
    assert_eq!(count("text_query=hours&tool_names=other&tool_names=end_call").await, 1);
    assert_eq!(count("text_query=hours&tool_names_successful=end_call").await, 1);
    assert_eq!(count("text_query=hours&tool_names_errored=end_call").await, 0);
    assert_eq!(count("text_query=refund&tool_names=end_call").await, 0);
    assert_eq!(count("text_query=refund&exclude_statuses=done").await, 0);
    assert_eq!(count("text_query=refund&exclude_statuses=failed").await, 2);
    assert_eq!(count("text_query=refund&call_duration_min_secs=100000").await, 0);
    assert_eq!(count("text_query=refund&call_duration_max_secs=100000").await, 2);
    assert_eq!(count("text_query=refund&termination_reasons=nothing%20like%20it").await, 0);
    assert_eq!(count(&format!("text_query=refund&visited_agent_ids={one}")).await, 2);
    assert_eq!(count(&format!("text_query=refund&visited_agent_ids={two}")).await, 0);
    assert_eq!(
        count(&format!("text_query=hours&visited_agent_ids=x&visited_agent_ids={two}")).await,
        1
    );
    let (_, first) = app.get(&format!("/v1/convai/conversations/{}", ids[0]), key).await;
    let branch = first["visited_agents"][0]["branch_id"].as_str().expect("a branch").to_owned();
    assert_eq!(count(&format!("text_query=refund&visited_agent_branch_ids={branch}")).await, 2);
    assert_eq!(count("text_query=refund&visited_agent_branch_ids=agtbrch_none").await, 0);
    assert_eq!(count("text_query=refund&main_languages=en").await, 2);
    assert_eq!(count("text_query=refund&main_languages=fr").await, 0);
    let text_only = first["metadata"]["text_only"].as_bool().expect("text_only");
    assert_eq!(count(&format!("text_query=refund&text_only={text_only}")).await, 2);
    assert_eq!(count(&format!("text_query=refund&text_only={}", !text_only)).await, 0);
    assert_eq!(count("text_query=refund&conversation_initiation_source=widget").await, 0);
    let (s, b) = app
        .get("/v1/convai/conversations/messages/text-search?text_query=refund&rating_min=4", key)
        .await;
    assert_eq!((s, b["detail"][0]["loc"].clone()), (422, json!(["query", "rating_min"])), "{b}");
    let many: String = (0..51).map(|i| format!("&visited_agent_ids=a{i}")).collect();
    let (s, b) = app
        .get(&format!("/v1/convai/conversations/messages/text-search?text_query=x{many}"), key)
        .await;
    assert_eq!(
        (s, b["detail"][0]["loc"].clone()),
        (422, json!(["query", "visited_agent_ids"])),
        "{b}"
    );
    for bad in ["", "text_query=", "text_query=%20%2C", "text_query=x&page_size=51"] {
        let (s, b) =
            app.get(&format!("/v1/convai/conversations/messages/text-search?{bad}"), key).await;
        assert_eq!(s, 422, "{bad}: {b}");
    }
    let (by_meaning, mode) = smart_search(&app, key, "text_query=refund%20order").await;
    assert_eq!(mode, "lexical", "no embedding provider: the words answer");
    assert_eq!(by_meaning["results"], found["results"]);
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    let (_, none) =
        app.get("/v1/convai/conversations/messages/text-search?text_query=refund", &theirs).await;
    assert_eq!(none["results"], json!([]));
    let (s, _) = app
        .send(Method::DELETE, &format!("/v1/convai/conversations/{}", ids[1]), key, &json!({}))
        .await;
    assert_eq!(s, 200);
    let after = search("text_query=refund").await;
    assert_eq!(
        after["results"].as_array().unwrap().len(),
        1,
        "a deleted conversation is not found: {after}"
    );
}
dual_db!(transcripts_are_searched);

/// A finished conversation with `agent` in which the user said `said`.
async fn finished(app: &TestApp, agent: &str, said: &str, data: InitiationData) -> String {
    let (mut socket, id) = ws::open(&ws::url(&app.base, &format!("agent_id={agent}")), data).await;
    turn(&mut socket, said).await;
    drop(socket);
    ended_conversation(app, &id).await;
    id
}

/// A smart search and how it was answered (the `x-colloquy-search-mode` header).
async fn smart_search(app: &TestApp, key: &str, query: &str) -> (Value, String) {
    let r = app
        .client
        .get(app.url(&format!("/v1/convai/conversations/messages/smart-search?{query}")))
        .header("xi-api-key", key)
        .send()
        .await
        .unwrap();
    let mode = r.headers().get("x-colloquy-search-mode").map(|m| m.to_str().unwrap().to_owned());
    let (s, b) = crate::helpers::status_json(r).await;
    assert_eq!(s, 200, "{query}: {b}");
    (b, mode.unwrap_or_default())
}

async fn transcripts_are_searched_by_meaning(backend: Backend) {
    let llm = FakeLlm::openai(|_: &Value| text("Noted.")).await;
    let embeddings = crate::fakes::FakeEmbeddings::start(Duration::ZERO).await;
    let configure = embeddings.configure();
    let app = TestApp::spawn_with(backend, |c| {
        with_llm(&llm)(c);
        configure(c);
    })
    .await;
    let key = &app.admin_key;
    let (one, two) = (agent(&app).await, agent(&app).await);
    let mut ids = Vec::new();
    for (agent, said) in [
        (&one, "my automobile will not start this morning"),
        (&one, "where do I leave my bike"),
        (&two, "the vehicle rattles on the motorway"),
    ] {
        let data = InitiationData { user_id: Some("ada".into()), ..Default::default() };
        ids.push(finished(&app, agent, said, data).await);
    }
    // Each node's worker embeds finished conversations in the background: three user
    // messages and three answers.
    let found = poll(Duration::from_secs(20), Duration::from_millis(100), async || {
        let (b, mode) = smart_search(&app, key, "text_query=car").await;
        (b["results"].as_array().unwrap().len() == 6).then_some((b, mode))
    })
    .await;
    let (found, mode) = found.expect("every message is embedded");
    assert_eq!(mode, "semantic");
    let results = found["results"].as_array().unwrap();
    let top: std::collections::BTreeSet<&str> =
        results[..2].iter().map(|r| r["chunk_text"].as_str().unwrap()).collect();
    assert_eq!(
        top,
        ["my automobile will not start this morning", "the vehicle rattles on the motorway"].into(),
        "meaning, not words, ranks them first: {found}"
    );
    assert!(results[0]["chunk_highlights"].is_null(), "no highlights by meaning: {found}");
    assert!(results[1]["score"].as_f64() > results[2]["score"].as_f64(), "{found}");
    let (s, by_words) =
        app.get("/v1/convai/conversations/messages/text-search?text_query=car", key).await;
    assert_eq!((s, &by_words["results"]), (200, &json!([])), "no message has the word");
    let (theirs, _) = smart_search(&app, key, &format!("text_query=car&agent_id={two}")).await;
    assert_eq!(theirs["results"][0]["conversation_id"], ids[2].as_str(), "{theirs}");
    assert!(theirs["results"].as_array().unwrap().iter().all(|r| r["agent_id"] == two.as_str()));
    let (first, _) = smart_search(&app, key, "text_query=car&page_size=1").await;
    assert_eq!(first["has_more"], true);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (next, _) =
        smart_search(&app, key, &format!("text_query=car&page_size=1&cursor={cursor}")).await;
    assert_ne!(next["results"][0]["chunk_text"], first["results"][0]["chunk_text"]);
    assert_eq!(next["meta"]["page"], 2);
    let other = app.key("globex", "g@globex.test", "admin").await;
    let (none, _) = smart_search(&app, &other, "text_query=car").await;
    assert_eq!(none["results"], json!([]), "another workspace's messages stay theirs");
    let (s, _) = app
        .send(Method::DELETE, &format!("/v1/convai/conversations/{}", ids[0]), key, &json!({}))
        .await;
    assert_eq!(s, 200);
    let (after, _) = smart_search(&app, key, "text_query=car").await;
    assert!(
        after["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["conversation_id"] != ids[0].as_str()),
        "a deleted conversation is not found: {after}"
    );
    for bad in ["", "text_query=%20", "text_query=x&page_size=0"] {
        let (s, b) =
            app.get(&format!("/v1/convai/conversations/messages/smart-search?{bad}"), key).await;
        assert_eq!(s, 422, "{bad}: {b}");
    }
}
dual_db!(transcripts_are_searched_by_meaning);

/// The analysis of a conversation, from what the user said: refunds fail the `resolved`
/// criterion, opening hours pass it.
fn analysis_script(req: &Value) -> crate::fakes::Reply {
    if !is_analysis(req) {
        return text("Noted.");
    }
    let said = req.to_string();
    let (title, result) = if said.contains("refund for my order") {
        ("Refund for order", "failure")
    } else if said.contains("refund") {
        ("Refund request", "failure")
    } else {
        ("Opening hours", "success")
    };
    call(
        "record_analysis",
        json!({"transcript_summary": "A question.", "call_summary_title": title,
            "evaluation_criteria_results": {"resolved": {"result": result, "rationale": "r"}},
            "data_collection_results": {}}),
    )
}

/// An agent with the `resolved` criterion and its analysed conversations, one per phrase.
async fn analysed_agent(app: &TestApp, phrases: &[&str]) -> String {
    let (s, b) = app.post("/v1/convai/agents/create", &app.admin_key, &json!({
        "conversation_config": {"agent": {"first_message": "", "prompt": {"prompt": "p", "llm": "gpt-4o"}}},
        "platform_settings": {"evaluation": {"criteria": [
            {"id": "resolved", "name": "Resolved", "conversation_goal_prompt": "Resolved"}]}},
    })).await;
    assert_eq!(s, 200, "{b}");
    let agent = b["agent_id"].as_str().unwrap().to_owned();
    for said in phrases {
        let id = finished(app, &agent, said, InitiationData::default()).await;
        poll(Duration::from_secs(15), Duration::from_millis(50), async || {
            let (_, status) =
                app.get(&format!("/api/conversations/{id}/analysis"), &app.admin_key).await;
            (status["status"] == "succeeded").then_some(())
        })
        .await
        .expect("analysed");
    }
    agent
}

const PHRASES: [&str; 5] = [
    "I want a refund for my order",
    "refund please",
    "when are you open? opening hours?",
    "where is my refund",
    "what are your hours",
];

async fn topics_group_an_agents_conversations(backend: Backend) {
    let llm = FakeLlm::openai(analysis_script).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let agent = analysed_agent(&app, &PHRASES).await;
    let topics = async |query: &str| {
        let (s, b) = app.get(&format!("/v1/convai/agents/{agent}/topics?{query}"), key).await;
        assert_eq!(s, 200, "{query}: {b}");
        b
    };
    let all = topics("").await;
    let shown: Vec<(&str, i64, Option<f64>)> = all["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["label"].as_str().unwrap(),
                t["conversation_count"].as_i64().unwrap(),
                t["success_rate"].as_f64(),
            )
        })
        .collect();
    assert_eq!(shown, [("Refund request", 3, Some(0.0)), ("Opening hours", 2, Some(1.0))], "{all}");
    assert_eq!(all["aggregated_run_count"], 1);
    let day = all["window_start_unix_secs"].as_i64().unwrap();
    assert_eq!((day % 86_400, all["window_end_unix_secs"].as_i64().unwrap() - day), (0, 86_400));
    assert_eq!(
        all["topics"][0]["metrics"]["evaluation_criteria"],
        json!([{"criteria_id": "resolved", "success_count": 0, "failure_count": 3, "unknown_count": 0}])
    );
    assert!(all["topics"][0]["description"].as_str().unwrap().contains("Refund for order"));
    assert_eq!(
        topics("").await["topics"][0]["topic_id"],
        all["topics"][0]["topic_id"],
        "stable ids"
    );
    let best = topics("sort_by=success_rate").await;
    assert_eq!(best["topics"][0]["label"], "Opening hours");
    assert_eq!(
        topics("sort_by=conversations&sort_direction=asc").await["topics"][0]["label"],
        "Opening hours"
    );
    let lean = topics("include_evaluation_criteria=false").await;
    assert!(lean["topics"][0]["metrics"].get("evaluation_criteria").is_none());
    assert_eq!(lean["topics"][0]["success_rate"], 0.0, "the rate stays");
    let first = topics("page_size=1").await;
    assert_eq!((first["topics"].as_array().unwrap().len(), &first["has_more"]), (1, &json!(true)));
    let cursor = first["next_cursor"].as_str().unwrap();
    let next = topics(&format!("page_size=1&cursor={cursor}")).await;
    assert_eq!(
        (&next["topics"][0]["label"], &next["has_more"]),
        (&json!("Opening hours"), &json!(false))
    );
    let old = topics("from_unix_secs=86400&to_unix_secs=172800").await;
    assert_eq!((&old["topics"], &old["aggregated_run_count"]), (&json!([]), &json!(0)));
    let (s, _) = app.get(&format!("/v1/convai/agents/{agent}/topics?sort_by=mood"), key).await;
    assert_eq!(s, 422);
    let (s, _) = app.get("/v1/convai/agents/agent_missing/topics", key).await;
    assert_eq!(s, 404);
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    let (s, _) = app.get(&format!("/v1/convai/agents/{agent}/topics"), &theirs).await;
    assert_eq!(s, 404, "another workspace's agent");
}
dual_db!(topics_group_an_agents_conversations);

async fn topics_group_by_meaning_with_an_embedding_provider(backend: Backend) {
    let llm = FakeLlm::openai(analysis_script).await;
    let embeddings = crate::fakes::FakeEmbeddings::start(Duration::ZERO).await;
    let configure = embeddings.configure();
    let app = TestApp::spawn_with(backend, |c| {
        with_llm(&llm)(c);
        configure(c);
    })
    .await;
    let agent = analysed_agent(&app, &PHRASES).await;
    let before = embeddings.requests();
    let (s, all) = app.get(&format!("/v1/convai/agents/{agent}/topics"), &app.admin_key).await;
    assert_eq!(s, 200, "{all}");
    assert!(embeddings.requests() > before, "the titles are embedded");
    // "Refund for order" and "Refund request" share one word in five: not close enough.
    let counts: Vec<i64> = all["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["conversation_count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [2, 2, 1], "{all}");
}
dual_db!(topics_group_by_meaning_with_an_embedding_provider);

async fn a_ticket_or_thread_link_resolves_to_its_conversation(backend: Backend) {
    let llm = FakeLlm::openai(|_: &Value| text("Noted.")).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let agent = agent(&app).await;
    let mut ids = Vec::new();
    for link in [
        "https://acme.zendesk.com/agent/tickets/77",
        "https://acme.slack.com/archives/C0123ABCD/p1700000000123456",
    ] {
        let vars = json!({"conversation_reference": link}).as_object().cloned();
        let data = InitiationData { dynamic_variables: vars, ..Default::default() };
        ids.push(finished(&app, &agent, "hello", data).await);
    }
    let resolve = async |agent: &str, reference: &str, key: &str| {
        let uri = format!(
            "/v1/convai/conversations/resolve?agent_id={agent}&reference={}",
            reference.replace('&', "%26").replace('?', "%3F").replace('#', "%23")
        );
        app.get(&uri, key).await
    };
    let (s, b) =
        resolve(&agent, "https://acme.zendesk.com/agent/tickets/77/events#latest", key).await;
    assert_eq!((s, b["conversation_id"].as_str()), (200, Some(ids[0].as_str())), "{b}");
    assert!(b["transcript"].is_array());
    let reply = "https://acme.slack.com/archives/C0123ABCD/p1700000099000001?thread_ts=1700000000.123456&cid=C0123ABCD";
    let (s, b) = resolve(&agent, reply, key).await;
    assert_eq!(
        (s, b["conversation_id"].as_str()),
        (200, Some(ids[1].as_str())),
        "a reply in the thread: {b}"
    );
    assert_eq!(resolve(&agent, "https://acme.zendesk.com/agent/tickets/78", key).await.0, 404);
    let (s, b) = resolve(&agent, "https://example.com/tickets/77", key).await;
    assert_eq!((s, b["detail"][0]["loc"].clone()), (422, json!(["query", "reference"])), "{b}");
    let (s, _) = app.get(&format!("/v1/convai/conversations/resolve?agent_id={agent}"), key).await;
    assert_eq!(s, 422);
    assert_eq!(
        resolve("agent_missing", "https://acme.zendesk.com/agent/tickets/77", key).await.0,
        404
    );
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    assert_eq!(resolve(&agent, "https://acme.zendesk.com/agent/tickets/77", &theirs).await.0, 404);
}
dual_db!(a_ticket_or_thread_link_resolves_to_its_conversation);
