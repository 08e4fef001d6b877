//! `GET /api/stats?days=7`: a workspace's numbers over its last days, for the dashboard's
//! home page: conversations per day and how they ended, tool calls with their failures and
//! latency per tool, test runs. Colloquy's own route (the reference has none). Read from the
//! per-day tables (`colloquy_store::StatsStore`), so it costs the same at any volume.

use colloquy_core::time;
use colloquy_core::validation::Violation;
use colloquy_store::ToolDays;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stats))
}

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StatsParams {
    /// Days to cover, today included: 1 to 90, 7 unless asked.
    days: Option<i64>,
}

/// A share, or null when there is nothing to divide.
fn rate(part: i64, whole: i64) -> Value {
    if whole > 0 { json!(part as f64 / whole as f64) } else { Value::Null }
}

fn date(day: i64) -> String {
    let text = time::rfc3339_ms(day * DAY_MS);
    text.get(..10).unwrap_or(&text).to_owned()
}

/// One tool's figures: its p95 is the upper bound of the histogram bucket holding it (so it
/// never understates), marked when it lies past the histogram's last edge.
fn tool_view(t: &ToolDays) -> Value {
    let p95 = t.quantile_bound_us(0.95);
    let last_edge = colloquy_store::LATENCY_EDGES_US[colloquy_store::LATENCY_EDGES_US.len() - 1];
    json!({
        "tool_id": t.tool_id,
        "tool_name": t.tool_name,
        "calls": t.calls,
        "errors": t.errors,
        "error_rate": rate(t.errors, t.calls),
        "mean_latency_secs": if t.calls > 0 { json!(t.latency_us_sum as f64 / t.calls as f64 / 1e6) } else { Value::Null },
        "p95_latency_secs": p95.unwrap_or(last_edge) as f64 / 1e6,
        "p95_beyond_histogram": p95.is_none() && t.calls > 0,
    })
}

#[utoipa::path(
    get,
    path = "/api/stats",
    params(StatsParams),
    responses((status = 200, description = "`{days, from, to, conversations: {total, successes, failures, success_rate, per_day: [{date, started, successes, failures}]}, tool_calls: {total, errors, error_rate}, tools: [{tool_id, tool_name, calls, errors, error_rate, mean_latency_secs, p95_latency_secs, p95_beyond_histogram}], tests: {passed, failed, pass_rate}}`")),
    security(("api_key" = ["conversations:read"]))
)]
async fn stats(cx: Ctx, Query(params): Query<StatsParams>) -> ApiResult<Json<Value>> {
    let days = params.days.unwrap_or(7);
    if !(1..=90).contains(&days) {
        let why = "Input should be between 1 and 90";
        return Err(ApiError::invalid(Violation::new(["query", "days"], "less_than_equal", why)));
    }
    let today = time::now_ms().div_euclid(DAY_MS);
    let from = today - days + 1;
    let store = &cx.app.store;
    let (per_day, tools, runs) = futures_util::try_join!(
        store.conversation_days(&cx.workspace_id, from, today),
        store.tool_days(&cx.workspace_id, from, today),
        store.test_run_counts(&cx.workspace_id, from * 86_400),
    )?;
    let filled: Vec<Value> = (from..=today)
        .map(|day| {
            let d = per_day.iter().find(|d| d.day == day);
            json!({
                "date": date(day),
                "started": d.map_or(0, |d| d.started),
                "successes": d.map_or(0, |d| d.successes),
                "failures": d.map_or(0, |d| d.failures),
            })
        })
        .collect();
    let sum = |f: fn(&colloquy_store::ConversationDay) -> i64| per_day.iter().map(f).sum::<i64>();
    let (total, successes, failures) =
        (sum(|d| d.started), sum(|d| d.successes), sum(|d| d.failures));
    let calls: i64 = tools.iter().map(|t| t.calls).sum();
    let errors: i64 = tools.iter().map(|t| t.errors).sum();
    Ok(Json(json!({
        "days": days,
        "from": date(from),
        "to": date(today),
        "conversations": {
            "total": total,
            "successes": successes,
            "failures": failures,
            "success_rate": rate(successes, successes + failures),
            "per_day": filled,
        },
        "tool_calls": {"total": calls, "errors": errors, "error_rate": rate(errors, calls)},
        "tools": tools.iter().map(tool_view).collect::<Vec<_>>(),
        "tests": {"passed": runs.passed, "failed": runs.failed, "pass_rate": rate(runs.passed, runs.passed + runs.failed)},
    })))
}
