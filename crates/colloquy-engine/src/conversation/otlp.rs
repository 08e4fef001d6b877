//! A stored conversation as OpenTelemetry traces, in OTLP's JSON encoding (an
//! `ExportTraceServiceRequest`): what `GET /v1/convai/conversations/{id}?format=opentelemetry`
//! puts in `otlp_traces`, and what an `opentelemetry` post-call webhook carries. It is built from
//! what is stored — the conversation's times, its turns, its tool calls' audit records — in the
//! trace its live spans used (the conversation's id, see [`crate::telemetry`]), so a collector's
//! view and this one line up: one span for the conversation, one per turn (a user message and
//! what the agent did about it, or the agent's greeting), one per tool call with its audit
//! record's id.

use std::hash::{DefaultHasher, Hash, Hasher};

use colloquy_store::{ConversationRow, ToolExecution};
use serde_json::{Value, json};

use crate::telemetry;

/// OTLP's `SPAN_KIND_INTERNAL`.
const INTERNAL: i64 = 1;

/// The conversation's `ExportTraceServiceRequest`, as JSON.
pub fn traces(row: &ConversationRow, calls: &[ToolExecution]) -> Value {
    let trace_id = format!("{:032x}", u128::from_be_bytes(telemetry::trace_id(&row.id).to_bytes()));
    let root = span_id(&[row.id.as_str()]);
    let start_ms = row.started_at * 1000;
    let end_ms = (row.started_at + row.duration_secs.max(0)) * 1000;
    let failed = row.status == "failed";
    let mut spans = vec![span(
        &trace_id,
        &root,
        None,
        "conversation",
        (start_ms, end_ms.max(start_ms)),
        vec![
            attribute("conversation.id", row.id.as_str()),
            attribute("colloquy.agent.id", row.agent_id.as_str()),
            attribute("colloquy.conversation.source", &row.source),
            attribute("colloquy.conversation.status", &row.status),
        ],
        failed.then_some(row.termination_reason.as_str()),
    )];
    let document: Value = serde_json::from_str(&row.document).unwrap_or_default();
    let turns = turns(document["transcript"].as_array().map(Vec::as_slice).unwrap_or_default());
    let mut turn_ids = Vec::new();
    for (i, turn) in turns.iter().enumerate() {
        let id = span_id(&[row.id.as_str(), "turn", &i.to_string()]);
        let next = turns.get(i + 1).map_or(end_ms, |t| start_ms + t.secs * 1000);
        let from = start_ms + turn.secs * 1000;
        let mut attributes = vec![
            attribute("colloquy.turn.index", i),
            attribute("colloquy.turn.messages", turn.messages),
        ];
        if turn.interrupted {
            attribute_push(&mut attributes, "colloquy.turn.interrupted", true);
        }
        spans.push(span(
            &trace_id,
            &id,
            Some(&root),
            "turn",
            (from, next.max(from)),
            attributes,
            None,
        ));
        turn_ids.push((id, turn));
    }
    for call in calls {
        let parent = turn_ids
            .iter()
            .find(|(_, t)| t.requests.iter().any(|r| r == &call.tool_request_id))
            .map_or(&root, |(id, _)| id);
        let from = call.timestamp_ms;
        let to = from + call.latency_us / 1000;
        let attributes = vec![
            attribute("gen_ai.operation.name", "execute_tool"),
            attribute("gen_ai.tool.name", call.tool_name.as_str()),
            attribute("gen_ai.tool.call.id", call.tool_request_id.as_str()),
            attribute("colloquy.tool.id", call.tool_id.as_str()),
            attribute("colloquy.tool.type", call.tool_type.as_str()),
            attribute("colloquy.tool.status", call.status.as_str()),
            attribute("colloquy.audit.id", call.id.as_str()),
        ];
        let name = format!("execute_tool {}", call.tool_name);
        let error = call.is_error.then_some(call.status.as_str());
        spans.push(span(
            &trace_id,
            &span_id(&[&call.id]),
            Some(parent),
            &name,
            (from, to),
            attributes,
            error,
        ));
    }
    json!({"resourceSpans": [{
        "resource": {"attributes": [attribute("service.name", "colloquy")]},
        "scopeSpans": [{"scope": {"name": "colloquy"}, "spans": spans}],
    }]})
}

/// A turn as the transcript shows it: when it began, how many entries it holds, the tool calls
/// its agent made, whether the user cut it short.
struct Turn {
    secs: i64,
    messages: usize,
    requests: Vec<String>,
    interrupted: bool,
}

/// The transcript cut into turns: each user entry starts one; agent entries before the first
/// (a greeting) are one of their own.
fn turns(transcript: &[Value]) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::new();
    for entry in transcript {
        let starts = entry["role"] == "user" || out.is_empty();
        if starts {
            let secs = entry["time_in_call_secs"].as_i64().unwrap_or(0);
            out.push(Turn { secs, messages: 0, requests: Vec::new(), interrupted: false });
        }
        let Some(turn) = out.last_mut() else { continue };
        turn.messages += 1;
        turn.interrupted |= entry["interrupted"] == true;
        for call in entry["tool_calls"].as_array().into_iter().flatten() {
            if let Some(id) = call["request_id"].as_str() {
                turn.requests.push(id.to_owned());
            }
        }
    }
    out
}

/// A span id (16 hex digits, never all zero) that the same parts always give.
fn span_id(parts: &[&str]) -> String {
    let mut hasher = DefaultHasher::new();
    parts.hash(&mut hasher);
    format!("{:016x}", hasher.finish() | 1)
}

fn span(
    trace_id: &str, id: &str, parent: Option<&str>, name: &str, (from_ms, to_ms): (i64, i64),
    attributes: Vec<Value>, error: Option<&str>,
) -> Value {
    let nanos = |ms: i64| (i128::from(ms) * 1_000_000).to_string();
    let status = match error {
        Some(message) => json!({"code": 2, "message": message}),
        None => json!({"code": 1}),
    };
    json!({
        "traceId": trace_id,
        "spanId": id,
        "parentSpanId": parent.unwrap_or_default(),
        "name": name,
        "kind": INTERNAL,
        "startTimeUnixNano": nanos(from_ms),
        "endTimeUnixNano": nanos(to_ms.max(from_ms)),
        "attributes": attributes,
        "status": status,
    })
}

/// An OTLP attribute: strings, integers and booleans as their JSON encoding types them.
fn attribute(key: &str, value: impl Into<AttributeValue>) -> Value {
    let value = match value.into() {
        AttributeValue::Text(s) => json!({"stringValue": s}),
        // 64-bit integers are strings in OTLP's JSON.
        AttributeValue::Int(i) => json!({"intValue": i.to_string()}),
        AttributeValue::Bool(b) => json!({"boolValue": b}),
    };
    json!({"key": key, "value": value})
}

fn attribute_push(attributes: &mut Vec<Value>, key: &str, value: impl Into<AttributeValue>) {
    attributes.push(attribute(key, value));
}

enum AttributeValue {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for AttributeValue {
    fn from(s: &str) -> Self {
        AttributeValue::Text(s.to_owned())
    }
}

impl From<&String> for AttributeValue {
    fn from(s: &String) -> Self {
        AttributeValue::Text(s.clone())
    }
}

impl From<usize> for AttributeValue {
    fn from(n: usize) -> Self {
        AttributeValue::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<bool> for AttributeValue {
    fn from(b: bool) -> Self {
        AttributeValue::Bool(b)
    }
}
