//! The conversation engine driven directly, with a scripted fake LLM, real webhook servers and
//! the real store; results read back through the conversations and audit APIs.

use colloquy_core::ids::{AgentId, WorkspaceId};
use std::sync::Arc;
use std::time::Duration;

use colloquy::config::Config;
use colloquy_engine::llm::router::{ProviderConfig, ProviderKind, RouteConfig};
use colloquy_engine::{
    AgentSnapshot, Conversation, Ending, EngineDeps, Pick, Source, StartOptions, TurnEvent,
};
use colloquy_store::{DynStore, WorkspaceStore};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::fakes::{FakeLlm, Reply, Webhook, call, text};
use crate::helpers::{Backend, TestApp, dual_db};
use crate::tools::create_tool;

async fn engine(app: &TestApp, llm: &FakeLlm, tweak: impl FnOnce(&mut Config)) -> Arc<EngineDeps> {
    let mut config = app.config.clone();
    config.llm.providers.insert(
        "openai".into(),
        ProviderConfig::http(
            ProviderKind::Openai,
            Some(format!("{}/v1", llm.base)),
            Some("sk-fake".into()),
        ),
    );
    config.llm.retries = 1;
    config.llm.timeout_secs = 3;
    config.webhook_allow = "127.0.0.1".into();
    tweak(&mut config);
    let store: DynStore = Arc::new(app.db.store().await);
    let keyring = colloquy::secret_file::load_keyring(&config).unwrap();
    let (deps, _task) = colloquy::server::engine(&config, &store, &keyring).unwrap();
    deps
}

async fn workspace(app: &TestApp) -> WorkspaceId {
    app.db.store().await.get_workspace_by_name("default").await.unwrap().unwrap().id
}

async fn agent(app: &TestApp, config: Value) -> AgentId {
    let (s, b) = app
        .post(
            "/v1/convai/agents/create",
            &app.admin_key,
            &json!({"name": "Engine agent", "conversation_config": config}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["agent_id"].as_str().unwrap().into()
}

async fn start(
    deps: &Arc<EngineDeps>, app: &TestApp, agent_id: &AgentId, opts: StartOptions,
) -> Conversation {
    let ws = workspace(app).await;
    let snapshot =
        AgentSnapshot::load(deps, &ws, agent_id, Pick::Live { user_id: None }).await.unwrap();
    Conversation::start(deps.clone(), snapshot, Source::Live, opts).await.unwrap()
}

fn drain(rx: &mut mpsc::UnboundedReceiver<TurnEvent>) -> Vec<TurnEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

fn webhook_tool(name: &str, url: &str) -> Value {
    json!({"tool_config": {
        "type": "webhook", "name": name, "description": "Looks up the weather",
        "api_schema": {
            "url": url, "method": "POST",
            "path_params_schema": {"city": {"type": "string", "description": "City"}},
            "query_params_schema": {"properties": {"units": {"type": "string", "description": "Units"}}},
            "request_body_schema": {"type": "object", "properties": {
                "day": {"type": "string", "description": "Day"},
                "caller": {"type": "string", "description": "Caller", "dynamic_variable": "customer_name"}
            }}
        }
    }})
}

/// Start options for a conversation with Ada, whose name the agents' prompts use.
fn for_ada() -> StartOptions {
    let vars = json!({"customer_name": "Ada"}).as_object().unwrap().clone();
    StartOptions { dynamic_variables: vars, ..Default::default() }
}

async fn a_text_turn_streams_and_is_recorded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let llm = FakeLlm::openai_seq(vec![text("Hello Ada, how can I help?")]).await;
    let deps = engine(&app, &llm, |_| {}).await;
    let agent_id = agent(&app, json!({"agent": {
        "first_message": "Hi {{customer_name}}!",
        "prompt": {"prompt": "You help {{customer_name}} in conversation {{system__conversation_id}}.", "llm": "gpt-4o-mini", "temperature": 0.3}
    }})).await;
    let mut conv = start(&deps, &app, &agent_id, for_ada()).await;
    assert_eq!(conv.first_message().as_deref(), Some("Hi Ada!"));
    assert!(colloquy_core::ids::is_uuid(conv.id().as_str()));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let result = conv.user_message("hello", Some(&tx)).await.unwrap();
    assert_eq!(result.text, "Hello Ada, how can I help?");
    let deltas: Vec<TurnEvent> = drain(&mut rx);
    assert!(deltas.len() > 1, "streamed in pieces: {deltas:?}");
    assert!(deltas.iter().all(|e| matches!(e, TurnEvent::Delta(_))));

    let sent = &llm.requests()[0];
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["temperature"], 0.3);
    let system = sent["messages"][0]["content"].as_str().unwrap();
    assert_eq!(system, format!("You help Ada in conversation {}.", conv.id()));
    assert_eq!(sent["messages"][1], json!({"role": "assistant", "content": "Hi Ada!"}));
    assert_eq!(sent["messages"][2], json!({"role": "user", "content": "hello"}));
    assert_eq!(llm.headers()[0]["authorization"], "Bearer sk-fake");

    conv.end(Ending::Normal("end_call tool was called".into())).await.unwrap();
    let id = conv.id().to_owned();
    let (s, got) = app.get(&format!("/v1/convai/conversations/{id}"), &app.admin_key).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["status"], "done");
    assert_eq!(got["agent_id"], agent_id.as_str());
    assert_eq!(got["analysis"]["call_successful"], "success");
    let transcript = got["transcript"].as_array().unwrap();
    let roles: Vec<&str> = transcript.iter().map(|t| t["role"].as_str().unwrap()).collect();
    assert_eq!(roles, vec!["agent", "user", "agent"]);
    assert_eq!(transcript[2]["message"], "Hello Ada, how can I help?");
    let (_, list) =
        app.get(&format!("/v1/convai/conversations?agent_id={agent_id}"), &app.admin_key).await;
    assert_eq!(list["conversations"][0]["conversation_id"], id.as_str());
    assert_eq!(list["conversations"][0]["message_count"], 3);
    let (_, a) = app.get("/v1/convai/agents", &app.admin_key).await;
    assert!(
        a["agents"][0]["last_call_time_unix_secs"].as_i64().is_some(),
        "agent's last call maintained"
    );
}
dual_db!(a_text_turn_streams_and_is_recorded);

