//! Post-call analysis: a finished conversation's summary, title, evaluation criteria and
//! collected data, asked of an LLM through a forced tool call whose arguments follow a strict
//! JSON schema (so any OpenAI-compatible or Anthropic server with tool calling answers it), and
//! checked by [`colloquy_core::analysis`] before anything is kept. Each node's [`worker`] works
//! the queued analyses of conversations that ended; `analysis/run` runs one on demand.

pub mod worker;

use colloquy_core::analysis::{Analysis, Plan, TOOL_NAME};
use colloquy_core::environments::PRODUCTION;
use colloquy_core::ids::{ConversationId, WorkspaceId};
use std::sync::Arc;

use colloquy_store::{ConversationRow, StoreError};
use serde_json::Value;

use crate::EngineDeps;
use crate::llm::{ChatMessage, ChatRequest, LlmError, LlmProvider, Role, ToolSpec};

/// The reference's default `analysis_llm`. Agents carry it unless they chose another, so it
/// is used only where a route sends it somewhere; otherwise the agent's own model analyses.
const REFERENCE_ANALYSIS_LLM: &str = "gemini-2.5-flash";

/// The most transcript text an analysis sends (the end is kept: it says how the call ended).
const MAX_TRANSCRIPT_CHARS: usize = 60_000;

const SYSTEM: &str = "You analyse a finished conversation between an AI agent and a user. \
Read the conversation, then call the record_analysis tool once with every field it asks for. \
Base every answer only on what the conversation shows.";

/// Why an analysis could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The LLM could not be reached or failed: worth trying again.
    #[error("{0}")]
    Llm(#[from] LlmError),
    /// The store failed: worth trying again.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The LLM's answer did not follow the contract, even when asked again.
    #[error("the LLM's analysis was not valid: {0}")]
    Invalid(String),
    /// The conversation, its agent, or what the agent needs (its custom LLM's key) is gone.
    #[error("{0}")]
    Gone(String),
    /// The agent has no evaluation criterion of this id.
    #[error("the agent has no evaluation criterion `{0}`")]
    UnknownCriterion(String),
}

impl AnalysisError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, AnalysisError::Llm(_) | AnalysisError::Store(_))
    }
}

/// A finished analysis: the reference's `ConversationHistoryAnalysisCommonModel` and the
/// `call_successful` it gives.
#[derive(Debug, Clone)]
pub struct Analysed {
    /// The analysis, as served.
    pub wire: Value,
    /// `success`, `failure` or `unknown`.
    pub call_successful: String,
}

/// Analyses a stored conversation with its agent's current settings. `only` re-runs one
/// evaluation criterion over the stored analysis, keeping the rest of it.
pub async fn analyse(
    deps: &EngineDeps, workspace_id: &WorkspaceId, id: &ConversationId, only: Option<&str>,
) -> Result<Analysed, AnalysisError> {
    let row = deps.store.get_conversation(workspace_id, id).await.map_err(|e| match e {
        StoreError::NotFound => AnalysisError::Gone("the conversation no longer exists".into()),
        e => e.into(),
    })?;
    let agent: Value = match deps.store.get_agent(workspace_id, &row.agent_id).await {
        Ok(agent) => serde_json::from_str(&agent.document).unwrap_or_default(),
        Err(StoreError::NotFound) => {
            return Err(AnalysisError::Gone("the conversation's agent no longer exists".into()));
        }
        Err(e) => return Err(e.into()),
    };
    let settings = agent.get("platform_settings").cloned().unwrap_or_default();
    let plan = Plan::of_agent(&settings);
    let document: Value = serde_json::from_str(&row.document).unwrap_or_default();
    let asker = Asker {
        deps,
        workspace_id,
        agent: &agent,
        environment: document["environment"].as_str().unwrap_or(PRODUCTION),
        transcript: render(&document["transcript"]),
        language: settings.get("summary_language").and_then(Value::as_str),
    };
    let model = analysis_model(deps, &agent);
    let mut analysis = match only {
        Some(criterion) => {
            let part = plan
                .only_criterion(criterion)
                .ok_or_else(|| AnalysisError::UnknownCriterion(criterion.to_owned()))?;
            let mut analysis = stored(&row);
            let model = part.criteria[0].llm.clone().unwrap_or(model);
            asker.ask(&model, &part, false, &mut analysis).await?;
            analysis
        }
        None => {
            let mut analysis = Analysis::default();
            if !asker.transcript.is_empty() {
                for (i, (model, part)) in plan.by_model(&model).into_iter().enumerate() {
                    let with_summary = i == 0;
                    if with_summary || part.asks_llm() {
                        asker.ask(&model, &part, with_summary, &mut analysis).await?;
                    }
                }
            }
            let variables = document
                .pointer("/conversation_initiation_client_data/dynamic_variables")
                .cloned()
                .unwrap_or_default();
            plan.fixed_values(&variables, &mut analysis);
            analysis
        }
    };
    // A criterion that no longer exists has no result to keep.
    analysis.criteria.retain(|id, _| plan.criteria.iter().any(|c| &c.id == id));
    let recorded =
        if row.status == "failed" { "failure".to_owned() } else { row.call_successful.clone() };
    let call_successful = analysis.call_successful(&recorded);
    Ok(Analysed { wire: analysis.to_wire(&call_successful), call_successful })
}

