//! `POST /v1/convai/agents/{agent_id}/run-tests`: one durable run per test (times
//! `repeat_count`), all pending, queued in one transaction; the answer comes at once.

use axum::extract::{Path, State};
use colloquy_core::ids::{self, AgentId, InvocationId, TestId};
use colloquy_core::test_runs::RunStatus;
use colloquy_core::time;
use colloquy_core::validation::{LocItem, Violation};
use colloquy_store::{InvocationRow, RunRow, TestEntityRow};
use serde_json::{Value, json};

use super::view;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, check_body};
use crate::state::AppState;

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/run-tests", params(("agent_id" = String, Path)), security(("api_key" = ["tests:write"])))]
pub(super) async fn run_tests(
    caller: Caller,
    State(state): State<AppState>,
    Path(agent_id): Path<AgentId>,
    Json(mut body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let agent = state
        .store
        .get_agent(&caller.workspace_id, &agent_id)
        .await
        .or_not_found("agent")?;
    check_body("RunAgentTestsRequestModel", &mut body)?;
    if body
        .get("branch_id")
        .and_then(Value::as_str)
        .is_some_and(|b| !b.is_empty() && b != agent.main_branch_id)
    {
        return Err(ApiError::NotFound("branch"));
    }
    let wanted: Vec<TestId> = body["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| TestId::from(t.get("test_id").and_then(Value::as_str).unwrap_or_default()))
        .collect();
    let found = tests(&state, &caller, &wanted).await?;
    let invocation = InvocationRow {
        id: InvocationId::generate(),
        workspace_id: caller.workspace_id.clone(),
        agent_id,
        branch_id: Some(agent.main_branch_id.clone()),
        name: body.get("name").and_then(Value::as_str).map(str::to_owned),
        repeat_count: body
            .get("repeat_count")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(1),
        created_by: caller.user_id.clone(),
        created_at: time::now_secs(),
        document: json!({"agent_config_override": body.get("agent_config_override")}).to_string(),
    };
    let runs = runs(&invocation, &wanted, &found);
    state.store.insert_invocation(&invocation, &runs).await?;
    state.engine.runs_queued.notify_one();
    Ok(Json(view::full(&state, &caller, &invocation).await?))
}

/// The tests asked for, each of which must be a test of the workspace (not a folder).
async fn tests(
    state: &AppState,
    caller: &Caller,
    wanted: &[TestId],
) -> ApiResult<Vec<TestEntityRow>> {
    let found = state
        .store
        .get_test_entities(&caller.workspace_id, wanted)
        .await?;
    let violations: Vec<Violation> = wanted
        .iter()
        .enumerate()
        .filter(|(_, id)| {
            !found
                .iter()
                .any(|t| &t.id == *id && t.test_type != "folder")
        })
        .map(|(i, id)| {
            Violation::new(
                vec![
                    "body".into(),
                    "tests".into(),
                    LocItem::Index(i),
                    "test_id".into(),
                ],
                "value_error",
                format!("Test {id} does not exist"),
            )
        })
        .collect();
    if violations.is_empty() {
        Ok(found)
    } else {
        Err(ApiError::Invalid(violations))
    }
}

/// The invocation's runs: `repeat_count` of each test, pending.
fn runs(invocation: &InvocationRow, wanted: &[TestId], found: &[TestEntityRow]) -> Vec<RunRow> {
    let mut runs = Vec::new();
    for id in wanted {
        let name = found
            .iter()
            .find(|t| &t.id == id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        for _ in 0..invocation.repeat_count {
            runs.push(RunRow {
                id: ids::new_id(ids::prefix::RUN),
                invocation_id: invocation.id.clone(),
                workspace_id: invocation.workspace_id.clone(),
                test_id: id.clone(),
                test_name: name.clone(),
                status: RunStatus::Pending,
                attempt: 0,
                worker: None,
                created_at: invocation.created_at,
                updated_at: invocation.created_at,
                result: "{}".into(),
            });
        }
    }
    runs
}
