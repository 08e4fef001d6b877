//! Simulated conversations: an LLM plays the user against the agent for a bounded number of
//! turns, then a judge LLM evaluates each criterion. Serves simulation tests and the
//! `simulate-conversation` endpoints.

use std::sync::Arc;

use colloquy_core::ids::ConversationId;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

use crate::llm::{ChatMessage, ChatRequest, LlmError, Role};
use crate::tools::MockSettings;
use crate::{AgentSnapshot, Conversation, Ending, EngineDeps, Source, StartOptions, judge};

/// What the simulated user says to end the conversation.
const END: &str = "[END]";

/// A criterion to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    /// Its id (the key of the results).
    pub id: String,
    /// Its name.
    pub name: String,
    /// What success means.
    pub prompt: String,
}

/// How to simulate.
#[derive(Debug, Clone, Default)]
pub struct SimulationSpec {
    /// Who the simulated user is and what they want.
    pub user_prompt: String,
    /// The simulated user's model.
    pub user_model: String,
    /// What the simulated user says first, if fixed.
    pub user_first_message: Option<String>,
    /// Most user turns.
    pub max_turns: usize,
    /// Conversation so far.
    pub history: Vec<(Role, String)>,
    /// Dynamic variables.
    pub dynamic_variables: Map<String, Value>,
    /// Tool mocking.
    pub mocks: MockSettings,
    /// Criteria to judge.
    pub criteria: Vec<Criterion>,
    /// The judge's model.
    pub judge_model: String,
    /// `simulation` or `test`.
    pub as_test: bool,
    /// Turns to `true` when the run is cancelled; checked before each turn.
    pub cancelled: Option<watch::Receiver<bool>>,
}

/// The outcome.
#[derive(Debug, Clone, Default)]
pub struct SimulationResult {
    /// The transcript.
    pub transcript: Vec<Value>,
    /// The conversation it produced.
    pub conversation_id: Option<ConversationId>,
    /// `(criterion, passed, rationale)`.
    pub results: Vec<(Criterion, bool, String)>,
    /// Why it stopped early, if it failed.
    pub error: Option<String>,
}

impl SimulationResult {
    /// Whether every criterion passed (and nothing failed).
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.results.iter().all(|(_, ok, _)| *ok)
    }

    /// The reference's `analysis`.
    pub fn analysis(&self) -> Value {
        let mut results = Map::new();
        for (c, ok, why) in &self.results {
            results.insert(c.id.clone(), json!({"criteria_id": c.id, "result": if *ok { "success" } else { "failure" }, "rationale": why}));
        }
        json!({
            "evaluation_criteria_results": results,
            "data_collection_results": {},
            "call_successful": if self.error.is_some() { "failure" } else if self.passed() { "success" } else { "failure" },
            "transcript_summary": self.error.clone().unwrap_or_default(),
        })
    }
}

/// A conversation so far, as tests (`chat_history`) and simulations
/// (`partial_conversation_history`) give it: `{role, message}` entries, the user's and the
/// agent's.
pub fn history(entries: Option<&Value>) -> Vec<(Role, String)> {
    entries
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let text = t.get("message")?.as_str()?.to_owned();
            let role = if t.get("role").and_then(Value::as_str) == Some("user") {
                Role::User
            } else {
                Role::Assistant
            };
            Some((role, text))
        })
        .collect()
}

/// Runs a simulation; each new transcript entry is also sent to `live` as it happens.
pub async fn simulate(
    deps: &Arc<EngineDeps>, agent: AgentSnapshot, spec: SimulationSpec,
    live: Option<&mpsc::UnboundedSender<Value>>,
) -> SimulationResult {
    let opts = StartOptions {
        dynamic_variables: spec.dynamic_variables.clone(),
        mocks: spec.mocks.clone(),
        ..Default::default()
    };
    let source = if spec.as_test { Source::Test } else { Source::Simulation };
    let mut conversation = match Conversation::start(deps.clone(), agent, source, opts).await {
        Ok(c) => c,
        Err(e) => {
            return SimulationResult {
                error: Some(format!("The simulation could not start: {e}")),
                ..Default::default()
            };
        }
    };
    let error = play(deps, &spec, &mut conversation, live).await;
    let transcript = conversation.transcript().to_vec();
    let results = match error {
        None => evaluate(deps, &spec, &transcript).await,
        Some(_) => Vec::new(),
    };
    let ending = match &error {
        Some(e) => Ending::Error(e.clone()),
        None => Ending::Normal("simulation finished".into()),
    };
    let _ = conversation.end(ending).await;
    SimulationResult {
        transcript,
        conversation_id: Some(conversation.id().clone()),
        results,
        error,
    }
}

