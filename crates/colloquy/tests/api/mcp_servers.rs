//! MCP servers: the registry API, and MCP tools in conversations against real MCP servers —
//! `mcp_server.py`, built with the official Python SDK, over SSE, streamable HTTP and stdio
//! (stdio declared by the operator in the configuration, as the API may never ask for one).

use std::path::PathBuf;
use std::time::Duration;

use colloquy::config::Config;
use colloquy_engine::mcp::StdioServer;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::fakes::with_llm;
use crate::fakes::{FakeLlm, Reply, call, is_analysis, text};
use crate::helpers::{Backend, TestApp, dual_db};
use crate::tools::create_tool;
use crate::ws::{self, Socket, next, next_of, say, send, turn, until};

/// The Python interpreter that has the `mcp` package: `COLLOQUY_TEST_MCP_PYTHON`, or the venv
/// `scripts/test` installs. Missing, the tests fail: they never skip.
fn python() -> String {
    if let Ok(p) = std::env::var("COLLOQUY_TEST_MCP_PYTHON") {
        return p;
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/mcp-venv/bin/python");
    assert!(
        venv.exists(),
        "the MCP tests need Python with the `mcp` package: run scripts/test (which installs it \
         into target/mcp-venv) or set COLLOQUY_TEST_MCP_PYTHON"
    );
    venv.to_string_lossy().into_owned()
}

fn script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api/mcp_server.py")
        .to_string_lossy()
        .into_owned()
}

/// An MCP server process over HTTP, stopped when dropped.
pub(crate) struct McpProcess {
    _child: tokio::process::Child,
    pub(crate) url: String,
}

