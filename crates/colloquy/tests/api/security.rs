//! Authorization on every documented route, walked from `/openapi.json`: no key and a revoked
//! key are 401, a key without the route's scope is 403, and another workspace's key holding
//! this workspace's ids is 404 — and none of them changes or reveals anything.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fakes::with_llm;
use crate::fakes::{FakeLlm, text};
use crate::helpers::{Backend, TestApp, dual_db, invocation_done};
use crate::ws::{connect, initiate, next, open, say, send};

/// Every name of this workspace's resources carries it; no refused answer may.
const MARK: &str = "ACMEMARK";

/// The families of scopes, for keys that lack a route's.
const FAMILIES: [&str; 7] =
    ["agents", "tools", "tests", "conversations", "secrets", "mcp_servers", "knowledge_base"];

/// One resource of every kind in the admin key's workspace; returns the path parameters.
async fn populate(app: &TestApp) -> BTreeMap<&'static str, String> {
    let key = &app.admin_key;
    let ok = |(s, b): (u16, Value)| {
        assert_eq!(s, 200, "{b}");
        b
    };
    let secret = ok(app
        .post(
            "/v1/convai/secrets",
            key,
            &json!({"type": "new", "name": format!("{MARK} secret"), "value": "v"}),
        )
        .await);
    let tool = ok(app
        .post(
            "/v1/convai/tools",
            key,
            &json!({"tool_config": {"type": "webhook", "name": format!("{MARK}_tool"),
            "description": MARK, "api_schema": {"url": "https://api.example.com/x", "method": "GET",
            "request_headers": {"X-Key": {"secret_id": secret["secret_id"]}}}}}),
        )
        .await);
    let document = ok(app
        .post(
            "/v1/convai/knowledge-base/text",
            key,
            &json!({"name": format!("{MARK} doc"), "text": format!("{MARK} text")}),
        )
        .await);
    let document_id = document["id"].as_str().unwrap().to_owned();
    let crawl = ok(app
        .post(
            "/v1/convai/knowledge-base/crawl",
            key,
            &json!({"url": "http://127.0.0.1:9/", "max_depth": 1}),
        )
        .await);
    let agent = ok(app
        .post("/v1/convai/agents/create", key, &json!({"name": format!("{MARK} agent"), "conversation_config": {"agent": {
            "first_message": "", "prompt": {"prompt": MARK, "llm": "gpt-4o", "tool_ids": [tool["id"]],
            "knowledge_base": [{"type": "text", "name": "doc", "id": document_id}]}}}}))
        .await);
    let server = ok(app
        .post("/v1/convai/mcp-servers", key, &json!({"config": {"name": format!("{MARK} server"), "url": "https://mcp.example.com/sse"}}))
        .await);
    let server_id = server["id"].as_str().unwrap();
    ok(app
        .post(
            &format!("/v1/convai/mcp-servers/{server_id}/tool-configs"),
            key,
            &json!({"tool_name": "add", "response_timeout_secs": 9}),
        )
        .await);
    ok(app
        .post(
            &format!("/v1/convai/mcp-servers/{server_id}/tool-approvals"),
            key,
            &json!({"tool_name": "add", "tool_description": MARK}),
        )
        .await);
    let folder = ok(app
        .post("/v1/convai/agent-testing/folders", key, &json!({"name": format!("{MARK} folder")}))
        .await);
    let test = ok(app
        .post(
            "/v1/convai/agent-testing/create",
            key,
            &json!({"name": format!("{MARK} test"), "success_condition": MARK,
            "chat_history": [{"role": "user", "message": "hi", "time_in_call_secs": 0}]}),
        )
        .await);
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    let invocation = ok(app
        .post(
            &format!("/v1/convai/agents/{agent_id}/run-tests"),
            key,
            &json!({"tests": [{"test_id": test["id"]}]}),
        )
        .await);
    let invocation_id = invocation["id"].as_str().unwrap().to_owned();
    invocation_done(&app.base, key, &invocation_id, std::time::Duration::from_secs(10)).await;
    let ws = crate::ws::url(&app.base, &format!("agent_id={agent_id}"));
    let (socket, conversation) = open(&ws, Default::default()).await;
    drop(socket);
    // Ended, and its post-call analysis finished: the walk compares the workspace before and
    // after, and the analysis writing its results meanwhile is no refused call's doing.
    for _ in 0..200 {
        let (_, got) = app.get(&format!("/v1/convai/conversations/{conversation}"), key).await;
        let path = format!("/api/conversations/{conversation}/analysis");
        let (_, analysis) = app.get(&path, key).await;
        let settled = matches!(analysis["status"].as_str(), Some("succeeded" | "failed"));
        if got["status"] == "done" && settled {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    BTreeMap::from([
        ("agent_id", agent_id),
        ("tool_id", tool["id"].as_str().unwrap().to_owned()),
        ("secret_id", secret["secret_id"].as_str().unwrap().to_owned()),
        ("mcp_server_id", server_id.to_owned()),
        ("tool_name", "add".to_owned()),
        ("folder_id", folder["id"].as_str().unwrap().to_owned()),
        ("test_id", test["id"].as_str().unwrap().to_owned()),
        ("test_invocation_id", invocation_id),
        ("conversation_id", conversation),
        ("resource_type", "tools".to_owned()),
        ("documentation_id", document_id.clone()),
        ("document_id", document_id.clone()),
        ("chunk_id", format!("{document_id}_0")),
        ("crawl_job_id", crawl["id"].as_str().unwrap().to_owned()),
    ])
}

/// Everything the workspace holds, as its admin reads it.
async fn snapshot(app: &TestApp, ids: &BTreeMap<&'static str, String>) -> Vec<Value> {
    let key = &app.admin_key;
    let mut out = Vec::new();
    for path in [
        format!("/v1/convai/agents/{}", ids["agent_id"]),
        format!("/v1/convai/tools/{}", ids["tool_id"]),
        format!("/v1/convai/secrets/{}", ids["secret_id"]),
        format!("/v1/convai/mcp-servers/{}", ids["mcp_server_id"]),
        format!("/v1/convai/agent-testing/folders/{}", ids["folder_id"]),
        format!("/v1/convai/agent-testing/{}", ids["test_id"]),
        format!("/v1/convai/test-invocations/{}", ids["test_invocation_id"]),
        format!("/v1/convai/conversations/{}", ids["conversation_id"]),
        format!("/v1/convai/knowledge-base/{}", ids["document_id"]),
        format!("/v1/convai/knowledge-base/{}/chunks", ids["document_id"]),
        format!("/v1/convai/knowledge-base/crawl/{}", ids["crawl_job_id"]),
        format!("/api/tool-calls?executionId={}", ids["conversation_id"]),
        "/v1/convai/agents".to_owned(),
        "/v1/convai/tools".to_owned(),
        "/v1/convai/secrets".to_owned(),
        "/v1/convai/mcp-servers".to_owned(),
        "/v1/convai/agent-testing?include_folders=true".to_owned(),
        "/v1/convai/test-invocations".to_owned(),
        "/v1/convai/conversations?source=ws".to_owned(),
    ] {
        let (s, b) = app.get(&path, key).await;
        assert_eq!(s, 200, "{path}: {b}");
        out.push(b);
    }
    out
}

/// A body the route would accept from this workspace's own admin, so that a refusal is the
/// key's doing, not the body's.
fn body_for(method: &Method, path: &str, ids: &BTreeMap<&'static str, String>) -> Option<Value> {
    if *method == Method::GET || *method == Method::DELETE {
        return None;
    }
    let stolen = format!("stolen {MARK}");
    Some(match path {
        "/v1/convai/agents/{agent_id}" => json!({"name": stolen}),
        "/v1/convai/agents/{agent_id}/run-tests" => json!({"tests": [{"test_id": ids["test_id"]}]}),
        "/v1/convai/agents/{agent_id}/simulate-conversation"
        | "/v1/convai/agents/{agent_id}/simulate-conversation/stream" => {
            json!({"simulation_specification": {"simulated_user_config": {"prompt": {"prompt": "u", "llm": "gpt-4o"}}}})
        }
        "/v1/convai/tools/{tool_id}" => {
            json!({"tool_config": {"type": "client", "name": "stolen", "description": stolen}})
        }
        "/v1/convai/secrets/{secret_id}" => json!({"type": "update", "name": stolen, "value": "x"}),
        "/v1/convai/mcp-servers/{mcp_server_id}" => json!({"response_timeout_secs": 99}),
        "/v1/convai/mcp-servers/{mcp_server_id}/approval-policy" => {
            json!({"approval_policy": "auto_approve_all"})
        }
        "/v1/convai/mcp-servers/{mcp_server_id}/tool-approvals" => {
            json!({"tool_name": "echo", "tool_description": stolen})
        }
        "/v1/convai/mcp-servers/{mcp_server_id}/tool-configs" => json!({"tool_name": "echo"}),
        "/v1/convai/mcp-servers/{mcp_server_id}/tool-configs/{tool_name}" => {
            json!({"response_timeout_secs": 99})
        }
        "/v1/convai/agent-testing/{test_id}" => json!({"name": stolen, "success_condition": "x",
            "chat_history": [{"role": "user", "message": "hi", "time_in_call_secs": 0}]}),
        "/v1/convai/agent-testing/folders/{folder_id}" => json!({"name": stolen}),
        "/v1/convai/agent-testing/bulk-move" => {
            json!({"test_ids": [ids["test_id"]], "folder_id": ids["folder_id"]})
        }
        "/v1/convai/agent-testing/summaries" => json!({"test_ids": [ids["test_id"]]}),
        "/v1/convai/test-invocations/{test_invocation_id}" => json!({"name": stolen}),
        "/v1/convai/test-invocations/{test_invocation_id}/resubmit" => {
            json!({"test_run_ids": [], "agent_id": ids["agent_id"]})
        }
        "/v1/convai/conversations/{conversation_id}/feedback" => json!({"feedback": "like"}),
        "/v1/convai/knowledge-base/{documentation_id}/rag-index" => {
            json!({"model": "e5_mistral_7b_instruct"})
        }
        "/v1/convai/knowledge-base/{documentation_id}" => json!({"name": stolen}),
        "/v1/convai/knowledge-base/{document_id}/move" => json!({"move_to": null}),
        _ => json!({}),
    })
}

async fn every_route_refuses_missing_revoked_unscoped_and_foreign_keys(backend: Backend) {
    let llm = FakeLlm::openai(|_| text("hello")).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let ids = populate(&app).await;
    let before = snapshot(&app, &ids).await;
    let foreign = app.key("globex", "g@globex.test", "admin").await;
    let revoked = app.key("default", "old@acme.test", "admin").await;
    {
        use colloquy_store::KeyStore as _;
        let store = app.db.store().await;
        let listed = store.list_keys(Some("default"), None, 100).await.unwrap();
        let id = &listed.iter().find(|k| k.user_email == "old@acme.test").unwrap().id;
        store.revoke_key(id).await.unwrap();
    }
    let mut scoped = BTreeMap::new();
    for family in FAMILIES {
        for access in ["read", "write"] {
            let scope = format!("{family}:{access}");
            let key = app.key("default", &format!("{family}-{access}@acme.test"), &scope).await;
            scoped.insert(scope, key);
        }
    }
    let (_, doc) = app.get("/openapi.json", &app.admin_key).await;
    let mut walked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let scope = op["security"][0]["api_key"][0].as_str().unwrap();
            // `admin` routes (the change log) refuse every family's keys.
            let (family, access) = scope.split_once(':').unwrap_or(("admin", "admin"));
            let mut path = template.clone();
            let mut has_ids = false;
            for (name, value) in &ids {
                let placeholder = format!("{{{name}}}");
                if path.contains(&placeholder) {
                    path = path.replace(&placeholder, value);
                    has_ids = true;
                }
            }
            if path == "/v1/convai/conversation/get-signed-url"
                || path == "/v1/convai/conversation/token"
            {
                path = format!("{path}?agent_id={}", ids["agent_id"]);
                has_ids = true;
            }
            if path == "/api/tool-calls" {
                path = format!("{path}?executionId={}", ids["conversation_id"]);
                has_ids = true;
            }
            let body = body_for(&method, template, &ids);
            let call = |key: Option<&str>| {
                let mut request = app.client.request(method.clone(), app.url(&path));
                if let Some(key) = key {
                    request = request.header("xi-api-key", key);
                }
                if let Some(body) = &body {
                    request = request.json(body);
                }
                async move {
                    let r = request.send().await.unwrap();
                    let status = r.status().as_u16();
                    (status, r.text().await.unwrap())
                }
            };
            let what = format!("{method} {template}");
            let (s, b) = call(None).await;
            assert_eq!(s, 401, "{what} without a key: {b}");
            let (s, b) = call(Some(&revoked)).await;
            assert_eq!(s, 401, "{what} with a revoked key: {b}");
            if scope == "any" {
                // About the caller itself (`/api/whoami`): any valid key, its own answer.
                let (s, b) = call(Some(&foreign)).await;
                assert_eq!(s, 200, "{what} with any valid key: {b}");
                assert!(!b.contains(MARK), "{what} showed another workspace's data: {b}");
                walked += 1;
                continue;
            }
            let other = FAMILIES.iter().find(|f| **f != family).unwrap();
            let (s, b) = call(Some(&scoped[&format!("{other}:write")])).await;
            assert_eq!(s, 403, "{what} with another family's key: {b}");
            if access == "write" {
                let (s, b) = call(Some(&scoped[&format!("{family}:read")])).await;
                assert_eq!(s, 403, "{what} with a read key: {b}");
            }
            let (s, b) = call(Some(&foreign)).await;
            if has_ids {
                assert_eq!(s, 404, "{what} with another workspace's key: {b}");
            }
            assert!(!b.contains(MARK), "{what} showed another workspace's data: {b}");
            walked += 1;
        }
    }
    assert!(walked >= 60, "walked {walked} operations");
    let after = snapshot(&app, &ids).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "the workspace was changed by a refused call");
    }
}
dual_db!(every_route_refuses_missing_revoked_unscoped_and_foreign_keys);

