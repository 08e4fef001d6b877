//! The change log: who created, updated and deleted what, readable by administrators at
//! `GET /api/changes`, never holding a secret's value, and never another workspace's.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, dual_db};

fn entries(page: &Value) -> Vec<Value> {
    page["changes"].as_array().cloned().unwrap_or_default()
}

async fn creates_updates_and_deletes_are_logged_with_their_actor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = &app.admin_key;
    let editor = app.key("default", "editor@example.com", "agents:write").await;

    let (s, agent) = app
        .post(
            "/v1/convai/agents/create",
            admin,
            &json!({"name": "A", "conversation_config": {"agent": {"first_message": "hi"}}}),
        )
        .await;
    assert_eq!(s, 200, "{agent}");
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/convai/agents/{agent_id}");
    let (s, _) = app.send(Method::PATCH, &path, &editor, &json!({"name": "B"})).await;
    assert_eq!(s, 200);
    let (s, secret) = app
        .post(
            "/v1/convai/secrets",
            admin,
            &json!({"type": "new", "name": "tok", "value": "sup3r-s3cret-value"}),
        )
        .await;
    assert_eq!(s, 200, "{secret}");
    // A refused write changes nothing, so it is not logged.
    let (s, _) = app.send(Method::PATCH, &path, admin, &json!({"name": 7})).await;
    assert_eq!(s, 422);
    let (s, _) = app.send(Method::DELETE, &path, admin, &json!({})).await;
    assert_eq!(s, 204, "agents answer a delete with no content");

    let (s, log) = app.get("/api/changes", admin).await;
    assert_eq!(s, 200, "{log}");
    assert!(!log.to_string().contains("sup3r"), "never a secret's value: {log}");
    let got: Vec<(String, String, String)> = entries(&log)
        .iter()
        .map(|c| {
            (
                c["resource"]["type"].as_str().unwrap().to_owned(),
                c["operation"].as_str().unwrap().to_owned(),
                c["resource"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let secret_id = secret["secret_id"].as_str().unwrap().to_owned();
    assert_eq!(
        got,
        vec![
            ("agent".into(), "delete".into(), agent_id.clone()),
            ("secret".into(), "create".into(), secret_id.clone()),
            ("agent".into(), "update".into(), agent_id.clone()),
            ("agent".into(), "create".into(), agent_id.clone()),
        ],
        "newest first: {log}"
    );
    let list = entries(&log);
    assert_eq!(list[2]["paths"], json!(["name"]));
    assert_eq!(list[1]["paths"], json!(["name", "type", "value"]));
    assert_eq!(list[3]["paths"], json!(["conversation_config.agent.first_message", "name"]));
    let editor_key = list[2]["actor"]["key_id"].as_str().unwrap().to_owned();
    assert_ne!(editor_key, list[3]["actor"]["key_id"].as_str().unwrap(), "each write's own key");
    assert!(list[0]["at_unix_ms"].as_i64().unwrap() >= list[3]["at_unix_ms"].as_i64().unwrap());

    // Filters: by resource type or id, by actor, by time.
    let (_, secrets) = app.get("/api/changes?resource=secret", admin).await;
    assert_eq!(entries(&secrets).len(), 1, "{secrets}");
    let (_, of_agent) = app.get(&format!("/api/changes?resource={agent_id}"), admin).await;
    assert_eq!(entries(&of_agent).len(), 3, "{of_agent}");
    let (_, by_editor) = app.get(&format!("/api/changes?actor={editor_key}"), admin).await;
    assert_eq!(entries(&by_editor).len(), 1, "{by_editor}");
    let (_, later) = app.get("/api/changes?after=4102444800", admin).await;
    assert_eq!(entries(&later), Vec::<Value>::new());

    // Cursor paging walks the same list without gaps or repeats.
    let (_, first) = app.get("/api/changes?page_size=3", admin).await;
    assert_eq!(first["has_more"], true, "{first}");
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app.get(&format!("/api/changes?page_size=3&cursor={cursor}"), admin).await;
    assert_eq!(second["has_more"], false, "{second}");
    let paged: Vec<Value> = entries(&first).into_iter().chain(entries(&second)).collect();
    assert_eq!(paged, list);
    let (s, _) = app.get(&format!("/api/changes?resource=secret&cursor={cursor}"), admin).await;
    assert_eq!(s, 422, "a cursor belongs to its filters");

    // Administrators only, and each workspace sees its own.
    assert_eq!(app.get("/api/changes", &editor).await.0, 403);
    let other = app.key("elsewhere", "admin@elsewhere.example", "admin").await;
    let (s, theirs) = app.get("/api/changes", &other).await;
    assert_eq!(s, 200);
    assert_eq!(entries(&theirs), Vec::<Value>::new(), "{theirs}");
}
dual_db!(creates_updates_and_deletes_are_logged_with_their_actor);

async fn every_resource_family_is_logged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let (s, tool) = app
        .post("/v1/convai/tools", key, &crate::tools::webhook("lookup", "https://x.example"))
        .await;
    assert_eq!(s, 200, "{tool}");
    let tool_id = tool["id"].as_str().unwrap();
    let (s, _) =
        app.send(Method::DELETE, &format!("/v1/convai/tools/{tool_id}"), key, &json!({})).await;
    assert_eq!(s, 200, "deleted");
    let (s, folder) =
        app.post("/v1/convai/agent-testing/folders", key, &json!({"name": "F"})).await;
    assert_eq!(s, 200, "{folder}");
    let (s, test) = app
        .post("/v1/convai/agent-testing/create", key, &json!({"name": "t", "chat_history": [{"role": "user", "time_in_call_secs": 0, "message": "hi"}], "success_condition": "greets", "success_examples": [], "failure_examples": []}))
        .await;
    assert_eq!(s, 200, "{test}");
    let (test_id, folder_id) = (test["id"].as_str().unwrap(), folder["id"].as_str().unwrap());
    let moved = json!({"entity_ids": [test_id], "move_to": folder_id});
    assert_eq!(app.post("/v1/convai/agent-testing/bulk-move", key, &moved).await.0, 200);
    let (s, server) = app
        .post("/v1/convai/mcp-servers", key, &json!({"config": {"name": "m", "url": "https://h"}}))
        .await;
    assert_eq!(s, 200, "{server}");

    let (_, log) = app.get("/api/changes", key).await;
    let kinds: Vec<String> = entries(&log)
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["resource"]["type"].as_str().unwrap(),
                c["operation"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "mcp_server create",
            "test update",
            "test create",
            "test_folder create",
            "tool delete",
            "tool create"
        ],
        "{log}"
    );
}
dual_db!(every_resource_family_is_logged);