impl McpProcess {
    pub(crate) async fn start(transport: Transport) -> McpProcess {
        let (mode, path) = match transport {
            Transport::Sse => ("sse", "/sse"),
            Transport::Streamable => ("streamable-http", "/mcp"),
            Transport::Stdio => unreachable!("stdio servers are started by the server"),
        };
        let mut child = tokio::process::Command::new(python())
            .args([script().as_str(), mode])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the MCP test server starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::io::BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("the MCP test server prints its port")
        .unwrap();
        let port: u16 = line.trim().parse().expect("a port");
        McpProcess { _child: child, url: format!("http://127.0.0.1:{port}{path}") }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Sse,
    Streamable,
    Stdio,
}

const TRANSPORTS: [Transport; 3] = [Transport::Sse, Transport::Streamable, Transport::Stdio];

/// Declares the test server as the stdio server `testsrv`.
fn declare_stdio(c: &mut Config) {
    c.mcp.stdio.insert(
        "testsrv".into(),
        StdioServer {
            command: python(),
            args: vec![script(), "stdio".into()],
            ..Default::default()
        },
    );
    c.webhook_allow = "127.0.0.1".into();
}

/// Registers a server of `transport` (starting a process for HTTP ones, kept in `procs`).
async fn register(
    app: &TestApp, transport: Transport, procs: &mut Vec<McpProcess>, extra: Value,
) -> String {
    let (url, kind) = match transport {
        Transport::Stdio => ("stdio:testsrv".to_owned(), "SSE"),
        http => {
            let p = McpProcess::start(http).await;
            let url = p.url.clone();
            procs.push(p);
            let kind = if http == Transport::Sse { "SSE" } else { "STREAMABLE_HTTP" };
            (url, kind)
        }
    };
    let mut config = json!({"name": format!("test-{transport:?}"), "url": url, "transport": kind});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let (s, b) =
        app.post("/v1/convai/mcp-servers", &app.admin_key, &json!({ "config": config })).await;
    assert_eq!(s, 200, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

async fn agent_with(app: &TestApp, servers: &[&str]) -> String {
    let (s, b) = app
        .post(
            "/v1/convai/agents/create",
            &app.admin_key,
            &json!({"conversation_config": {"agent": {"first_message": "", "prompt": {"prompt": "Use your tools.", "llm": "gpt-4o", "mcp_server_ids": servers}}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["agent_id"].as_str().unwrap().to_owned()
}

/// The agent's LLM: each user message names the MCP call to make; a tool result is read back.
async fn tool_llm() -> FakeLlm {
    FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        if last["role"] == "tool" {
            return text(&format!("Tool said: {}", last["content"].as_str().unwrap()));
        }
        let said = last["content"].as_str().unwrap_or_default();
        match said {
            "add" => call("add", json!({"a": 2, "b": 3})),
            "fail" => call("fail", json!({"reason": "bad input"})),
            "hang" => call("hang", json!({})),
            "die" => call("die", json!({})),
            "echo" => call("echo", json!({"text": "hi"})),
            "flood" => call("echo", json!({"text": "x".repeat(20_000)})),
            "both" => Reply::Calls(vec![
                ("add".into(), json!({"a": 1, "b": 1})),
                ("echo".into(), json!({"text": "both"})),
            ]),
            "header" => call("header", json!({"name": "X-Token"})),
            "sum" => call("get-sum", json!({"a": 2, "b": 40})),
            other => text(&format!("You said {other}")),
        }
    })
    .await
}

/// Opens a conversation and returns the socket, its id and the events before the first turn.
async fn open(app: &TestApp, agent: &str) -> (Socket, String, Vec<Value>) {
    let (mut socket, id) =
        ws::open(&ws::url(&app.base, &format!("agent_id={agent}")), Default::default()).await;
    let status = next(&mut socket).await;
    (socket, id, vec![status])
}

fn mcp_states(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "mcp_tool_call")
        .map(|e| e["mcp_tool_call"]["state"].as_str().unwrap().to_owned())
        .collect()
}

fn answer(events: &[Value]) -> String {
    events.last().unwrap()["agent_response_event"]["agent_response"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn tool_calls(app: &TestApp, conversation: &str) -> Vec<Value> {
    let (s, b) =
        app.get(&format!("/api/tool-calls?executionId={conversation}"), &app.admin_key).await;
    assert_eq!(s, 200, "{b}");
    b.as_array().unwrap().clone()
}

async fn the_registry_validates_and_round_trips_servers(backend: Backend) {
    let app = TestApp::spawn_with(backend, declare_stdio).await;
    let key = &app.admin_key;
    let servers = "/v1/convai/mcp-servers";

    let (s, created) = app
        .post(
            servers,
            key,
            &json!({"config": {"name": "files", "url": "https://mcp.example.com/sse",
            "request_headers": {"X-Plain": "v"}}}),
        )
        .await;
    assert_eq!(s, 200, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("mcp_"));
    let config = &created["config"];
    assert_eq!(config["transport"], "SSE", "the reference's default");
    assert_eq!(config["approval_policy"], "require_approval_all");
    assert_eq!(config["response_timeout_secs"], 30);
    assert_eq!(config["tool_approval_hashes"], json!([]));
    assert_eq!(created["access_info"]["is_creator"], true);
    assert_eq!(created["dependent_agents"], json!([]));
    assert!(created["metadata"]["created_at"].is_i64());

    let (s, got) = app.get(&format!("{servers}/{id}"), key).await;
    assert_eq!((s, &got), (200, &created));
    let (_, list) = app.get(servers, key).await;
    assert_eq!(list["mcp_servers"].as_array().unwrap().len(), 1);

    let (s, patched) = app
        .send(Method::PATCH, &format!("{servers}/{id}"), key,
            &json!({"approval_policy": "auto_approve_all", "response_timeout_secs": 12, "request_headers": null}))
        .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["config"]["approval_policy"], "auto_approve_all");
    assert_eq!(patched["config"]["response_timeout_secs"], 12);
    assert_eq!(
        patched["config"]["request_headers"],
        json!({"X-Plain": "v"}),
        "null leaves a field"
    );
    let (s, b) = app
        .send(Method::PATCH, &format!("{servers}/{id}"), key, &json!({"response_timeout_secs": 1}))
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "response_timeout_secs"]));

    let (s, b) = app
        .send(
            Method::PATCH,
            &format!("{servers}/{id}/approval-policy"),
            key,
            &json!({"approval_policy": "require_approval_per_tool"}),
        )
        .await;
    assert_eq!(
        (s, b["config"]["approval_policy"].as_str()),
        (200, Some("require_approval_per_tool"))
    );
    let (s, _) = app
        .send(
            Method::PATCH,
            &format!("{servers}/{id}/approval-policy"),
            key,
            &json!({"approval_policy": "sometimes"}),
        )
        .await;
    assert_eq!(s, 422);

    let (s, b) = app
        .post(&format!("{servers}/{id}/tool-approvals"), key,
            &json!({"tool_name": "add", "tool_description": "Adds", "input_schema": {"type": "object"}, "approval_policy": "auto_approved"}))
        .await;
    assert_eq!(s, 200, "{b}");
    let approvals = b["config"]["tool_approval_hashes"].as_array().unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0]["tool_hash"].as_str().unwrap().len(), 64);
    let (s, b) = app
        .send(Method::DELETE, &format!("{servers}/{id}/tool-approvals/add"), key, &Value::Null)
        .await;
    assert_eq!((s, b["config"]["tool_approval_hashes"].clone()), (200, json!([])));
    let (s, _) = app
        .send(Method::DELETE, &format!("{servers}/{id}/tool-approvals/add"), key, &Value::Null)
        .await;
    assert_eq!(s, 404);

