//! Running agent tests (DESIGN.md §3.4): one test against an agent, judged by its type, and
//! the queue worker that runs them ([`worker`]).
//!
//! A run replays the test's `chat_history` into a conversation (`source=test`), lets the agent
//! answer with every tool mocked (a tool's own response mocks answer; an unmatched call is a
//! tool error, so tests never reach real webhooks), then judges: `tool` tests compare the tool
//! calls with the expectation ([`tool_calls`]); `llm` tests ask the judge for a structured
//! verdict, parsed strictly — anything else than a clear success or failure fails the run
//! with the reason. Simulation tests hand over to [`crate::simulation`].

mod tool_calls;
mod worker;

use std::sync::Arc;

use colloquy_core::ids::{ConversationId, ToolId};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

pub use worker::worker;

use crate::llm::Role;
use crate::simulation::{self, Criterion, SimulationSpec};
use crate::tools::MockSettings;
use crate::{
    AgentSnapshot, Conversation, Ending, EngineDeps, Source, StartOptions, TurnEvent, judge,
};

/// What a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether the test passed.
    pub passed: bool,
    /// One-line summary of why.
    pub summary: String,
    /// Individual findings.
    pub messages: Vec<String>,
    /// The agent's transcript entries produced by the run.
    pub agent_responses: Vec<Value>,
    /// The conversation the run produced.
    pub conversation_id: Option<ConversationId>,
}

impl Verdict {
    /// A judgement, with its findings.
    fn of(passed: bool, summary: impl Into<String>, messages: Vec<String>) -> Verdict {
        Verdict {
            passed,
            summary: summary.into(),
            messages,
            agent_responses: Vec::new(),
            conversation_id: None,
        }
    }

    /// A run that could not be judged, and why.
    fn failed(summary: impl Into<String>) -> Verdict {
        Verdict::of(false, summary, Vec::new())
    }

    /// The run's stored result.
    pub fn to_json(&self) -> Value {
        json!({
            "condition_result": {
                "result": if self.passed { "success" } else { "failure" },
                "rationale": {"messages": self.messages, "summary": self.summary},
            },
            "agent_responses": self.agent_responses,
            "conversation_id": self.conversation_id,
        })
    }
}

/// Runs one test (its stored document, `type` included) against `agent`; a simulation stops
/// at its next turn once `cancelled` turns true.
pub async fn run_test(
    deps: &Arc<EngineDeps>, agent: AgentSnapshot, test: &Value, cancelled: watch::Receiver<bool>,
) -> Verdict {
    match test.get("type").and_then(Value::as_str).unwrap_or("llm") {
        "simulation" => run_simulation_test(deps, agent, test, cancelled).await,
        kind => run_reply_test(deps, agent, test, kind == "tool").await,
    }
}

/// The test's `chat_history` as (role, text).
fn history(test: &Value) -> Vec<(Role, String)> {
    simulation::history(test.get("chat_history"))
}

