//! The tools API: every tool type, validation, references from agents, deletion rules,
//! dependents, and secrets in use, on both backends.

mod executions;

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, dual_db};

pub fn webhook(name: &str, url: &str) -> Value {
    json!({"tool_config": {
        "type": "webhook", "name": name, "description": format!("{name} tool"),
        "api_schema": {
            "url": url, "method": "POST",
            "request_body_schema": {"type": "object", "properties": {"city": {"type": "string", "description": "City"}}, "required": ["city"]}
        }
    }})
}

pub async fn create_tool(app: &TestApp, key: &str, body: Value) -> String {
    let (s, b) = app.post("/v1/convai/tools", key, &body).await;
    assert_eq!(s, 200, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

async fn every_tool_type_round_trips(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let (_, server) = app
        .post(
            "/v1/convai/mcp-servers",
            key,
            &json!({"config": {"name": "docs", "url": "https://mcp.example.com/sse"}}),
        )
        .await;
    let server_id = server["id"].as_str().unwrap();
    let bodies = [
        webhook("weather", "https://api.example.com/weather"),
        json!({"tool_config": {"type": "client", "name": "show_map", "description": "Shows a map",
            "parameters": {"type": "object", "properties": {"lat": {"type": "number", "description": "Latitude"}}},
            "expects_response": true, "response_timeout_secs": 5}}),
        json!({"tool_config": {"type": "system", "name": "end_call", "description": "", "params": {"system_tool_type": "end_call"}}}),
        json!({"tool_config": {"type": "mcp", "name": "search_docs", "description": "MCP search",
            "mcp_server_id": server_id, "mcp_server_name": "docs", "mcp_tool_name": "search",
            "mcp_tool_description": "Searches the docs", "integration_type": "mcp_server"}}),
    ];
    for body in bodies {
        let (s, created) = app.post("/v1/convai/tools", key, &body).await;
        assert_eq!(s, 200, "{body} -> {created}");
        let id = created["id"].as_str().unwrap();
        assert!(id.starts_with("tool_"));
        let (s, got) = app.get(&format!("/v1/convai/tools/{id}"), key).await;
        assert_eq!(s, 200);
        assert_eq!(got, created);
        assert_eq!(got["tool_config"]["type"], body["tool_config"]["type"]);
        assert_eq!(got["tool_config"]["name"], body["tool_config"]["name"]);
        assert_eq!(got["usage_stats"], json!({"total_calls": 0, "avg_latency_secs": 0.0}));
        assert_eq!(got["access_info"]["is_creator"], true);
        assert_eq!(got["response_mocks"], json!([]));
    }
    let (_, list) = app.get("/v1/convai/tools", key).await;
    assert_eq!(list["tools"].as_array().unwrap().len(), 4);
    assert_eq!(list["has_more"], false);
}
dual_db!(every_tool_type_round_trips);

async fn invalid_tools_are_422_with_locations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let mut no_url = webhook("a", "https://x");
    no_url["tool_config"]["api_schema"].as_object_mut().unwrap().remove("url");
    let mut bad_method = webhook("a", "https://x");
    bad_method["tool_config"]["api_schema"]["method"] = json!("TRACE");
    let mut bad_schema = webhook("a", "https://x");
    bad_schema["tool_config"]["api_schema"]["request_body_schema"]["required"] = json!(["nope"]);
    let mut bad_prop = webhook("a", "https://x");
    bad_prop["tool_config"]["api_schema"]["request_body_schema"]["properties"]["city"]["type"] =
        json!("banana");
    let mut unknown_secret = webhook("a", "https://x");
    unknown_secret["tool_config"]["api_schema"]["request_headers"] =
        json!({"Authorization": {"secret_id": "secret_nope"}});
    let mut bad_mocks = webhook("a", "https://x");
    bad_mocks["response_mocks"] = json!([{"mock_result": "x", "parameter_conditions": [{"path": "country", "eval": {"type": "anything"}}]}]);
    let mut bad_regex = webhook("a", "https://x");
    bad_regex["response_mocks"] = json!([{"mock_result": "x", "parameter_conditions": [{"path": "city", "eval": {"type": "regex", "pattern": "(["}}]}]);
    let cases = [
        (no_url, json!(["body", "tool_config", "webhook", "api_schema", "url"])),
        (webhook("a", "not a url"), json!(["body", "tool_config", "api_schema", "url"])),
        (bad_method, json!(["body", "tool_config", "webhook", "api_schema", "method"])),
        (
            bad_schema,
            json!(["body", "tool_config", "api_schema", "request_body_schema", "required", 0]),
        ),
        (
            unknown_secret,
            json!([
                "body",
                "tool_config",
                "api_schema",
                "request_headers",
                "Authorization",
                "secret_id"
            ]),
        ),
        (bad_mocks, json!(["body", "response_mocks", 0, "parameter_conditions", 0, "path"])),
        (
            bad_regex,
            json!(["body", "response_mocks", 0, "parameter_conditions", 0, "eval", "pattern"]),
        ),
        (
            json!({"tool_config": {"type": "teleporter", "name": "x"}}),
            json!(["body", "tool_config", "type"]),
        ),
        (json!({}), json!(["body", "tool_config"])),
    ];
    for (body, loc) in cases {
        let (s, b) = app.post("/v1/convai/tools", key, &body).await;
        assert_eq!(s, 422, "{body} -> {b}");
        assert_eq!(b["detail"][0]["loc"], loc, "{body} -> {b}");
    }
    let (s, b) = app.post("/v1/convai/tools", key, &bad_prop).await;
    assert_eq!(s, 422, "{b}");
    let (_, list) = app.get("/v1/convai/tools", key).await;
    assert_eq!(list["tools"], json!([]), "nothing stored");
}
dual_db!(invalid_tools_are_422_with_locations);

async fn list_filters_sort_and_paging(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let other = app.key("default", "o@x.test", "tools:write").await;
    let mut ids = Vec::new();
    for i in 0..23 {
        ids.push(
            create_tool(&app, key, webhook(&format!("hook_{i:02}"), "https://x.example")).await,
        );
    }
    let client_id = create_tool(
        &app,
        &other,
        json!({"tool_config": {"type": "client", "name": "Zeta_client", "description": "d"}}),
    )
    .await;

    let names = |v: &Value| -> Vec<String> {
        v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tool_config"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, page) =
        app.get("/v1/convai/tools?sort_by=name&sort_direction=asc&page_size=3", key).await;
    assert_eq!(names(&page), vec!["Zeta_client", "hook_00", "hook_01"]);
    let (_, s) = app.get("/v1/convai/tools?search=HOOK_1", key).await;
    assert_eq!(names(&s).len(), 10);
    let (_, t) = app.get("/v1/convai/tools?types=client", key).await;
    assert_eq!(names(&t), vec!["Zeta_client"]);
    let (_, mine) = app.get("/v1/convai/tools?created_by_user_id=@me", &other).await;
    assert_eq!(names(&mine), vec!["Zeta_client"]);
    assert_eq!(app.get("/v1/convai/tools?types=bogus", key).await.0, 422);
    assert_eq!(app.get("/v1/convai/tools?sort_by=size", key).await.0, 422);

    let mut seen = HashSet::new();
    let mut cursor = String::new();
    loop {
        let (s, page) =
            app.get(&format!("/v1/convai/tools?page_size=5&cursor={cursor}"), key).await;
        assert_eq!(s, 200);
        for t in page["tools"].as_array().unwrap() {
            assert!(seen.insert(t["id"].as_str().unwrap().to_owned()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 24);
    assert!(seen.contains(&client_id));

    // used_by_agent_id follows the agent's tool_ids.
    let (s, agent) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({"conversation_config": {"agent": {"prompt": {"tool_ids": [ids[3], ids[5]]}}}}),
        )
        .await;
    assert_eq!(s, 200, "{agent}");
    let agent_id = agent["agent_id"].as_str().unwrap();
    let (_, used) = app
        .get(
            &format!(
                "/v1/convai/tools?used_by_agent_id={agent_id}&sort_by=name&sort_direction=asc"
            ),
            key,
        )
        .await;
    assert_eq!(names(&used), vec!["hook_03", "hook_05"]);
}
dual_db!(list_filters_sort_and_paging);

async fn agents_reference_tools_and_deletion_follows_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let t1 = create_tool(&app, key, webhook("lookup", "https://x.example")).await;
    let t2 = create_tool(&app, key, webhook("lookup", "https://y.example")).await;
    let t3 = create_tool(&app, key, webhook("other", "https://z.example")).await;

    let (s, b) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({"conversation_config": {"agent": {"prompt": {"tool_ids": ["tool_missing"]}}}}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(
        b["detail"][0]["loc"],
        json!(["body", "conversation_config", "agent", "prompt", "tool_ids", 0])
    );
    let (s, b) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({"conversation_config": {"agent": {"prompt": {"tool_ids": [t1, t2]}}}}),
        )
        .await;
    assert_eq!(s, 422, "duplicate names: {b}");
    assert!(b["detail"][0]["msg"].as_str().unwrap().contains("lookup"));

    let mut agents = Vec::new();
    for i in 0..4 {
        let (s, a) = app
            .post("/v1/convai/agents/create", key, &json!({"name": format!("user {i}"), "conversation_config": {"agent": {"prompt": {"tool_ids": [t1, t3]}}}}))
            .await;
        assert_eq!(s, 200, "{a}");
        agents.push(a["agent_id"].as_str().unwrap().to_owned());
    }
    let (s, deps) =
        app.get(&format!("/v1/convai/tools/{t1}/dependent-agents?page_size=3"), key).await;
    assert_eq!(s, 200);
    assert_eq!(deps["agents"].as_array().unwrap().len(), 3);
    assert_eq!(deps["agents"][0]["type"], "available");
    assert_eq!(deps["has_more"], true);
    let c = deps["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!("/v1/convai/tools/{t1}/dependent-agents?page_size=3&cursor={c}"), key)
        .await;
    assert_eq!(rest["agents"].as_array().unwrap().len(), 1);
    assert_eq!(rest["has_more"], false);

    let (s, b) = app.send(Method::DELETE, &format!("/v1/convai/tools/{t1}"), key, &json!({})).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["detail"]["status"], "tool_in_use");
    assert_eq!(app.get(&format!("/v1/convai/tools/{t1}"), key).await.0, 200, "still there");

    // Removing it from one agent by PATCH updates the dependents.
    let (s, _) = app
        .send(
            Method::PATCH,
            &format!("/v1/convai/agents/{}", agents[0]),
            key,
            &json!({"conversation_config": {"agent": {"prompt": {"tool_ids": [t3]}}}}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, deps) = app.get(&format!("/v1/convai/tools/{t1}/dependent-agents"), key).await;
    assert_eq!(deps["agents"].as_array().unwrap().len(), 3);

    let (s, b) = app
        .send(Method::DELETE, &format!("/v1/convai/tools/{t1}?force=true"), key, &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b, json!({}));
    assert_eq!(app.get(&format!("/v1/convai/tools/{t1}"), key).await.0, 404);
    for a in &agents {
        let (_, agent) = app.get(&format!("/v1/convai/agents/{a}"), key).await;
        assert_eq!(
            agent["conversation_config"]["agent"]["prompt"]["tool_ids"],
            json!([t3]),
            "detached from {a}"
        );
    }
    // Deleting an agent frees its tools.
    for a in &agents {
        app.send(Method::DELETE, &format!("/v1/convai/agents/{a}"), key, &json!({})).await;
    }
    assert_eq!(
        app.send(Method::DELETE, &format!("/v1/convai/tools/{t3}"), key, &json!({})).await.0,
        200
    );
}
dual_db!(agents_reference_tools_and_deletion_follows_them);

async fn patch_replaces_the_config_and_revalidates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let id = create_tool(&app, key, webhook("first", "https://x.example")).await;
    let mut body = webhook("second", "https://y.example/{id}");
    body["tool_config"]["api_schema"]["path_params_schema"] =
        json!({"id": {"type": "string", "description": "id"}});
    body["response_mocks"] = json!([{"mock_result": "{\"ok\":true}", "parameter_conditions": [{"path": "city", "eval": {"type": "exact", "expected_value": "Paris"}}]}, {"mock_result": "default"}]);
    let (s, updated) = app.send(Method::PATCH, &format!("/v1/convai/tools/{id}"), key, &body).await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["tool_config"]["name"], "second");
    assert_eq!(updated["tool_config"]["api_schema"]["url"], "https://y.example/{id}");
    assert_eq!(updated["response_mocks"].as_array().unwrap().len(), 2);
    let (s, _) = app
        .send(Method::PATCH, &format!("/v1/convai/tools/{id}"), key, &json!({"response_mocks": []}))
        .await;
    assert_eq!(s, 422, "tool_config is required");
    let (s, _) = app
        .send(
            Method::PATCH,
            &format!("/v1/convai/tools/{id}"),
            key,
            &webhook("x", "https://y/{missing}"),
        )
        .await;
    assert_eq!(s, 422);
    let (_, now) = app.get(&format!("/v1/convai/tools/{id}"), key).await;
    assert_eq!(now["tool_config"]["name"], "second", "refused patches change nothing");
    assert_eq!(
        app.send(Method::PATCH, "/v1/convai/tools/tool_nope", key, &webhook("x", "https://y"))
            .await
            .0,
        404
    );
}
dual_db!(patch_replaces_the_config_and_revalidates);

async fn secrets_used_by_tools_cannot_be_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let (_, secret) = app
        .post(
            "/v1/convai/secrets",
            key,
            &json!({"type": "new", "name": "api token", "value": "tok"}),
        )
        .await;
    let secret_id = secret["secret_id"].as_str().unwrap().to_owned();
    let mut body = webhook("authed", "https://x.example");
    body["tool_config"]["api_schema"]["request_headers"] =
        json!({"Authorization": {"secret_id": secret_id}});
    let tool_id = create_tool(&app, key, body).await;

    let (_, got) = app.get(&format!("/v1/convai/secrets/{secret_id}"), key).await;
    assert_eq!(got["used_by"]["tools"][0]["id"], tool_id.as_str());
    let (_, deps) =
        app.get(&format!("/v1/convai/secrets/{secret_id}/dependencies/tools"), key).await;
    assert_eq!(deps["dependencies"][0]["id"], tool_id.as_str());
    let (_, list) = app.get("/v1/convai/secrets", key).await;
    assert_eq!(list["secrets"][0]["used_by"]["tools"][0]["name"], "authed");

    let (s, b) =
        app.send(Method::DELETE, &format!("/v1/convai/secrets/{secret_id}"), key, &json!({})).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["detail"]["status"], "secret_in_use");

    // Another workspace cannot refer to this secret.
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    let mut stolen = webhook("stolen", "https://x.example");
    stolen["tool_config"]["api_schema"]["request_headers"] =
        json!({"Authorization": {"secret_id": secret_id}});
    assert_eq!(app.post("/v1/convai/tools", &theirs, &stolen).await.0, 422);
    assert_eq!(app.get(&format!("/v1/convai/tools/{tool_id}"), &theirs).await.0, 404);
    assert_eq!(
        app.send(Method::DELETE, &format!("/v1/convai/tools/{tool_id}"), &theirs, &json!({}))
            .await
            .0,
        404
    );

    assert_eq!(
        app.send(Method::DELETE, &format!("/v1/convai/tools/{tool_id}"), key, &json!({})).await.0,
        200
    );
    assert_eq!(
        app.send(Method::DELETE, &format!("/v1/convai/secrets/{secret_id}"), key, &json!({}))
            .await
            .0,
        204
    );
}
dual_db!(secrets_used_by_tools_cannot_be_deleted);