#[tokio::test]
async fn request_rate_is_limited_per_key() {
    let app =
        TestApp::spawn_with(crate::helpers::Backend::Sqlite, |c| c.rate_limit_per_minute = 5).await;
    let key = app.key("default", "busy@acme.test", "secrets:read").await;
    for _ in 0..5 {
        assert_eq!(app.get("/v1/convai/secrets", &key).await.0, 200);
    }
    let r = app
        .client
        .get(app.url("/v1/convai/secrets"))
        .header("xi-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&wait), "{wait}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["detail"]["status"], "rate_limited");
    assert_eq!(
        app.get("/v1/convai/secrets", &app.admin_key).await.0,
        200,
        "other keys are not limited"
    );
    let r = app
        .client
        .get(app.url("/api/tool-calls?executionId=x"))
        .header("xi-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "the ohallo route is limited too");
}

#[tokio::test]
async fn documents_and_requests_have_configurable_limits() {
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, |c| {
        c.max_tools_per_agent = 2;
        c.max_prompt_chars = 10;
        c.max_body_bytes = 64 * 1024;
    })
    .await;
    let key = &app.admin_key;
    let mut tools = Vec::new();
    for i in 0..3 {
        let (s, t) = app
            .post("/v1/convai/tools", key, &json!({"tool_config": {"type": "client", "name": format!("t{i}"), "description": "d"}}))
            .await;
        assert_eq!(s, 200);
        tools.push(t["id"].clone());
    }
    let (s, b) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({"conversation_config": {"agent": {"prompt": {"tool_ids": tools}}}}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        b["detail"][0]["loc"],
        json!(["body", "conversation_config", "agent", "prompt", "tool_ids"])
    );
    let (s, b) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({"conversation_config": {"agent": {"prompt": {"prompt": "eleven chars"}}}}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        b["detail"][0]["loc"],
        json!(["body", "conversation_config", "agent", "prompt", "prompt"])
    );
    let (s, agent) = app
        .post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {"prompt": {"prompt": "short", "tool_ids": tools[..2]}}}}))
        .await;
    assert_eq!(s, 200, "{agent}");
    let id = agent["agent_id"].as_str().unwrap();
    let (s, _) = app
        .send(
            Method::PATCH,
            &format!("/v1/convai/agents/{id}"),
            key,
            &json!({"conversation_config": {"agent": {"prompt": {"prompt": "far too long now"}}}}),
        )
        .await;
    assert_eq!(s, 422);
    let (_, list) = app.get("/v1/convai/agents", key).await;
    assert_eq!(list["agents"].as_array().unwrap().len(), 1, "nothing else was written");
    let big = "x".repeat(70 * 1024);
    let (s, _) = app
        .post("/v1/convai/secrets", key, &json!({"type": "new", "name": "big", "value": big}))
        .await;
    assert_eq!(s, 413);
    for path in [
        "/v1/convai/agents?page_size=101",
        "/v1/convai/tools?page_size=0",
        "/v1/convai/agent-testing?page_size=1000",
    ] {
        assert_eq!(app.get(path, key).await.0, 422, "{path}");
    }
}