/// `llm` and `tool` tests: the agent answers the history once, with every tool mocked.
async fn run_reply_test(
    deps: &Arc<EngineDeps>, agent: AgentSnapshot, test: &Value, tool_test: bool,
) -> Verdict {
    let history = history(test);
    if history.last().map(|(r, _)| *r) != Some(Role::User) {
        return Verdict::failed(
            "The test's chat_history must end with a user message for the agent to answer",
        );
    }
    let opts = StartOptions {
        dynamic_variables: test
            .get("dynamic_variables")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        mocks: MockSettings {
            mocking_strategy: "all".into(),
            fallback_strategy: "raise_error".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let model = agent.llm().to_owned();
    let tool_names: Vec<(ToolId, String)> =
        agent.tools.iter().map(|t| (t.id.clone(), t.name.clone())).collect();
    let mut conversation = match Conversation::start(deps.clone(), agent, Source::Test, opts).await
    {
        Ok(c) => c,
        Err(e) => return Verdict::failed(format!("The test conversation could not start: {e}")),
    };
    // The agent's first message is part of the agent, not of the test's history.
    for (role, text) in &history {
        conversation.seed(*role, text);
    }
    let (events, mut rx) = mpsc::unbounded_channel();
    let answer = conversation.respond(Some(&events)).await;
    drop(events);
    let (mut calls, mut nodes) = (Vec::new(), Vec::new());
    while let Ok(event) = rx.try_recv() {
        match event {
            TurnEvent::ToolRequest { name, parameters, .. } => calls.push((name, parameters)),
            TurnEvent::Node { agent_id, node_id } => nodes.push((agent_id, node_id)),
            _ => {}
        }
    }
    let reply = answer.as_ref().map(|t| t.text.clone()).unwrap_or_default();
    let transition = test.pointer("/tool_call_parameters/workflow_node_transition");
    let mut verdict = match answer {
        Err(e) => Verdict::failed(format!("The agent could not answer: {e}")),
        Ok(_) if tool_test && transition.is_some_and(Value::is_object) => {
            tool_calls::judge_transition(transition.unwrap_or(&Value::Null), &nodes)
        }
        Ok(_) if tool_test => {
            tool_calls::judge_tool_calls(deps, &model, test, &calls, &tool_names).await
        }
        Ok(turn) => judge_reply(deps, &model, test, &history, &turn.text, &calls).await,
    };
    let outcome = if verdict.passed { "test passed" } else { "test failed" };
    let _ = conversation.end(Ending::Normal(outcome.into())).await;
    verdict.agent_responses =
        vec![json!({"role": "agent", "message": reply, "time_in_call_secs": 0})];
    verdict.conversation_id = Some(conversation.id().clone());
    verdict
}

/// `simulation` tests: the simulated user plays the scenario; every success condition must hold.
async fn run_simulation_test(
    deps: &Arc<EngineDeps>, agent: AgentSnapshot, test: &Value, cancelled: watch::Receiver<bool>,
) -> Verdict {
    let spec = simulation_spec(test, agent.llm(), cancelled);
    let result = simulation::simulate(deps, agent, spec, None).await;
    let messages: Vec<String> = result
        .results
        .iter()
        .map(|(c, ok, why)| {
            let met = if *ok { "met" } else { "not met" };
            format!("{} — {met}: {why}", c.name)
        })
        .collect();
    let summary = match &result.error {
        Some(e) => e.clone(),
        None if result.passed() => {
            format!("All {} success conditions were met", result.results.len())
        }
        None => "Some success conditions were not met".into(),
    };
    Verdict {
        passed: result.passed(),
        summary,
        messages,
        agent_responses: result.transcript.clone(),
        conversation_id: result.conversation_id.clone(),
    }
}

/// A simulation test as a simulation: its scenario, limits, mocks and success conditions;
/// the models default to the agent's (`agent_model`).
fn simulation_spec(
    test: &Value, agent_model: &str, cancelled: watch::Receiver<bool>,
) -> SimulationSpec {
    let text = |k: &str| test.get(k).and_then(Value::as_str).unwrap_or_default();
    let or_agent = |k: &str| match text(k) {
        "" => agent_model.to_owned(),
        model => model.to_owned(),
    };
    let mut conditions: Vec<&str> = test
        .get("success_conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !text("success_condition").is_empty() {
        conditions.push(text("success_condition"));
    }
    let mut mocks: MockSettings = test
        .get("tool_mock_config")
        .cloned()
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default();
    mocks.overrides = test.get("tool_mock_overrides").and_then(Value::as_object).cloned();
    SimulationSpec {
        user_prompt: text("simulation_scenario").to_owned(),
        user_model: or_agent("simulated_user_model"),
        max_turns: test.get("simulation_max_turns").and_then(Value::as_u64).unwrap_or(5) as usize,
        history: history(test),
        dynamic_variables: test
            .get("dynamic_variables")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        mocks,
        criteria: conditions
            .iter()
            .enumerate()
            .map(|(i, c)| Criterion {
                id: format!("condition_{i}"),
                name: (*c).to_owned(),
                prompt: (*c).to_owned(),
            })
            .collect(),
        judge_model: or_agent("evaluation_model"),
        as_test: true,
        cancelled: Some(cancelled),
        ..Default::default()
    }
}

/// `llm` tests: the judge decides whether the reply meets the success condition.
async fn judge_reply(
    deps: &EngineDeps, model: &str, test: &Value, history: &[(Role, String)], reply: &str,
    calls: &[(String, Value)],
) -> Verdict {
    let condition = test.get("success_condition").and_then(Value::as_str).unwrap_or_default();
    let examples = |key: &str| -> String {
        test.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("response").and_then(Value::as_str))
            .map(|r| format!("- {r}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let transcript: String = history
        .iter()
        .map(|(r, t)| format!("{}: {t}\n", if *r == Role::User { "User" } else { "Agent" }))
        .collect();
    let tool_lines: String =
        calls.iter().map(|(n, p)| format!("- called {n} with {p}\n")).collect();
    let prompt = format!(
        "Success condition: {condition}\n\nExamples of successful replies:\n{}\n\nExamples of failed replies:\n{}\n\n\
         Conversation:\n{transcript}\nTool calls during the reply:\n{tool_lines}\nAgent's reply: {reply}",
        examples("success_examples"),
        examples("failure_examples"),
    );
    let answer = match judge::verdict(deps, model, &prompt).await {
        Ok(a) => a,
        Err(e) => return Verdict::failed(format!("The judge LLM failed: {e}")),
    };
    match judge::parse_verdict(&answer) {
        Some((passed, rationale)) => Verdict::of(passed, rationale.clone(), vec![rationale]),
        None => Verdict::failed(format!(
            "The judge's verdict could not be parsed: {}",
            answer.chars().take(200).collect::<String>()
        )),
    }
}
