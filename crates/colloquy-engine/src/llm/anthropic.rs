//! The Anthropic Messages API, streamed: the system prompt apart, tool calls as `tool_use`
//! blocks, tool results as `tool_result` blocks of a user message.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::sse::{self, Events};
use super::{CallPolicy, ChatRequest, ChatResponse, Deltas, LlmError, LlmProvider, Role, ToolCall};

/// The API version this client speaks.
const API_VERSION: &str = "2023-06-01";
/// `max_tokens` is mandatory in this API; used when the agent sets none.
const DEFAULT_MAX_TOKENS: u64 = 1024;

/// An Anthropic endpoint.
pub struct Anthropic {
    http: reqwest::Client,
    /// Base URL, e.g. `https://api.anthropic.com`.
    base_url: String,
    api_key: String,
    policy: CallPolicy,
}

impl Anthropic {
    /// A provider at `base_url` with `api_key`.
    pub fn new(
        http: reqwest::Client, base_url: &str, api_key: String, policy: CallPolicy,
    ) -> Anthropic {
        Anthropic { http, base_url: base_url.trim_end_matches('/').to_owned(), api_key, policy }
    }

    fn body(request: &ChatRequest) -> Value {
        /// A user message's text, then its files: images as `image` blocks, PDFs as
        /// `document` blocks, both base64.
        fn user_blocks(m: &crate::llm::ChatMessage) -> Vec<Value> {
            let mut blocks = vec![json!({"type": "text", "text": m.content})];
            for a in &m.attachments {
                let kind = if a.is_image() { "image" } else { "document" };
                blocks.push(json!({"type": kind, "source": {
                    "type": "base64", "media_type": a.mime_type, "data": a.base64()}}));
            }
            blocks
        }
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        let mut messages: Vec<Value> = Vec::new();
        for m in request.messages.iter().filter(|m| m.role != Role::System) {
            let (role, blocks) = match m.role {
                Role::User => ("user", user_blocks(m)),
                Role::Tool => (
                    "user",
                    vec![
                        json!({"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}),
                    ],
                ),
                _ => {
                    let mut blocks = Vec::new();
                    if !m.content.is_empty() {
                        blocks.push(json!({"type": "text", "text": m.content}));
                    }
                    for c in &m.tool_calls {
                        let input: Value =
                            serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                        blocks.push(
                            json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}),
                        );
                    }
                    ("assistant", blocks)
                }
            };
            // Consecutive messages of one role (several tool results) form one message.
            match messages.last_mut() {
                Some(last) if last["role"] == role => {
                    if let Some(content) = last["content"].as_array_mut() {
                        content.extend(blocks);
                    }
                }
                _ => messages.push(json!({"role": role, "content": blocks})),
            }
        }
        let mut body = json!({
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "stream": true,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                .collect();
        }
        if let Some(name) = &request.force_tool {
            body["tool_choice"] = json!({"type": "tool", "name": name});
        }
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        if let (Some(extra), Some(obj)) = (&request.extra_body, body.as_object_mut()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        body
    }

    async fn attempt(
        &self, request: &ChatRequest, deltas: Option<&Deltas>,
    ) -> Result<ChatResponse, LlmError> {
        let http = self
            .http
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", &self.api_key)
            .header("anthropic-version", API_VERSION)
            .json(&Self::body(request));
        let response = sse::send(http, self.policy.timeout).await?;
        let mut events = Events::new(response, self.policy.timeout);
        let mut out = ChatResponse::default();
        let mut calls: BTreeMap<u64, ToolCall> = BTreeMap::new();
        // Without `message_stop` the stream was cut, and half an answer is no answer.
        let mut stopped = false;
        while let Some(event) = events.next().await? {
            if event.data.trim().is_empty() {
                continue;
            }
            let data: Value = serde_json::from_str(&event.data)
                .map_err(|e| LlmError::Protocol(format!("{e}: {}", event.data)))?;
            let kind = data.get("type").and_then(Value::as_str).unwrap_or(event.event.as_str());
            if kind == "message_stop" {
                stopped = true;
                break;
            }
            apply_event(kind, &data, &mut out, &mut calls, deltas)?;
        }
        if !stopped {
            return Err(LlmError::Protocol(
                "the stream ended before the answer was complete".into(),
            ));
        }
        out.tool_calls = calls
            .into_values()
            .map(|mut c| {
                if c.arguments.trim().is_empty() {
                    c.arguments = "{}".into();
                }
                c
            })
            .collect();
        Ok(out)
    }
}

/// One streamed event of type `kind`: a tool call starting, text (sent on as a delta) or a
/// call's arguments arriving, the usage, or an error.
fn apply_event(
    kind: &str, data: &Value, out: &mut ChatResponse, calls: &mut BTreeMap<u64, ToolCall>,
    deltas: Option<&Deltas>,
) -> Result<(), LlmError> {
    let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
    match kind {
        "content_block_start" => {
            let block = &data["content_block"];
            if block["type"] == "tool_use" {
                calls.insert(
                    index,
                    ToolCall {
                        id: block["id"].as_str().unwrap_or_default().to_owned(),
                        name: block["name"].as_str().unwrap_or_default().to_owned(),
                        arguments: String::new(),
                    },
                );
            }
        }
        "content_block_delta" => {
            let delta = &data["delta"];
            if let Some(text) = delta.get("text").and_then(Value::as_str) {
                out.text.push_str(text);
                if let Some(d) = deltas {
                    let _ = d.send(text.to_owned());
                }
            }
            if let (Some(json), Some(call)) =
                (delta.get("partial_json").and_then(Value::as_str), calls.get_mut(&index))
            {
                call.arguments.push_str(json);
            }
        }
        "message_start" => {
            out.input_tokens = data.pointer("/message/usage/input_tokens").and_then(Value::as_u64);
        }
        "message_delta" => {
            if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                out.finish_reason = Some(reason.to_owned());
            }
            out.output_tokens =
                data.pointer("/usage/output_tokens").and_then(Value::as_u64).or(out.output_tokens);
        }
        "error" => {
            return Err(LlmError::Protocol(format!("error in stream: {}", data["error"])));
        }
        _ => {}
    }
    Ok(())
}

#[async_trait]
impl LlmProvider for Anthropic {
    async fn models(&self) -> Vec<String> {
        let request = self
            .http
            .get(format!("{}/v1/models", self.base_url))
            .header("x-api-key", &self.api_key)
            .header("anthropic-version", API_VERSION);
        super::model_ids(request).await
    }

    async fn chat(
        &self, request: &ChatRequest, deltas: Option<&Deltas>,
    ) -> Result<ChatResponse, LlmError> {
        self.policy.run(|| self.attempt(request, deltas)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Attachment, ChatMessage};

    #[test]
    fn a_users_files_become_image_and_document_blocks() {
        let file = |name: &str, mime: &str| Attachment {
            filename: name.into(),
            mime_type: mime.into(),
            data: b"abc".as_slice().into(),
        };
        let message = ChatMessage {
            attachments: vec![file("a.png", "image/png"), file("b.pdf", "application/pdf")],
            ..ChatMessage::text(Role::User, "look")
        };
        let request = ChatRequest { messages: vec![message], ..ChatRequest::default() };
        let body = Anthropic::body(&request);
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "YWJj"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "YWJj"}},
            ])
        );
    }
}
