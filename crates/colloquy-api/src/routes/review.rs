//! Reviewing conversations: tags (`/v1/convai/tags`, and on a conversation), the people who
//! talked to the workspace's agents (`/v1/convai/users`), and how many conversations are live
//! now across every node (`/v1/convai/analytics/live-count`).

use axum::extract::Path;
use axum::http::StatusCode;
use colloquy_core::cursor::{Direction, PageSizeRule};
use colloquy_core::ids::ConversationId;
use colloquy_core::scope::Role;
use colloquy_core::validation::{LocItem, Violation};
use colloquy_core::{ids, time};
use colloquy_store::{TagRow, UserFilter, UserRow};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query, empty_as_none};
use crate::paging::Pager;
use crate::state::AppState;

/// The review routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tags, create_tag))
        .routes(routes!(get_tag, update_tag, delete_tag))
        .routes(routes!(tag_conversation))
        .routes(routes!(untag_conversation))
        .routes(routes!(list_users))
        .routes(routes!(live_count))
}

const MAX_TITLE_CHARS: usize = 120;
const MAX_DESCRIPTION_CHARS: usize = 1000;
/// A tags page: 1 to 100, 100 unless asked.
const TAGS_PAGE: PageSizeRule = PageSizeRule { min: 1, max: 100, default: 100 };
/// A conversation is live while its node has marked it seen within this many seconds.
const LIVE_WITHIN_SECS: i64 = 60;

fn tag_view(t: &TagRow) -> Value {
    json!({
        "tag_id": t.id,
        "workspace_id": t.workspace_id,
        "owner_user_id": t.owner_user_id,
        "title": t.title,
        "description": t.description,
        "created_at_unix_secs": t.created_at,
    })
}