/// What a strict client reads back is exactly the reference's response model: input-only
/// fields (`property_kind`) and keys smuggled into nested models are accepted on write and
/// never answered, on create, get, list and patch alike.
async fn answers_hold_only_the_response_models_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let mut body = webhook("lookup", "https://x.example");
    body["tool_config"]["api_schema"]["request_body_schema"]["property_kind"] = json!("object");
    body["tool_config"]["assignments"] =
        json!([{"dynamic_variable": "city", "value_path": "city", "": null, "x_extra": 1}]);
    body["tool_config"]["x_unknown"] = json!({"a": 1});
    body["response_mocks"] = json!([{"mock_result": "ok", "x_mock_extra": true}]);
    let clean = |tool: &Value| {
        let config = &tool["tool_config"];
        assert!(
            config["api_schema"]["request_body_schema"].get("property_kind").is_none(),
            "{tool}"
        );
        let assignment = &config["assignments"][0];
        assert!(assignment.get("").is_none() && assignment.get("x_extra").is_none(), "{tool}");
        assert_eq!(assignment["dynamic_variable"], "city");
        assert_eq!(assignment["source"], "response", "defaults filled");
        assert!(config.get("x_unknown").is_none(), "{tool}");
        assert!(tool["response_mocks"][0].get("x_mock_extra").is_none(), "{tool}");
        assert_eq!(
            config["api_schema"]["request_body_schema"]["properties"]["city"]["type"],
            "string"
        );
    };
    let (s, created) = app.post("/v1/convai/tools", key, &body).await;
    assert_eq!(s, 200, "{created}");
    clean(&created);
    let id = created["id"].as_str().unwrap();
    let (_, got) = app.get(&format!("/v1/convai/tools/{id}"), key).await;
    clean(&got);
    let (_, list) = app.get("/v1/convai/tools", key).await;
    clean(&list["tools"][0]);
    let (s, patched) = app.send(Method::PATCH, &format!("/v1/convai/tools/{id}"), key, &body).await;
    assert_eq!(s, 200, "{patched}");
    clean(&patched);
}
dual_db!(answers_hold_only_the_response_models_fields);