    let configs = format!("{servers}/{id}/tool-configs");
    let (s, b) = app
        .post(
            &format!("{configs}?environment=production"),
            key,
            &json!({"tool_name": "add", "response_timeout_secs": 10}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["config"]["tool_config_overrides"][0]["tool_name"], "add");
    let (s, _) = app.post(&configs, key, &json!({"tool_name": "add"})).await;
    assert_eq!(s, 409, "one override per tool");
    let (s, b) = app
        .send(
            Method::PATCH,
            &format!("{configs}/add"),
            key,
            &json!({"response_timeout_secs": 20,
            "input_overrides": {"a": {"source": "constant", "constant_value": 7}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, one) = app.get(&format!("{configs}/add"), key).await;
    assert_eq!(s, 200);
    assert_eq!(one["response_timeout_secs"], 20);
    assert_eq!(one["input_overrides"]["a"]["constant_value"], 7);
    let (s, _) = app.get(&format!("{configs}/nope"), key).await;
    assert_eq!(s, 404);
    let (s, _) = app.send(Method::PATCH, &format!("{configs}/nope"), key, &json!({})).await;
    assert_eq!(s, 404);
    let (s, _) = app.send(Method::DELETE, &format!("{configs}/add"), key, &Value::Null).await;
    assert_eq!(s, 200);
    let (s, _) = app.get(&format!("{configs}/add"), key).await;
    assert_eq!(s, 404);

    // Bad input is refused where it is, and writes nothing.
    let (_, secret) = app
        .post("/v1/convai/secrets", key, &json!({"type": "new", "name": "tok", "value": "s3cr3t"}))
        .await;
    let secret_id = secret["secret_id"].as_str().unwrap();
    let bad = [
        (json!({"name": "x", "url": "ftp://host"}), vec!["body", "config", "url"]),
        (json!({"name": "x", "url": "http://mcp.example.com/sse"}), vec!["body", "config", "url"]),
        (json!({"name": "x", "url": "stdio:undeclared"}), vec!["body", "config", "url"]),
        (
            json!({"name": "x", "url": "https://h", "transport": "STDIO"}),
            vec!["body", "config", "transport"],
        ),
        (
            json!({"name": "x", "url": "https://h", "secret_token": {"secret_id": "nope"}}),
            vec!["body", "config", "secret_token", "secret_id"],
        ),
        (
            json!({"name": "x", "url": "https://h", "command": "touch"}),
            vec!["body", "config", "command"],
        ),
        (json!({"url": "https://h"}), vec!["body", "config", "name"]),
    ];
    for (config, loc) in bad {
        let (s, b) = app.post(servers, key, &json!({ "config": config })).await;
        assert_eq!(s, 422, "{config}: {b}");
        assert_eq!(b["detail"][0]["loc"], json!(loc), "{config}: {b}");
    }
    let (_, list) = app.get(servers, key).await;
    assert_eq!(list["mcp_servers"].as_array().unwrap().len(), 1, "nothing was written");

    // Secrets used by a server are in its used_by and cannot be deleted.
    let (s, with_secret) = app
        .post(servers, key, &json!({"config": {"name": "auth", "url": "https://h/mcp", "transport": "STREAMABLE_HTTP",
            "secret_token": {"secret_id": secret_id}, "request_headers": {"X-Key": {"secret_id": secret_id}}}}))
        .await;
    assert_eq!(s, 200, "{with_secret}");
    let (_, listed) = app.get("/v1/convai/secrets", key).await;
    let used = &listed["secrets"][0]["used_by"]["mcp_servers"];
    assert_eq!(used[0]["id"], with_secret["id"], "{listed}");
    let (s, _) = app
        .send(Method::DELETE, &format!("/v1/convai/secrets/{secret_id}"), key, &Value::Null)
        .await;
    assert_eq!(s, 409);

    // Agents attach servers that exist; in-use servers cannot be deleted.
    let (s, b) = app
        .post("/v1/convai/agents/create", key,
            &json!({"conversation_config": {"agent": {"prompt": {"mcp_server_ids": [id, "mcp_ghost"]}}}}))
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        b["detail"][0]["loc"],
        json!(["body", "conversation_config", "agent", "prompt", "mcp_server_ids", 1])
    );
    let agent = agent_with(&app, &[&id]).await;
    let (_, got) = app.get(&format!("{servers}/{id}"), key).await;
    assert_eq!(got["dependent_agents"][0]["id"], agent.as_str());
    let (s, b) = app.send(Method::DELETE, &format!("{servers}/{id}"), key, &Value::Null).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["detail"]["status"], "mcp_server_in_use");

    // `type: "mcp"` tools must name a server of the registry.
    let tool = |server: &str| {
        json!({"tool_config": {"type": "mcp", "name": "add_numbers", "description": "Adds",
        "integration_type": "mcp_server", "mcp_tool_name": "add", "mcp_tool_description": "Adds",
        "mcp_server_id": server, "mcp_server_name": "files"}})
    };
    let (s, b) = app.post("/v1/convai/tools", key, &tool("mcp_ghost")).await;
    assert_eq!(s, 422, "{b}");
    create_tool(&app, key, tool(&id)).await;

    // Another workspace sees none of it.
    let other = app.key("other", "o@other.test", "admin").await;
    let (s, _) = app.get(&format!("{servers}/{id}"), &other).await;
    assert_eq!(s, 404);
    let (_, theirs) = app.get(servers, &other).await;
    assert_eq!(theirs["mcp_servers"], json!([]));
    let (s, _) = app
        .send(
            Method::PATCH,
            &format!("{servers}/{id}"),
            &other,
            &json!({"response_timeout_secs": 9}),
        )
        .await;
    assert_eq!(s, 404);
    let viewer = app.key("default", "v@default.test", "viewer").await;
    let (s, _) =
        app.post(servers, &viewer, &json!({"config": {"name": "v", "url": "https://h"}})).await;
    assert_eq!(s, 403);

    let (s, _) =
        app.send(Method::DELETE, &format!("/v1/convai/agents/{agent}"), key, &Value::Null).await;
    assert!(s == 200 || s == 204);
    let (s, unused) =
        app.post(servers, key, &json!({"config": {"name": "gone", "url": "https://h"}})).await;
    assert_eq!(s, 200);
    let gone = unused["id"].as_str().unwrap();
    let (s, _) = app.send(Method::DELETE, &format!("{servers}/{gone}"), key, &Value::Null).await;
    assert_eq!(s, 200);
    let (s, _) = app.get(&format!("{servers}/{gone}"), key).await;
    assert_eq!(s, 404);
}
dual_db!(the_registry_validates_and_round_trips_servers);

#[tokio::test]
async fn the_api_can_never_start_a_process() {
    let app = TestApp::spawn_with(Backend::Sqlite, declare_stdio).await;
    let key = &app.admin_key;
    let marker = tempfile::tempdir().unwrap();
    let file = marker.path().join("ran");
    let touch = file.to_string_lossy().into_owned();
    let attempts = [
        json!({"config": {"name": "x", "url": "https://h", "command": "touch", "args": [touch]}}),
        json!({"config": {"name": "x", "url": "https://h", "stdio": {"command": "touch"}}}),
        json!({"config": {"name": "x", "url": "https://h"}, "command": "touch", "args": [touch]}),
        json!({"config": {"name": "x", "url": format!("stdio:touch {touch}")}}),
    ];
    for body in attempts {
        let (s, b) = app.post("/v1/convai/mcp-servers", key, &body).await;
        assert_eq!(s, 422, "{body}: {b}");
    }
    let (s, created) = app
        .post("/v1/convai/mcp-servers", key, &json!({"config": {"name": "x", "url": "https://h"}}))
        .await;
    assert_eq!(s, 200);
    let id = created["id"].as_str().unwrap();
    let (s, _) = app
        .send(
            Method::PATCH,
            &format!("/v1/convai/mcp-servers/{id}"),
            key,
            &json!({"command": "touch", "args": [touch]}),
        )
        .await;
    assert_eq!(s, 422);
    let (_, list) = app.get("/v1/convai/mcp-servers", key).await;
    assert_eq!(list["mcp_servers"].as_array().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!file.exists(), "no command ran");
}

#[tokio::test]
async fn tools_are_listed_live_over_every_transport() {
    let app = TestApp::spawn_with(Backend::Sqlite, declare_stdio).await;
    let mut procs = Vec::new();
    for transport in TRANSPORTS {
        let id = register(&app, transport, &mut procs, json!({})).await;
        let (s, b) = app
            .get(
                &format!("/v1/convai/mcp-servers/{id}/tools?environment=production"),
                &app.admin_key,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["success"], true, "{transport:?}: {b}");
        let names: Vec<&str> =
            b["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        for want in ["add", "echo", "fail", "hang", "die", "header"] {
            assert!(names.contains(&want), "{transport:?}: {names:?}");
        }
        let add = b["tools"].as_array().unwrap().iter().find(|t| t["name"] == "add").unwrap();
        assert_eq!(add["inputSchema"]["properties"]["a"]["type"], "integer");
    }
    // A server that is not there answers with the reason, quickly.
    let (_, dead) = app
        .post("/v1/convai/mcp-servers", &app.admin_key,
            &json!({"config": {"name": "dead", "url": "http://127.0.0.1:9/mcp", "transport": "STREAMABLE_HTTP", "response_timeout_secs": 5}}))
        .await;
    let started = std::time::Instant::now();
    let (s, b) = app
        .get(
            &format!("/v1/convai/mcp-servers/{}/tools", dead["id"].as_str().unwrap()),
            &app.admin_key,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["success"], false, "{b}");
    assert!(!b["error_message"].as_str().unwrap().is_empty());
    assert!(started.elapsed() < Duration::from_secs(6));
}

async fn conversations_call_mcp_tools_over_every_transport_and_audit_each_call(backend: Backend) {
    let llm = tool_llm().await;
    let app = TestApp::spawn_with(backend, |c| {
        with_llm(&llm)(c);
        declare_stdio(c);
        c.webhook_max_response_bytes = 10_000;
    })
    .await;
    let mut procs = Vec::new();
    for transport in TRANSPORTS {
        let server = register(
            &app,
            transport,
            &mut procs,
            json!({"approval_policy": "auto_approve_all", "response_timeout_secs": 5}),
        )
        .await;
        let agent = agent_with(&app, &[&server]).await;
        let (mut socket, conversation, before) = open(&app, &agent).await;
        let status = &before[0];
        assert_eq!(status["type"], "mcp_connection_status", "{status}");
        let integration = &status["mcp_connection_status"]["integrations"][0];
        assert_eq!(integration["integration_id"], server.as_str());
        assert_eq!(integration["is_connected"], true);
        assert_eq!(integration["tool_count"], 6);

        let events = turn(&mut socket, "add").await;
        assert_eq!(mcp_states(&events), ["loading", "success"], "{transport:?}: {events:?}");
        // The server's `instructions` are in the system prompt, under its name.
        let asked = llm.requests().into_iter().rfind(|r| !is_analysis(r)).unwrap();
        let system = asked["messages"][0]["content"].as_str().unwrap().to_owned();
        let said = format!(
            "Instructions from the MCP server test-{transport:?}:\nAdd numbers exactly; never round."
        );
        assert!(system.contains(&said), "{system}");
        let success = events.iter().find(|e| e["mcp_tool_call"]["state"] == "success").unwrap();
        assert_eq!(success["mcp_tool_call"]["service_id"], server.as_str());
        assert_eq!(success["mcp_tool_call"]["parameters"], json!({"a": 2, "b": 3}));
        assert_eq!(success["mcp_tool_call"]["result"][0]["text"], "5");
        assert!(events.iter().any(|e| e["type"] == "agent_tool_response"
            && e["agent_tool_response"]["tool_type"] == "mcp"));
        assert_eq!(answer(&events), "Tool said: 5");

        let events = turn(&mut socket, "fail").await;
        assert_eq!(mcp_states(&events), ["loading", "failure"], "{transport:?}");
        assert!(answer(&events).contains("failed on purpose"), "{events:?}");

        let started = std::time::Instant::now();
        let events = turn(&mut socket, "hang").await;
        assert_eq!(mcp_states(&events), ["loading", "failure"]);
        assert!(started.elapsed() < Duration::from_secs(9), "the timeout ends the call");

        // A server that floods: its answer is bounded like a webhook's.
        let events = turn(&mut socket, "flood").await;
        assert_eq!(mcp_states(&events), ["loading", "failure"], "{transport:?}: {events:?}");
        assert!(answer(&events).contains("larger than 10000 bytes"), "{events:?}");

        let events = turn(&mut socket, "die").await;
        assert_eq!(mcp_states(&events), ["loading", "failure"], "{transport:?}: {events:?}");
        let events = turn(&mut socket, "add").await;
        let after_death = mcp_states(&events);
        if transport == Transport::Stdio {
            assert_eq!(after_death, ["loading", "success"], "a stdio server is started again");
        } else {
            assert_eq!(
                after_death,
                ["loading", "failure"],
                "a dead HTTP server is an error, not a hang"
            );
        }
        drop(socket);

        let calls = tool_calls(&app, &conversation).await;
        let summary: Vec<(&str, &str)> = calls
            .iter()
            .map(|c| (c["toolName"].as_str().unwrap(), c["status"].as_str().unwrap()))
            .collect();
        let last_add = if transport == Transport::Stdio { "success" } else { "error" };
        assert_eq!(
            summary,
            [
                ("add", "success"),
                ("fail", "error"),
                ("hang", "timeout"),
                ("echo", "error"),
                ("die", "error"),
                ("add", last_add)
            ],
            "{transport:?}"
        );
        assert_eq!(calls[0]["input"], json!({"a": 2, "b": 3}));
        assert_eq!(calls[0]["output"]["content"][0]["text"], "5", "{}", calls[0]);
        assert!(calls[2]["durationMs"].as_i64().unwrap() >= 4900);

        let tool_id = colloquy_core::mcp_servers::derived_tool_id(&server, "add");
        let (s, page) =
            app.get(&format!("/v1/convai/tools/{tool_id}/executions"), &app.admin_key).await;
        assert_eq!(s, 200, "{page}");
        let executions = page["executions"].as_array().unwrap();
        assert_eq!(executions.len(), 2, "{page}");
        assert_eq!(executions[1]["tool_call_details"]["type"], "mcp");
        assert_eq!(executions[1]["tool_call_details"]["mcp_server_id"], server.as_str());
        assert_eq!(executions[1]["tool_call_details"]["mcp_tool_name"], "add");
    }
}
dual_db!(conversations_call_mcp_tools_over_every_transport_and_audit_each_call);

/// The npm reference server `@modelcontextprotocol/server-everything`: its entry point, from
/// `COLLOQUY_TEST_MCP_EVERYTHING` or where `scripts/test` installs it.
fn everything() -> String {
    if let Ok(p) = std::env::var("COLLOQUY_TEST_MCP_EVERYTHING") {
        return p;
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "../../target/mcp-node/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
    );
    assert!(
        path.exists(),
        "the MCP tests need @modelcontextprotocol/server-everything: run scripts/test (which \
         installs it into target/mcp-node) or set COLLOQUY_TEST_MCP_EVERYTHING"
    );
    path.to_string_lossy().into_owned()
}

/// Starts the reference server over HTTP (`sse` or `streamableHttp`) on a free port.
async fn start_everything(mode: &str) -> (tokio::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = tokio::process::Command::new("node")
        .args([everything().as_str(), mode])
        .env("PORT", port.to_string())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts the reference MCP server");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the reference MCP server did not listen on {port}");
}

#[tokio::test]
async fn the_npm_reference_server_works_over_every_transport() {
    let llm = tool_llm().await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        with_llm(&llm)(c);
        c.mcp.stdio.insert(
            "everything".into(),
            StdioServer {
                command: "node".into(),
                args: vec![everything(), "stdio".into()],
                ..Default::default()
            },
        );
    })
    .await;
    let (_sse, sse_port) = start_everything("sse").await;
    let (_http, http_port) = start_everything("streamableHttp").await;
    let targets = [
        ("stdio:everything".to_owned(), "SSE"),
        (format!("http://127.0.0.1:{sse_port}/sse"), "SSE"),
        (format!("http://127.0.0.1:{http_port}/mcp"), "STREAMABLE_HTTP"),
    ];
    for (url, transport) in targets {
        let (s, b) = app
            .post(
                "/v1/convai/mcp-servers",
                &app.admin_key,
                &json!({"config": {"name": "everything",
                "url": url, "transport": transport, "approval_policy": "auto_approve_all"}}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let server = b["id"].as_str().unwrap().to_owned();
        let (_, listed) =
            app.get(&format!("/v1/convai/mcp-servers/{server}/tools"), &app.admin_key).await;
        assert_eq!(listed["success"], true, "{url}: {listed}");
        assert!(
            listed["tools"].as_array().unwrap().iter().any(|t| t["name"] == "get-sum"),
            "{listed}"
        );
        let agent = agent_with(&app, &[&server]).await;
        let (mut socket, conversation, _) = open(&app, &agent).await;
        let events = turn(&mut socket, "sum").await;
        assert_eq!(mcp_states(&events), ["loading", "success"], "{url}: {events:?}");
        assert_eq!(answer(&events), "Tool said: The sum of 2 and 40 is 42.");
        drop(socket);
        let calls = tool_calls(&app, &conversation).await;
        assert_eq!(calls[0]["toolName"], "get-sum");
        assert_eq!(calls[0]["status"], "success");
    }
}

async fn calls_wait_for_the_users_approval_over_the_websocket(backend: Backend) {
    let llm = tool_llm().await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let mut procs = Vec::new();
    let server =
        register(&app, Transport::Streamable, &mut procs, json!({"response_timeout_secs": 5}))
            .await;
    let agent = agent_with(&app, &[&server]).await;
    let (mut socket, conversation, _) = open(&app, &agent).await;

    say(&mut socket, "add").await;
    let asked = next_of(&mut socket, "mcp_tool_call").await;
    let call = &asked["mcp_tool_call"];
    assert_eq!(call["state"], "awaiting_approval", "{asked}");
    assert_eq!(call["approval_timeout_secs"], 5);
    assert_eq!(call["tool_name"], "add");
    assert_eq!(call["tool_description"], "Adds two integers.");
    send(&mut socket, json!({"type": "mcp_tool_approval_result", "tool_call_id": call["tool_call_id"], "is_approved": true})).await;
    let rest = until(&mut socket, "agent_response").await;
    assert_eq!(mcp_states(&rest), ["loading", "success"]);
    assert_eq!(answer(&rest), "Tool said: 5");

    say(&mut socket, "echo").await;
    let asked = next_of(&mut socket, "mcp_tool_call").await;
    send(&mut socket, json!({"type": "mcp_tool_approval_result", "tool_call_id": asked["mcp_tool_call"]["tool_call_id"], "is_approved": false})).await;
    let rest = until(&mut socket, "agent_response").await;
    assert_eq!(mcp_states(&rest), ["failure"]);
    assert!(answer(&rest).contains("denied"), "{rest:?}");

    // No answer within the approval timeout: the call times out, the turn goes on.
    let started = std::time::Instant::now();
    let events = turn(&mut socket, "add").await;
    assert_eq!(mcp_states(&events), ["awaiting_approval", "failure"]);
    assert!(
        started.elapsed() >= Duration::from_secs(5) && started.elapsed() < Duration::from_secs(9)
    );
    drop(socket);

    let calls = tool_calls(&app, &conversation).await;
    let statuses: Vec<&str> = calls.iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["success", "error", "timeout"]);
    let (_, echo) = app
        .get(
            &format!(
                "/v1/convai/tools/{}/executions",
                colloquy_core::mcp_servers::derived_tool_id(&server, "echo")
            ),
            &app.admin_key,
        )
        .await;
    let record = &echo["executions"][0];
    assert_eq!(record["error_type"], "approval_denied");
    assert_eq!(record["tool_call_details"]["requires_approval"], true);
}
dual_db!(calls_wait_for_the_users_approval_over_the_websocket);

