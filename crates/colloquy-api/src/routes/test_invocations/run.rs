//! `POST /v1/convai/agents/{agent_id}/run-tests`: one durable run per test (times
//! `repeat_count`), all pending, queued in one transaction; the answer comes at once.

use axum::extract::Path;
use colloquy_core::ids::{self, AgentId, InvocationId, TestId};
use colloquy_core::test_runs::RunStatus;
use colloquy_core::time;
use colloquy_store::{InvocationRow, RunRow, TestEntityRow};
use serde_json::{Value, json};

use super::view;
use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::extract::{Json, check_body};
use crate::routes::agent_testing::existing_tests;
use crate::routes::agents;

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/run-tests", params(("agent_id" = String, Path)), security(("api_key" = ["tests:write"])))]
pub(super) async fn run_tests(
    cx: Ctx, Path(agent_id): Path<AgentId>, Json(mut body): Json<Value>,
) -> ApiResult<Json<Value>> {
    cx.agent(&agent_id).await?;
    check_body("RunAgentTestsRequestModel", &mut body)?;
    // The version judged is fixed now: a change committed while the runs wait in the queue
    // does not change what they test. `version_id` is Colloquy's addition to the body.
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let at = agents::at(&cx, &agent_id, text("branch_id"), text("version_id")).await?;
    let wanted: Vec<TestId> = body["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| TestId::from(t.get("test_id").and_then(Value::as_str).unwrap_or_default()))
        .collect();
    let found = existing_tests(&cx, &wanted, &["body", "tests"]).await?;
    let invocation = InvocationRow {
        id: InvocationId::generate(),
        workspace_id: cx.workspace_id.clone(),
        agent_id,
        branch_id: Some(at.branch_id),
        version_id: Some(at.row.version_id),
        name: body.get("name").and_then(Value::as_str).map(str::to_owned),
        repeat_count: body.get("repeat_count").and_then(Value::as_i64).unwrap_or(1).max(1),
        created_by: cx.user_id.clone(),
        created_at: time::now_secs(),
        document: json!({"agent_config_override": body.get("agent_config_override")}).to_string(),
    };
    let runs = runs(&invocation, &wanted, &found);
    cx.app.store.insert_invocation(&invocation, &runs).await?;
    cx.app.engine.runs_queued.notify_one();
    Ok(Json(view::full(&cx, &invocation).await?))
}

/// The invocation's runs: `repeat_count` of each test, pending.
fn runs(invocation: &InvocationRow, wanted: &[TestId], found: &[TestEntityRow]) -> Vec<RunRow> {
    let mut runs = Vec::new();
    for id in wanted {
        let name = found.iter().find(|t| &t.id == id).map(|t| t.name.clone()).unwrap_or_default();
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