#[tokio::test]
async fn live_conversations_have_message_and_workspace_limits() {
    let llm = FakeLlm::openai(|_| text("hello")).await;
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, |c| {
        with_llm(&llm)(c);
        c.ws_max_message_bytes = 1024;
        c.max_conversations_per_workspace = 1;
    })
    .await;
    let key = &app.admin_key;
    let (_, agent) = app
        .post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {"first_message": "", "prompt": {"llm": "gpt-4o"}}}}))
        .await;
    let other = app.key("globex", "g@globex.test", "admin").await;
    let (_, theirs) = app
        .post("/v1/convai/agents/create", &other, &json!({"conversation_config": {"agent": {"first_message": "", "prompt": {"llm": "gpt-4o"}}}}))
        .await;
    let url = |agent: &Value| {
        crate::ws::url(&app.base, &format!("agent_id={}", agent["agent_id"].as_str().unwrap()))
    };
    let (mut first, _) = connect(&url(&agent), &[]).await;
    initiate(&mut first, Default::default()).await;
    assert_eq!(next(&mut first).await["type"], "conversation_initiation_metadata");

    let (mut second, _) = connect(&url(&agent), &[]).await;
    let refused = next(&mut second).await;
    assert_eq!(refused["close"], 1013, "{refused}");
    let (mut elsewhere, _) = connect(&url(&theirs), &[]).await;
    initiate(&mut elsewhere, Default::default()).await;
    assert_eq!(
        next(&mut elsewhere).await["type"],
        "conversation_initiation_metadata",
        "other workspaces have their own"
    );

    // A message over the limit ends the connection; nothing the server held is lost.
    send(&mut first, json!({"type": "user_message", "text": "y".repeat(2048)})).await;
    let closed = loop {
        let e = next(&mut first).await;
        if e.get("close").is_some() {
            break e;
        }
    };
    assert_ne!(closed["close"], 1000, "not a normal end: {closed}");
    // The slot is free again once that conversation has ended.
    let mut reopened = None;
    for _ in 0..50 {
        let (mut again, _) = connect(&url(&agent), &[]).await;
        initiate(&mut again, Default::default()).await;
        let e = next(&mut again).await;
        if e["type"] == "conversation_initiation_metadata" {
            reopened = Some(e);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "the workspace got its slot back");
}