#[tokio::test]
async fn per_tool_approvals_and_tool_configs_shape_the_calls() {
    let llm = tool_llm().await;
    let app = TestApp::spawn_with(Backend::Sqlite, with_llm(&llm)).await;
    let key = &app.admin_key;
    let mut procs = Vec::new();
    let server = register(
        &app,
        Transport::Sse,
        &mut procs,
        json!({"approval_policy": "require_approval_per_tool", "response_timeout_secs": 5}),
    )
    .await;
    let (_, listed) = app.get(&format!("/v1/convai/mcp-servers/{server}/tools"), key).await;
    let add =
        listed["tools"].as_array().unwrap().iter().find(|t| t["name"] == "add").unwrap().clone();
    let (s, b) = app
        .post(&format!("/v1/convai/mcp-servers/{server}/tool-approvals"), key,
            &json!({"tool_name": "add", "tool_description": add["description"], "input_schema": add["inputSchema"], "approval_policy": "auto_approved"}))
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app
        .post(&format!("/v1/convai/mcp-servers/{server}/tool-configs"), key,
            &json!({"tool_name": "add", "input_overrides": {"b": {"source": "constant", "constant_value": 40}}}))
        .await;
    assert_eq!(s, 200, "{b}");
    let agent = agent_with(&app, &[&server]).await;
    let (mut socket, _, _) = open(&app, &agent).await;

    let events = turn(&mut socket, "add").await;
    assert_eq!(mcp_states(&events), ["loading", "success"], "approved per tool: {events:?}");
    assert_eq!(answer(&events), "Tool said: 42", "the constant replaced the LLM's b");
    let offered = llm.requests().last().unwrap()["tools"].clone();
    let add_spec =
        offered.as_array().unwrap().iter().find(|t| t["function"]["name"] == "add").unwrap();
    assert!(add_spec["function"]["parameters"]["properties"].get("b").is_none(), "{add_spec}");

    let events = turn(&mut socket, "echo").await;
    assert_eq!(mcp_states(&events)[0], "awaiting_approval", "not approved per tool");
}