async fn webhook_tools_run_for_real_with_secrets_and_are_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let hook = Webhook::start(200, r#"{"forecast":"sunny"}"#, Duration::ZERO).await;
    let key = &app.admin_key;
    let planted = "WEBHOOK-SECRET-9d8c7b";
    let (_, secret) = app
        .post(
            "/v1/convai/secrets",
            key,
            &json!({"type": "new", "name": "weather key", "value": planted}),
        )
        .await;
    let mut tool = webhook_tool("get_weather", &format!("{}/weather/{{city}}", hook.base));
    tool["tool_config"]["api_schema"]["request_headers"] = json!({"Authorization": {"secret_id": secret["secret_id"]}, "X-Agent": "{{system__agent_id}}"});
    let tool_id = create_tool(&app, key, tool).await;
    let llm = FakeLlm::call_then(
        "get_weather",
        json!({"city": "São Paulo", "units": "metric", "day": "monday"}),
        "It will be sunny.",
    )
    .await;
    let deps = engine(&app, &llm, |_| {}).await;
    let agent_id = agent(
        &app,
        json!({"agent": {"prompt": {"prompt": "p", "llm": "gpt-4o", "tool_ids": [tool_id]}}}),
    )
    .await;
    let mut conv = start(&deps, &app, &agent_id, for_ada()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let result = conv.user_message("weather?", Some(&tx)).await.unwrap();
    assert_eq!(result.text, "It will be sunny.");

    // The tool offered to the LLM: path, query and body parameters, not the dynamic one.
    let offered = &llm.requests()[0]["tools"][0]["function"];
    assert_eq!(offered["name"], "get_weather");
    let props = offered["parameters"]["properties"].as_object().unwrap();
    assert!(props.contains_key("city") && props.contains_key("units") && props.contains_key("day"));
    assert!(!props.contains_key("caller"), "filled from a dynamic variable, not by the LLM");

    let got = hook.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].uri, "/weather/S%C3%A3o%20Paulo?units=metric");
    assert_eq!(got[0].headers["authorization"], planted, "secret resolved at call time");
    assert_eq!(got[0].headers["x-agent"], agent_id.as_str());
    assert_eq!(
        serde_json::from_str::<Value>(&got[0].body).unwrap(),
        json!({"day": "monday", "caller": "Ada"})
    );

    // The LLM saw the webhook's answer.
    let second = &llm.requests()[1]["messages"];
    let tool_msg = second.as_array().unwrap().iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool_msg["content"], r#"{"forecast":"sunny"}"#);

    let events = drain(&mut rx);
    let order: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            TurnEvent::ToolRequest { .. } => Some("request"),
            TurnEvent::ToolResponse { .. } => Some("response"),
            _ => None,
        })
        .collect();
    assert_eq!(order, vec!["request", "response"]);

    // Audited, redacted, readable both ways.
    let id = conv.id().to_owned();
    let (s, calls) = app.get(&format!("/api/tool-calls?executionId={id}"), key).await;
    assert_eq!(s, 200);
    assert_eq!(calls.as_array().unwrap().len(), 1);
    assert_eq!(calls[0]["toolName"], "get_weather");
    assert_eq!(calls[0]["status"], "success");
    assert_eq!(calls[0]["output"], json!({"forecast": "sunny"}));
    assert_eq!(calls[0]["input"]["city"], "São Paulo");
    let (_, execs) = app.get(&format!("/v1/convai/tools/{tool_id}/executions"), key).await;
    let e = &execs["executions"][0];
    assert_eq!(e["conversation_id"], id.as_str());
    assert_eq!(e["tool_call_details"]["headers"]["Authorization"], "[REDACTED]");
    assert_eq!(e["tool_call_details"]["path_params"]["city"], "São Paulo");
    assert_eq!(e["tool_call_details"]["query_params"]["units"], "metric");
    assert!(!execs.to_string().contains(planted));
    // A live conversation's turns are saved in the background (`colloquy-engine`'s
    // saver), so the stored transcript may trail the turn by a write.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let conv_json = loop {
        let (_, conv_json) = app.get(&format!("/v1/convai/conversations/{id}"), key).await;
        if !conv_json["transcript"][1]["tool_calls"].is_null()
            || std::time::Instant::now() > deadline
        {
            break conv_json;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!conv_json.to_string().contains(planted));
    let agent_turn = &conv_json["transcript"][1];
    assert_eq!(agent_turn["tool_calls"][0]["tool_name"], "get_weather");
    assert_eq!(agent_turn["tool_results"][0]["result_value"], r#"{"forecast":"sunny"}"#);
    let (_, t) = app.get(&format!("/v1/convai/tools/{tool_id}"), key).await;
    assert_eq!(t["usage_stats"]["total_calls"], 1);
    if let Some(path) = app
        .db
        .dir
        .path()
        .join("colloquy.db")
        .to_str()
        .filter(|_| backend == crate::helpers::Backend::Sqlite)
    {
        let bytes = std::fs::read(path).unwrap();
        assert!(!bytes.windows(planted.len()).any(|w| w == planted.as_bytes()));
    }
}
dual_db!(webhook_tools_run_for_real_with_secrets_and_are_audited);

