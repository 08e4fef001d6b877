//! Environments and environment variables: CRUD as the reference shapes it, and the values a
//! conversation's tools get in the environment it runs in.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fakes::{FakeLlm, Webhook, call, text, with_llm};
use crate::helpers::{Backend, TestApp, dual_db};
use crate::tools::create_tool;
use crate::ws::{self, connect, next, send, turn};

async fn delete(app: &TestApp, path: &str) -> (u16, Value) {
    app.send(Method::DELETE, path, &app.admin_key, &json!({})).await
}

async fn variables_per_environment_crud(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let (s, list) = app.get("/v1/convai/environments", key).await;
    assert_eq!((s, list), (200, json!({"environments": [{"name": "production"}]})));
    let (s, staging) = app.post("/v1/convai/environments", key, &json!({"name": "staging"})).await;
    assert_eq!(s, 200, "{staging}");
    assert_eq!(staging["name"], "staging");
    assert!(staging["updated_at_unix_secs"].as_i64().is_some());
    for (name, status) in [("staging", 409), ("production", 409), ("bad name", 422), ("", 422)] {
        let (s, b) = app.post("/v1/convai/environments", key, &json!({"name": name})).await;
        assert_eq!(s, status, "{name:?}: {b}");
    }

    let (s, var) = app
        .post(
            "/v1/convai/environment-variables",
            key,
            &json!({"type": "string", "label": "API_URL", "values": {"production": "https://p.example", "staging": "https://s.example"}}),
        )
        .await;
    assert_eq!(s, 200, "{var}");
    let id = var["id"].as_str().unwrap().to_owned();
    assert_eq!(var["type"], "string");
    assert_eq!(
        var["values"],
        json!({"production": "https://p.example", "staging": "https://s.example"})
    );
    assert_eq!(var["workspace_id"].as_str().map(str::is_empty), Some(false));
    let keys: Vec<&String> = var.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 8, "exactly EnvironmentVariableResponse: {keys:?}");

    // Bad input: a clear error, nothing stored.
    for (body, status) in [
        (json!({"type": "string", "label": "API_URL", "values": {"production": "x"}}), 409),
        (json!({"type": "string", "label": "B", "values": {"staging": "x"}}), 422),
        (json!({"type": "string", "label": "B", "values": {"production": "x", "qa": "y"}}), 422),
        (
            json!({"type": "secret", "label": "B", "values": {"production": {"secret_id": "secret_nope"}}}),
            422,
        ),
        (
            json!({"type": "auth_connection", "label": "B", "values": {"production": {"auth_connection_id": "c"}}}),
            422,
        ),
        (json!({"type": "number", "label": "B", "values": {"production": "1"}}), 422),
    ] {
        let (s, b) = app.post("/v1/convai/environment-variables", key, &body).await;
        assert_eq!(s, status, "{body}: {b}");
    }

    let (_, secret) = app
        .post(
            "/v1/convai/secrets",
            key,
            &json!({"type": "new", "name": "k", "value": "sk-planted-1"}),
        )
        .await;
    let secret_id = secret["secret_id"].as_str().unwrap();
    let (s, token) = app
        .post(
            "/v1/convai/environment-variables",
            key,
            &json!({"type": "secret", "label": "TOKEN", "values": {"production": {"secret_id": secret_id}}}),
        )
        .await;
    assert_eq!(s, 200, "{token}");
    assert_eq!(token["values"]["production"], json!({"secret_id": secret_id}));
    assert!(!token.to_string().contains("sk-planted-1"));
    let (s, _) = delete(&app, &format!("/v1/convai/secrets/{secret_id}")).await;
    assert_eq!(s, 409, "a secret an environment variable uses stays");

    // Lists: by label, with filters, in pages.
    let (s, page) = app.get("/v1/convai/environment-variables?page_size=1", key).await;
    assert_eq!(s, 200);
    assert_eq!(page["environment_variables"][0]["label"], "API_URL");
    assert_eq!(page["has_more"], true);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!("/v1/convai/environment-variables?page_size=1&cursor={cursor}"), key)
        .await;
    assert_eq!(rest["environment_variables"][0]["label"], "TOKEN");
    assert_eq!(rest["has_more"], false);
    let (_, staged) = app.get("/v1/convai/environment-variables?environment=staging", key).await;
    assert_eq!(staged["environment_variables"].as_array().unwrap().len(), 1);
    assert_eq!(
        staged["environment_variables"][0]["values"],
        json!({"staging": "https://s.example"})
    );
    let (_, secrets) = app.get("/v1/convai/environment-variables?type=secret", key).await;
    assert_eq!(secrets["environment_variables"][0]["label"], "TOKEN");
    let (_, labelled) = app.get("/v1/convai/environment-variables?label=API_URL", key).await;
    assert_eq!(labelled["environment_variables"][0]["id"], id.as_str());

    // PATCH sets and removes values; production stays.
    let path = format!("/v1/convai/environment-variables/{id}");
    let (_, dev) = app.post("/v1/convai/environments", key, &json!({"name": "dev"})).await;
    assert_eq!(dev["name"], "dev");
    let (s, patched) = app
        .send(
            Method::PATCH,
            &path,
            key,
            &json!({"values": {"staging": null, "dev": "https://d.example"}}),
        )
        .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(
        patched["values"],
        json!({"production": "https://p.example", "dev": "https://d.example"})
    );
    for body in [json!({"values": {"production": null}}), json!({"values": {"qa": "x"}}), json!({})]
    {
        let (s, b) = app.send(Method::PATCH, &path, key, &body).await;
        assert_eq!(s, 422, "{body}: {b}");
    }
    let (_, got) = app.get(&path, key).await;
    assert_eq!(got, patched);

    // Deleting an environment takes its values with it.
    let (s, _) = delete(&app, "/v1/convai/environments/dev").await;
    assert_eq!(s, 204);
    let (s, _) = delete(&app, "/v1/convai/environments/production").await;
    assert_eq!(s, 400);
    let (_, got) = app.get(&path, key).await;
    assert_eq!(got["values"], json!({"production": "https://p.example"}));

    // Another workspace sees none of it.
    let other = app.key("globex", "g@globex.test", "admin").await;
    let (s, _) = app.get(&path, &other).await;
    assert_eq!(s, 404);
    let (_, theirs) = app.get("/v1/convai/environment-variables", &other).await;
    assert_eq!(theirs["environment_variables"], json!([]));

    // A variable a tool names cannot be deleted; once unused it can.
    let tool = create_tool(&app, key, json!({"tool_config": {"type": "webhook", "name": "t", "description": "d",
        "api_schema": {"url": "https://example.com/x", "request_headers": {"X-Url": {"env_var_label": "API_URL"}}}}})).await;
    let (s, b) = delete(&app, &path).await;
    assert_eq!(s, 409, "{b}");
    delete(&app, &format!("/v1/convai/tools/{tool}")).await;
    let (s, _) = delete(&app, &path).await;
    assert_eq!(s, 204);
    let (s, _) = app.get(&path, key).await;
    assert_eq!(s, 404);
}
dual_db!(variables_per_environment_crud);

