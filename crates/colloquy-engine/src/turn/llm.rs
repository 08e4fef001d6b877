//! The LLM stage: which provider answers for the agent (its `custom_llm`, or the route of its
//! `llm`), and one request: the system prompt with the variables filled, the history, the
//! agent's tools; text deltas go out as they stream.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use super::{Events, TurnEvent};
use crate::conversation::Runtime;
use crate::conversation::state::State;
use crate::error::EngineError;
use crate::llm::{
    ChatMessage, ChatRequest, ChatResponse, Deltas, LlmError, LlmProvider, Role, ToolSpec,
};

/// The agent's LLM for one turn.
pub(crate) struct Llm {
    provider: Arc<dyn LlmProvider>,
    model: String,
    /// What its failures are called (`llm_error`, or `custom_llm_error` for a custom LLM).
    error_type: &'static str,
    temperature: Option<f64>,
    max_tokens: Option<u64>,
    tools: Vec<ToolSpec>,
}

impl Llm {
    /// The LLM the agent's configuration names, with its tools.
    pub(crate) fn for_agent(state: &State, rt: &Runtime) -> Result<Llm, EngineError> {
        let prompt = state.prompt();
        let (provider, model, error_type) = provider(state, rt)?;
        Ok(Llm {
            provider,
            model,
            error_type,
            temperature: prompt.get("temperature").and_then(Value::as_f64),
            max_tokens: prompt
                .get("max_tokens")
                .and_then(Value::as_i64)
                .filter(|m| *m > 0)
                .map(|m| m as u64),
            tools: state.agent.tools.iter().map(|t| t.spec()).collect(),
        })
    }

    /// Asks for the next answer on the conversation as it stands.
    #[tracing::instrument(name = "llm.call", skip_all, fields(
        otel.name = %format!("chat {}", self.model),
        gen_ai.operation.name = "chat",
        gen_ai.request.model = %self.model,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        gen_ai.response.finish_reasons = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    ))]
    pub(crate) async fn ask(
        &self, state: &State, rt: &Runtime, events: Events<'_>,
    ) -> Result<ChatResponse, EngineError> {
        let mut messages = Vec::with_capacity(state.history.len() + 1);
        messages.push(ChatMessage::text(Role::System, state.system_prompt()));
        messages.extend(state.history.iter().cloned());
        let request = ChatRequest {
            model: self.model.clone(),
            messages,
            tools: self.tools.clone(),
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            extra_body: rt.extra_body.clone(),
            force_tool: None,
        };
        let (delta_tx, mut delta_rx) = mpsc::unbounded_channel::<String>();
        let forward = events.cloned();
        let relay = tokio::spawn(async move {
            while let Some(d) = delta_rx.recv().await {
                if let Some(tx) = &forward {
                    let _ = tx.send(TurnEvent::Delta(d));
                }
            }
        });
        let answer = self.provider.chat(&request, Some(&delta_tx as &Deltas)).await;
        drop(delta_tx);
        let _ = relay.await;
        spanned(&answer);
        answer.map_err(|error| EngineError::Llm {
            error_type: if matches!(error, LlmError::Timeout(_)) {
                "llm_timeout"
            } else {
                self.error_type
            },
            error,
        })
    }
}

/// Puts what the answer tells (GenAI semantic conventions) on the current LLM span.
fn spanned(answer: &Result<ChatResponse, LlmError>) {
    let span = tracing::Span::current();
    match answer {
        Ok(a) => {
            if let Some(n) = a.input_tokens {
                span.record("gen_ai.usage.input_tokens", n);
            }
            if let Some(n) = a.output_tokens {
                span.record("gen_ai.usage.output_tokens", n);
            }
            let reason = match &a.finish_reason {
                Some(r) => r.as_str(),
                None if a.tool_calls.is_empty() => "stop",
                None => "tool_calls",
            };
            span.record("gen_ai.response.finish_reasons", reason);
        }
        Err(_) => {
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// The provider, the model name it knows, and what its failures are called.
fn provider(
    state: &State, rt: &Runtime,
) -> Result<(Arc<dyn LlmProvider>, String, &'static str), EngineError> {
    let prompt = state.prompt();
    let llm = prompt.get("llm").and_then(Value::as_str).unwrap_or("gemini-2.5-flash");
    if llm == "custom-llm"
        && let Some(custom) = prompt.get("custom_llm").filter(|c| c.is_object())
    {
        let url = custom.get("url").and_then(Value::as_str).unwrap_or_default();
        let model =
            custom.get("model_id").and_then(Value::as_str).unwrap_or("custom-llm").to_owned();
        // The key was opened when the agent was loaded (see `AgentSnapshot`).
        let key = custom
            .pointer("/api_key/secret_id")
            .and_then(|_| state.agent.custom_llm_api_key.clone());
        return Ok((rt.deps.llm.custom(url, key), model, "custom_llm_error"));
    }
    let (provider, model) = rt
        .deps
        .llm
        .route(llm)
        .map_err(|error| EngineError::Llm { error_type: "llm_error", error })?;
    Ok((provider, model, "llm_error"))
}