async fn failures_are_visible_errors_timeouts_refusals_and_parallel_calls(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let broken = Webhook::start(502, "upstream down", Duration::ZERO).await;
    let slow = Webhook::start(200, "late", Duration::from_secs(10)).await;
    let mut slow_tool = webhook_tool("slow_tool", &format!("{}/slow/{{city}}", slow.base));
    slow_tool["tool_config"]["response_timeout_secs"] = json!(5);
    let t_broken =
        create_tool(&app, key, webhook_tool("broken_tool", &format!("{}/b/{{city}}", broken.base)))
            .await;
    let t_slow = create_tool(&app, key, slow_tool).await;
    let t_internal =
        create_tool(&app, key, webhook_tool("internal_tool", "http://10.255.255.1/x/{city}")).await;
    let llm = FakeLlm::openai(|req: &Value| {
        let msgs = req["messages"].as_array().unwrap();
        if msgs.last().unwrap()["role"] == "tool" {
            text("Some tools failed.")
        } else {
            Reply::Calls(vec![
                ("broken_tool".into(), json!({"city": "x"})),
                ("slow_tool".into(), json!({"city": "y"})),
                ("internal_tool".into(), json!({"city": "z"})),
            ])
        }
    })
    .await;
    let deps = engine(&app, &llm, |_| {}).await;
    let agent_id = agent(
        &app,
        json!({"agent": {"prompt": {"llm": "gpt-4o", "tool_ids": [t_broken, t_slow, t_internal]}}}),
    )
    .await;
    let mut conv = start(&deps, &app, &agent_id, StartOptions::default()).await;
    let started = std::time::Instant::now();
    let result = conv.user_message("go", None).await.unwrap();
    assert_eq!(result.text, "Some tools failed.");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "parallel calls, bounded by the 5 s timeout"
    );
    let tool_msgs: Vec<Value> = llm.requests()[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .cloned()
        .collect();
    assert_eq!(tool_msgs.len(), 3, "every result given to the LLM");
    assert!(tool_msgs[0]["content"].as_str().unwrap().contains("502"));

    let (_, calls) = app.get(&format!("/api/tool-calls?executionId={}", conv.id()), key).await;
    let by_name =
        |n: &str| calls.as_array().unwrap().iter().find(|c| c["toolName"] == n).unwrap().clone();
    assert_eq!(by_name("broken_tool")["status"], "error");
    assert_eq!(by_name("slow_tool")["status"], "timeout");
    assert_eq!(by_name("internal_tool")["status"], "error");
    assert!(
        by_name("internal_tool")["output"].as_str().unwrap().contains("COLLOQUY_WEBHOOK_ALLOW"),
        "egress guard refused it"
    );
    let (_, execs) =
        app.get(&format!("/v1/convai/tools/{t_broken}/executions?is_error=true"), key).await;
    assert_eq!(execs["executions"][0]["error_type"], "external_server");
    assert_eq!(execs["executions"].as_array().unwrap().len(), 1, "recorded exactly once");
}
dual_db!(failures_are_visible_errors_timeouts_refusals_and_parallel_calls);

