//! Environments (`/v1/convai/environments`) and environment variables
//! (`/v1/convai/environment-variables`): values that tools, MCP servers and custom LLMs name by
//! label, chosen per environment when a conversation runs (`environment` on the WebSocket, the
//! signed URL, the initiation data or a test). A secret variable holds workspace secrets' ids,
//! so no response carries a secret's value.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::Path;
use axum::http::StatusCode;
use colloquy_core::cursor::{Direction, PageSizeRule};
use colloquy_core::environments::{self, PRODUCTION, VarKind};
use colloquy_core::validation::Violation;
use colloquy_core::{ids, time};
use colloquy_store::{EnvValueRow, EnvVarFilter, EnvVarRow, EnvironmentRow, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query};
use crate::paging::Pager;
use crate::state::AppState;

/// The environments and environment-variables routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_environments, create_environment))
        .routes(routes!(delete_environment))
        .routes(routes!(list_variables, create_variable))
        .routes(routes!(get_variable, update_variable, delete_variable))
}

/// The environment a request names (`production` when it names none), refused at `loc` when
/// the workspace does not have it.
pub(crate) async fn named(cx: &Ctx, name: Option<&str>, loc: [&str; 2]) -> ApiResult<String> {
    let Some(name) = name.filter(|n| !n.is_empty() && *n != PRODUCTION) else {
        return Ok(PRODUCTION.to_owned());
    };
    let known = cx.app.store.list_environments(&cx.workspace_id).await?;
    if known.iter().any(|e| e.name == name) {
        Ok(name.to_owned())
    } else {
        Err(ApiError::invalid(Violation::new(
            loc,
            "value_error",
            format!("The workspace has no environment {name:?}"),
        )))
    }
}

/// Variables per page: 1 to 100, 100 unless asked.
const VARIABLES_PAGE: PageSizeRule = PageSizeRule { min: 1, max: 100, default: 100 };

fn environment_view(e: &EnvironmentRow) -> Value {
    json!({"name": e.name, "updated_at_unix_secs": e.updated_at, "created_by_user_id": e.created_by})
}

#[utoipa::path(get, path = "/v1/convai/environments", security(("api_key" = ["secrets:read"])))]
async fn list_environments(cx: Ctx) -> ApiResult<Json<Value>> {
    let rows = cx.app.store.list_environments(&cx.workspace_id).await?;
    let mut environments = vec![json!({"name": PRODUCTION})];
    environments.extend(rows.iter().map(environment_view));
    Ok(Json(json!({"environments": environments})))
}

#[derive(Debug, Deserialize)]
struct CreateEnvironment {
    name: String,
}

