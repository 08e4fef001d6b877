//! Running tests: `POST /v1/convai/agents/{agent_id}/run-tests` queues one durable run per test
//! (times `repeat_count`) and answers at once with the runs pending; workers (see
//! `colloquy_engine::testing`) execute them. `GET /v1/convai/test-invocations[/{id}]` report
//! progress and results. On the wire a run is `pending` until it is `passed` or `failed`.

use axum::extract::{Path, State};
use colloquy_core::cursor::{CursorSpec, Direction, PageSizeRule};
use colloquy_core::validation::{LocItem, Violation};
use colloquy_core::{ids, time};
use colloquy_store::{InvocationFilter, InvocationRow, RunRow};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query, check_body};
use crate::routes::access::access_info;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run_tests))
        .routes(routes!(get_invocation, rename_invocation))
        .routes(routes!(cancel_invocation))
        .routes(routes!(resubmit_invocation))
        .routes(routes!(list_invocations))
}

fn wire_status(status: &str) -> &'static str {
    match status {
        "passed" => "passed",
        "failed" => "failed",
        _ => "pending",
    }
}

/// Whether a run ended because its invocation was cancelled (it is `failed` on the wire, and
/// counted apart in summaries).
fn is_cancelled(run: &RunRow) -> bool {
    run.status == "failed"
        && serde_json::from_str::<Value>(&run.result)
            .is_ok_and(|r| r.get("cancelled") == Some(&Value::Bool(true)))
}

/// Runs of each test grouped by outcome (for repeated runs).
fn result_groups(runs: &[RunRow]) -> Vec<Value> {
    let mut order: Vec<&str> = Vec::new();
    for r in runs {
        if !order.contains(&r.test_id.as_str()) {
            order.push(&r.test_id);
        }
    }
    order
        .iter()
        .map(|test_id| {
            let of_test: Vec<&RunRow> = runs.iter().filter(|r| r.test_id == *test_id).collect();
            let buckets: Vec<Value> = ["passed", "failed", "pending"]
                .iter()
                .filter_map(|status| {
                    let ids: Vec<&str> = of_test.iter().filter(|r| wire_status(&r.status) == *status).map(|r| r.id.as_str()).collect();
                    (!ids.is_empty()).then(|| json!({"test_run_ids": ids, "title": format!("{} {status}", ids.len())}))
                })
                .collect();
            json!({"test_id": test_id, "test_name": of_test[0].test_name, "workflow_node_id": null, "buckets": buckets})
        })
        .collect()
}