/// The analysis the conversation holds, to re-run one criterion over.
fn stored(row: &ConversationRow) -> Analysis {
    row.analysis
        .as_deref()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .map(|a| Analysis::from_wire(&a))
        .unwrap_or_default()
}

/// The model that analyses: `analysis_llm` when the agent chose one (or a route takes the
/// reference's default), else the agent's conversation model.
fn analysis_model(deps: &EngineDeps, agent: &Value) -> String {
    let own = agent.pointer("/conversation_config/agent/prompt/llm").and_then(Value::as_str);
    match agent.pointer("/platform_settings/analysis_llm").and_then(Value::as_str) {
        Some(m) if !m.is_empty() && (m != REFERENCE_ANALYSIS_LLM || deps.llm.has_route(m)) => {
            m.to_owned()
        }
        _ => own.unwrap_or(REFERENCE_ANALYSIS_LLM).to_owned(),
    }
}

/// What every request of one analysis shares.
struct Asker<'a> {
    deps: &'a EngineDeps,
    workspace_id: &'a WorkspaceId,
    agent: &'a Value,
    /// The environment the conversation ran in, whose values environment variables take.
    environment: &'a str,
    /// The transcript as text (empty: nothing was said).
    transcript: String,
    /// The language of summaries and rationales, when the agent sets one.
    language: Option<&'a str>,
}

impl Asker<'_> {
    /// The provider of `model`: the agent's own `custom_llm` for `custom-llm`, else the route.
    async fn provider(&self, model: &str) -> Result<(Arc<dyn LlmProvider>, String), AnalysisError> {
        let custom = self.agent.pointer("/conversation_config/agent/prompt/custom_llm");
        if model == "custom-llm"
            && let Some(custom) = custom.filter(|c| c.is_object())
        {
            let key = match custom.get("api_key") {
                Some(key) => crate::secrets::open_reference(
                    self.deps,
                    self.workspace_id,
                    self.environment,
                    key,
                )
                .await
                .map_err(|e| {
                    AnalysisError::Gone(format!("the custom LLM's key cannot be opened: {e}"))
                })?
                .map(|opened| opened.value),
                None => None,
            };
            return Ok(self.deps.llm.custom(custom, key));
        }
        Ok(self.deps.llm.route(model)?)
    }

    /// Asks `model` for one part of the plan and adds the checked answer to `analysis`; an
    /// answer that breaks the contract is asked for once more, with what was wrong.
    async fn ask(
        &self, model: &str, part: &Plan, with_summary: bool, analysis: &mut Analysis,
    ) -> Result<(), AnalysisError> {
        let (provider, model) = self.provider(model).await?;
        let instructions = part.instructions(with_summary, self.language);
        let mut messages = vec![
            ChatMessage::text(Role::System, SYSTEM),
            ChatMessage::text(
                Role::User,
                format!("The conversation:\n\n{}\n\n{instructions}", self.transcript),
            ),
        ];
        let tool = ToolSpec {
            name: TOOL_NAME.into(),
            description: "Records the analysis of the conversation.".into(),
            parameters: part.schema(with_summary),
        };
        let mut why = String::new();
        for _ in 0..2 {
            let request = ChatRequest {
                model: model.clone(),
                messages: messages.clone(),
                tools: vec![tool.clone()],
                temperature: Some(0.0),
                force_tool: Some(TOOL_NAME.into()),
                ..Default::default()
            };
            let answer = provider.chat(&request, None).await?;
            let arguments = answer
                .tool_calls
                .iter()
                .find(|c| c.name == TOOL_NAME)
                .map(|c| c.arguments.clone())
                // A server that ignores the forced call may still answer the JSON as text.
                .or_else(|| json_in(&answer.text));
            let read = match arguments.map(|a| serde_json::from_str::<Value>(&a)) {
                None => Err("it did not call record_analysis".to_owned()),
                Some(Err(e)) => Err(format!("the arguments are not JSON: {e}")),
                Some(Ok(args)) => part.read(&args, with_summary, analysis),
            };
            match read {
                Ok(()) => return Ok(()),
                Err(e) => why = e,
            }
            messages.push(ChatMessage::text(
                Role::User,
                format!("That answer was not valid: {why}. Call record_analysis again, with every field."),
            ));
        }
        Err(AnalysisError::Invalid(why))
    }
}