async fn mocks_system_and_client_tools(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let hook = Webhook::start(200, "real", Duration::ZERO).await;
    let mut tool = webhook_tool("lookup", &format!("{}/l/{{city}}", hook.base));
    tool["response_mocks"] = json!([
        {"mock_result": "mocked paris", "parameter_conditions": [{"path": "city", "eval": {"type": "exact", "expected_value": "Paris"}}]}
    ]);
    let tool_id = create_tool(&app, key, tool).await;
    let client_tool = create_tool(&app, key, json!({"tool_config": {"type": "client", "name": "show_map", "description": "d", "expects_response": true}})).await;
    let llm = FakeLlm::openai(|req: &Value| {
        let msgs = req["messages"].as_array().unwrap();
        let last = msgs.last().unwrap();
        if last["role"] == "tool" {
            return text("done");
        }
        match last["content"].as_str().unwrap_or_default() {
            "paris" => call("lookup", json!({"city": "Paris"})),
            "rome" => call("lookup", json!({"city": "Rome"})),
            "map" => call("show_map", json!({})),
            _ => call("end_call", json!({"reason": "bye"})),
        }
    })
    .await;
    let deps = engine(&app, &llm, |_| {}).await;
    let agent_id = agent(&app, json!({"agent": {"prompt": {"llm": "gpt-4o", "tool_ids": [tool_id, client_tool],
        "built_in_tools": {"end_call": {"name": "end_call", "description": "Ends the call", "params": {"system_tool_type": "end_call"}}}}}})).await;

    let mocks: colloquy_engine::tools::MockSettings = serde_json::from_value(
        json!({"mocking_strategy": "all", "fallback_strategy": "raise_error"}),
    )
    .unwrap();
    let mut conv =
        start(&deps, &app, &agent_id, StartOptions { mocks, ..Default::default() }).await;
    conv.user_message("paris", None).await.unwrap();
    conv.user_message("rome", None).await.unwrap();
    conv.user_message("map", None).await.unwrap();
    let bye = conv.user_message("bye", None).await.unwrap();
    assert!(bye.end_call, "end_call ends the conversation");
    assert!(hook.received().is_empty(), "mocked tools never reach the webhook");
    let (_, calls) = app.get(&format!("/api/tool-calls?executionId={}", conv.id()), key).await;
    let calls = calls.as_array().unwrap();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[0]["output"], "mocked paris");
    assert_eq!(calls[1]["status"], "error", "no mock matched and the fallback raises");
    assert_eq!(calls[2]["toolName"], "show_map");
    assert_eq!(calls[2]["status"], "error", "no client connected");
    assert_eq!(calls[3]["toolName"], "end_call");
    assert_eq!(calls[3]["status"], "success");

    // Without mocking the real webhook answers.
    let mut real = start(&deps, &app, &agent_id, StartOptions::default()).await;
    real.user_message("paris", None).await.unwrap();
    assert_eq!(hook.received().len(), 1);
}
dual_db!(mocks_system_and_client_tools);