#[tokio::test]
async fn webhook_answers_are_bounded_in_size_and_time() {
    use crate::fakes::{Webhook, call};
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        if last["role"] == "tool" {
            return text("done");
        }
        match last["content"].as_str().unwrap_or_default() {
            "big" => call("big", json!({"city": "x"})),
            _ => call("slow", json!({"city": "x"})),
        }
    })
    .await;
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, |c| {
        with_llm(&llm)(c);
        c.webhook_max_response_bytes = 100;
    })
    .await;
    let key = &app.admin_key;
    let big = Webhook::start(200, &"z".repeat(1000), std::time::Duration::ZERO).await;
    let slow = Webhook::start(200, "{}", std::time::Duration::from_secs(8)).await;
    let mut ids = Vec::new();
    for (name, hook, timeout) in [("big", &big, 5), ("slow", &slow, 5)] {
        let mut body = crate::tools::webhook(name, &format!("{}/hook", hook.base));
        body["tool_config"]["response_timeout_secs"] = json!(timeout);
        let (s, t) = app.post("/v1/convai/tools", key, &body).await;
        assert_eq!(s, 200, "{t}");
        ids.push(t["id"].clone());
    }
    let (_, agent) = app
        .post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {"first_message": "", "prompt": {"llm": "gpt-4o", "tool_ids": ids}}}}))
        .await;
    let url =
        crate::ws::url(&app.base, &format!("agent_id={}", agent["agent_id"].as_str().unwrap()));
    let (mut socket, conversation) = open(&url, Default::default()).await;
    for said in ["big", "slow"] {
        say(&mut socket, said).await;
        crate::ws::until(&mut socket, "agent_response").await;
    }
    drop(socket);
    let (_, calls) = app.get(&format!("/api/tool-calls?executionId={conversation}"), key).await;
    assert_eq!(calls[0]["status"], "error", "{calls}");
    assert!(calls[0]["output"].as_str().unwrap().contains("larger than 100 bytes"), "{calls}");
    assert_eq!(calls[1]["status"], "timeout", "{calls}");
    let waited = calls[1]["durationMs"].as_i64().unwrap();
    assert!((4900..7000).contains(&waited), "{waited}");
}

