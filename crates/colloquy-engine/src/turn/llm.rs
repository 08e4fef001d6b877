//! The LLM stage: which provider answers for the agent (its `custom_llm`, or the route of its
//! `llm`), and one request: the system prompt with the variables filled, the history, the
//! agent's tools; text deltas go out as they stream. When the model fails (a timeout, a 5xx or
//! 429 after the provider's own retries, a dropped connection) or has not started answering
//! within `cascade_timeout_seconds`, the request goes to the next model of the agent's
//! `backup_llm_config` (`override`: its `order`; `default`: the operator's `[llm]
//! backup_models`; `disabled`: none), as long as nothing of the failed answer reached the user.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{Events, TurnEvent};
use crate::conversation::Runtime;
use crate::conversation::state::State;
use crate::error::EngineError;
use crate::llm::{
    ChatMessage, ChatRequest, ChatResponse, Deltas, LlmError, LlmProvider, Role, ToolSpec,
};
use crate::tools::AgentTool;

/// The agent's LLM for one turn, and the models that take over when it fails.
pub(crate) struct Llm {
    /// The agent's model, then its backups in order.
    models: Vec<Model>,
    /// How long a model with a backup behind it may take to start answering.
    cascade_after: Duration,
    /// What its failures are called (`llm_error`, or `custom_llm_error` for a custom LLM).
    error_type: &'static str,
    temperature: Option<f64>,
    max_tokens: Option<u64>,
    tools: Vec<ToolSpec>,
}

impl Llm {
    /// The LLM the agent's configuration names, with its tools and backups.
    pub(crate) fn for_agent(state: &State, rt: &Runtime) -> Result<Llm, EngineError> {
        let prompt = state.prompt();
        let (provider, model, error_type) = provider(state, rt)?;
        let named = prompt.get("llm").and_then(Value::as_str).unwrap_or(&model).to_owned();
        let mut models = vec![Model { provider, name: model, named }];
        models.extend(backups(prompt, rt, &models[0].named));
        let cascade_after = prompt
            .get("cascade_timeout_seconds")
            .and_then(Value::as_f64)
            .unwrap_or(DEFAULT_CASCADE_SECS)
            .clamp(2.0, 15.0);
        Ok(Llm {
            models,
            cascade_after: Duration::from_secs_f64(cascade_after),
            error_type,
            temperature: prompt.get("temperature").and_then(Value::as_f64),
            max_tokens: prompt
                .get("max_tokens")
                .and_then(Value::as_i64)
                .filter(|m| *m > 0)
                .map(|m| m as u64),
            tools: state.tools().map(AgentTool::spec).collect(),
        })
    }

    /// Asks for the next answer on the conversation as it stands: the answer, and the model
    /// that gave it (as the agent names it).
    #[tracing::instrument(name = "llm.call", skip_all, fields(
        otel.name = %format!("chat {}", self.models[0].name),
        gen_ai.operation.name = "chat",
        gen_ai.request.model = %self.models[0].name,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        gen_ai.response.finish_reasons = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    ))]
    pub(crate) async fn ask(
        &self, state: &State, rt: &Runtime, events: Events<'_>,
    ) -> Result<(ChatResponse, String), EngineError> {
        let mut messages = Vec::with_capacity(state.history.len() + 1);
        messages.push(ChatMessage::text(Role::System, state.system_prompt()));
        messages.extend(state.history.iter().cloned());
        let mut request = ChatRequest {
            model: String::new(),
            messages,
            tools: self.tools.clone(),
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            extra_body: rt.extra_body.clone(),
            force_tool: None,
        };
        for (i, model) in self.models.iter().enumerate() {
            let next = self.models.get(i + 1);
            request.model.clone_from(&model.name);
            let limit = next.is_some().then_some(self.cascade_after);
            let (answer, streamed) = ask_one(model, &request, events, limit).await;
            spanned(&answer, &model.named);
            match answer {
                Ok(answer) => return Ok((answer, model.named.clone())),
                Err(error) if next.is_some() && !streamed && cascades(&error) => {
                    tracing::warn!(%error, model = %model.named, "the LLM failed; its backup takes over");
                }
                Err(error) => return Err(self.failure(error, i > 0)),
            }
        }
        Err(self.failure(LlmError::NoProvider("none".into()), true))
    }

    /// The arguments the agent's model gives `tool` on the conversation as it stands (a
    /// forced call): how a workflow's tool node fills the parameters its overrides leave to
    /// the LLM.
    pub(crate) async fn fill(
        &self, state: &State, rt: &Runtime, tool: ToolSpec,
    ) -> Result<Value, EngineError> {
        let mut messages = Vec::with_capacity(state.history.len() + 1);
        messages.push(ChatMessage::text(Role::System, state.system_prompt()));
        messages.extend(state.history.iter().cloned());
        let model = &self.models[0];
        let request = ChatRequest {
            model: model.name.clone(),
            messages,
            force_tool: Some(tool.name.clone()),
            tools: vec![tool],
            temperature: self.temperature,
            extra_body: rt.extra_body.clone(),
            ..Default::default()
        };
        let answer =
            model.provider.chat(&request, None).await.map_err(|e| self.failure(e, false))?;
        Ok(answer
            .tool_calls
            .first()
            .and_then(|c| serde_json::from_str(&c.arguments).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| serde_json::json!({})))
    }

    /// The agent's own model as a judge (a guardrail's).
    pub(crate) fn judge(&self) -> Judge {
        let model = &self.models[0];
        Judge { provider: model.provider.clone(), model: model.name.clone() }
    }

    /// The error of a turn whose model failed, `cascaded` after its backups did too.
    fn failure(&self, error: LlmError, cascaded: bool) -> EngineError {
        let error_type = match &error {
            _ if cascaded => "cascade_brain_error",
            LlmError::Timeout(_) => "llm_timeout",
            _ => self.error_type,
        };
        EngineError::Llm { error_type, error }
    }
}