/// The outermost `{...}` of a text answer.
fn json_in(text: &str) -> Option<String> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    (start < end).then(|| text[start..=end].to_owned())
}

/// The transcript as the analysing LLM reads it: one line per message and per tool call.
fn render(transcript: &Value) -> String {
    let mut lines = Vec::new();
    for entry in transcript.as_array().into_iter().flatten() {
        let role = if entry["role"] == "user" { "user" } else { "agent" };
        for call in entry["tool_calls"].as_array().into_iter().flatten() {
            lines.push(format!(
                "agent called the tool {} with {}",
                call["tool_name"].as_str().unwrap_or_default(),
                call["params_as_json"].as_str().unwrap_or("{}")
            ));
        }
        for result in entry["tool_results"].as_array().into_iter().flatten() {
            lines.push(format!(
                "the tool {} returned {}",
                result["tool_name"].as_str().unwrap_or_default(),
                result["result_value"].as_str().unwrap_or_default()
            ));
        }
        if let Some(message) = entry["message"].as_str().filter(|m| !m.trim().is_empty()) {
            lines.push(format!("{role}: {message}"));
        }
    }
    let text = lines.join("\n");
    match text.char_indices().rev().nth(MAX_TRANSCRIPT_CHARS) {
        Some((cut, _)) => format!("[the start is left out]\n{}", &text[cut..]),
        None => text,
    }
}

/// Queues the analysis of a conversation that ended; `deliver`: its post-call webhook is
/// queued when the analysis ends. Failures are logged, never raised (the conversation itself
/// is already stored).
pub async fn queue(
    deps: &EngineDeps, workspace_id: &WorkspaceId, id: &ConversationId, deliver: bool,
) {
    let now = colloquy_core::time::now_secs();
    match deps.store.queue_analysis(workspace_id, id, deliver, now).await {
        Ok(()) => deps.analyses_queued.notify_one(),
        Err(e) => {
            tracing::error!(error = %e, conversation = %id, "could not queue the analysis");
            if deliver {
                crate::webhooks::post_call(deps, workspace_id, id).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_transcript_reads_as_lines() {
        let transcript = json!([
            {"role": "agent", "message": "Hello"},
            {"role": "user", "message": "Weather in Oslo?"},
            {"role": "agent", "message": null, "tool_calls": [{"tool_name": "weather", "params_as_json": "{\"city\":\"Oslo\"}"}]},
            {"role": "agent", "message": "", "tool_results": [{"tool_name": "weather", "result_value": "sunny"}]},
            {"role": "agent", "message": "It is sunny."},
        ]);
        assert_eq!(
            render(&transcript),
            "agent: Hello\nuser: Weather in Oslo?\nagent called the tool weather with {\"city\":\"Oslo\"}\n\
             the tool weather returned sunny\nagent: It is sunny."
        );
        assert_eq!(render(&json!([])), "");
    }
}
