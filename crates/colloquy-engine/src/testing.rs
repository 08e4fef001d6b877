//! Running agent tests (DESIGN.md §3.4): the worker that leases runs from the store's queue
//! and executes them with bounded concurrency, and the judging of each test type.
//!
//! A run replays the test's `chat_history` into a conversation (`source=test`), lets the agent
//! answer with every tool mocked (a tool's own response mocks answer; an unmatched call is a
//! tool error, so tests never reach real webhooks), then judges: `tool` tests compare the tool
//! calls with the expectation; `llm` tests ask a judge LLM for a structured verdict, parsed
//! strictly — anything else than a clear success or failure fails the run with the reason.
//! Simulation tests hand over to [`crate::simulation`].

use std::sync::Arc;
use std::time::Duration;

use colloquy_core::ids::{ConversationId, ToolId};
use colloquy_core::mocks;
use colloquy_core::test_runs::RunStatus;
use colloquy_store::RunRow;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::llm::{ChatMessage, ChatRequest, Role};
use crate::tools::MockSettings;
use crate::{AgentSnapshot, Conversation, Ending, EngineDeps, Source, StartOptions, TurnEvent};

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
    fn failed(summary: impl Into<String>) -> Verdict {
        Verdict {
            passed: false,
            summary: summary.into(),
            messages: Vec::new(),
            agent_responses: Vec::new(),
            conversation_id: None,
        }
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
    deps: &Arc<EngineDeps>,
    agent: AgentSnapshot,
    test: &Value,
    cancelled: watch::Receiver<bool>,
) -> Verdict {
    let kind = test.get("type").and_then(Value::as_str).unwrap_or("llm");
    if kind == "simulation" {
        return run_simulation_test(deps, agent, test, cancelled).await;
    }
    let history: Vec<(Role, String)> = test
        .get("chat_history")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let text = t.get("message").and_then(Value::as_str)?.to_owned();
            let role = if t.get("role").and_then(Value::as_str) == Some("user") {
                Role::User
            } else {
                Role::Assistant
            };
            Some((role, text))
        })
        .collect();
    if history.last().map(|(r, _)| *r) != Some(Role::User) {
        return Verdict::failed(
            "The test's chat_history must end with a user message for the agent to answer",
        );
    }
    let mocks = MockSettings {
        mocking_strategy: "all".into(),
        fallback_strategy: "raise_error".into(),
        ..Default::default()
    };
    let opts = StartOptions {
        dynamic_variables: test
            .get("dynamic_variables")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        mocks,
        ..Default::default()
    };
    let model = agent
        .conversation_config
        .pointer("/agent/prompt/llm")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let tool_names: Vec<(ToolId, String)> = agent
        .tools
        .iter()
        .map(|t| (t.id.clone(), t.name.clone()))
        .collect();
    let mut conversation = match Conversation::start(deps.clone(), agent, Source::Test, opts).await
    {
        Ok(c) => c,
        Err(e) => return Verdict::failed(format!("The test conversation could not start: {e}")),
    };
    let conversation_id = conversation.id().to_owned();
    // The agent's first message is part of the agent, not of the test's history.
    for (role, text) in &history {
        conversation.seed(*role, text);
    }
    let (events, mut rx) = mpsc::unbounded_channel();
    let answer = conversation.respond(Some(&events)).await;
    drop(events);
    let mut calls = Vec::new();
    while let Ok(event) = rx.try_recv() {
        if let TurnEvent::ToolRequest {
            name, parameters, ..
        } = event
        {
            calls.push((name, parameters));
        }
    }
    let reply = answer.as_ref().map(|t| t.text.clone()).unwrap_or_default();
    let mut verdict = match answer {
        Err(e) => Verdict::failed(format!("The agent could not answer: {e}")),
        Ok(turn) => match kind {
            "tool" => judge_tool_calls(deps, &model, test, &calls, &tool_names).await,
            _ => judge_response(deps, &model, test, &history, &turn.text, &calls).await,
        },
    };
    let _ = conversation
        .end(if verdict.passed {
            Ending::Normal("test passed".into())
        } else {
            Ending::Normal("test failed".into())
        })
        .await;
    verdict.agent_responses =
        vec![json!({"role": "agent", "message": reply, "time_in_call_secs": 0})];
    verdict.conversation_id = Some(conversation_id);
    verdict
}

