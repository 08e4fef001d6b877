//! Agent tests and test folders: every endpoint, type, validation error and folder operation.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, dual_db};
use crate::tools::{create_tool, webhook};

async fn create(app: &TestApp, body: Value) -> String {
    let (s, b) = app.post("/v1/convai/agent-testing/create", &app.admin_key, &body).await;
    assert_eq!(s, 200, "{body} -> {b}");
    b["id"].as_str().unwrap().to_owned()
}

async fn folder(app: &TestApp, name: &str, parent: Option<&str>) -> String {
    let (s, b) = app
        .post(
            "/v1/convai/agent-testing/folders",
            &app.admin_key,
            &json!({"name": name, "parent_folder_id": parent}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["name"], name);
    b["id"].as_str().unwrap().to_owned()
}

async fn each_test_type_round_trips_and_validates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let tool = create_tool(&app, key, webhook("lookup", "https://x.example")).await;
    let llm = create(&app, json!({"name": "greets", "success_condition": "The agent greets the user",
        "chat_history": [{"role": "user", "message": "hi", "time_in_call_secs": 0}],
        "success_examples": [{"response": "Hello!", "type": "success"}], "failure_examples": [{"response": "Go away", "type": "failure"}],
        "dynamic_variables": {"name": "Ada"}})).await;
    assert!(llm.starts_with("test_"));
    let tool_test = create(&app, json!({"type": "tool", "name": "calls lookup", "check_any_tool_matches": true,
        "tool_call_parameters": {"referenced_tool": {"id": tool, "type": "webhook"},
            "parameters": [{"path": "city", "eval": {"type": "exact", "expected_value": "Paris"}}, {"path": "q", "eval": {"type": "regex", "pattern": "^a.*"}},
                {"path": "n", "eval": {"type": "llm", "description": "a number"}}, {"path": "z", "eval": {"type": "anything"}}]}})).await;
    let sim = create(
        &app,
        json!({"type": "simulation", "name": "sim", "simulation_scenario": "An angry customer",
        "success_conditions": ["The issue is resolved"], "simulation_max_turns": 7,
        "tool_mock_config": {"mocking_strategy": "selected", "mocked_tool_ids": [tool]},
        "tool_mock_overrides": {tool.clone(): [{"mock_result": "{}"}]}}),
    )
    .await;

    let (s, got) = app.get(&format!("/v1/convai/agent-testing/{llm}"), key).await;
    assert_eq!(s, 200);
    assert_eq!(got["type"], "llm");
    assert_eq!(got["name"], "greets");
    assert_eq!(got["success_condition"], "The agent greets the user");
    assert_eq!(got["dynamic_variables"]["name"], "Ada");
    let (_, got) = app.get(&format!("/v1/convai/agent-testing/{tool_test}"), key).await;
    assert_eq!(got["tool_call_parameters"]["referenced_tool"]["id"], tool.as_str());
    assert_eq!(got["check_any_tool_matches"], true);
    let (_, got) = app.get(&format!("/v1/convai/agent-testing/{sim}"), key).await;
    assert_eq!(got["simulation_max_turns"], 7);
    assert!(got["evaluation_model"].is_string(), "defaults filled");

    // PUT is a full, type-checked update.
    let (s, updated) = app
        .send(
            Method::PUT,
            &format!("/v1/convai/agent-testing/{llm}"),
            key,
            &json!({"type": "llm", "name": "greets politely", "success_condition": "polite"}),
        )
        .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["name"], "greets politely");
    assert_eq!(updated["dynamic_variables"], json!({}), "full replace");
    let (s, b) = app
        .send(
            Method::PUT,
            &format!("/v1/convai/agent-testing/{llm}"),
            key,
            &json!({"type": "tool", "name": "x"}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "type"]));

    let cases = [
        (json!({"type": "quiz", "name": "q"}), json!(["body", "type"])),
        (json!({"success_condition": "x"}), json!(["body", "name"])),
        (
            json!({"type": "tool", "name": "t", "tool_call_parameters": {"parameters": [{"path": "a", "eval": {"type": "regex", "pattern": "(["}}]}}),
            json!(["body", "tool_call_parameters", "parameters", 0, "eval", "pattern"]),
        ),
        (
            json!({"type": "tool", "name": "t", "tool_call_parameters": {"referenced_tool": {"id": "tool_missing", "type": "webhook"}}}),
            json!(["body", "tool_call_parameters", "referenced_tool", "id"]),
        ),
        (json!({"type": "simulation", "name": "s"}), json!(["body", "success_conditions"])),
        (
            json!({"type": "simulation", "name": "s", "success_conditions": ["x"], "simulation_max_turns": 0}),
            json!(["body", "simulation_max_turns"]),
        ),
        (
            json!({"name": "n", "parent_folder_id": "tfld_missing"}),
            json!(["body", "parent_folder_id"]),
        ),
    ];
    for (body, loc) in cases {
        let (s, b) = app.post("/v1/convai/agent-testing/create", key, &body).await;
        assert_eq!(s, 422, "{body} -> {b}");
        assert_eq!(b["detail"][0]["loc"], loc, "{body} -> {b}");
    }

    let (s, sums) = app
        .post(
            "/v1/convai/agent-testing/summaries",
            key,
            &json!({"test_ids": [llm, sim, "test_none"]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(sums["tests"][&llm]["type"], "llm");
    assert_eq!(sums["tests"][&sim]["entity_type"], "test");
    assert!(sums["tests"].get("test_none").is_none());
    assert_eq!(
        app.post("/v1/convai/agent-testing/summaries", key, &json!({"test_ids": [llm, llm]}))
            .await
            .0,
        422
    );

    let (s, _) = app
        .send(Method::DELETE, &format!("/v1/convai/agent-testing/{tool_test}"), key, &json!({}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(app.get(&format!("/v1/convai/agent-testing/{tool_test}"), key).await.0, 404);

    let theirs = app.key("globex", "g@globex.test", "admin").await;
    assert_eq!(app.get(&format!("/v1/convai/agent-testing/{llm}"), &theirs).await.0, 404);
    assert_eq!(
        app.send(
            Method::PUT,
            &format!("/v1/convai/agent-testing/{llm}"),
            &theirs,
            &json!({"name": "x"})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        app.send(Method::DELETE, &format!("/v1/convai/agent-testing/{llm}"), &theirs, &json!({}))
            .await
            .0,
        404
    );
    let (_, list) = app.get("/v1/convai/agent-testing", &theirs).await;
    assert_eq!(list["tests"], json!([]));
    let viewer = app.key("default", "v@x.test", "tests:read").await;
    assert_eq!(
        app.post("/v1/convai/agent-testing/create", &viewer, &json!({"name": "x"})).await.0,
        403
    );
}
dual_db!(each_test_type_round_trips_and_validates);

async fn folders_nest_list_move_and_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let top = folder(&app, "Top", None).await;
    let sub = folder(&app, "Sub", Some(&top)).await;
    let t_root = create(&app, json!({"name": "root test"})).await;
    let t_top = create(&app, json!({"name": "top test", "parent_folder_id": top})).await;
    let t_sub = create(&app, json!({"name": "deep test", "parent_folder_id": sub})).await;

    let (s, f) = app.get(&format!("/v1/convai/agent-testing/folders/{sub}"), key).await;
    assert_eq!(s, 200);
    assert_eq!(f["folder_path"], json!([{"id": top, "name": "Top"}, {"id": sub, "name": "Sub"}]));
    assert_eq!(f["children_count"], 1);
    let (_, f) = app.get(&format!("/v1/convai/agent-testing/folders/{top}"), key).await;
    assert_eq!(f["children_count"], 2);

    let ids = |v: &Value| -> Vec<String> {
        v["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let set = |v: &Value| -> HashSet<String> { ids(v).into_iter().collect() };
    let (_, all) = app.get("/v1/convai/agent-testing", key).await;
    assert_eq!(
        set(&all),
        HashSet::from([t_root.clone(), t_top.clone(), t_sub.clone()]),
        "tests only by default"
    );
    let (_, root) =
        app.get("/v1/convai/agent-testing?parent_folder_id=root&types=folder&types=llm", key).await;
    assert_eq!(set(&root), HashSet::from([t_root.clone(), top.clone()]));
    let (_, inside) = app.get(&format!("/v1/convai/agent-testing?parent_folder_id={top}&include_folders=true&sort_mode=folders_first"), key).await;
    assert_eq!(ids(&inside), vec![sub.clone(), t_top.clone()], "folders first");
    assert_eq!(inside["tests"][0]["entity_type"], "folder");
    assert_eq!(inside["tests"][0]["children_count"], 1);
    assert_eq!(inside["tests"][1]["folder_path"], json!([{"id": top, "name": "Top"}]));
    let (_, found) = app.get("/v1/convai/agent-testing?search=DEEP", key).await;
    assert_eq!(ids(&found), vec![t_sub.clone()]);
    let (_, shared) = app.get("/v1/convai/agent-testing?sharing_mode=shared_with_me", key).await;
    assert_eq!(shared["tests"], json!([]));
    for bad in ["types=essay", "sort_mode=random", "sharing_mode=public", "page_size=0"] {
        assert_eq!(app.get(&format!("/v1/convai/agent-testing?{bad}"), key).await.0, 422, "{bad}");
    }

    // Paging with folders first, one at a time.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, page) = app.get(&format!("/v1/convai/agent-testing?types=folder&types=llm&sort_mode=folders_first&page_size=1&cursor={cursor}"), key).await;
        assert_eq!(s, 200, "{page}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(
        seen.iter().take(2).cloned().collect::<HashSet<_>>(),
        HashSet::from([top.clone(), sub.clone()])
    );

    let (s, renamed) = app
        .send(
            Method::PATCH,
            &format!("/v1/convai/agent-testing/folders/{sub}"),
            key,
            &json!({"name": "Renamed"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(renamed["name"], "Renamed");

    // Moving: into a folder, back to the root, never into itself.
    let (s, _) = app
        .post(
            "/v1/convai/agent-testing/bulk-move",
            key,
            &json!({"entity_ids": [t_root], "move_to": sub}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, in_sub) =
        app.get(&format!("/v1/convai/agent-testing?parent_folder_id={sub}"), key).await;
    assert!(
        in_sub["tests"].as_array().unwrap().iter().any(|t| t["id"] == t_root.as_str()),
        "{in_sub}"
    );
    let (s, b) = app
        .post(
            "/v1/convai/agent-testing/bulk-move",
            key,
            &json!({"entity_ids": [top], "move_to": sub}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        app.post("/v1/convai/agent-testing/bulk-move", key, &json!({"entity_ids": ["test_nope"]}))
            .await
            .0,
        422
    );
    assert_eq!(
        app.post("/v1/convai/agent-testing/bulk-move", key, &json!({"entity_ids": []})).await.0,
        422
    );
    let (s, _) = app
        .post(
            "/v1/convai/agent-testing/bulk-move",
            key,
            &json!({"entity_ids": [t_root], "move_to": null}),
        )
        .await;
    assert_eq!(s, 200);

    let (s, b) = app
        .send(Method::DELETE, &format!("/v1/convai/agent-testing/folders/{top}"), key, &json!({}))
        .await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["detail"]["status"], "folder_not_empty");
    let (s, _) = app
        .send(
            Method::DELETE,
            &format!("/v1/convai/agent-testing/folders/{top}?force=true"),
            key,
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);
    for gone in [&t_top, &t_sub] {
        assert_eq!(app.get(&format!("/v1/convai/agent-testing/{gone}"), key).await.0, 404);
    }
    assert_eq!(app.get(&format!("/v1/convai/agent-testing/folders/{sub}"), key).await.0, 404);
    assert_eq!(
        app.get(&format!("/v1/convai/agent-testing/{t_root}"), key).await.0,
        200,
        "outside the folder, kept"
    );
}
dual_db!(folders_nest_list_move_and_delete);

async fn agents_attach_existing_tests_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let test = create(&app, json!({"name": "t"})).await;
    let dir = folder(&app, "f", None).await;
    let (s, b) = app.post("/v1/convai/agents/create", key, &json!({"conversation_config": {}, "platform_settings": {"testing": {"attached_tests": [{"test_id": "test_missing"}]}}})).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        b["detail"][0]["loc"],
        json!(["body", "platform_settings", "testing", "attached_tests", 0, "test_id"])
    );
    assert_eq!(app.post("/v1/convai/agents/create", key, &json!({"conversation_config": {}, "platform_settings": {"testing": {"attached_tests": [{"test_id": dir}]}}})).await.0, 422, "a folder is not a test");
    let (s, a) = app.post("/v1/convai/agents/create", key, &json!({"conversation_config": {}, "platform_settings": {"testing": {"attached_tests": [{"test_id": test}]}}})).await;
    assert_eq!(s, 200, "{a}");
    let agent = a["agent_id"].as_str().unwrap();
    let (_, got) = app.get(&format!("/v1/convai/agents/{agent}"), key).await;
    assert_eq!(got["platform_settings"]["testing"]["attached_tests"][0]["test_id"], test.as_str());
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    let (s, _) = app.post("/v1/convai/agents/create", &theirs, &json!({"conversation_config": {}, "platform_settings": {"testing": {"attached_tests": [{"test_id": test}]}}})).await;
    assert_eq!(s, 422, "another workspace's test");
}
dual_db!(agents_attach_existing_tests_only);