#[utoipa::path(post, path = "/v1/convai/environments", security(("api_key" = ["secrets:write"])))]
async fn create_environment(
    cx: Ctx, Json(body): Json<CreateEnvironment>,
) -> ApiResult<Json<Value>> {
    environments::check_name(&body.name, &["body", "name"]).map_err(ApiError::invalid)?;
    let taken = || ApiError::Conflict {
        status: "environment_exists",
        message: format!("The environment {:?} already exists", body.name),
    };
    if body.name == PRODUCTION {
        return Err(taken());
    }
    let now = time::now_secs();
    let row = EnvironmentRow {
        name: body.name.clone(),
        created_by: cx.user_id.clone(),
        created_at: now,
        updated_at: now,
    };
    match cx.app.store.insert_environment(&cx.workspace_id, &row).await {
        Ok(()) => Ok(Json(environment_view(&row))),
        Err(StoreError::Conflict(_)) => Err(taken()),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(delete, path = "/v1/convai/environments/{environment}", params(("environment" = String, Path)), security(("api_key" = ["secrets:write"])))]
async fn delete_environment(cx: Ctx, Path(name): Path<String>) -> ApiResult<StatusCode> {
    if name == PRODUCTION {
        return Err(ApiError::BadRequest {
            status: "production_environment",
            message: "The production environment cannot be deleted".into(),
        });
    }
    cx.app.store.delete_environment(&cx.workspace_id, &name).await.or_not_found("environment")?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Cursor from the previous page.
    cursor: Option<String>,
    /// 1..=100, default 100.
    page_size: Option<i64>,
    /// Exactly this label.
    label: Option<String>,
    /// Only variables with a value for this environment, showing only that value.
    environment: Option<String>,
    /// `string`, `secret` or `auth_connection`.
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// A variable as the API shows it, with the values of `only` when given, else all of them.
fn variable_view(v: &EnvVarRow, values: &[EnvValueRow], only: Option<&str>) -> Value {
    let kind = VarKind::parse(&v.kind).unwrap_or(VarKind::String);
    let values: Map<String, Value> = values
        .iter()
        .filter(|x| x.variable_id == v.id && only.is_none_or(|e| e == x.environment))
        .map(|x| (x.environment.clone(), kind.wire(&x.value)))
        .collect();
    json!({
        "label": v.label,
        "created_at_unix_secs": v.created_at,
        "updated_at_unix_secs": v.updated_at,
        "created_by_user_id": v.created_by,
        "type": v.kind,
        "id": v.id,
        "workspace_id": v.workspace_id,
        "values": values,
    })
}

#[utoipa::path(get, path = "/v1/convai/environment-variables", params(ListParams), security(("api_key" = ["secrets:read"])))]
async fn list_variables(cx: Ctx, Query(params): Query<ListParams>) -> ApiResult<Json<Value>> {
    let kind = params.kind.as_deref().filter(|k| !k.is_empty());
    if let Some(k) = kind
        && VarKind::parse(k).is_none()
        && k != "auth_connection"
    {
        return Err(ApiError::invalid(Violation::new(
            ["query", "type"],
            "enum",
            "Input should be 'string', 'secret' or 'auth_connection'",
        )));
    }
    let label = params.label.as_deref().filter(|l| !l.is_empty());
    let environment = params.environment.as_deref().filter(|e| !e.is_empty());
    let pager = Pager::new(
        VARIABLES_PAGE,
        params.page_size,
        params.cursor.as_deref(),
        "label",
        Direction::Asc,
        &[label.unwrap_or(""), environment.unwrap_or(""), kind.unwrap_or("")],
    )?;
    let filter = EnvVarFilter {
        label: label.map(str::to_owned),
        environment: environment.map(str::to_owned),
        kind: kind.map(str::to_owned),
        after: pager.after()?,
        limit: pager.fetch(),
    };
    let rows = cx.app.store.list_env_vars(&cx.workspace_id, &filter).await?;
    let page = pager.page(rows, |r| (r.label.clone(), r.id.as_str()));
    let ids: Vec<String> = page.items.iter().map(|r| r.id.clone()).collect();
    let values = cx.app.store.env_var_values(&ids).await?;
    let views: Vec<Value> =
        page.items.iter().map(|v| variable_view(v, &values, environment)).collect();
    Ok(Json(json!({
        "environment_variables": views,
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    })))
}

/// Refuses values for environments the workspace does not have, and secret ids it does not
/// have: a variable only ever names what exists.
async fn check_targets<'a>(
    cx: &Ctx, kind: VarKind, values: impl Iterator<Item = (&'a String, Option<&'a String>)>,
) -> ApiResult<()> {
    let known: BTreeSet<String> = cx
        .app
        .store
        .list_environments(&cx.workspace_id)
        .await?
        .into_iter()
        .map(|e| e.name)
        .chain([PRODUCTION.to_owned()])
        .collect();
    let mut errors = Vec::new();
    for (env, value) in values {
        if !known.contains(env) {
            errors.push(Violation::new(
                ["body", "values", env.as_str()],
                "value_error",
                format!("The workspace has no environment {env:?}; create it first"),
            ));
        }
        if let (VarKind::Secret, Some(secret_id)) = (kind, value)
            && let Err(StoreError::NotFound) =
                cx.app.store.get_secret(&cx.workspace_id, secret_id).await
        {
            errors.push(Violation::new(
                ["body", "values", env.as_str(), "secret_id"],
                "value_error",
                format!("No workspace secret has the id {secret_id:?}"),
            ));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(ApiError::Invalid(errors)) }
}

#[utoipa::path(post, path = "/v1/convai/environment-variables", security(("api_key" = ["secrets:write"])))]
async fn create_variable(cx: Ctx, Json(body): Json<Value>) -> ApiResult<Json<Value>> {
    let new = environments::create(&body).map_err(ApiError::Invalid)?;
    check_targets(&cx, new.kind, new.values.iter().map(|(e, v)| (e, Some(v)))).await?;
    let now = time::now_secs();
    let row = EnvVarRow {
        id: ids::new_id(ids::prefix::ENV_VAR),
        workspace_id: cx.workspace_id.clone(),
        label: new.label,
        kind: new.kind.as_str().to_owned(),
        created_by: cx.user_id.clone(),
        created_at: now,
        updated_at: now,
    };
    let values: Vec<(String, String)> = new.values.into_iter().collect();
    match cx.app.store.insert_env_var(&row, &values).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::Conflict {
                status: "environment_variable_exists",
                message: format!("An environment variable is already labelled {:?}", row.label),
            });
        }
        Err(e) => return Err(e.into()),
    }
    let stored: Vec<EnvValueRow> = values
        .into_iter()
        .map(|(environment, value)| EnvValueRow { variable_id: row.id.clone(), environment, value })
        .collect();
    Ok(Json(variable_view(&row, &stored, None)))
}