/// `simulation` tests: the simulated user plays the scenario; every success condition must hold.
async fn run_simulation_test(
    deps: &Arc<EngineDeps>,
    agent: AgentSnapshot,
    test: &Value,
    cancelled: watch::Receiver<bool>,
) -> Verdict {
    let text = |k: &str| {
        test.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut conditions: Vec<String> = test
        .get("success_conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if !text("success_condition").is_empty() {
        conditions.push(text("success_condition"));
    }
    let mut mocks: MockSettings = test
        .get("tool_mock_config")
        .cloned()
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default();
    mocks.overrides = test
        .get("tool_mock_overrides")
        .and_then(Value::as_object)
        .cloned();
    let model = agent
        .conversation_config
        .pointer("/agent/prompt/llm")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let or_agent = |k: &str| {
        let v = text(k);
        if v.is_empty() { model.clone() } else { v }
    };
    let spec = crate::simulation::SimulationSpec {
        user_prompt: text("simulation_scenario"),
        user_model: or_agent("simulated_user_model"),
        max_turns: test
            .get("simulation_max_turns")
            .and_then(Value::as_u64)
            .unwrap_or(5) as usize,
        history: test
            .get("chat_history")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let role = if t.get("role").and_then(Value::as_str) == Some("user") {
                    Role::User
                } else {
                    Role::Assistant
                };
                Some((role, t.get("message")?.as_str()?.to_owned()))
            })
            .collect(),
        dynamic_variables: test
            .get("dynamic_variables")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        mocks,
        criteria: conditions
            .iter()
            .enumerate()
            .map(|(i, c)| crate::simulation::Criterion {
                id: format!("condition_{i}"),
                name: c.clone(),
                prompt: c.clone(),
            })
            .collect(),
        judge_model: or_agent("evaluation_model"),
        as_test: true,
        cancelled: Some(cancelled),
        ..Default::default()
    };
    let result = crate::simulation::simulate(deps, agent, spec, None).await;
    let messages: Vec<String> = result
        .results
        .iter()
        .map(|(c, ok, why)| {
            format!(
                "{} — {}: {why}",
                c.name,
                if *ok { "met" } else { "not met" }
            )
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

/// `tool` tests: the expected tool called with matching parameters (or never called, with
/// `verify_absence`).
async fn judge_tool_calls(
    deps: &Arc<EngineDeps>,
    model: &str,
    test: &Value,
    calls: &[(String, Value)],
    tools: &[(ToolId, String)],
) -> Verdict {
    let expectation = &test["tool_call_parameters"];
    let referenced = &expectation["referenced_tool"];
    let id = referenced
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = tools
        .iter()
        .find(|(tid, _)| tid == id)
        .map_or(id, |(_, n)| n.as_str())
        .to_owned();
    let made: Vec<String> = calls.iter().map(|(n, p)| format!("{n}({p})")).collect();
    let mut messages = vec![format!(
        "Tool calls made: {}",
        if made.is_empty() {
            "none".into()
        } else {
            made.join(", ")
        }
    )];
    if expectation.get("verify_absence").and_then(Value::as_bool) == Some(true) {
        let absent = !calls.iter().any(|(n, _)| *n == name);
        let summary = if absent {
            format!("{name} was not called, as expected")
        } else {
            format!("{name} was called but should not have been")
        };
        return Verdict {
            passed: absent,
            summary,
            messages,
            agent_responses: Vec::new(),
            conversation_id: None,
        };
    }
    let any = test.get("check_any_tool_matches").and_then(Value::as_bool) == Some(true);
    if !any && calls.len() > 1 {
        return Verdict {
            passed: false,
            summary: format!(
                "The agent made {} tool calls where one was expected",
                calls.len()
            ),
            messages,
            agent_responses: Vec::new(),
            conversation_id: None,
        };
    }
    let conditions: Vec<mocks::Condition> = expectation
        .get("parameters")
        .and_then(Value::as_array)
        .map(|ps| {
            let mock = json!({"mock_result": "", "parameter_conditions": ps});
            mocks::Mock::parse(&mock, &[])
                .map(|m| m.conditions)
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let candidates: Vec<&(String, Value)> = if any {
        calls.iter().collect()
    } else {
        calls.iter().take(1).collect()
    };
    for (called, params) in candidates {
        if *called != name {
            continue;
        }
        let mut all = true;
        for c in &conditions {
            let judge =
                |description: String, value: Value| judge_value(deps, model, description, value);
            let mut judge = judge;
            if !mocks::holds(c, params, &mut judge).await {
                messages.push(format!("Parameter {} did not match", c.path));
                all = false;
            }
        }
        if all {
            return Verdict {
                passed: true,
                summary: format!("{name} was called with matching parameters"),
                messages,
                agent_responses: Vec::new(),
                conversation_id: None,
            };
        }
    }
    Verdict {
        passed: false,
        summary: format!("No call of {name} matched the expectation"),
        messages,
        agent_responses: Vec::new(),
        conversation_id: None,
    }
}

async fn judge_value(
    deps: &Arc<EngineDeps>,
    model: &str,
    description: String,
    value: Value,
) -> bool {
    let prompt = format!(
        "Condition: {description}\nValue: {value}\nAnswer only yes or no: does the value satisfy the condition?"
    );
    match ask(
        deps,
        model,
        "You check a value against a condition.",
        &prompt,
    )
    .await
    {
        Ok(answer) => answer.trim().to_ascii_lowercase().starts_with("yes"),
        Err(_) => false,
    }
}

async fn ask(
    deps: &Arc<EngineDeps>,
    model: &str,
    system: &str,
    user: &str,
) -> Result<String, String> {
    let (provider, model) = deps.llm.route(model).map_err(|e| e.to_string())?;
    let request = ChatRequest {
        model,
        messages: vec![
            ChatMessage::text(Role::System, system),
            ChatMessage::text(Role::User, user),
        ],
        temperature: Some(0.0),
        ..Default::default()
    };
    provider
        .chat(&request, None)
        .await
        .map(|r| r.text)
        .map_err(|e| e.to_string())
}

/// Asks the judge LLM (`model`) for a verdict on `prompt`.
pub(crate) async fn ask_judge(
    deps: &Arc<EngineDeps>,
    model: &str,
    prompt: &str,
) -> Result<String, String> {
    ask(deps, model, JUDGE_SYSTEM, prompt).await
}

/// The judge's instructions: a strict JSON verdict.
const JUDGE_SYSTEM: &str = "You evaluate an AI agent's reply in a test. Answer with only a JSON object: \
{\"result\": \"success\" or \"failure\", \"rationale\": \"one sentence\"}.";

/// `llm` tests: a judge LLM decides whether the reply meets the success condition.
async fn judge_response(
    deps: &Arc<EngineDeps>,
    model: &str,
    test: &Value,
    history: &[(Role, String)],
    reply: &str,
    calls: &[(String, Value)],
) -> Verdict {
    let condition = test
        .get("success_condition")
        .and_then(Value::as_str)
        .unwrap_or_default();
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
    let tool_lines: String = calls
        .iter()
        .map(|(n, p)| format!("- called {n} with {p}\n"))
        .collect();
    let prompt = format!(
        "Success condition: {condition}\n\nExamples of successful replies:\n{}\n\nExamples of failed replies:\n{}\n\n\
         Conversation:\n{transcript}\nTool calls during the reply:\n{tool_lines}\nAgent's reply: {reply}",
        examples("success_examples"),
        examples("failure_examples"),
    );
    let mut messages = Vec::new();
    let answer = match ask(deps, model, JUDGE_SYSTEM, &prompt).await {
        Ok(a) => a,
        Err(e) => {
            return Verdict {
                passed: false,
                summary: format!("The judge LLM failed: {e}"),
                messages,
                agent_responses: Vec::new(),
                conversation_id: None,
            };
        }
    };
    match parse_verdict(&answer) {
        Some((passed, rationale)) => {
            messages.push(rationale.clone());
            Verdict {
                passed,
                summary: rationale,
                messages,
                agent_responses: Vec::new(),
                conversation_id: None,
            }
        }
        None => Verdict {
            passed: false,
            summary: format!(
                "The judge's verdict could not be parsed: {}",
                answer.chars().take(200).collect::<String>()
            ),
            messages,
            agent_responses: Vec::new(),
            conversation_id: None,
        },
    }
}

/// `{"result": "success"|"failure", "rationale": "..."}`, possibly inside a code fence.
pub fn parse_verdict(answer: &str) -> Option<(bool, String)> {
    let start = answer.find('{')?;
    let end = answer.rfind('}')?;
    let v: Value = serde_json::from_str(answer.get(start..=end)?).ok()?;
    let passed = match v.get("result")?.as_str()? {
        "success" => true,
        "failure" => false,
        _ => return None,
    };
    let rationale = v
        .get("rationale")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some((passed, rationale))
}

/// Leases and runs test runs until `stop` fires, at most `concurrency` at a time. A run whose
/// worker dies is leased again once its lease expires; only the lease holder's result counts.
pub async fn worker(
    deps: Arc<EngineDeps>,
    worker_id: String,
    concurrency: usize,
    lease_secs: i64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    loop {
        if *stop.borrow() {
            return;
        }
        // Wait for a free slot, not for the next poll: a wave of runs that finishes together
        // used to wait up to a poll interval (250 ms) before the next wave was leased.
        // Only this task takes slots, so the ones free now stay free while it leases.
        let free = tokio::select! {
            permit = slots.acquire() => match permit {
                Ok(permit) => {
                    drop(permit);
                    slots.available_permits()
                }
                Err(_) => return,
            },
            // A dropped sender means no one can stop this worker any more: stop now.
            changed = stop.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
        };
        let leased = deps
            .store
            .lease_runs(
                &worker_id,
                colloquy_core::time::now_secs(),
                lease_secs,
                u32::try_from(free).unwrap_or(1),
            )
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not lease test runs");
                Vec::new()
            });
        if leased.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = deps.runs_queued.notified() => {}
                changed = stop.changed() => if changed.is_err() {
                    return;
                },
            }
            continue;
        }
        for run in leased {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let deps = deps.clone();
            let worker_id = worker_id.clone();
            tokio::spawn(async move {
                let (cancel_tx, cancelled) = watch::channel(false);
                let watcher = tokio::spawn(watch_lease(
                    deps.clone(),
                    run.id.clone(),
                    worker_id.clone(),
                    run.attempt,
                    cancel_tx,
                ));
                let verdict = execute(&deps, &run, cancelled).await;
                watcher.abort();
                let status = if verdict.passed {
                    RunStatus::Passed
                } else {
                    RunStatus::Failed
                };
                let now = colloquy_core::time::now_secs();
                match deps
                    .store
                    .complete_run(
                        &run.id,
                        &worker_id,
                        run.attempt,
                        status,
                        &verdict.to_json().to_string(),
                        now,
                    )
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(run = %run.id, "run finished after its lease was taken over; result dropped")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, run = %run.id, "could not store a test run's result")
                    }
                }
                drop(permit);
            });
        }
    }
}