fn check_text(
    field: &str, text: Option<&str>, min: usize, max: usize, errors: &mut Vec<Violation>,
) {
    let Some(text) = text else { return };
    let n = text.chars().count();
    if n < min || (min > 0 && text.trim().is_empty()) {
        errors.push(Violation::new(
            ["body", field],
            "string_too_short",
            format!("String should have at least {min} character"),
        ));
    } else if n > max {
        errors.push(Violation::new(
            ["body", field],
            "string_too_long",
            format!("String should have at most {max} characters"),
        ));
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageParams {
    /// 1..=100, default 100.
    page_size: Option<i64>,
    /// From the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/tags", params(PageParams), security(("api_key" = ["conversations:read"])))]
async fn list_tags(cx: Ctx, Query(params): Query<PageParams>) -> ApiResult<Json<Value>> {
    let pager = Pager::new(
        TAGS_PAGE,
        params.page_size,
        params.cursor.as_deref(),
        "created_at",
        Direction::Desc,
        &[],
    )?;
    let rows = cx.app.store.list_tags(&cx.workspace_id, pager.after()?, pager.fetch()).await?;
    let page = pager.page(rows, |t| (t.created_at, t.id.as_str()));
    let tags: Vec<Value> = page.items.iter().map(tag_view).collect();
    Ok(Json(
        json!({"conversation_tags": tags, "next_cursor": page.next_cursor, "has_more": page.has_more}),
    ))
}

#[derive(Debug, Deserialize)]
struct CreateTag {
    title: String,
    #[serde(default)]
    description: Option<String>,
}

#[utoipa::path(post, path = "/v1/convai/tags", security(("api_key" = ["conversations:write"])))]
async fn create_tag(cx: Ctx, Json(body): Json<CreateTag>) -> ApiResult<Json<Value>> {
    let mut errors = Vec::new();
    check_text("title", Some(&body.title), 1, MAX_TITLE_CHARS, &mut errors);
    check_text("description", body.description.as_deref(), 0, MAX_DESCRIPTION_CHARS, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let tag = TagRow {
        id: ids::new_id(ids::prefix::CONVERSATION_TAG),
        workspace_id: cx.workspace_id.clone(),
        owner_user_id: cx.user_id.clone(),
        title: body.title,
        description: body.description,
        created_at: time::now_secs(),
    };
    cx.app.store.insert_tag(&tag).await?;
    Ok(Json(tag_view(&tag)))
}

#[utoipa::path(get, path = "/v1/convai/tags/{tag_id}", params(("tag_id" = String, Path)), security(("api_key" = ["conversations:read"])))]
async fn get_tag(cx: Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let tag = cx.app.store.get_tag(&cx.workspace_id, &id).await.or_not_found("tag")?;
    Ok(Json(tag_view(&tag)))
}

/// A PATCH: a field left out (or `null`) stays as it is.
#[derive(Debug, Deserialize)]
struct PatchTag {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[utoipa::path(patch, path = "/v1/convai/tags/{tag_id}", params(("tag_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn update_tag(
    cx: Ctx, Path(id): Path<String>, Json(body): Json<PatchTag>,
) -> ApiResult<Json<Value>> {
    let mut errors = Vec::new();
    check_text("title", body.title.as_deref(), 1, MAX_TITLE_CHARS, &mut errors);
    check_text("description", body.description.as_deref(), 0, MAX_DESCRIPTION_CHARS, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let mut tag = cx.app.store.get_tag(&cx.workspace_id, &id).await.or_not_found("tag")?;
    if let Some(title) = body.title {
        tag.title = title;
    }
    if let Some(description) = body.description {
        tag.description = Some(description);
    }
    cx.app
        .store
        .update_tag(&cx.workspace_id, &id, &tag.title, tag.description.as_deref())
        .await
        .or_not_found("tag")?;
    Ok(Json(tag_view(&tag)))
}

#[utoipa::path(delete, path = "/v1/convai/tags/{tag_id}", params(("tag_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn delete_tag(cx: Ctx, Path(id): Path<String>) -> ApiResult<StatusCode> {
    // As the reference: the tag's owner or a workspace admin.
    let tag = cx.app.store.get_tag(&cx.workspace_id, &id).await.or_not_found("tag")?;
    if tag.owner_user_id != cx.user_id && cx.role() != Role::Admin {
        return Err(ApiError::MissingScope("admin (or the tag's owner)".into()));
    }
    cx.app.store.delete_tag(&cx.workspace_id, &id).await.or_not_found("tag")?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/convai/conversations/{conversation_id}/tags", params(("conversation_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn tag_conversation(
    cx: Ctx, Path(id): Path<ConversationId>, Json(body): Json<Value>,
) -> ApiResult<StatusCode> {
    // The conversation first: another workspace's is not found, whatever the body says.
    cx.conversation(&id).await?;
    let tag_ids: Vec<String> = match body.get("tag_ids").map(|t| serde_json::from_value(t.clone()))
    {
        Some(Ok(ids)) => ids,
        Some(Err(_)) => {
            return Err(ApiError::invalid(Violation::new(
                ["body", "tag_ids"],
                "list_type",
                "Input should be a list of tag ids",
            )));
        }
        None => {
            return Err(ApiError::invalid(Violation::new(
                ["body", "tag_ids"],
                "missing",
                "Field required",
            )));
        }
    };
    if tag_ids.is_empty() || tag_ids.len() > 50 {
        return Err(ApiError::invalid(Violation::new(
            ["body", "tag_ids"],
            if tag_ids.is_empty() { "too_short" } else { "too_long" },
            "tag_ids holds 1 to 50 tag ids",
        )));
    }
    let known = cx.app.store.get_tags(&cx.workspace_id, &tag_ids).await?;
    let unknown: Vec<Violation> = tag_ids
        .iter()
        .enumerate()
        .filter(|(_, t)| !known.iter().any(|k| &k.id == *t))
        .map(|(i, t)| {
            let loc = [LocItem::from("body"), LocItem::from("tag_ids"), LocItem::from(i)];
            Violation::new(loc, "value_error", format!("No tag has the id {t:?}"))
        })
        .collect::<Vec<_>>();
    if !unknown.is_empty() {
        return Err(ApiError::Invalid(unknown));
    }
    cx.app
        .store
        .tag_conversation(&cx.workspace_id, &id, &tag_ids)
        .await
        .or_not_found("conversation")?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/convai/conversations/{conversation_id}/tags/{tag_id}", params(("conversation_id" = String, Path), ("tag_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn untag_conversation(
    cx: Ctx, Path((id, tag_id)): Path<(ConversationId, String)>,
) -> ApiResult<StatusCode> {
    cx.conversation(&id).await?;
    cx.app
        .store
        .untag_conversation(&cx.workspace_id, &id, &tag_id)
        .await
        .or_not_found("conversation tag")?;
    Ok(StatusCode::NO_CONTENT)
}

/// `sort_by` of the users list.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum UsersSort {
    #[default]
    LastContactUnixSecs,
    ConversationCount,
    AverageSentimentScore,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UsersParams {
    /// Only conversations with this agent.
    agent_id: Option<String>,
    /// Only conversations on this branch.
    branch_id: Option<String>,
    /// Started before this unix second.
    call_start_before_unix: Option<i64>,
    /// Started after this unix second.
    call_start_after_unix: Option<i64>,
    /// Exactly this user id.
    search: Option<String>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// `last_contact_unix_secs` (default), `conversation_count` or `average_sentiment_score`.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sort_by: Option<UsersSort>,
    /// `desc` (default) or `asc`.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sort_direction: Option<Direction>,
    /// From the previous page.
    cursor: Option<String>,
}

/// A user as the reference shows one. Colloquy scores no sentiment, so the aggregate counts
/// none.
fn user_view(u: &UserRow, last: Option<&colloquy_store::LastContactRow>) -> Value {
    json!({
        "user_id": u.user_id,
        "last_contact_unix_secs": u.last_contact,
        "first_contact_unix_secs": u.first_contact,
        "conversation_count": u.conversation_count,
        "last_contact_agent_id": last.map(|l| &l.agent_id),
        "last_contact_conversation_id": last.map(|l| l.id.as_str()).unwrap_or_default(),
        "last_contact_agent_name": last.and_then(|l| l.agent_name.as_deref()),
        "sentiment": {
            "scored_conversation_count": 0, "positive_count": 0, "neutral_count": 0, "negative_count": 0,
            "average_sentiment_score": null, "average_frustration_score": null,
            "recent_scored_conversation_count": 0, "recent_positive_count": 0, "recent_neutral_count": 0,
            "recent_negative_count": 0, "recent_average_sentiment_score": null,
            "recent_average_frustration_score": null
        },
        "most_frustrated_conversations": [],
    })
}

#[utoipa::path(get, path = "/v1/convai/users", params(UsersParams), security(("api_key" = ["conversations:read"])))]
async fn list_users(cx: Ctx, Query(params): Query<UsersParams>) -> ApiResult<Json<Value>> {
    let sort = params.sort_by.unwrap_or_default();
    let direction = params.sort_direction.unwrap_or(Direction::Desc);
    let given = |v: Option<String>| v.filter(|s| !s.is_empty());
    let mut filter = UserFilter {
        agent_id: given(params.agent_id),
        branch_id: given(params.branch_id),
        before: params.call_start_before_unix,
        after: params.call_start_after_unix,
        user_id: given(params.search),
        by_count: matches!(sort, UsersSort::ConversationCount),
        descending: direction == Direction::Desc,
        ..UserFilter::default()
    };
    let fingerprint = format!(
        "{:?}",
        (&filter.agent_id, &filter.branch_id, filter.before, filter.after, &filter.user_id)
    );
    let sort_name = match sort {
        UsersSort::LastContactUnixSecs => "last_contact_unix_secs",
        UsersSort::ConversationCount => "conversation_count",
        // No conversation has a sentiment score: every user ties, and the last contact orders.
        UsersSort::AverageSentimentScore => "average_sentiment_score",
    };
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        sort_name,
        direction,
        &[&fingerprint],
    )?;
    filter.after_key = pager.after()?;
    filter.limit = pager.fetch();
    let rows = cx.app.store.list_users(&cx.workspace_id, &filter).await?;
    let page = pager.page(rows, |u| {
        let key = if filter.by_count { u.conversation_count } else { u.last_contact };
        (key, u.user_id.as_str())
    });
    let ids: Vec<String> = page.items.iter().map(|u| u.user_id.clone()).collect();
    let lasts = cx.app.store.last_contacts(&cx.workspace_id, &filter, &ids).await?;
    let users: Vec<Value> = page
        .items
        .iter()
        .map(|u| user_view(u, lasts.iter().find(|l| l.user_id == u.user_id)))
        .collect();
    Ok(Json(json!({"users": users, "next_cursor": page.next_cursor, "has_more": page.has_more})))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LiveCountParams {
    /// Only this agent's conversations.
    agent_id: Option<String>,
    /// Only these agents' (repeat the parameter); takes precedence over `agent_id`.
    #[serde(default)]
    agent_ids: Vec<String>,
}

#[utoipa::path(get, path = "/v1/convai/analytics/live-count", params(LiveCountParams), security(("api_key" = ["conversations:read"])))]
async fn live_count(cx: Ctx, Query(params): Query<LiveCountParams>) -> ApiResult<Json<Value>> {
    let mut agents: Vec<String> = params.agent_ids.into_iter().filter(|a| !a.is_empty()).collect();
    if agents.is_empty() {
        agents.extend(params.agent_id.filter(|a| !a.is_empty()));
    }
    let since = time::now_secs() - LIVE_WITHIN_SECS;
    let count = cx.app.store.live_count(&cx.workspace_id, &agents, since).await?;
    Ok(Json(json!({"count": count})))
}