#[tokio::test]
async fn without_a_client_unapproved_calls_are_denied_and_mocks_still_run() {
    let llm = FakeLlm::openai(|req: &Value| {
        let messages = req["messages"].as_array().unwrap();
        let system = messages[0]["content"].as_str().unwrap_or_default();
        let last = messages.last().unwrap();
        if !system.contains("Use your tools") {
            // The simulated user.
            return text("both");
        }
        if last["role"] == "tool" {
            return text("done");
        }
        Reply::Calls(vec![
            ("add".into(), json!({"a": 1, "b": 1})),
            ("echo".into(), json!({"text": "both"})),
        ])
    })
    .await;
    let app = TestApp::spawn_with(Backend::Sqlite, with_llm(&llm)).await;
    let mut procs = Vec::new();
    let server = register(&app, Transport::Streamable, &mut procs, json!({})).await;
    let agent = agent_with(&app, &[&server]).await;
    let body = json!({"simulation_specification": {
        "simulated_user_config": {"prompt": {"prompt": "A user", "llm": "gpt-4o"}},
        "tool_mock_config": {"echo": {"default_return_value": "mocked echo"}}},
        "new_turns_limit": 1});
    let (s, sim) = app
        .post(&format!("/v1/convai/agents/{agent}/simulate-conversation"), &app.admin_key, &body)
        .await;
    assert_eq!(s, 200, "{sim}");
    let (_, page) = app
        .get(
            &format!(
                "/v1/convai/tools/{}/executions",
                colloquy_core::mcp_servers::derived_tool_id(&server, "add")
            ),
            &app.admin_key,
        )
        .await;
    let id = page["executions"][0]["conversation_id"]
        .as_str()
        .expect("the call was recorded")
        .to_owned();
    let calls = tool_calls(&app, &id).await;
    let add = calls.iter().find(|c| c["toolName"] == "add").unwrap();
    assert_eq!(add["status"], "error", "{add}");
    assert!(add["output"].as_str().unwrap().contains("approval"), "{add}");
    let echo = calls.iter().find(|c| c["toolName"] == "echo").unwrap();
    assert_eq!(echo["status"], "success");
    assert_eq!(echo["output"], "mocked echo");
}