/// A webhook host that hangs holds only its own slots (`webhook_max_connections_per_host`):
/// calls to it beyond them wait and time out within their own timeout, while conversations
/// calling a healthy host at the same time are served as if it were not there.
#[tokio::test]
async fn a_hanging_webhook_host_cannot_starve_calls_to_others() {
    use crate::fakes::{Webhook, call};
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        if last["role"] == "tool" {
            return text("done");
        }
        call(last["content"].as_str().unwrap_or("slow"), json!({"city": "x"}))
    })
    .await;
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, |c| {
        with_llm(&llm)(c);
        c.webhook_max_connections_per_host = 2;
    })
    .await;
    let key = &app.admin_key;
    let hanging = Webhook::start(200, "{}", std::time::Duration::from_secs(60)).await;
    let healthy = Webhook::start(200, r#"{"ok": true}"#, std::time::Duration::ZERO).await;
    let mut ids = Vec::new();
    for (name, hook) in [("slow", &hanging), ("fast", &healthy)] {
        let mut body = crate::tools::webhook(name, &format!("{}/hook", hook.base));
        body["tool_config"]["response_timeout_secs"] = json!(5);
        let (s, t) = app.post("/v1/convai/tools", key, &body).await;
        assert_eq!(s, 200, "{t}");
        ids.push(t["id"].clone());
    }
    let (_, agent) = app
        .post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {"first_message": "", "prompt": {"llm": "gpt-4o", "tool_ids": ids}}}}))
        .await;
    let url =
        crate::ws::url(&app.base, &format!("agent_id={}", agent["agent_id"].as_str().unwrap()));
    let turn = |said: &'static str| {
        let url = url.clone();
        async move {
            let (mut socket, conversation) = open(&url, Default::default()).await;
            let started = std::time::Instant::now();
            say(&mut socket, said).await;
            crate::ws::until(&mut socket, "agent_response").await;
            (said, started.elapsed(), conversation)
        }
    };
    let turns: Vec<_> =
        ["slow"; 6].into_iter().chain(["fast"; 6]).map(|said| tokio::spawn(turn(said))).collect();
    // Once every slow call has been asked for, the first two hold the host's slots until they
    // time out (5 s) and the other four wait.
    let asked = || {
        llm.requests()
            .iter()
            .filter(|r| r["messages"].as_array().unwrap().last().unwrap()["content"] == "slow")
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
    while asked() < 6 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(hanging.received().len(), 2, "only two calls at once reach the hanging host");
    let done: Vec<_> =
        futures_util::future::join_all(turns).await.into_iter().map(Result::unwrap).collect();
    for (said, took, conversation) in &done {
        let (_, calls) = app.get(&format!("/api/tool-calls?executionId={conversation}"), key).await;
        if *said == "fast" {
            assert_eq!(calls[0]["status"], "success", "{calls}");
            // Starved, it would wait out the hanging calls' 5 s.
            assert!(*took < std::time::Duration::from_secs(4), "a healthy call waited {took:?}");
        } else {
            assert_eq!(calls[0]["status"], "timeout", "{calls}");
            assert!(
                *took < std::time::Duration::from_secs(8),
                "within the tool's timeout: {took:?}"
            );
        }
    }
    assert_eq!(healthy.received().len(), 6);
}

