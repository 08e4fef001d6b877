//! `POST /v1/convai/agents/{agent_id}/simulate-conversation[/stream]`: the agent against an
//! LLM-simulated user, then the evaluation criteria judged. The stream variant sends each new
//! transcript entry as a line of newline-delimited JSON (`[entry]`), then the whole response.

use axum::body::Body;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use colloquy_core::ids::AgentId;
use colloquy_engine::simulation::{self, Criterion, SimulationSpec};
use colloquy_engine::tools::MockSettings;
use colloquy_engine::{AgentSnapshot, Pick};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::extract::{Json, Query, check_body};
use crate::routes::agents;
use crate::state::AppState;

/// Most user turns of one simulation, whatever `new_turns_limit` asks: a simulation ends when
/// the simulated user says so, and this bounds one that never does.
const MAX_TURNS: usize = 50;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(simulate_conversation))
        .routes(routes!(simulate_conversation_stream))
}

/// The agent and the simulation the request asks for.
async fn prepare(
    cx: &Ctx, agent_id: &AgentId, at: &AtParams, mut body: Value,
) -> ApiResult<(AgentSnapshot, SimulationSpec)> {
    let (branch, version) = (at.branch_id.as_deref(), at.version_id.as_deref());
    // 404 for an unknown agent, branch or version, before anything runs.
    agents::at(cx, agent_id, branch, version).await?;
    check_body(
        "Body_Simulates_a_conversation_v1_convai_agents__agent_id__simulate_conversation_post",
        &mut body,
    )?;
    let pick = Pick::of(branch, version);
    let agent = AgentSnapshot::load(&cx.app.engine, &cx.workspace_id, agent_id, pick).await?;
    let sim = &body["simulation_specification"];
    let user = &sim["simulated_user_config"];
    let agent_model = agent.llm().to_owned();
    let limit =
        body.get("new_turns_limit").and_then(Value::as_u64).unwrap_or(MAX_TURNS as u64) as usize;
    let spec = SimulationSpec {
        user_prompt: text(user, "/prompt/prompt"),
        user_model: Some(text(user, "/prompt/llm"))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| agent_model.clone()),
        user_first_message: Some(text(user, "/first_message")).filter(|m| !m.is_empty()),
        max_turns: limit.clamp(1, MAX_TURNS),
        history: simulation::history(sim.get("partial_conversation_history")),
        dynamic_variables: sim
            .get("dynamic_variables")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        mocks: mocks(sim),
        criteria: criteria(&agent, &body),
        judge_model: agent_model,
        as_test: false,
        cancelled: None,
    };
    Ok((agent, spec))
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// The simulation's `tool_mock_config`: each named tool answers its default value.
fn mocks(sim: &Value) -> MockSettings {
    let mut mocks = MockSettings {
        mocking_strategy: "selected".into(),
        fallback_strategy: "raise_error".into(),
        ..Default::default()
    };
    let mut overrides = Map::new();
    for (name, m) in sim.get("tool_mock_config").and_then(Value::as_object).into_iter().flatten() {
        mocks.mocked_tool_names.push(name.clone());
        let result =
            m.get("default_return_value").and_then(Value::as_str).unwrap_or("Tool Called.");
        let is_error = m.get("default_is_error").and_then(Value::as_bool).unwrap_or(false);
        overrides.insert(name.clone(), json!([{"mock_result": result, "is_error": is_error}]));
    }
    mocks.overrides = Some(overrides);
    mocks
}

/// The agent's evaluation criteria and the request's extra ones, each id once.
fn criteria(agent: &AgentSnapshot, body: &Value) -> Vec<Criterion> {
    let mut criteria: Vec<Criterion> = agent
        .platform_settings
        .pointer("/evaluation/criteria")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            body.get("extra_evaluation_criteria").and_then(Value::as_array).into_iter().flatten(),
        )
        .map(|c| Criterion {
            id: text(c, "/id"),
            name: text(c, "/name"),
            prompt: text(c, "/conversation_goal_prompt"),
        })
        .collect();
    criteria.dedup_by(|a, b| a.id == b.id);
    criteria
}

/// Which configuration a simulation runs: Colloquy's addition to the reference's operation,
/// which runs what the deployment would serve.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AtParams {
    /// The head of this branch.
    branch_id: Option<String>,
    /// This version.
    version_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/simulate-conversation", params(("agent_id" = String, Path), AtParams), security(("api_key" = ["agents:write"])))]
async fn simulate_conversation(
    cx: Ctx, Path(agent_id): Path<AgentId>, Query(at): Query<AtParams>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let (agent, spec) = prepare(&cx, &agent_id, &at, body).await?;
    let result = simulation::simulate(&cx.app.engine, agent, spec, None).await;
    Ok(Json(json!({"simulated_conversation": result.transcript, "analysis": result.analysis()})))
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/simulate-conversation/stream", params(("agent_id" = String, Path), AtParams), security(("api_key" = ["agents:write"])))]
async fn simulate_conversation_stream(
    cx: Ctx, Path(agent_id): Path<AgentId>, Query(at): Query<AtParams>, Json(body): Json<Value>,
) -> ApiResult<Response> {
    let (agent, spec) = prepare(&cx, &agent_id, &at, body).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let (lines_tx, lines_rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(16);
    let engine = cx.app.engine.clone();
    tokio::spawn(async move {
        let forward = {
            let lines_tx = lines_tx.clone();
            tokio::spawn(async move {
                while let Some(entry) = rx.recv().await {
                    let _ = lines_tx.send(Ok(format!("{}\n", json!([entry])))).await;
                }
            })
        };
        let result = simulation::simulate(&engine, agent, spec, Some(&tx)).await;
        drop(tx);
        let _ = forward.await;
        let last =
            json!({"simulated_conversation": result.transcript, "analysis": result.analysis()});
        let _ = lines_tx.send(Ok(format!("{last}\n"))).await;
    });
    let stream = futures_util::stream::unfold(lines_rx, |mut rx| async move {
        rx.recv().await.map(|line| (line, rx))
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream))
        .into_response())
}