/// A model asked for verdicts: cheap to clone, so a check can run beside the turn.
#[derive(Clone)]
pub(crate) struct Judge {
    provider: Arc<dyn LlmProvider>,
    model: String,
}

impl Judge {
    /// The judge `model` names, when this server routes it.
    pub(crate) fn routed(deps: &crate::EngineDeps, model: &str) -> Option<Judge> {
        if !deps.llm.has_route(model) {
            return None;
        }
        let (provider, model) = deps.llm.route(model).ok()?;
        Some(Judge { provider, model })
    }

    /// `system` and one user message, no tools, at temperature 0: the answer's text.
    pub(crate) async fn ask(&self, system: &str, user: &str) -> Result<String, LlmError> {
        let request = ChatRequest {
            model: self.model.clone(),
            messages: vec![
                ChatMessage::text(Role::System, system),
                ChatMessage::text(Role::User, user),
            ],
            temperature: Some(0.0),
            ..Default::default()
        };
        Ok(self.provider.chat(&request, None).await?.text)
    }
}

/// One model of the cascade: its provider, the name it is sent as, the name the agent gave it.
struct Model {
    provider: Arc<dyn LlmProvider>,
    name: String,
    named: String,
}

/// `cascade_timeout_seconds` when the agent sets none, as the reference's default.
const DEFAULT_CASCADE_SECS: f64 = 4.0;

/// The agent's backup models, each routed (one no provider serves is left out, with a warning),
/// without the agent's own model.
fn backups(prompt: &Value, rt: &Runtime, own: &str) -> Vec<Model> {
    let config = prompt.get("backup_llm_config");
    let names: Vec<String> = match config.and_then(|c| c.get("preference")).and_then(Value::as_str)
    {
        Some("disabled") => Vec::new(),
        Some("override") => config
            .and_then(|c| c.get("order"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => rt.deps.llm.backup_models().to_vec(),
    };
    names
        .into_iter()
        .filter(|name| name != own)
        .filter_map(|named| match rt.deps.llm.route(&named) {
            Ok((provider, name)) => Some(Model { provider, name, named }),
            Err(e) => {
                tracing::warn!(error = %e, model = %named, "a backup LLM is left out");
                None
            }
        })
        .collect()
}

/// Whether a failure is one the next model may not share: a timeout, a server error or rate
/// limit (after the provider's own retries), a connection that failed or dropped, an answer cut
/// short. A 4xx is the request's fault, and would fail on every model alike.
fn cascades(error: &LlmError) -> bool {
    matches!(error, LlmError::Timeout(_) | LlmError::Transport(_) | LlmError::Protocol(_))
        || error.retryable()
}

/// One model's answer, and whether any of its text reached the user. With a `limit` (a backup
/// waits), a model that has not started streaming by then is given up on: a timeout.
async fn ask_one(
    model: &Model, request: &ChatRequest, events: Events<'_>, limit: Option<Duration>,
) -> (Result<ChatResponse, LlmError>, bool) {
    let (delta_tx, mut delta_rx) = mpsc::unbounded_channel::<String>();
    let (started_tx, started) = oneshot::channel::<()>();
    let forward = events.cloned();
    let relay = tokio::spawn(async move {
        let mut started_tx = Some(started_tx);
        while let Some(d) = delta_rx.recv().await {
            if let Some(tx) = started_tx.take() {
                let _ = tx.send(());
            }
            if let Some(tx) = &forward {
                let _ = tx.send(TurnEvent::Delta(d));
            }
        }
        started_tx.is_none()
    });
    let chat = model.provider.chat(request, Some(&delta_tx as &Deltas));
    let answer = match limit {
        None => chat.await,
        Some(limit) => {
            tokio::pin!(chat);
            tokio::select! {
                biased;
                answer = &mut chat => answer,
                // Streaming began (or the answer holds no text): no more waiting on the clock.
                _ = started => chat.await,
                () = tokio::time::sleep(limit) => Err(LlmError::Timeout(limit)),
            }
        }
    };
    drop(delta_tx);
    let streamed = relay.await.unwrap_or(true);
    (answer, streamed)
}

/// Puts what the answer tells (GenAI semantic conventions) on the current LLM span.
fn spanned(answer: &Result<ChatResponse, LlmError>, model: &str) {
    let span = tracing::Span::current();
    match answer {
        Ok(a) => {
            span.record("gen_ai.response.model", model);
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
        // The key was opened when the agent was loaded (see `AgentSnapshot`).
        let key = custom.get("api_key").and_then(|_| state.agent.custom_llm_api_key.clone());
        let (provider, model) = rt.deps.llm.custom(custom, key);
        return Ok((provider, model, "custom_llm_error"));
    }
    let (provider, model) = rt
        .deps
        .llm
        .route(llm)
        .map_err(|error| EngineError::Llm { error_type: "llm_error", error })?;
    Ok((provider, model, "llm_error"))
}