/// Signals `cancel` once this worker no longer holds the run (it was cancelled, or its lease
/// was taken over), so a long simulation stops instead of finishing for nothing.
async fn watch_lease(
    deps: Arc<EngineDeps>,
    run_id: String,
    worker_id: String,
    attempt: i64,
    cancel: watch::Sender<bool>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(false) = deps.store.run_is_held(&run_id, &worker_id, attempt).await {
            let _ = cancel.send(true);
            return;
        }
    }
}

async fn execute(
    deps: &Arc<EngineDeps>,
    run: &RunRow,
    cancelled: watch::Receiver<bool>,
) -> Verdict {
    let invocation = match deps
        .store
        .get_invocation(&run.workspace_id, &run.invocation_id)
        .await
    {
        Ok(i) => i,
        Err(e) => return Verdict::failed(format!("The invocation could not be read: {e}")),
    };
    let test = match deps
        .store
        .get_test_entity(&run.workspace_id, &run.test_id)
        .await
    {
        Ok(t) => t,
        Err(_) => return Verdict::failed("The test no longer exists"),
    };
    let mut agent = match AgentSnapshot::load(deps, &run.workspace_id, &invocation.agent_id).await {
        Ok(a) => a,
        Err(_) => return Verdict::failed("The agent no longer exists"),
    };
    let request: Value = serde_json::from_str(&invocation.document).unwrap_or_default();
    if let Some(config) = request
        .pointer("/agent_config_override/conversation_config")
        .filter(|c| c.is_object())
    {
        agent.apply_override(config.clone());
    }
    let mut document: Value = serde_json::from_str(&test.document).unwrap_or_default();
    document["type"] = json!(test.test_type);
    run_test(deps, agent, &document, cancelled).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_parse_strictly() {
        assert_eq!(
            parse_verdict(r#"{"result": "success", "rationale": "greeted"}"#),
            Some((true, "greeted".into()))
        );
        assert_eq!(
            parse_verdict("```json\n{\"result\": \"failure\", \"rationale\": \"rude\"}\n```"),
            Some((false, "rude".into()))
        );
        for bad in [
            "yes",
            "{}",
            r#"{"result": "maybe"}"#,
            r#"{"result": true}"#,
            "{not json}",
        ] {
            assert_eq!(parse_verdict(bad), None, "{bad}");
        }
    }
}