#[tokio::test]
async fn secrets_reach_the_server_and_never_the_audit_log() {
    let llm = tool_llm().await;
    let app = TestApp::spawn_with(Backend::Sqlite, with_llm(&llm)).await;
    let key = &app.admin_key;
    let (_, secret) = app
        .post(
            "/v1/convai/secrets",
            key,
            &json!({"type": "new", "name": "tok", "value": "planted-mcp-secret-42"}),
        )
        .await;
    let mut procs = Vec::new();
    let server = register(&app, Transport::Streamable, &mut procs,
        json!({"approval_policy": "auto_approve_all", "request_headers": {"X-Token": {"secret_id": secret["secret_id"]}}})).await;
    let agent = agent_with(&app, &[&server]).await;
    let (mut socket, conversation, _) = open(&app, &agent).await;
    let events = turn(&mut socket, "header").await;
    assert_eq!(answer(&events), "Tool said: planted-mcp-secret-42", "the header was sent");
    drop(socket);
    let calls = tool_calls(&app, &conversation).await;
    assert_eq!(calls[0]["status"], "success");
    assert!(!calls[0].to_string().contains("planted-mcp-secret-42"), "{}", calls[0]);
    let (_, page) = app
        .get(
            &format!(
                "/v1/convai/tools/{}/executions",
                colloquy_core::mcp_servers::derived_tool_id(&server, "header")
            ),
            key,
        )
        .await;
    assert!(!page.to_string().contains("planted-mcp-secret-42"));
}

