//! The wire views of an invocation: `GetTestSuiteInvocationResponseModel` with its runs, and
//! the summary a list shows.

use colloquy_core::ids::TestId;
use colloquy_core::test_runs::RunStatus;
use colloquy_store::{InvocationRow, RunRow, TestEntityRow};
use serde_json::{Map, Value, json};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::routes::access::access_info;

/// What every view of an invocation starts with: which it is, of which agent, and `fields`.
fn with_identity(inv: &InvocationRow, fields: Value) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(inv.id));
    out.insert("agent_id".into(), json!(inv.agent_id));
    out.insert("branch_id".into(), json!(inv.branch_id));
    out.insert("version_id".into(), json!(inv.version_id));
    out.insert("ran_against_draft".into(), json!(false));
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    Value::Object(out)
}

/// An invocation with every run.
pub(super) async fn full(cx: &Ctx, inv: &InvocationRow) -> ApiResult<Value> {
    let runs = cx.app.store.invocation_runs(&inv.id).await?;
    let ids: Vec<TestId> = runs.iter().map(|r| r.test_id.clone()).collect();
    let tests = cx.app.store.get_test_entities(&cx.workspace_id, &ids).await?;
    let test_runs: Vec<Value> =
        runs.iter().map(|r| run(inv, r, tests.iter().find(|t| t.id == r.test_id))).collect();
    let result_groups: Vec<Value> =
        if inv.repeat_count > 1 { result_groups(&runs) } else { Vec::new() };
    Ok(with_identity(
        inv,
        json!({
            "created_at": inv.created_at,
            "folder_id": null,
            "repeat_count": inv.repeat_count,
            "bucketing_status": null,
            "result_groups": result_groups,
            "test_runs": test_runs,
        }),
    ))
}

/// `UnitTestRunResponseModel`: a run, with its test as it is now.
fn run(inv: &InvocationRow, r: &RunRow, test: Option<&TestEntityRow>) -> Value {
    let result: Value = serde_json::from_str(&r.result).unwrap_or_else(|_| json!({}));
    let test_type = match test.map(|t| t.test_type.as_str()) {
        Some("tool") => "tool_call",
        Some("simulation") => "simulation",
        _ => "llm",
    };
    // Stored as the model serves it (`agent_tests::prepare` shapes it on write).
    let test_info = test.and_then(|t| serde_json::from_str::<Value>(&t.document).ok());
    let from_result = |key: &str| result.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "test_run_id": r.id,
        "test_info": test_info,
        "test_invocation_id": inv.id,
        "agent_id": inv.agent_id,
        "branch_id": inv.branch_id,
        "version_id": inv.version_id,
        "ran_against_draft": false,
        "workflow_node_id": null,
        "status": r.status.wire(),
        "agent_responses": from_result("agent_responses"),
        "test_id": r.test_id,
        "test_name": r.test_name,
        "condition_result": from_result("condition_result"),
        "last_updated_at_unix": r.updated_at,
        "metadata": {"workspace_id": inv.workspace_id, "test_name": r.test_name, "ran_by_user_email": "", "test_type": test_type},
    })
}

/// Runs of each test grouped by outcome (for repeated runs).
fn result_groups(runs: &[RunRow]) -> Vec<Value> {
    let mut order: Vec<&TestId> = Vec::new();
    for r in runs {
        if !order.contains(&&r.test_id) {
            order.push(&r.test_id);
        }
    }
    order
        .iter()
        .map(|test_id| {
            let of_test: Vec<&RunRow> = runs.iter().filter(|r| &r.test_id == *test_id).collect();
            let buckets: Vec<Value> = ["passed", "failed", "pending"]
                .iter()
                .filter_map(|status| {
                    let ids: Vec<&str> = of_test
                        .iter()
                        .filter(|r| r.status.wire() == *status)
                        .map(|r| r.id.as_str())
                        .collect();
                    (!ids.is_empty()).then(|| {
                        json!({
                            "test_run_ids": ids,
                            "title": format!("{} {status}", ids.len()),
                            "reason": bucket_reason(&of_test, status),
                            "status": status,
                        })
                    })
                })
                .collect();
            json!({"test_id": test_id, "test_name": of_test[0].test_name, "workflow_node_id": null, "buckets": buckets})
        })
        .collect()
}

/// Why the runs of a bucket ended as they did: the judge's summary when all its runs share
/// one, else how many runs of the test the bucket holds.
fn bucket_reason(of_test: &[&RunRow], status: &str) -> String {
    let in_bucket: Vec<&&RunRow> = of_test.iter().filter(|r| r.status.wire() == status).collect();
    let summaries: Vec<String> = in_bucket
        .iter()
        .map(|r| {
            let result: Value = serde_json::from_str(&r.result).unwrap_or(Value::Null);
            result["condition_result"]["rationale"]["summary"].as_str().unwrap_or("").to_owned()
        })
        .collect();
    match summaries.first() {
        Some(first) if !first.is_empty() && summaries.iter().all(|s| s == first) => first.clone(),
        _ => format!("{} of {} runs {status}", in_bucket.len(), of_test.len()),
    }
}

/// `TestInvocationSummaryResponseModel`: an invocation as the list shows it.
pub(super) async fn summary(cx: &Ctx, inv: &InvocationRow) -> ApiResult<Value> {
    let runs = cx.app.store.invocation_runs(&inv.id).await?;
    // Cancelled runs are `failed` on the wire, and counted with them: the reference's model
    // has no count of its own for them.
    let count = |status: RunStatus| runs.iter().filter(|r| r.status == status).count();
    let pending = count(RunStatus::Pending) + count(RunStatus::Running);
    let (name, email) = cx.app.store.user_name_email(&inv.created_by).await?;
    let title = inv.name.clone().unwrap_or_else(|| match runs.first() {
        Some(r) if runs.len() as i64 == inv.repeat_count => r.test_name.clone(),
        _ => format!("{} tests", runs.len() as i64 / inv.repeat_count.max(1)),
    });
    Ok(with_identity(
        inv,
        json!({
            "runs_diverged_from_version": false,
            "created_at_unix_secs": inv.created_at,
            "test_run_count": runs.len(),
            "passed_count": count(RunStatus::Passed),
            "failed_count": count(RunStatus::Failed) + count(RunStatus::Cancelled),
            "pending_count": pending,
            "title": title,
            "access_info": access_info(&inv.created_by, &name, &email, cx),
            "repeat_count": inv.repeat_count,
        }),
    ))
}