/// A webhook tool's headers name a string and a secret variable; conversations in production
/// and in staging (asked on the socket and in the initiation data) send each environment's
/// values, the secret never reaches the audit log, and an unknown environment is refused.
async fn tools_get_the_values_of_the_conversations_environment(backend: Backend) {
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        if last["role"] == "tool" { text("done") } else { call("lookup", json!({})) }
    })
    .await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let hook = Webhook::start(200, r#"{"ok":true}"#, Duration::ZERO).await;
    app.post("/v1/convai/environments", key, &json!({"name": "staging"})).await;
    let mut secret_ids = Vec::new();
    for value in ["prod-token-5d1", "staging-token-8e2"] {
        let (_, s) = app
            .post("/v1/convai/secrets", key, &json!({"type": "new", "name": value, "value": value}))
            .await;
        secret_ids.push(s["secret_id"].as_str().unwrap().to_owned());
    }
    for body in [
        json!({"type": "string", "label": "STAGE", "values": {"production": "prod", "staging": "stage"}}),
        json!({"type": "secret", "label": "TOKEN", "values": {"production": {"secret_id": secret_ids[0]}, "staging": {"secret_id": secret_ids[1]}}}),
    ] {
        let (s, b) = app.post("/v1/convai/environment-variables", key, &body).await;
        assert_eq!(s, 200, "{b}");
    }
    let tool = create_tool(&app, key, json!({"tool_config": {"type": "webhook", "name": "lookup", "description": "Look up",
        "api_schema": {"url": format!("{}/lookup", hook.base), "method": "GET",
            "request_headers": {"X-Stage": {"env_var_label": "STAGE"}, "Authorization": {"env_var_label": "TOKEN"}}}}})).await;
    let (_, agent) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({"conversation_config": {"agent": {
        "prompt": {"prompt": "p", "llm": "gpt-4o", "tool_ids": [tool]}}}}),
        )
        .await;
    let agent_id = agent["agent_id"].as_str().unwrap();

    let mut conversations = Vec::new();
    for (query, init) in [
        ("", json!({})),
        ("&environment=staging", json!({})),
        ("", json!({"environment": "staging"})),
    ] {
        let url = ws::url(&app.base, &format!("agent_id={agent_id}{query}"));
        let (mut socket, _) = connect(&url, &[]).await;
        let mut data = json!({"type": "conversation_initiation_client_data"});
        data.as_object_mut().unwrap().extend(init.as_object().unwrap().clone());
        send(&mut socket, data).await;
        let meta = next(&mut socket).await;
        let id = meta["conversation_initiation_metadata_event"]["conversation_id"]
            .as_str()
            .unwrap()
            .to_owned();
        turn(&mut socket, "look it up").await;
        conversations.push(id);
    }
    let got: Vec<(String, String)> = hook
        .received()
        .iter()
        .map(|r| {
            let header = |name: &str| r.headers[name].to_str().unwrap().to_owned();
            (header("x-stage"), header("authorization"))
        })
        .collect();
    let want = |s: &str, t: &str| (s.to_owned(), t.to_owned());
    assert_eq!(
        got,
        [
            want("prod", "prod-token-5d1"),
            want("stage", "staging-token-8e2"),
            want("stage", "staging-token-8e2")
        ]
    );
    let (_, staged) = app.get(&format!("/v1/convai/conversations/{}", conversations[1]), key).await;
    assert_eq!(staged["environment"], "staging");
    let (_, calls) = app.get(&format!("/v1/convai/tools/{tool}/executions"), key).await;
    assert!(!calls.to_string().contains("token-"), "secret values stay out of the audit log");

    let url = ws::url(&app.base, &format!("agent_id={agent_id}&environment=qa"));
    let (mut socket, _) = connect(&url, &[]).await;
    send(&mut socket, json!({"type": "conversation_initiation_client_data"})).await;
    let closed = next(&mut socket).await;
    assert_eq!(closed["close"], 1008, "{closed}");
    assert!(closed["reason"].as_str().unwrap().contains("qa"), "{closed}");

    let (s, signed) = app
        .get(
            &format!(
                "/v1/convai/conversation/get-signed-url?agent_id={agent_id}&environment=staging"
            ),
            key,
        )
        .await;
    assert_eq!(s, 200);
    assert!(signed["signed_url"].as_str().unwrap().ends_with("&environment=staging"), "{signed}");
    let (s, _) = app
        .get(
            &format!("/v1/convai/conversation/get-signed-url?agent_id={agent_id}&environment=qa"),
            key,
        )
        .await;
    assert_eq!(s, 422);
}
dual_db!(tools_get_the_values_of_the_conversations_environment);