#[tokio::test]
async fn internal_servers_need_the_operators_allow_list() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = &app.admin_key;
    let mut procs = Vec::new();
    let running = McpProcess::start(Transport::Streamable).await;
    let port = running.url.split(':').nth(2).unwrap().split('/').next().unwrap().to_owned();
    procs.push(running);
    let (s, b) = app
        .post(
            "/v1/convai/mcp-servers",
            key,
            &json!({"config": {"name": "plain", "url": format!("http://127.0.0.1:{port}/mcp")}}),
        )
        .await;
    assert_eq!(s, 422, "plain http only for allowed hosts: {b}");
    assert!(b["detail"][0]["msg"].as_str().unwrap().contains("https"));
    for host in ["127.0.0.1", "localhost", "169.254.169.254"] {
        let (s, b) = app
            .post("/v1/convai/mcp-servers", key, &json!({"config": {"name": "internal",
                "url": format!("https://{host}:{port}/mcp"), "transport": "STREAMABLE_HTTP", "response_timeout_secs": 5}}))
            .await;
        assert_eq!(s, 200, "{b}");
        let (_, listed) = app
            .get(&format!("/v1/convai/mcp-servers/{}/tools", b["id"].as_str().unwrap()), key)
            .await;
        assert_eq!(listed["success"], false, "{host}: {listed}");
        let why = listed["error_message"].as_str().unwrap();
        assert!(why.contains("egress refused"), "{host}: {why}");
    }
}