async fn llm_failures_become_typed_errors_and_the_conversation_is_kept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let llm = FakeLlm::openai(|req: &Value| match req["model"].as_str().unwrap() {
        "broken" => Reply::Status(500),
        "slow" => Reply::After(Duration::from_secs(10), Box::new(text("late"))),
        // The stream stops halfway: no finish reason, no [DONE].
        "cut" => Reply::Raw(vec![
            r#"data: {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}"#.into(),
            r#"data: {"choices": [{"index": 0, "delta": {"content": "Half an ans"}}]}"#.into(),
        ]),
        "garbled" => {
            Reply::Raw(vec!["data: {\"choices\": [{\"delta\": ".into(), "data: [DONE]".into()])
        }
        _ => text("fine"),
    })
    .await;
    let deps = engine(&app, &llm, |c| c.llm.timeout_secs = 1).await;
    for (model, error_type) in [
        ("broken", "llm_error"),
        ("slow", "llm_timeout"),
        ("cut", "llm_error"),
        ("garbled", "llm_error"),
    ] {
        let agent_id = agent(&app, json!({"agent": {"prompt": {"llm": model}}})).await;
        let mut conv = start(&deps, &app, &agent_id, StartOptions::default()).await;
        let err = conv.user_message("hi", None).await.unwrap_err();
        assert_eq!(err.error_type(), error_type, "{err}");
        conv.end(Ending::Error(err.to_string())).await.unwrap();
        let (_, got) =
            app.get(&format!("/v1/convai/conversations/{}", conv.id()), &app.admin_key).await;
        assert_eq!(got["status"], "failed", "{got}");
        assert_eq!(got["analysis"]["call_successful"], "failure");
        assert_eq!(got["metadata"]["error"]["reason"], error_type);
    }
    let broken_calls = llm.requests().iter().filter(|r| r["model"] == "broken").count();
    assert_eq!(broken_calls, 2, "one retry after a 5xx");

    // A model that no route or default serves.
    let lonely = engine(&app, &llm, |c| {
        c.llm.default_provider = "nobody".into();
        c.llm.providers.insert(
            "nobody".into(),
            ProviderConfig::http(ProviderKind::Openai, Some("http://127.0.0.1:9/v1".into()), None),
        );
    })
    .await;
    let agent_id = agent(&app, json!({"agent": {"prompt": {"llm": "gpt-4o"}}})).await;
    let mut conv = start(&lonely, &app, &agent_id, StartOptions::default()).await;
    assert_eq!(conv.user_message("hi", None).await.unwrap_err().error_type(), "llm_error");
}
dual_db!(llm_failures_become_typed_errors_and_the_conversation_is_kept);

