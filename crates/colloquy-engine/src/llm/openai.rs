//! OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, llama.cpp, LM Studio, an agent's
//! `custom_llm`, ...), streamed. Types are read leniently: unknown fields and finish reasons are
//! ignored, tool-call fragments are assembled by index.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::sse::{self, Events};
use super::{CallPolicy, ChatRequest, ChatResponse, Deltas, LlmError, LlmProvider, Role, ToolCall};

/// An OpenAI-compatible endpoint.
pub struct OpenAi {
    http: reqwest::Client,
    /// Base URL including the version segment, e.g. `https://api.openai.com/v1`.
    base_url: String,
    api_key: Option<String>,
    policy: CallPolicy,
}

impl OpenAi {
    /// A provider at `base_url` (`.../v1`), authenticating with `api_key` when given.
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        api_key: Option<String>,
        policy: CallPolicy,
    ) -> OpenAi {
        OpenAi {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.filter(|k| !k.is_empty()),
            policy,
        }
    }

    fn body(request: &ChatRequest) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| match m.role {
                Role::System => json!({"role": "system", "content": m.content}),
                Role::User => json!({"role": "user", "content": m.content}),
                Role::Tool => json!({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}),
                Role::Assistant if m.tool_calls.is_empty() => json!({"role": "assistant", "content": m.content}),
                Role::Assistant => json!({
                    "role": "assistant",
                    "content": if m.content.is_empty() { Value::Null } else { Value::String(m.content.clone()) },
                    "tool_calls": m.tool_calls.iter().map(|c| json!({
                        "id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}
                    })).collect::<Vec<_>>(),
                }),
            })
            .collect();
        let mut body = Map::new();
        body.insert("model".into(), json!(request.model));
        body.insert("messages".into(), Value::Array(messages));
        body.insert("stream".into(), json!(true));
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
                .collect();
            body.insert("tools".into(), Value::Array(tools));
        }
        if let Some(t) = request.temperature {
            body.insert("temperature".into(), json!(t));
        }
        if let Some(m) = request.max_tokens {
            body.insert("max_tokens".into(), json!(m));
        }
        if let Some(extra) = &request.extra_body {
            for (k, v) in extra {
                body.insert(k.clone(), v.clone());
            }
        }
        Value::Object(body)
    }

    async fn attempt(
        &self,
        request: &ChatRequest,
        deltas: Option<&Deltas>,
    ) -> Result<ChatResponse, LlmError> {
        let mut http = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .json(&Self::body(request));
        if let Some(key) = &self.api_key {
            http = http.bearer_auth(key);
        }
        let response = sse::send(http, self.policy.timeout).await?;
        if !sse::is_event_stream(&response) {
            let body: Value = response
                .json()
                .await
                .map_err(|e| LlmError::Protocol(e.to_string()))?;
            return parse_complete(&body, deltas);
        }
        let mut events = Events::new(response, self.policy.timeout);
        let mut out = ChatResponse::default();
        let mut calls: BTreeMap<u64, ToolCall> = BTreeMap::new();
        while let Some(event) = events.next().await? {
            let data = event.data.trim();
            if data == "[DONE]" {
                break;
            }
            if data.is_empty() {
                continue;
            }
            let chunk: Value = serde_json::from_str(data)
                .map_err(|e| LlmError::Protocol(format!("{e}: {data}")))?;
            if let Some(err) = chunk.get("error") {
                return Err(LlmError::Protocol(format!("error in stream: {err}")));
            }
            if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
                out.input_tokens = usage.get("prompt_tokens").and_then(Value::as_u64);
                out.output_tokens = usage.get("completion_tokens").and_then(Value::as_u64);
            }
            let Some(delta) = chunk.pointer("/choices/0/delta") else {
                continue;
            };
            if let Some(text) = delta
                .get("content")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                out.text.push_str(text);
                if let Some(d) = deltas {
                    let _ = d.send(text.to_owned());
                }
            }
            for (i, fragment) in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let index = fragment
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(i as u64);
                let call = calls.entry(index).or_insert_with(|| ToolCall {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
                if let Some(id) = fragment.get("id").and_then(Value::as_str) {
                    call.id = id.to_owned();
                }
                if let Some(name) = fragment.pointer("/function/name").and_then(Value::as_str) {
                    call.name.push_str(name);
                }
                if let Some(args) = fragment
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                {
                    call.arguments.push_str(args);
                }
            }
        }
        out.tool_calls = finish_calls(calls.into_values());
        Ok(out)
    }
}

/// Gives every call an id (some servers omit them) and empty arguments an empty object.
fn finish_calls(calls: impl Iterator<Item = ToolCall>) -> Vec<ToolCall> {
    calls
        .filter(|c| !c.name.is_empty())
        .enumerate()
        .map(|(i, mut c)| {
            if c.id.is_empty() {
                c.id = format!("call_{i}_{}", colloquy_core::ids::new_uuid());
            }
            if c.arguments.trim().is_empty() {
                c.arguments = "{}".into();
            }
            c
        })
        .collect()
}

/// A non-streamed answer (servers that ignore `stream: true`).
fn parse_complete(body: &Value, deltas: Option<&Deltas>) -> Result<ChatResponse, LlmError> {
    let message = body
        .pointer("/choices/0/message")
        .ok_or_else(|| LlmError::Protocol(format!("no choices in {body}")))?;
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let (Some(d), false) = (deltas, text.is_empty()) {
        let _ = d.send(text.clone());
    }
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| ToolCall {
            id: c
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            name: c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            arguments: c
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
    Ok(ChatResponse {
        text,
        tool_calls: finish_calls(calls),
        input_tokens: body.pointer("/usage/prompt_tokens").and_then(Value::as_u64),
        output_tokens: body
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64),
    })
}

#[async_trait]
impl LlmProvider for OpenAi {
    async fn chat(
        &self,
        request: &ChatRequest,
        deltas: Option<&Deltas>,
    ) -> Result<ChatResponse, LlmError> {
        self.policy.run(|| self.attempt(request, deltas)).await
    }
}
