//! OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, llama.cpp, LM Studio, an agent's
//! `custom_llm`, ...), streamed. Types are read leniently: unknown fields and finish reasons are
//! ignored, tool-call fragments are assembled by index.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value};

use super::sse::{self, Events};
use super::{
    CallPolicy, ChatMessage, ChatRequest, ChatResponse, Deltas, LlmError, LlmProvider, Role,
    ToolCall,
};

/// An OpenAI-compatible endpoint.
pub struct OpenAi {
    http: reqwest::Client,
    /// Base URL including the version segment, e.g. `https://api.openai.com/v1`.
    base_url: String,
    api_key: Option<String>,
    policy: CallPolicy,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
}

/// `{"type": "function", "function": {"name": ...}}`: the tool the model must call.
#[derive(Serialize)]
struct WireToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireToolName<'a>,
}

#[derive(Serialize)]
struct WireToolName<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    /// Only on tool messages (`null` if the call had no id).
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<Option<&'a str>>,
    /// `null` on an assistant message that only calls tools.
    content: Option<WireContent<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireCall<'a>>,
}

/// A message's content: text, or text and the user's files as content parts (images as
/// `image_url` data URLs, PDFs as `file` parts with `file_data`).
#[derive(Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    Text(&'a str),
    Parts(Vec<Value>),
}