async fn anthropic_routes_and_custom_llm(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let claude = FakeLlm::anthropic(|req: &Value| {
        let msgs = req["messages"].as_array().unwrap();
        let last = &msgs.last().unwrap()["content"][0];
        if last["type"] == "tool_result" {
            text("Claude says done.")
        } else {
            call("end_call", json!({}))
        }
    })
    .await;
    let openai = FakeLlm::openai_seq(vec![text("unused")]).await;
    let base = claude.base.clone();
    let deps = engine(&app, &openai, move |c| {
        c.llm.providers.insert(
            "claude".into(),
            ProviderConfig::http(ProviderKind::Anthropic, Some(base), Some("ak-fake".into())),
        );
        c.llm.routes.push(RouteConfig {
            pattern: "claude-*".into(),
            provider: "claude".into(),
            model: Some("claude-rewritten".into()),
        });
    })
    .await;
    let agent_id = agent(&app, json!({"agent": {"prompt": {"prompt": "Be Claude.", "llm": "claude-sonnet-4-5", "max_tokens": 200,
        "built_in_tools": {"end_call": {"name": "end_call", "description": "Ends", "params": {"system_tool_type": "end_call"}}}}}})).await;
    let mut conv = start(&deps, &app, &agent_id, StartOptions::default()).await;
    let r = conv.user_message("hi", None).await.unwrap();
    assert!(r.end_call);
    let first = &claude.requests()[0];
    assert_eq!(first["model"], "claude-rewritten");
    assert_eq!(first["system"], "Be Claude.");
    assert_eq!(first["max_tokens"], 200);
    assert_eq!(first["tools"][0]["name"], "end_call");
    assert_eq!(claude.headers()[0]["x-api-key"], "ak-fake");
    assert!(openai.requests().is_empty());

    // custom_llm: the agent's own endpoint, its key from a workspace secret.
    let custom = FakeLlm::openai_seq(vec![text("custom hello")]).await;
    let (_, secret) = app
        .post(
            "/v1/convai/secrets",
            key,
            &json!({"type": "new", "name": "llm key", "value": "custom-key-123"}),
        )
        .await;
    let agent_id = agent(&app, json!({"agent": {"prompt": {"llm": "custom-llm", "custom_llm": {
        "url": format!("{}/v1", custom.base), "model_id": "my-model", "api_key": {"secret_id": secret["secret_id"]}
    }}}})).await;
    let mut conv = start(&deps, &app, &agent_id, StartOptions::default()).await;
    assert_eq!(conv.user_message("hi", None).await.unwrap().text, "custom hello");
    assert_eq!(custom.requests()[0]["model"], "my-model");
    assert_eq!(custom.headers()[0]["authorization"], "Bearer custom-key-123");
}
dual_db!(anthropic_routes_and_custom_llm);