async fn mcp_tool_records_call_their_server_and_keep_their_ids(backend: Backend) {
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        if last["role"] == "tool" {
            return text(&format!("Tool said: {}", last["content"].as_str().unwrap()));
        }
        match last["content"].as_str().unwrap_or_default() {
            "record" => call("add_numbers", json!({"a": 20, "b": 22})),
            _ => call("echo", json!({"text": "listed"})),
        }
    })
    .await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let mut procs = Vec::new();
    let named = register(
        &app,
        Transport::Streamable,
        &mut procs,
        json!({"approval_policy": "auto_approve_all"}),
    )
    .await;
    let listed =
        register(&app, Transport::Sse, &mut procs, json!({"approval_policy": "auto_approve_all"}))
            .await;
    // A tool record of the first server, used through tool_ids only.
    let record = create_tool(&app, key, json!({"tool_config": {"type": "mcp", "name": "add_numbers",
        "description": "Adds numbers", "integration_type": "mcp_server", "approval_policy": "auto_approve_all",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer", "description": "a"}, "b": {"type": "integer", "description": "b"}}},
        "mcp_tool_name": "add", "mcp_tool_description": "Adds two integers.", "mcp_server_id": named, "mcp_server_name": "named"}})).await;
    // A record of the second server's echo: the listed echo is recorded under its id.
    let echo_record = create_tool(&app, key, json!({"tool_config": {"type": "mcp", "name": "echo_record",
        "description": "Echo", "integration_type": "mcp_server", "mcp_tool_name": "echo",
        "mcp_tool_description": "Repeats the text it is given.", "mcp_server_id": listed, "mcp_server_name": "listed"}})).await;
    let (s, b) = app
        .post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {"first_message": "",
            "prompt": {"prompt": "Use your tools.", "llm": "gpt-4o", "tool_ids": [record], "mcp_server_ids": [listed]}}}}))
        .await;
    assert_eq!(s, 200, "{b}");
    let agent = b["agent_id"].as_str().unwrap().to_owned();
    let (mut socket, conversation, before) = open(&app, &agent).await;
    assert_eq!(
        before[0]["mcp_connection_status"]["integrations"].as_array().unwrap().len(),
        1,
        "only listed servers report"
    );
    let events = turn(&mut socket, "record").await;
    assert_eq!(answer(&events), "Tool said: 42", "{events:?}");
    let events = turn(&mut socket, "listed").await;
    assert_eq!(answer(&events), "Tool said: echo: listed", "{events:?}");
    drop(socket);

    let offered: Vec<String> = llm.requests()[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        offered.contains(&"add_numbers".to_owned()) && offered.contains(&"echo".to_owned()),
        "{offered:?}"
    );
    assert_eq!(
        offered.iter().filter(|n| n.as_str() == "add").count(),
        1,
        "the listed server's own add: {offered:?}"
    );

    let calls = tool_calls(&app, &conversation).await;
    assert_eq!(calls.len(), 2);
    for (tool, name) in [(&record, "add_numbers"), (&echo_record, "echo")] {
        let (_, page) = app.get(&format!("/v1/convai/tools/{tool}/executions"), key).await;
        let executions = page["executions"].as_array().unwrap();
        assert_eq!(executions.len(), 1, "{name}: {page}");
        assert_eq!(executions[0]["conversation_id"], conversation.as_str());
        let (_, got) = app.get(&format!("/v1/convai/tools/{tool}"), key).await;
        assert_eq!(got["usage_stats"]["total_calls"], 1, "{name}: {got}");
    }
}
dual_db!(mcp_tool_records_call_their_server_and_keep_their_ids);