/// A secret used by a conversation's webhook call appears nowhere it could leak from: not in
/// the database files, the debug log, any API answer, the audit log or `/metrics`.
#[tokio::test]
async fn a_planted_secret_is_nowhere_to_be_found() {
    use crate::fakes::Webhook;
    use crate::helpers::{ChildServer, client, status_json};
    let planted = "PLANTED-SECRET-4b1e9a77";
    let llm = FakeLlm::call_then("lookup", json!({"city": "Oslo"}), "done").await;
    let hook = Webhook::start(200, r#"{"ok": true}"#, std::time::Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let key = colloquy_core::keys::generate_token();
    let llm_url = format!("{}/v1", llm.base);
    let server = ChildServer::start(
        dir.path(),
        &[
            ("COLLOQUY_BOOTSTRAP_API_KEY", key.as_str()),
            ("OPENAI_BASE_URL", llm_url.as_str()),
            ("OPENAI_API_KEY", "sk-fake"),
            ("COLLOQUY_WEBHOOK_ALLOW", "127.0.0.1"),
            ("RUST_LOG", "debug"),
        ],
    )
    .await;
    let http = client();
    let request = |method: Method, path: &str, body: Option<Value>| {
        let mut r =
            http.request(method, format!("{}{path}", server.base)).header("xi-api-key", &key);
        if let Some(body) = body {
            r = r.json(&body);
        }
        async move { status_json(r.send().await.unwrap()).await }
    };
    let (_, secret) = request(
        Method::POST,
        "/v1/convai/secrets",
        Some(json!({"type": "new", "name": "k", "value": planted})),
    )
    .await;
    let mut tool = crate::tools::webhook("lookup", &format!("{}/hook", hook.base));
    tool["tool_config"]["api_schema"]["request_headers"] =
        json!({"Authorization": {"secret_id": secret["secret_id"]}});
    let (s, tool) = request(Method::POST, "/v1/convai/tools", Some(tool)).await;
    assert_eq!(s, 200, "{tool}");
    let (_, agent) = request(
        Method::POST,
        "/v1/convai/agents/create",
        Some(json!({"conversation_config": {"agent": {
        "first_message": "", "prompt": {"llm": "gpt-4o", "tool_ids": [tool["id"]]}}}})),
    )
    .await;
    let agent_id = agent["agent_id"].as_str().unwrap();
    let url = crate::ws::url(&server.base, &format!("agent_id={agent_id}"));
    let (mut socket, conversation) = open(&url, Default::default()).await;
    say(&mut socket, "go").await;
    let events = crate::ws::until(&mut socket, "agent_response").await;
    assert!(!serde_json::to_string(&events).unwrap().contains(planted));
    drop(socket);
    assert_eq!(hook.received()[0].headers["authorization"], planted, "the secret was used");

    let tool_id = tool["id"].as_str().unwrap();
    let secret_id = secret["secret_id"].as_str().unwrap();
    let mut seen = String::new();
    for path in [
        format!("/api/tool-calls?executionId={conversation}"),
        format!("/v1/convai/tools/{tool_id}/executions"),
        format!("/v1/convai/tools/{tool_id}"),
        format!("/v1/convai/conversations/{conversation}"),
        format!("/v1/convai/secrets/{secret_id}"),
        "/v1/convai/secrets".to_owned(),
        format!("/v1/convai/agents/{agent_id}"),
    ] {
        let (s, body) = request(Method::GET, &path, None).await;
        assert_eq!(s, 200, "{path}: {body}");
        seen.push_str(&body.to_string());
    }
    let metrics =
        http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    seen.push_str(&metrics);
    assert!(seen.contains("lookup") && seen.contains(&conversation), "the answers were read");
    assert!(!seen.contains(planted), "an API answer or /metrics showed the secret");
    let log_path = server.stderr_log.clone();
    server.terminate();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("DEBUG"), "the log is at debug level");
    assert!(!log.contains(planted), "the log showed the secret");
    for entry in std::fs::read_dir(dir.path().join("colloquy-data")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(planted.len()).any(|w| w == planted.as_bytes()),
            "{} holds the secret in clear",
            path.display()
        );
    }
}