async fn read_variable(cx: &Ctx, id: &str) -> ApiResult<Value> {
    let row = cx
        .app
        .store
        .get_env_var(&cx.workspace_id, id)
        .await
        .or_not_found("environment variable")?;
    let values = cx.app.store.env_var_values(std::slice::from_ref(&row.id)).await?;
    Ok(variable_view(&row, &values, None))
}

#[utoipa::path(get, path = "/v1/convai/environment-variables/{env_var_id}", params(("env_var_id" = String, Path)), security(("api_key" = ["secrets:read"])))]
async fn get_variable(cx: Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(read_variable(&cx, &id).await?))
}

#[utoipa::path(patch, path = "/v1/convai/environment-variables/{env_var_id}", params(("env_var_id" = String, Path)), security(("api_key" = ["secrets:write"])))]
async fn update_variable(
    cx: Ctx, Path(id): Path<String>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let row = cx
        .app
        .store
        .get_env_var(&cx.workspace_id, &id)
        .await
        .or_not_found("environment variable")?;
    let kind = VarKind::parse(&row.kind).unwrap_or(VarKind::String);
    let changes = environments::update(kind, &body).map_err(ApiError::Invalid)?;
    let set: BTreeMap<&String, &String> =
        changes.iter().filter_map(|(e, v)| Some((e, v.as_ref()?))).collect();
    check_targets(&cx, kind, set.into_iter().map(|(e, v)| (e, Some(v)))).await?;
    let changes: Vec<(String, Option<String>)> = changes.into_iter().collect();
    cx.app
        .store
        .update_env_var(&cx.workspace_id, &id, &changes, time::now_secs())
        .await
        .or_not_found("environment variable")?;
    Ok(Json(read_variable(&cx, &id).await?))
}

#[utoipa::path(delete, path = "/v1/convai/environment-variables/{env_var_id}", params(("env_var_id" = String, Path)), security(("api_key" = ["secrets:write"])))]
async fn delete_variable(cx: Ctx, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let row = cx
        .app
        .store
        .get_env_var(&cx.workspace_id, &id)
        .await
        .or_not_found("environment variable")?;
    let locator = environments::locator_text(&row.label);
    match cx.app.store.delete_env_var(&cx.workspace_id, &id, &locator).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::Conflict(why)) => Err(ApiError::Conflict {
            status: "environment_variable_in_use",
            message: format!(
                "The environment variable {:?} cannot be deleted: {why}. Remove it from them first.",
                row.label
            ),
        }),
        Err(e) => Err(e).or_not_found("environment variable"),
    }
}