impl<'a> WireContent<'a> {
    fn of(m: &'a ChatMessage) -> WireContent<'a> {
        if m.attachments.is_empty() {
            return WireContent::Text(&m.content);
        }
        let mut parts = vec![serde_json::json!({"type": "text", "text": m.content})];
        for a in &m.attachments {
            let url = format!("data:{};base64,{}", a.mime_type, a.base64());
            parts.push(if a.is_image() {
                serde_json::json!({"type": "image_url", "image_url": {"url": url}})
            } else {
                serde_json::json!({"type": "file", "file": {"filename": a.filename, "file_data": url}})
            });
        }
        WireContent::Parts(parts)
    }
}

impl<'a> WireMessage<'a> {
    fn of(m: &'a ChatMessage) -> WireMessage<'a> {
        let (role, tool_call_id) = match m.role {
            Role::System => ("system", None),
            Role::User => ("user", None),
            Role::Tool => ("tool", Some(m.tool_call_id.as_deref())),
            Role::Assistant => ("assistant", None),
        };
        let calls_only = m.role == Role::Assistant && !m.tool_calls.is_empty();
        WireMessage {
            role,
            tool_call_id,
            content: (!calls_only || !m.content.is_empty()).then(|| WireContent::of(m)),
            tool_calls: if m.role == Role::Assistant {
                m.tool_calls
                    .iter()
                    .map(|c| WireCall {
                        id: &c.id,
                        kind: "function",
                        function: WireCallFunction { name: &c.name, arguments: &c.arguments },
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

#[derive(Serialize)]
struct WireCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireCallFunction<'a>,
}

#[derive(Serialize)]
struct WireCallFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

impl OpenAi {
    /// A provider at `base_url` (`.../v1`), authenticating with `api_key` when given.
    pub fn new(
        http: reqwest::Client, base_url: &str, api_key: Option<String>, policy: CallPolicy,
    ) -> OpenAi {
        OpenAi {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.filter(|k| !k.is_empty()),
            policy,
        }
    }

    /// The request body, typed and borrowed from `request`: it carries the whole history, every
    /// round of every turn, and building it as a JSON tree first copied all of it.
    fn body(request: &ChatRequest) -> WireRequest<'_> {
        WireRequest {
            model: &request.model,
            messages: request.messages.iter().map(WireMessage::of).collect(),
            stream: true,
            tools: request
                .tools
                .iter()
                .map(|t| WireTool {
                    kind: "function",
                    function: WireFunction {
                        name: &t.name,
                        description: &t.description,
                        parameters: &t.parameters,
                    },
                })
                .collect(),
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            tool_choice: request
                .force_tool
                .as_deref()
                .map(|name| WireToolChoice { kind: "function", function: WireToolName { name } }),
        }
    }

    /// The body with `extra_body`'s fields set on top (`custom_llm_extra_body`).
    fn body_with(wire: &WireRequest<'_>, extra: &Map<String, Value>) -> Result<Value, LlmError> {
        let mut body = serde_json::to_value(wire).map_err(|e| LlmError::Protocol(e.to_string()))?;
        if let Value::Object(fields) = &mut body {
            for (k, v) in extra {
                fields.insert(k.clone(), v.clone());
            }
        }
        Ok(body)
    }

    async fn attempt(
        &self, request: &ChatRequest, deltas: Option<&Deltas>,
    ) -> Result<ChatResponse, LlmError> {
        let post = self.http.post(format!("{}/chat/completions", self.base_url));
        let wire = Self::body(request);
        let mut http = match &request.extra_body {
            None => post.json(&wire),
            Some(extra) => post.json(&Self::body_with(&wire, extra)?),
        };
        if let Some(key) = &self.api_key {
            http = http.bearer_auth(key);
        }
        let response = sse::send(http, self.policy.timeout).await?;
        if !sse::is_event_stream(&response) {
            let body: Value =
                response.json().await.map_err(|e| LlmError::Protocol(e.to_string()))?;
            return parse_complete(&body, deltas);
        }
        let mut events = Events::new(response, self.policy.timeout);
        let mut out = ChatResponse::default();
        let mut calls: BTreeMap<u64, ToolCall> = BTreeMap::new();
        // An answer is whole once a choice says why it finished or the stream says [DONE]; a
        // stream that stops before either was cut (a dropped connection, a crashed server),
        // and half an answer must not pass for a whole one.
        let mut finished = false;
        while let Some(event) = events.next().await? {
            let data = event.data.trim();
            if data == "[DONE]" {
                finished = true;
                break;
            }
            if data.is_empty() {
                continue;
            }
            let chunk: Value = serde_json::from_str(data)
                .map_err(|e| LlmError::Protocol(format!("{e}: {data}")))?;
            if let Some(reason) = chunk.pointer("/choices/0/finish_reason").filter(|r| !r.is_null())
            {
                finished = true;
                out.finish_reason = reason.as_str().map(str::to_owned);
            }
            apply_chunk(&chunk, &mut out, &mut calls, deltas)?;
        }
        if !finished {
            return Err(LlmError::Protocol(
                "the stream ended before the answer was complete".into(),
            ));
        }
        out.tool_calls = finish_calls(calls.into_values());
        Ok(out)
    }
}

/// One streamed chunk: its usage, its text (sent on as a delta) and its pieces of tool calls.
fn apply_chunk(
    chunk: &Value, out: &mut ChatResponse, calls: &mut BTreeMap<u64, ToolCall>,
    deltas: Option<&Deltas>,
) -> Result<(), LlmError> {
    if let Some(err) = chunk.get("error") {
        return Err(LlmError::Protocol(format!("error in stream: {err}")));
    }
    if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
        out.input_tokens = usage.get("prompt_tokens").and_then(Value::as_u64);
        out.output_tokens = usage.get("completion_tokens").and_then(Value::as_u64);
    }
    let Some(delta) = chunk.pointer("/choices/0/delta") else {
        return Ok(());
    };
    if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        out.text.push_str(text);
        if let Some(d) = deltas {
            let _ = d.send(text.to_owned());
        }
    }
    for (i, fragment) in
        delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate()
    {
        let index = fragment.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
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
        if let Some(args) = fragment.pointer("/function/arguments").and_then(Value::as_str) {
            call.arguments.push_str(args);
        }
    }
    Ok(())
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
    let text = message.get("content").and_then(Value::as_str).unwrap_or_default().to_owned();
    if let (Some(d), false) = (deltas, text.is_empty()) {
        let _ = d.send(text.clone());
    }
    let calls =
        message.get("tool_calls").and_then(Value::as_array).into_iter().flatten().map(|c| {
            ToolCall {
                id: c.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
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
            }
        });
    Ok(ChatResponse {
        text,
        tool_calls: finish_calls(calls),
        input_tokens: body.pointer("/usage/prompt_tokens").and_then(Value::as_u64),
        output_tokens: body.pointer("/usage/completion_tokens").and_then(Value::as_u64),
        finish_reason: body
            .pointer("/choices/0/finish_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

#[async_trait]
impl LlmProvider for OpenAi {
    async fn models(&self) -> Vec<String> {
        let mut request = self.http.get(format!("{}/models", self.base_url.trim_end_matches('/')));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        super::model_ids(request).await
    }

    async fn chat(
        &self, request: &ChatRequest, deltas: Option<&Deltas>,
    ) -> Result<ChatResponse, LlmError> {
        self.policy.run(|| self.attempt(request, deltas)).await
    }
}
