//! Workspace secrets (`/v1/convai/secrets`): values tools send in headers without the value
//! ever being readable through the API. Values are sealed with the server's secret key before
//! they reach the store, and no response carries them.

use axum::extract::Path;
use axum::http::StatusCode;
use colloquy_core::cursor::{Direction, PageSizeRule};
use colloquy_core::secret_key::secret_context;
use colloquy_core::validation::Violation;
use colloquy_core::{ids, time};
use colloquy_store::{SecretDependent, SecretRecord, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{Caller, Ctx};
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query};
use crate::paging::Pager;
use crate::state::AppState;

const MAX_NAME_CHARS: usize = 256;
const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Dependents listed per secret when the client does not say.
const DEFAULT_DEPENDENCY_LIMIT: usize = 10;

/// The secrets routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_secrets, create_secret))
        .routes(routes!(get_secret, update_secret, delete_secret))
        .routes(routes!(get_secret_dependencies))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListSecretsParams {
    /// Page size, 1..=100; all secrets when absent.
    page_size: Option<i64>,
    /// Dependents listed per secret, 1..=100.
    dependency_limit: Option<i64>,
    /// Keep secrets whose names start with this (case-insensitive).
    search: Option<String>,
    /// Cursor from the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CreateType {
    New,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum UpdateType {
    Update,
}

#[derive(Debug, Deserialize)]
struct CreateSecret {
    #[serde(rename = "type")]
    _type: CreateType,
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct UpdateSecret {
    #[serde(rename = "type")]
    _type: UpdateType,
    name: String,
    value: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DependencyParams {
    /// Page size, 1..=100, default 20.
    page_size: Option<i64>,
    /// Cursor from the previous page.
    cursor: Option<String>,
}

/// Who uses a secret: the tools that send it in a header and the MCP servers that use it for
/// their URL, token or headers. Agents and phone numbers cannot refer to secrets here.
fn used_by(secret_id: &str, dependents: &[SecretDependent], role: &str, limit: usize) -> Value {
    let of = |kind: &str| -> Vec<Value> {
        dependents
            .iter()
            .filter(|d| d.secret_id == secret_id && d.kind == kind)
            .map(|d| dependent_view(d, role))
            .collect()
    };
    let tools = of("tool");
    let servers = of("mcp_server");
    let more = tools.len() > limit;
    json!({
        "tools": tools.into_iter().take(limit).collect::<Vec<_>>(), "tools_has_more": more,
        "agents": [], "agents_has_more": false,
        "phone_numbers": [], "phone_numbers_has_more": false,
        "mcp_servers": servers, "others": []
    })
}

fn dependent_view(d: &SecretDependent, role: &str) -> Value {
    json!({
        "type": "available",
        "id": d.tool_id,
        "name": d.name,
        "created_at_unix_secs": d.created_at,
        "access_level": role,
    })
}

fn view(
    secret: &SecretRecord, dependents: &[SecretDependent], caller: &Caller, limit: usize,
) -> Value {
    json!({
        "type": "stored",
        "secret_id": secret.id,
        "name": secret.name,
        "used_by": used_by(&secret.id, dependents, caller.role().as_str(), limit),
    })
}

async fn dependents_of(cx: &Ctx, secrets: &[SecretRecord]) -> ApiResult<Vec<SecretDependent>> {
    let ids: Vec<String> = secrets.iter().map(|s| s.id.clone()).collect();
    Ok(cx.app.store.secret_dependents(&cx.workspace_id, &ids).await?)
}

fn check_name_and_value(name: &str, value: &str) -> ApiResult<()> {
    let mut violations = Vec::new();
    if name.trim().is_empty() {
        violations.push(Violation::new(
            ["body", "name"],
            "string_too_short",
            "String should have at least 1 character",
        ));
    } else if name.chars().count() > MAX_NAME_CHARS {
        violations.push(Violation::new(
            ["body", "name"],
            "string_too_long",
            format!("String should have at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if value.len() > MAX_VALUE_BYTES {
        violations.push(Violation::new(
            ["body", "value"],
            "string_too_long",
            format!("String should have at most {MAX_VALUE_BYTES} bytes"),
        ));
    }
    if violations.is_empty() { Ok(()) } else { Err(ApiError::Invalid(violations)) }
}

/// A secrets page holds every secret unless the client asks for fewer.
const SECRETS_PAGE: PageSizeRule = PageSizeRule { min: 1, max: 100, default: u32::MAX as i64 };

/// The dependencies of a secret, 20 at a time by default.
const DEPENDENCIES_PAGE: PageSizeRule = PageSizeRule { min: 1, max: 100, default: 20 };

#[utoipa::path(get, path = "/v1/convai/secrets", params(ListSecretsParams), security(("api_key" = ["secrets:read"])))]
async fn list_secrets(cx: Ctx, Query(params): Query<ListSecretsParams>) -> ApiResult<Json<Value>> {
    if let Some(n) = params.dependency_limit
        && !(1..=100).contains(&n)
    {
        let kind = if n < 1 { "greater_than_equal" } else { "less_than_equal" };
        return Err(ApiError::invalid(Violation::new(
            ["query", "dependency_limit"],
            kind,
            "Input should be between 1 and 100",
        )));
    }
    let search = params.search.as_deref().filter(|s| !s.is_empty()).map(str::to_lowercase);
    let pager = Pager::new(
        SECRETS_PAGE,
        params.page_size,
        params.cursor.as_deref(),
        "name",
        Direction::Asc,
        &[search.as_deref().unwrap_or("")],
    )?;
    let rows = cx
        .app
        .store
        .list_secrets(&cx.workspace_id, search.as_deref(), pager.after()?, Some(pager.fetch()))
        .await?;
    let page = pager.page(rows, |r| (r.name.clone(), r.id.as_str()));
    let (rows, next_cursor) = (page.items, page.next_cursor);
    let dependents = dependents_of(&cx, &rows).await?;
    let limit = params.dependency_limit.map_or(DEFAULT_DEPENDENCY_LIMIT, |n| n as usize);
    let secrets: Vec<Value> = rows.iter().map(|r| view(r, &dependents, &cx, limit)).collect();
    Ok(Json(json!({"secrets": secrets, "next_cursor": next_cursor})))
}

#[utoipa::path(post, path = "/v1/convai/secrets", security(("api_key" = ["secrets:write"])))]
async fn create_secret(cx: Ctx, Json(body): Json<CreateSecret>) -> ApiResult<Json<Value>> {
    check_name_and_value(&body.name, &body.value)?;
    let id = ids::new_id(ids::prefix::SECRET);
    let now = time::now_secs();
    let record = SecretRecord {
        sealed_value: cx
            .app
            .keyring
            .seal(body.value.as_bytes(), &secret_context(&cx.workspace_id, &id)),
        id,
        workspace_id: cx.workspace_id.clone(),
        name: body.name,
        created_by: cx.user_id.clone(),
        created_at: now,
        updated_at: now,
    };
    cx.app.store.insert_secret(&record).await?;
    Ok(Json(json!({"type": "stored", "secret_id": record.id, "name": record.name})))
}

#[utoipa::path(get, path = "/v1/convai/secrets/{secret_id}", params(("secret_id" = String, Path)), security(("api_key" = ["secrets:read"])))]
async fn get_secret(cx: Ctx, Path(secret_id): Path<String>) -> ApiResult<Json<Value>> {
    let secret = cx.secret(&secret_id).await?;
    let dependents = dependents_of(&cx, std::slice::from_ref(&secret)).await?;
    Ok(Json(view(&secret, &dependents, &cx, DEFAULT_DEPENDENCY_LIMIT)))
}

#[utoipa::path(patch, path = "/v1/convai/secrets/{secret_id}", params(("secret_id" = String, Path)), security(("api_key" = ["secrets:write"])))]
async fn update_secret(
    cx: Ctx, Path(secret_id): Path<String>, Json(body): Json<UpdateSecret>,
) -> ApiResult<Json<Value>> {
    check_name_and_value(&body.name, &body.value)?;
    let sealed =
        cx.app.keyring.seal(body.value.as_bytes(), &secret_context(&cx.workspace_id, &secret_id));
    cx.app
        .store
        .update_secret(&cx.workspace_id, &secret_id, &body.name, &sealed, time::now_secs())
        .await
        .or_not_found("secret")?;
    Ok(Json(json!({"type": "stored", "secret_id": secret_id, "name": body.name})))
}

#[utoipa::path(delete, path = "/v1/convai/secrets/{secret_id}", params(("secret_id" = String, Path)), security(("api_key" = ["secrets:write"])))]
async fn delete_secret(cx: Ctx, Path(secret_id): Path<String>) -> ApiResult<StatusCode> {
    match cx.app.store.delete_secret(&cx.workspace_id, &secret_id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::Conflict(why)) => Err(ApiError::Conflict {
            status: "secret_in_use",
            message: format!("The secret cannot be deleted: {why}. Remove it from them first."),
        }),
        Err(e) => Err(e).or_not_found("secret"),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum DependencyType {
    Tools,
    Agents,
    PhoneNumbers,
}

#[utoipa::path(
    get,
    path = "/v1/convai/secrets/{secret_id}/dependencies/{resource_type}",
    params(("secret_id" = String, Path), ("resource_type" = inline(DependencyType), Path), DependencyParams),
    security(("api_key" = ["secrets:read"]))
)]
async fn get_secret_dependencies(
    cx: Ctx, Path((secret_id, resource_type)): Path<(String, String)>,
    Query(params): Query<DependencyParams>,
) -> ApiResult<Json<Value>> {
    let kind: DependencyType = serde_json::from_value(json!(resource_type)).map_err(|_| {
        ApiError::invalid(Violation::new(
            ["path", "resource_type"],
            "enum",
            "Input should be 'tools', 'agents' or 'phone_numbers'",
        ))
    })?;
    let pager = Pager::new(
        DEPENDENCIES_PAGE,
        params.page_size,
        params.cursor.as_deref(),
        "created_at",
        Direction::Asc,
        &[&secret_id, &resource_type],
    )?;
    let after = pager.after::<i64>()?;
    let secret = cx.secret(&secret_id).await?;
    let dependents = match kind {
        DependencyType::Tools => dependents_of(&cx, std::slice::from_ref(&secret))
            .await?
            .into_iter()
            .filter(|d| d.kind == "tool")
            .collect(),
        DependencyType::Agents | DependencyType::PhoneNumbers => Vec::new(),
    };
    let remaining: Vec<&SecretDependent> = dependents
        .iter()
        .filter(|d| after.as_ref().is_none_or(|(at, id)| (d.created_at, &d.tool_id) > (*at, id)))
        .collect();
    let page = pager.page(remaining, |d| (d.created_at, d.tool_id.as_str()));
    let (page, next_cursor) = (page.items, page.next_cursor);
    let role = cx.role();
    let items: Vec<Value> = page.iter().map(|d| dependent_view(d, role.as_str())).collect();
    Ok(Json(json!({"dependencies": items, "next_cursor": next_cursor})))
}