async fn invocation_view(
    state: &AppState,
    caller: &Caller,
    inv: &InvocationRow,
) -> ApiResult<Value> {
    let runs = state.store.invocation_runs(&inv.id).await?;
    let ids: Vec<String> = runs.iter().map(|r| r.test_id.clone()).collect();
    let tests = state
        .store
        .get_test_entities(&caller.workspace_id, &ids)
        .await?;
    let test_runs: Vec<Value> = runs
        .iter()
        .map(|r| {
            let result: Value = serde_json::from_str(&r.result).unwrap_or_else(|_| json!({}));
            let test = tests.iter().find(|t| t.id == r.test_id);
            let test_info = test.and_then(|t| {
                let mut doc: Value = serde_json::from_str(&t.document).ok()?;
                doc["name"] = json!(t.name);
                Some(doc)
            });
            let test_type = match test.map(|t| t.test_type.as_str()) {
                Some("tool") => "tool_call",
                Some("simulation") => "simulation",
                _ => "llm",
            };
            json!({
                "test_run_id": r.id,
                "test_info": test_info,
                "test_invocation_id": inv.id,
                "agent_id": inv.agent_id,
                "branch_id": inv.branch_id,
                "version_id": null,
                "ran_against_draft": false,
                "workflow_node_id": null,
                "status": wire_status(&r.status),
                "agent_responses": result.get("agent_responses").cloned().unwrap_or(Value::Null),
                "test_id": r.test_id,
                "test_name": r.test_name,
                "condition_result": result.get("condition_result").cloned().unwrap_or(Value::Null),
                "last_updated_at_unix": r.updated_at,
                "metadata": {"workspace_id": inv.workspace_id, "test_name": r.test_name, "ran_by_user_email": "", "test_type": test_type},
                "conversation_id": result.get("conversation_id").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    let result_groups: Vec<Value> = if inv.repeat_count > 1 {
        result_groups(&runs)
    } else {
        Vec::new()
    };
    Ok(json!({
        "id": inv.id,
        "agent_id": inv.agent_id,
        "branch_id": inv.branch_id,
        "version_id": null,
        "ran_against_draft": false,
        "created_at": inv.created_at,
        "folder_id": null,
        "repeat_count": inv.repeat_count,
        "bucketing_status": null,
        "result_groups": result_groups,
        "test_runs": test_runs,
        "name": inv.name,
    }))
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/run-tests", params(("agent_id" = String, Path)), security(("api_key" = ["tests:write"])))]
async fn run_tests(
    caller: Caller,
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
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
    let wanted: Vec<String> = body["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            t.get("test_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let found = state
        .store
        .get_test_entities(&caller.workspace_id, &wanted)
        .await?;
    let mut violations = Vec::new();
    for (i, id) in wanted.iter().enumerate() {
        if !found.iter().any(|t| &t.id == id && t.test_type != "folder") {
            violations.push(Violation::new(
                vec![
                    "body".into(),
                    "tests".into(),
                    LocItem::Index(i),
                    "test_id".into(),
                ],
                "value_error",
                format!("Test {id} does not exist"),
            ));
        }
    }
    if !violations.is_empty() {
        return Err(ApiError::Invalid(violations));
    }
    let repeat = body
        .get("repeat_count")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(1);
    let now = time::now_secs();
    let invocation = InvocationRow {
        id: ids::new_id("suite_"),
        workspace_id: caller.workspace_id.clone(),
        agent_id: agent_id.clone(),
        branch_id: Some(agent.main_branch_id.clone()),
        name: body.get("name").and_then(Value::as_str).map(str::to_owned),
        repeat_count: repeat,
        created_by: caller.user_id.clone(),
        created_at: now,
        document: json!({"agent_config_override": body.get("agent_config_override")}).to_string(),
    };
    let mut runs = Vec::new();
    for id in &wanted {
        let name = found
            .iter()
            .find(|t| &t.id == id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        for _ in 0..repeat {
            runs.push(RunRow {
                id: ids::new_id("run_"),
                invocation_id: invocation.id.clone(),
                workspace_id: caller.workspace_id.clone(),
                test_id: id.clone(),
                test_name: name.clone(),
                status: "pending".into(),
                attempt: 0,
                worker: None,
                created_at: now,
                updated_at: now,
                result: "{}".into(),
            });
        }
    }
    state.store.insert_invocation(&invocation, &runs).await?;
    state.engine.runs_queued.notify_one();
    Ok(Json(invocation_view(&state, &caller, &invocation).await?))
}

#[utoipa::path(get, path = "/v1/convai/test-invocations/{test_invocation_id}", params(("test_invocation_id" = String, Path)), security(("api_key" = ["tests:read"])))]
async fn get_invocation(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let inv = state
        .store
        .get_invocation(&caller.workspace_id, &id)
        .await
        .or_not_found("test invocation")?;
    Ok(Json(invocation_view(&state, &caller, &inv).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only this agent's invocations.
    agent_id: Option<String>,
    /// Only on this branch.
    branch_id: Option<String>,
    /// Only those that ran this test.
    test_id: Option<String>,
    /// Only started by this user; `@me` is the caller.
    created_by_user_id: Option<String>,
    /// Substring of the name or of a test's name.
    search: Option<String>,
    /// Created at or after this unix second.
    start_time: Option<i64>,
    /// Created at or before this unix second.
    end_time: Option<i64>,
    /// Accepted: every run is against the agent's current version.
    #[serde(rename = "version_id")]
    _version_id: Option<String>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// From the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/test-invocations", params(ListParams), security(("api_key" = ["tests:read"])))]
async fn list_invocations(
    caller: Caller,
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let limit = PageSizeRule::STANDARD
        .resolve(params.page_size)
        .map_err(ApiError::invalid)?;
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = InvocationFilter {
        agent_id: nonempty(params.agent_id),
        branch_id: nonempty(params.branch_id),
        test_id: nonempty(params.test_id),
        created_by: match nonempty(params.created_by_user_id).as_deref() {
            Some("@me") => Some(caller.user_id.clone()),
            other => other.map(str::to_owned),
        },
        search: nonempty(params.search).map(|s| s.to_lowercase()),
        start: params.start_time,
        end: params.end_time,
    };
    let fingerprint = format!("{filter:?}");
    let spec = CursorSpec::new("created_at", Direction::Desc, &[&fingerprint]);
    let after = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(raw) => {
            let c = spec.decode(raw).map_err(ApiError::invalid)?;
            Some((c.last_i64().unwrap_or(i64::MAX), c.last_id))
        }
        None => None,
    };
    let total = state
        .store
        .count_invocations(&caller.workspace_id, &filter, None)
        .await?;
    let before = match &after {
        Some(position) => {
            state
                .store
                .count_invocations(&caller.workspace_id, &filter, Some(position.clone()))
                .await?
        }
        None => 0,
    };
    let mut rows = state
        .store
        .list_invocations(&caller.workspace_id, &filter, after, limit + 1)
        .await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let mut results = Vec::with_capacity(rows.len());
    for inv in &rows {
        let runs = state.store.invocation_runs(&inv.id).await?;
        let cancelled = runs.iter().filter(|r| is_cancelled(r)).count();
        let count = |s: &str| {
            runs.iter()
                .filter(|r| wire_status(&r.status) == s && !is_cancelled(r))
                .count()
        };
        let user = state.store.user_name_email(&inv.created_by).await?;
        let title = inv.name.clone().unwrap_or_else(|| match runs.first() {
            Some(r) if runs.len() as i64 == inv.repeat_count => r.test_name.clone(),
            _ => format!("{} tests", runs.len() as i64 / inv.repeat_count.max(1)),
        });
        results.push(json!({
            "id": inv.id,
            "agent_id": inv.agent_id,
            "branch_id": inv.branch_id,
            "version_id": null,
            "ran_against_draft": false,
            "runs_diverged_from_version": false,
            "created_at_unix_secs": inv.created_at,
            "test_run_count": runs.len(),
            "passed_count": count("passed"),
            "failed_count": count("failed"),
            "pending_count": count("pending"),
            "cancelled_count": cancelled,
            "cancelled": cancelled > 0,
            "title": title,
            "access_info": access_info(&inv.created_by, &user.0, &user.1, &caller),
            "repeat_count": inv.repeat_count,
        }));
    }
    let next_cursor = match rows.last() {
        Some(last) if has_more => Some(spec.after(json!(last.created_at), &last.id).encode()),
        _ => None,
    };
    Ok(Json(json!({
        "meta": {"total": total, "page": before / i64::from(limit) + 1, "page_size": limit},
        "results": results,
        "next_cursor": next_cursor,
        "has_more": has_more,
    })))
}

#[derive(Debug, Deserialize)]
struct RenameBody {
    name: Option<String>,
}

#[utoipa::path(patch, path = "/v1/convai/test-invocations/{test_invocation_id}", params(("test_invocation_id" = String, Path)), security(("api_key" = ["tests:write"])))]
async fn rename_invocation(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<RenameBody>,
) -> ApiResult<Json<Value>> {
    let name = body.name.filter(|n| !n.is_empty());
    state
        .store
        .rename_invocation(&caller.workspace_id, &id, name.as_deref())
        .await
        .or_not_found("test invocation")?;
    let inv = state
        .store
        .get_invocation(&caller.workspace_id, &id)
        .await
        .or_not_found("test invocation")?;
    Ok(Json(invocation_view(&state, &caller, &inv).await?))
}

#[utoipa::path(post, path = "/v1/convai/test-invocations/{test_invocation_id}/cancel", params(("test_invocation_id" = String, Path)), security(("api_key" = ["tests:write"])))]
async fn cancel_invocation(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state
        .store
        .get_invocation(&caller.workspace_id, &id)
        .await
        .or_not_found("test invocation")?;
    let cancelled = json!({"cancelled": true, "condition_result": {"result": "failure", "rationale": {"messages": [], "summary": "Cancelled before it finished"}}});
    state
        .store
        .cancel_runs(&id, &cancelled.to_string(), time::now_secs())
        .await?;
    Ok(Json(json!({})))
}

#[utoipa::path(post, path = "/v1/convai/test-invocations/{test_invocation_id}/resubmit", params(("test_invocation_id" = String, Path)), security(("api_key" = ["tests:write"])))]
async fn resubmit_invocation(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(mut body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let inv = state
        .store
        .get_invocation(&caller.workspace_id, &id)
        .await
        .or_not_found("test invocation")?;
    check_body("ResubmitTestsRequestModel", &mut body)?;
    if body.get("agent_id").and_then(Value::as_str) != Some(inv.agent_id.as_str()) {
        return Err(ApiError::invalid(Violation::new(
            ["body", "agent_id"],
            "value_error",
            "agent_id is not the agent of this invocation",
        )));
    }
    let runs = state.store.invocation_runs(&id).await?;
    let wanted: Vec<String> = body["test_run_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let unknown: Vec<Violation> = wanted
        .iter()
        .enumerate()
        .filter(|(_, r)| !runs.iter().any(|x| &x.id == *r))
        .map(|(i, r)| {
            Violation::new(
                vec!["body".into(), "test_run_ids".into(), LocItem::Index(i)],
                "value_error",
                format!("Run {r} is not part of this invocation"),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::Invalid(unknown));
    }
    let document = body
        .get("agent_config_override")
        .filter(|o| o.is_object())
        .map(|o| json!({"agent_config_override": o}).to_string());
    state
        .store
        .resubmit_runs(&id, &wanted, document.as_deref(), time::now_secs())
        .await?;
    state.engine.runs_queued.notify_one();
    Ok(Json(json!({})))
}
