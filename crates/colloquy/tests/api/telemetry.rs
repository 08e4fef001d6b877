//! OpenTelemetry: a server with `OTEL_EXPORTER_OTLP_ENDPOINT` set exports its spans over OTLP
//! HTTP/protobuf — here to a small collector that decodes them with the opentelemetry-proto
//! types — a conversation's spans in the trace of its id, its tool calls' spans naming their
//! audit records; and `GET /v1/convai/conversations/{id}?format=opentelemetry` answers the
//! stored conversation as OTLP JSON in the same trace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fakes::{FakeLlm, Webhook, call, is_analysis, text};
use crate::helpers::{ChildServer, client, poll, status_json};
use crate::mcp_servers::{McpProcess, Transport};
use crate::ws;

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP trace receiver on loopback.
struct Collector {
    base: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    async fn start() -> Collector {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new().route("/v1/traces", post(receive)).with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Collector { base, spans }
    }

    fn trace(&self, trace_id: &str) -> Vec<Span> {
        self.spans.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect()
    }
}

async fn receive(State(spans): State<Arc<Mutex<Vec<Span>>>>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut kept = spans.lock().unwrap();
    for scope in request.resource_spans.iter().flat_map(|r| &r.scope_spans) {
        for span in &scope.spans {
            let attributes = span
                .attributes
                .iter()
                .map(|kv| {
                    let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(Any::StringValue(s)) => s.clone(),
                        Some(Any::IntValue(i)) => i.to_string(),
                        Some(Any::BoolValue(b)) => b.to_string(),
                        other => format!("{other:?}"),
                    };
                    (kv.key.clone(), value)
                })
                .collect();
            kept.push(Span {
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent: hex(&span.parent_span_id),
                name: span.name.clone(),
                attributes,
            });
        }
    }
    ""
}