/// 200 concurrent conversations, each with a tool call: every call recorded exactly once.
async fn two_hundred_concurrent_conversations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let hook = Webhook::start(200, r#"{"ok":true}"#, Duration::from_millis(5)).await;
    let tool_id =
        create_tool(&app, key, webhook_tool("lookup", &format!("{}/c/{{city}}", hook.base))).await;
    let llm = FakeLlm::call_then("lookup", json!({"city": "c"}), "ok").await;
    let deps = engine(&app, &llm, |_| {}).await;
    let agent_id =
        agent(&app, json!({"agent": {"prompt": {"llm": "gpt-4o", "tool_ids": [tool_id]}}})).await;
    let ws = workspace(&app).await;
    let snapshot =
        AgentSnapshot::load(&deps, &ws, &agent_id, Pick::Live { user_id: None }).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let deps = deps.clone();
        let snapshot = snapshot.clone();
        tasks.push(tokio::spawn(async move {
            let mut conv =
                Conversation::start(deps, snapshot, Source::Live, StartOptions::default())
                    .await
                    .unwrap();
            conv.user_message("go", None).await.unwrap();
            conv.end(Ending::Normal("done".into())).await.unwrap();
            conv.id().to_owned()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    assert_eq!(hook.received().len(), 200);
    for id in ids.iter().take(20) {
        let (_, calls) = app.get(&format!("/api/tool-calls?executionId={id}"), key).await;
        assert_eq!(calls.as_array().unwrap().len(), 1, "{id}");
    }
    let (_, t) = app.get(&format!("/v1/convai/tools/{tool_id}"), key).await;
    assert_eq!(t["usage_stats"]["total_calls"], 200);
    let (_, list) =
        app.get(&format!("/v1/convai/conversations?agent_id={agent_id}&page_size=100"), key).await;
    assert_eq!(list["has_more"], true);
}
dual_db!(two_hundred_concurrent_conversations);

async fn delete_and_feedback(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let hook = Webhook::start(200, r#"{"ok":true}"#, Duration::ZERO).await;
    let tool_id =
        create_tool(&app, key, webhook_tool("lookup", &format!("{}/d/{{city}}", hook.base))).await;
    let llm = FakeLlm::call_then("lookup", json!({"city": "c"}), "ok").await;
    let deps = engine(&app, &llm, |_| {}).await;
    let agent_id =
        agent(&app, json!({"agent": {"prompt": {"llm": "gpt-4o", "tool_ids": [tool_id]}}})).await;
    let mut conv = start(&deps, &app, &agent_id, StartOptions::default()).await;
    conv.user_message("go", None).await.unwrap();
    conv.end(Ending::Normal("done".into())).await.unwrap();
    let id = conv.id().to_owned();

    let (s, _) = app
        .post(&format!("/v1/convai/conversations/{id}/feedback"), key, &json!({"feedback": "like"}))
        .await;
    assert_eq!(s, 200);
    let (_, got) = app.get(&format!("/v1/convai/conversations/{id}"), key).await;
    assert_eq!(got["metadata"]["feedback"]["overall_score"], "like");
    assert_eq!(
        app.post(
            &format!("/v1/convai/conversations/{id}/feedback"),
            key,
            &json!({"feedback": "meh"})
        )
        .await
        .0,
        422
    );

    let theirs = app.key("globex", "g@globex.test", "admin").await;
    assert_eq!(app.get(&format!("/v1/convai/conversations/{id}"), &theirs).await.0, 404);
    assert_eq!(
        app.send(Method::DELETE, &format!("/v1/convai/conversations/{id}"), &theirs, &json!({}))
            .await
            .0,
        404
    );

    let (s, _) =
        app.send(Method::DELETE, &format!("/v1/convai/conversations/{id}"), key, &json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(app.get(&format!("/v1/convai/conversations/{id}"), key).await.0, 404);
    assert_eq!(app.get(&format!("/api/tool-calls?executionId={id}"), key).await.0, 404);
    let (_, t) = app.get(&format!("/v1/convai/tools/{tool_id}"), key).await;
    assert_eq!(t["usage_stats"]["total_calls"], 1, "counts survive the deletion");
    let (_, execs) = app.get(&format!("/v1/convai/tools/{tool_id}/executions"), key).await;
    assert_eq!(execs["executions"][0]["request_payload"], Value::Null, "payloads blanked");
}
dual_db!(delete_and_feedback);

/// A failing or slow model gives way to the agent's backups in order, and the transcript says
/// which model answered; a 4xx does not cascade (every model would refuse alike); when every
/// model fails the turn fails with `cascade_brain_error`; with backups disabled the agent's own
/// model's error stands.
async fn backup_llms_take_over_from_a_failing_model(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let llm = FakeLlm::openai(|req: &Value| match req["model"].as_str().unwrap() {
        m if m.starts_with("broken") => Reply::Status(500),
        "slow" => Reply::After(Duration::from_secs(10), Box::new(text("late"))),
        "refusing" => Reply::Status(400),
        model => text(&format!("{model} here")),
    })
    .await;
    let deps = engine(&app, &llm, |c| c.llm.backup_models = vec!["spare".into()]).await;
    let order = |models: &[&str]| json!({"preference": "override", "order": models});
    let cases = [
        ("broken", order(&["other"]), Ok("other")),
        ("slow", order(&["other"]), Ok("other")),
        ("broken", json!({"preference": "default"}), Ok("spare")),
        ("broken", json!({"preference": "disabled"}), Err("llm_error")),
        ("broken", order(&["broken-too"]), Err("cascade_brain_error")),
        ("refusing", order(&["other"]), Err("llm_error")),
    ];
    for (model, backups, expected) in cases {
        let prompt =
            json!({"llm": model, "backup_llm_config": backups, "cascade_timeout_seconds": 2});
        let agent_id = agent(&app, json!({"agent": {"prompt": prompt}})).await;
        let mut conv = start(&deps, &app, &agent_id, StartOptions::default()).await;
        let started = std::time::Instant::now();
        let said = conv.user_message("hi", None).await;
        match expected {
            Ok(backup) => {
                let said = said.unwrap_or_else(|e| panic!("{model} → {backup}: {e}"));
                assert_eq!(said.text, format!("{backup} here"));
                assert!(started.elapsed() < Duration::from_secs(8), "{model}: no waiting it out");
                conv.end(Ending::Normal("done".into())).await.unwrap();
                let path = format!("/v1/convai/conversations/{}", conv.id());
                let (_, got) = app.get(&path, &app.admin_key).await;
                let answered = got["transcript"].as_array().unwrap().last().unwrap().clone();
                assert_eq!(answered["producing_llm"], backup, "{got}");
            }
            Err(error_type) => {
                let err = said.unwrap_err();
                assert_eq!(err.error_type(), error_type, "{model}: {err}");
                conv.end(Ending::Error(err.to_string())).await.unwrap();
            }
        }
    }
    let refused = llm.requests().iter().filter(|r| r["model"] == "refusing").count();
    assert_eq!(refused, 1, "a 4xx is not retried");
}
dual_db!(backup_llms_take_over_from_a_failing_model);

/// A tool's `assignments` set dynamic variables from its response (typed, by dot-path), the
/// next tool's parameters read them, a `sanitize`d value is in neither what the LLM sees nor
/// the transcript nor the audit log, and the transcript lists each update.
async fn tool_assignments_set_variables_the_next_call_reads(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let orders = Webhook::start(
        200,
        r#"{"order": {"id": 4711, "status": "shipped"}, "token": "t0k3n-secret"}"#,
        Duration::ZERO,
    )
    .await;
    let tracking = Webhook::start(200, r#"{"eta": "tomorrow"}"#, Duration::ZERO).await;
    let lookup = create_tool(
        &app,
        key,
        json!({"tool_config": {
            "type": "webhook", "name": "lookup_order", "description": "Finds the order",
            "api_schema": {"url": format!("{}/orders", orders.base), "method": "GET"},
            "assignments": [
                {"dynamic_variable": "order_id", "value_path": "order.id"},
                {"dynamic_variable": "session_token", "value_path": "token", "sanitize": true},
            ],
        }}),
    )
    .await;
    let track = create_tool(&app, key, json!({"tool_config": {
        "type": "webhook", "name": "track", "description": "Tracks the order",
        "api_schema": {"url": format!("{}/track", tracking.base), "method": "POST",
            "request_body_schema": {"type": "object", "properties": {
                "order": {"type": "integer", "description": "Order", "dynamic_variable": "order_id"},
            }}},
    }}))
    .await;
    let llm = FakeLlm::openai(|req: &Value| {
        let results =
            req["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").count();
        match results {
            0 => call("lookup_order", json!({})),
            1 => call("track", json!({})),
            _ => text("It ships tomorrow."),
        }
    })
    .await;
    let deps = engine(&app, &llm, |_| {}).await;
    let prompt = json!({"prompt": "p", "llm": "gpt-4o", "tool_ids": [lookup, track]});
    let agent_id = agent(&app, json!({"agent": {"prompt": prompt}})).await;
    let mut conv = start(&deps, &app, &agent_id, StartOptions::default()).await;
    let said = conv.user_message("where is my order?", None).await.unwrap();
    assert_eq!(said.text, "It ships tomorrow.");

    let body: Value = serde_json::from_str(&tracking.received()[0].body).unwrap();
    assert_eq!(body, json!({"order": 4711}), "the assigned variable, typed, in the next call");
    let told = &llm.requests()[1]["messages"];
    let result = told.as_array().unwrap().iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(result["content"], r#"{"order":{"id":4711,"status":"shipped"}}"#, "sanitized");
    conv.end(Ending::Normal("done".into())).await.unwrap();

    let id = conv.id().to_string();
    let (_, got) = app.get(&format!("/v1/convai/conversations/{id}"), key).await;
    assert!(!got.to_string().contains("t0k3n-secret"), "not in the transcript: {got}");
    let updates: Vec<Value> = got["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["tool_results"].as_array().cloned().unwrap_or_default())
        .flat_map(|r| r["dynamic_variable_updates"].as_array().cloned().unwrap_or_default())
        .collect();
    let named: Vec<(&str, &str)> = updates
        .iter()
        .map(|u| (u["variable_name"].as_str().unwrap(), u["new_value"].as_str().unwrap()))
        .collect();
    assert_eq!(named, [("order_id", "4711")], "a sanitized value is listed nowhere");
    assert!(updates.iter().all(|u| u["tool_name"] == "lookup_order" && u["old_value"].is_null()));
    let (_, calls) = app.get(&format!("/api/tool-calls?executionId={id}"), key).await;
    assert!(!calls.to_string().contains("t0k3n-secret"), "not in the audit log: {calls}");
}
dual_db!(tool_assignments_set_variables_the_next_call_reads);
