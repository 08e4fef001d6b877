//! Deployments (`POST /agents/{id}/deployments`): how new conversations are split between an
//! agent's branches. Shares are fractions of the whole (0.5 is half) that must add up to 1;
//! branches the request does not name get none. Which branch a conversation lands on is
//! `colloquy_core::branches::pick`. Every split set is kept: `GET` lists them, newest first.

use axum::extract::Path;
use colloquy_core::branches::{is_whole, share_ppm};
use colloquy_core::ids::AgentId;
use colloquy_core::time;
use colloquy_core::validation::{LocItem, Violation};
use colloquy_store::{DeploymentRow, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

use super::branches::share;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, from_body};
use crate::routes::access::access_info;

#[derive(Debug, Deserialize)]
pub(super) struct DeployBody {
    deployment_request: DeploymentRequest,
}

#[derive(Debug, Deserialize)]
struct DeploymentRequest {
    requests: Vec<DeploymentItem>,
}

#[derive(Debug, Deserialize)]
struct DeploymentItem {
    branch_id: String,
    deployment_strategy: Strategy,
}

/// `AgentDeploymentPercentageStrategy`, the one strategy the reference has.
#[derive(Debug, Deserialize)]
struct Strategy {
    #[serde(rename = "type")]
    kind: Option<String>,
    traffic_percentage: f64,
}

/// Where the `i`th request's `field` is in the body.
fn loc(i: usize, field: &[&str]) -> Vec<LocItem> {
    let mut at: Vec<LocItem> = ["body", "deployment_request", "requests"].map(LocItem::from).into();
    at.push(LocItem::Index(i));
    at.extend(field.iter().map(|f| LocItem::from(*f)));
    at
}

/// The split the request asks for, in millionths, or what is wrong with it.
fn split(items: &[DeploymentItem]) -> Result<Vec<(String, i64)>, Vec<Violation>> {
    let mut violations = Vec::new();
    let mut out: Vec<(String, i64)> = Vec::with_capacity(items.len());
    if items.is_empty() {
        violations.push(Violation::new(
            ["body", "deployment_request", "requests"],
            "too_short",
            "A deployment names at least one branch",
        ));
    }
    for (i, item) in items.iter().enumerate() {
        let strategy = &item.deployment_strategy;
        if strategy.kind.as_deref().is_some_and(|k| k != "percentage") {
            violations.push(Violation::new(
                loc(i, &["deployment_strategy", "type"]),
                "literal_error",
                "Input should be 'percentage'",
            ));
        }
        if out.iter().any(|(b, _)| b == &item.branch_id) {
            violations.push(Violation::new(
                loc(i, &["branch_id"]),
                "value_error",
                "A branch may appear once in a deployment",
            ));
        }
        match share_ppm(strategy.traffic_percentage) {
            Some(ppm) => out.push((item.branch_id.clone(), ppm)),
            None => violations.push(Violation::new(
                loc(i, &["deployment_strategy", "traffic_percentage"]),
                "value_error",
                "traffic_percentage is a fraction of the traffic, from 0 to 1 (0.5 is half)",
            )),
        }
    }
    let shares: Vec<i64> = out.iter().map(|(_, s)| *s).collect();
    if violations.is_empty() && !is_whole(&shares) {
        violations.push(Violation::new(
            ["body", "deployment_request", "requests"],
            "value_error",
            "The traffic percentages must add up to 1 (the whole traffic)",
        ));
    }
    if violations.is_empty() { Ok(out) } else { Err(violations) }
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/deployments", params(("agent_id" = String, Path)), security(("api_key" = ["agents:write"])))]
pub(super) async fn create_deployment(
    cx: Ctx, Path(agent_id): Path<AgentId>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    cx.agent(&agent_id).await?;
    let body: DeployBody = from_body(body)?;
    let split = split(&body.deployment_request.requests).map_err(ApiError::Invalid)?;
    let store = &cx.app.store;
    match store
        .deploy(&cx.workspace_id, &agent_id, &split, &cx.user_id, time::now_secs(), "manual")
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound) => {
            return Err(ApiError::NotFound("branch (or it is archived)"));
        }
        Err(e) => return Err(e.into()),
    }
    let map: Map<String, Value> =
        split.iter().map(|(branch, ppm)| (branch.clone(), json!(share(*ppm)))).collect();
    Ok(Json(json!({ "traffic_percentage_branch_id_map": map })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Page number, from 1.
    #[serde(default = "first_page")]
    page: u32,
    /// Splits per page (1 to 100, default 30).
    #[serde(default = "default_page_size")]
    page_size: u32,
}

fn first_page() -> u32 {
    1
}

fn default_page_size() -> u32 {
    30
}

/// `AgentDeploymentHistoryItem`; the newest of all is the live split.
fn history_item(row: &DeploymentRow, is_active: bool, cx: &Ctx) -> Value {
    let split: Vec<(String, i64)> = serde_json::from_str(&row.split).unwrap_or_default();
    let map: Map<String, Value> =
        split.iter().map(|(branch, ppm)| (branch.clone(), json!(share(*ppm)))).collect();
    json!({
        "id": row.id,
        "traffic_percentage_branch_id_map": map,
        "deployed_at_unix_secs": row.created_at,
        "is_active": is_active,
        "source": row.source,
        "access_info": access_info(&row.created_by, &row.creator_name, &row.creator_email, cx),
    })
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/deployments", params(("agent_id" = String, Path), ListParams), security(("api_key" = ["agents:read"])))]
pub(super) async fn list_deployments(
    cx: Ctx, Path(agent_id): Path<AgentId>, Query(params): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let mut violations = Vec::new();
    if params.page == 0 {
        violations.push(Violation::new(
            ["query", "page"],
            "greater_than_equal",
            "Input should be greater than or equal to 1",
        ));
    }
    if !(1..=100).contains(&params.page_size) {
        violations.push(Violation::new(
            ["query", "page_size"],
            "less_than_equal",
            "Input should be between 1 and 100",
        ));
    }
    if !violations.is_empty() {
        return Err(ApiError::Invalid(violations));
    }
    cx.agent(&agent_id).await?;
    let offset = (params.page - 1).saturating_mul(params.page_size);
    let (rows, total) = cx
        .app
        .store
        .list_deployments(&cx.workspace_id, &agent_id, offset, params.page_size)
        .await?;
    let results: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| history_item(row, offset == 0 && i == 0, &cx))
        .collect();
    Ok(Json(json!({
        "results": results,
        "meta": {"total": total, "page": params.page, "page_size": params.page_size},
    })))
}