/// kill -9 in the middle of writes, conversations and test runs: after a restart every
/// acknowledged resource and tool call is there, every stored resource reads whole, and the
/// interrupted invocation finishes with each run once.
async fn kill_9_under_mixed_load_loses_nothing_acknowledged(backend: Backend) {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use crate::fakes::{Webhook, call};
    use crate::helpers::{ChildServer, TestDb, client, status_json};

    let llm = FakeLlm::openai(|req: &Value| {
        let messages = req["messages"].as_array().unwrap();
        let system = messages[0]["content"].as_str().unwrap_or_default();
        if system.starts_with("You evaluate") {
            return text(r#"{"result": "success", "rationale": "ok"}"#);
        }
        if messages.last().unwrap()["role"] == "tool" {
            return text("done");
        }
        if system.contains("TOOLS") {
            return call("lookup", json!({"city": "Oslo"}));
        }
        text("Hello")
    })
    .await;
    let hook = Webhook::start(200, r#"{"ok": true}"#, Duration::ZERO).await;
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let key = colloquy_core::keys::generate_token();
    let secret = colloquy_core::secret_key::SecretKey::generate().to_hex();
    let llm_url = format!("{}/v1", llm.base);
    let envs = [
        ("COLLOQUY_DATABASE_URL", db.url.as_str()),
        ("COLLOQUY_SECRET_KEY", secret.as_str()),
        ("COLLOQUY_BOOTSTRAP_API_KEY", key.as_str()),
        ("OPENAI_BASE_URL", llm_url.as_str()),
        ("OPENAI_API_KEY", "sk-fake"),
        ("COLLOQUY_WEBHOOK_ALLOW", "127.0.0.1"),
        ("COLLOQUY_JOB_LEASE_SECS", "3"),
        ("COLLOQUY_RATE_LIMIT_PER_MINUTE", "0"),
    ];
    let server = ChildServer::start(dir.path(), &envs).await;
    let base = server.base.clone();
    let http = client();
    let post = {
        let (http, key) = (http.clone(), key.clone());
        move |base: String, path: String, body: Value| {
            let request = http.post(format!("{base}{path}")).header("xi-api-key", &key).json(&body);
            async move { Some(status_json(request.send().await.ok()?).await) }
        }
    };
    let get = |base: String, path: String| {
        let request = http.get(format!("{base}{path}")).header("xi-api-key", &key);
        async move { status_json(request.send().await.unwrap()).await }
    };
    let (_, tool) = post(
        base.clone(),
        "/v1/convai/tools".into(),
        crate::tools::webhook("lookup", &format!("{}/hook", hook.base)),
    )
    .await
    .unwrap();
    let (_, agent) = post(base.clone(), "/v1/convai/agents/create".into(), json!({"conversation_config": {"agent": {
        "first_message": "", "prompt": {"prompt": "TOOLS", "llm": "gpt-4o", "tool_ids": [tool["id"]]}}}})).await.unwrap();
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    let mut tests = Vec::new();
    for i in 0..5 {
        let (_, t) = post(
            base.clone(),
            "/v1/convai/agent-testing/create".into(),
            json!({"name": format!("t{i}"), "success_condition": "ok",
            "chat_history": [{"role": "user", "message": "hi", "time_in_call_secs": 0}]}),
        )
        .await
        .unwrap();
        tests.push(json!({"test_id": t["id"]}));
    }
    let (s, invocation) = post(
        base.clone(),
        format!("/v1/convai/agents/{agent_id}/run-tests"),
        json!({"tests": tests, "repeat_count": 20}),
    )
    .await
    .unwrap();
    assert_eq!(s, 200, "{invocation}");

    let acked_agents: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let acked_calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut load = Vec::new();
    for worker in 0..2 {
        let acked = acked_agents.clone();
        let post = post.clone();
        let base = base.clone();
        load.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("load {worker}-{i}");
                match post(
                    base.clone(),
                    "/v1/convai/agents/create".into(),
                    json!({"name": name, "conversation_config": {}}),
                )
                .await
                {
                    Some((200, b)) => acked
                        .lock()
                        .unwrap()
                        .push((b["agent_id"].as_str().unwrap().to_owned(), name)),
                    _ => return,
                }
            }
        }));
    }
    for _ in 0..3 {
        let acked = acked_calls.clone();
        let url = crate::ws::url(&base, &format!("agent_id={agent_id}"));
        load.push(tokio::spawn(async move {
            loop {
                let (mut socket, _) = connect(&url, &[]).await;
                initiate(&mut socket, Default::default()).await;
                for _ in 0..20 {
                    say(&mut socket, "go").await;
                    loop {
                        let e = next(&mut socket).await;
                        if e["type"] == "agent_tool_response" {
                            acked.lock().unwrap().push(
                                e["agent_tool_response"]["tool_call_id"]
                                    .as_str()
                                    .unwrap()
                                    .to_owned(),
                            );
                        }
                        if e.get("close").is_some() {
                            return;
                        }
                        if e["type"] == "agent_response" {
                            break;
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    for task in load {
        let _ = task.await;
    }
    let acked_agents = acked_agents.lock().unwrap().clone();
    let acked_calls = acked_calls.lock().unwrap().clone();
    assert!(
        acked_agents.len() > 10 && acked_calls.len() > 5,
        "load ran: {} agents, {} calls",
        acked_agents.len(),
        acked_calls.len()
    );

    let server = ChildServer::start(dir.path(), &envs).await;
    let base = server.base.clone();
    for (id, name) in &acked_agents {
        let (s, got) = get(base.clone(), format!("/v1/convai/agents/{id}")).await;
        assert_eq!(
            (s, got["name"].as_str()),
            (200, Some(name.as_str())),
            "acknowledged agent {id}"
        );
    }
    let mut cursor: Option<String> = None;
    let mut listed = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/convai/agents?page_size=100&cursor={c}"),
            None => "/v1/convai/agents?page_size=100".to_owned(),
        };
        let (s, page) = get(base.clone(), path).await;
        assert_eq!(s, 200, "{page}");
        for a in page["agents"].as_array().unwrap() {
            let (s, got) =
                get(base.clone(), format!("/v1/convai/agents/{}", a["agent_id"].as_str().unwrap()))
                    .await;
            assert_eq!(s, 200, "a listed agent reads whole: {got}");
            assert!(got["conversation_config"]["agent"].is_object());
            listed += 1;
        }
        if page["has_more"] != true {
            break;
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert!(listed >= acked_agents.len());
    let mut recorded = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let tool_id = tool["id"].as_str().unwrap();
        let path = match &cursor {
            Some(c) => {
                format!("/v1/convai/tools/{tool_id}/executions?page_size=100&cursor={c}")
            }
            None => format!("/v1/convai/tools/{tool_id}/executions?page_size=100"),
        };
        let (_, page) = get(base.clone(), path).await;
        for e in page["executions"].as_array().unwrap() {
            recorded.insert(e["tool_request_id"].as_str().unwrap().to_owned());
        }
        if page["has_more"] != true {
            break;
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    let lost: Vec<&String> = acked_calls.iter().filter(|c| !recorded.contains(*c)).collect();
    assert!(lost.is_empty(), "{} acknowledged tool calls lost", lost.len());

    let id = invocation["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let summary = loop {
        let (_, page) =
            get(base.clone(), format!("/v1/convai/test-invocations?agent_id={agent_id}")).await;
        let summary = page["results"][0].clone();
        if summary["pending_count"] == 0 || Instant::now() > deadline {
            break summary;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(summary["id"], id);
    assert_eq!(
        (summary["passed_count"].as_i64(), summary["pending_count"].as_i64()),
        (Some(100), Some(0)),
        "{summary}"
    );
    let (_, detail) = get(base.clone(), format!("/v1/convai/test-invocations/{id}")).await;
    assert_eq!(detail["test_runs"].as_array().unwrap().len(), 100, "each run once");
}
dual_db!(kill_9_under_mixed_load_loses_nothing_acknowledged);