/// One live conversation with a webhook tool call and an MCP tool call, exported: the
/// conversation, its turn, the LLM calls and the tool calls are one trace (the conversation's
/// id), parent to child, each tool's span naming its audit record; its analysis job joins the
/// same trace.
#[tokio::test]
async fn a_conversation_is_one_trace_joined_to_its_audit_records() {
    let collector = Collector::start().await;
    let llm = FakeLlm::openai(|req: &Value| {
        let messages = req["messages"].as_array().unwrap();
        let results = messages.iter().filter(|m| m["role"] == "tool").count();
        if is_analysis(req) {
            call(
                "record_analysis",
                json!({"transcript_summary": "Weather.", "call_summary_title": "Weather"}),
            )
        } else if messages.last().unwrap()["role"] != "tool" {
            call("weather", json!({"city": "Oslo"}))
        } else if results == 1 {
            call("add", json!({"a": 2, "b": 3}))
        } else {
            text("It is sunny, and 2 + 3 is 5.")
        }
    })
    .await;
    let forecast = Webhook::start(200, r#"{"forecast": "sunny"}"#, Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let key = colloquy_core::keys::generate_token();
    let llm_url = format!("{}/v1", llm.base);
    let envs = [
        ("COLLOQUY_BOOTSTRAP_API_KEY", key.as_str()),
        ("COLLOQUY_WEBHOOK_ALLOW", "127.0.0.1"),
        ("OPENAI_BASE_URL", llm_url.as_str()),
        ("OPENAI_API_KEY", "sk-fake"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        // Spans are exported whatever the log level.
        ("RUST_LOG", "warn"),
    ];
    let server = ChildServer::start(dir.path(), &envs).await;
    let http = client();
    let api = async |method: Method, path: &str, body: Option<Value>| {
        let mut r =
            http.request(method, format!("{}{path}", server.base)).header("xi-api-key", &key);
        if let Some(body) = body {
            r = r.json(&body);
        }
        status_json(r.send().await.unwrap()).await
    };
    let (s, tool) = api(Method::POST, "/v1/convai/tools", Some(json!({"tool_config": {
        "type": "webhook", "name": "weather", "description": "The forecast",
        "api_schema": {"url": format!("{}/forecast", forecast.base), "method": "POST",
            "request_body_schema": {"type": "object", "properties": {"city": {"type": "string", "description": "city"}}}},
    }}))).await;
    assert_eq!(s, 200, "{tool}");
    let mcp = McpProcess::start(Transport::Sse).await;
    let (s, server_row) = api(Method::POST, "/v1/convai/mcp-servers", Some(json!({"config": {
        "name": "adder", "url": mcp.url, "transport": "SSE", "approval_policy": "auto_approve_all",
    }}))).await;
    assert_eq!(s, 200, "{server_row}");
    let (s, agent) = api(
        Method::POST,
        "/v1/convai/agents/create",
        Some(json!({"conversation_config": {
            "agent": {"first_message": "", "prompt": {"llm": "gpt-4o", "tool_ids": [tool["id"]],
                "mcp_server_ids": [server_row["id"]]}},
        }})),
    )
    .await;
    assert_eq!(s, 200, "{agent}");
    let agent_id = agent["agent_id"].as_str().unwrap();
    let (mut socket, conversation_id) =
        ws::open(&ws::url(&server.base, &format!("agent_id={agent_id}")), Default::default()).await;
    ws::turn(&mut socket, "weather in Oslo?").await;
    socket.close(None).await.unwrap();

    let trace_id = conversation_id.replace('-', "");
    let names = [
        "conversation",
        "turn",
        "chat gpt-4o",
        "execute_tool weather",
        "execute_tool add",
        "job.analysis",
    ];
    let spans = poll(Duration::from_secs(20), Duration::from_millis(100), async || {
        let spans = collector.trace(&trace_id);
        names.iter().all(|n| spans.iter().any(|s| s.name == *n)).then_some(spans)
    })
    .await
    .unwrap_or_else(|| {
        let all = collector.spans.lock().unwrap().clone();
        panic!("the conversation's spans, of {all:?}; log: {}", server.logged_errors())
    });
    let named = |name: &str| spans.iter().find(|s| s.name == name).unwrap().clone();
    let (conversation, turn, tool, mcp_call) = (
        named("conversation"),
        named("turn"),
        named("execute_tool weather"),
        named("execute_tool add"),
    );
    assert_eq!(turn.parent, conversation.span_id, "the turn is the conversation's");
    assert_eq!(tool.parent, turn.span_id, "the tool call is the turn's");
    assert_eq!(mcp_call.parent, turn.span_id);
    assert_eq!(mcp_call.attributes["colloquy.tool.type"], "mcp");
    assert_eq!(mcp_call.attributes["colloquy.tool.status"], "success");
    let llm_calls: Vec<&Span> = spans.iter().filter(|s| s.name == "chat gpt-4o").collect();
    assert!(llm_calls.iter().all(|s| s.parent == turn.span_id), "{llm_calls:?}");
    assert_eq!(llm_calls[0].attributes["gen_ai.request.model"], "gpt-4o");
    assert_eq!(llm_calls[0].attributes["gen_ai.operation.name"], "chat");
    assert!(
        llm_calls.iter().any(|s| s.attributes["gen_ai.response.finish_reasons"] == "tool_calls")
    );
    assert_eq!(tool.attributes["gen_ai.tool.name"], "weather");
    assert_eq!(tool.attributes["colloquy.tool.type"], "webhook");
    assert_eq!(tool.attributes["colloquy.tool.status"], "success");

    // The tool's span names its audit record.
    let (_, calls) =
        api(Method::GET, &format!("/api/tool-calls?executionId={conversation_id}"), None).await;
    let audit_of = |name: &str| {
        let found = calls.as_array().unwrap().iter().find(|c| c["toolName"] == name);
        found.unwrap_or_else(|| panic!("{name} in {calls}"))["id"].as_str().unwrap().to_owned()
    };
    let audit_id = audit_of("weather");
    assert_eq!(tool.attributes["colloquy.audit.id"], audit_id);
    assert_eq!(mcp_call.attributes["colloquy.audit.id"], audit_of("add"));

    // The stored conversation, as OTLP JSON in the same trace.
    let path = format!("/v1/convai/conversations/{conversation_id}?format=opentelemetry");
    let (s, got) = api(Method::GET, &path, None).await;
    assert_eq!(s, 200, "{got}");
    let stored =
        got["otlp_traces"]["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().unwrap();
    assert!(stored.iter().all(|s| s["traceId"] == trace_id.as_str()), "{stored:?}");
    let root = stored.iter().find(|s| s["name"] == "conversation").unwrap();
    let call_span = stored.iter().find(|s| s["name"] == "execute_tool weather").unwrap();
    let stored_turn = stored.iter().find(|s| s["spanId"] == call_span["parentSpanId"]).unwrap();
    assert_eq!(stored_turn["name"], "turn");
    assert_eq!(stored_turn["parentSpanId"], root["spanId"]);
    let audit = call_span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "colloquy.audit.id");
    assert_eq!(audit.unwrap()["value"]["stringValue"], audit_id);
    let (s, plain) =
        api(Method::GET, &format!("/v1/convai/conversations/{conversation_id}"), None).await;
    assert_eq!(s, 200);
    assert!(plain.get("otlp_traces").is_none_or(Value::is_null), "only when asked for");
    let (s, _) =
        api(Method::GET, &format!("/v1/convai/conversations/{conversation_id}?format=xml"), None)
            .await;
    assert_eq!(s, 422);
}