/// The simulated user and the agent take turns until the user is done, the agent ends the
/// call, the turns run out or the run is cancelled; why it stopped early, if it failed.
async fn play(
    deps: &EngineDeps, spec: &SimulationSpec, conversation: &mut Conversation,
    live: Option<&mpsc::UnboundedSender<Value>>,
) -> Option<String> {
    let mut sent = 0;
    let mut emit = |conversation: &Conversation| {
        let transcript = conversation.transcript();
        for entry in &transcript[sent..] {
            if let Some(tx) = live {
                let _ = tx.send(entry.clone());
            }
        }
        sent = transcript.len();
    };
    for (role, text) in &spec.history {
        conversation.seed(*role, text);
    }
    emit(conversation);
    for turn in 0..spec.max_turns.max(1) {
        if spec.cancelled.as_ref().is_some_and(|c| *c.borrow()) {
            return Some("Cancelled before it finished".into());
        }
        let user_text = match (turn, &spec.user_first_message) {
            (0, Some(first)) if !first.is_empty() && spec.history.is_empty() => first.clone(),
            _ => match simulated_user(deps, spec, conversation.transcript()).await {
                Ok(t) => t,
                Err(e) => return Some(format!("The simulated user's LLM failed: {e}")),
            },
        };
        if user_text.trim().is_empty() || user_text.contains(END) {
            return None;
        }
        let reply = conversation.user_message(&user_text, None).await;
        emit(conversation);
        match reply {
            Ok(r) if r.end_call => return None,
            Ok(_) => {}
            Err(e) => return Some(format!("The agent failed: {e}")),
        }
    }
    None
}

/// The judge's verdict on each criterion over the whole transcript.
async fn evaluate(
    deps: &EngineDeps, spec: &SimulationSpec, transcript: &[Value],
) -> Vec<(Criterion, bool, String)> {
    let text: String = transcript
        .iter()
        .map(|t| {
            format!(
                "{}: {}\n",
                t["role"].as_str().unwrap_or_default(),
                t["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let mut results = Vec::with_capacity(spec.criteria.len());
    for c in &spec.criteria {
        let prompt = format!("Criterion: {}\n\nConversation:\n{text}", c.prompt);
        let (passed, why) = match judge::verdict(deps, &spec.judge_model, &prompt).await {
            Ok(answer) => judge::parse_verdict(&answer)
                .unwrap_or((false, format!("The judge's verdict could not be parsed: {answer}"))),
            Err(e) => (false, format!("The judge LLM failed: {e}")),
        };
        results.push((c.clone(), passed, why));
    }
    results
}

/// The simulated user's next message, from its point of view (the agent speaks as "user").
async fn simulated_user(
    deps: &EngineDeps, spec: &SimulationSpec, transcript: &[Value],
) -> Result<String, LlmError> {
    let system = format!(
        "You are simulating a user talking to an AI agent, to test it. {}\n\
         Write only the user's next message. When the conversation has reached its end, reply with {END}.",
        spec.user_prompt
    );
    let mut messages = vec![ChatMessage::text(Role::System, system)];
    for t in transcript {
        let text = t["message"].as_str().unwrap_or_default();
        let role = if t["role"] == "user" { Role::Assistant } else { Role::User };
        messages.push(ChatMessage::text(role, text));
    }
    if messages.len() == 1 {
        messages
            .push(ChatMessage::text(Role::User, "(The agent is waiting for you to speak first.)"));
    }
    let (provider, model) = deps.llm.route(&spec.user_model)?;
    let request = ChatRequest { model, messages, temperature: Some(0.7), ..Default::default() };
    Ok(provider.chat(&request, None).await?.text)
}
