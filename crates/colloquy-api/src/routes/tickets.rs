//! Triage tickets (`/v1/convai/triage-tickets*`, `/agents/{id}/triage-tickets*`): findings about
//! an agent's conversations, raised by reviewers, by hand, or by the analysis; with comments,
//! turn comments (which may point at a tool call of the conversation: Colloquy's addition,
//! shown with the call's input, output and status), assignment, statuses, priorities and
//! merging. The triage settings (`/api/settings/triage`) are Colloquy's own.
//!
//! The reference's ticket model has no title, priority, change history, merge target or search
//! match, though its clients send titles and priorities: they are stored (the priority sorts
//! lists) and shown by Colloquy's own `GET /api/triage-tickets/{id}`, with the tool calls the
//! turn comments point at.

use std::collections::HashMap;

use axum::extract::Path;
use axum::http::StatusCode;
use colloquy_core::cursor::{Direction, PageSizeRule};
use colloquy_core::ids::{AgentId, ConversationId};
use colloquy_core::scope::Role;
use colloquy_core::validation::{LocItem, Violation};
use colloquy_core::{ids, time};
use colloquy_engine::tickets::{
    self, Finding, PRIORITIES, TRIAGE_SETTINGS, TriageSettings, TurnNote, priority_rank,
};
use colloquy_store::{TicketFilter, TicketNoteRow, TicketRow, TicketSort};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query, empty_as_none, from_body};
use crate::paging::Pager;
use crate::state::AppState;

/// The ticket routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tickets, create_ticket))
        .routes(routes!(list_agent_tickets, create_manual_ticket))
        .routes(routes!(assignable_users))
        .routes(routes!(get_ticket, update_ticket, delete_ticket))
        .routes(routes!(get_full_ticket))
        .routes(routes!(add_comment))
        .routes(routes!(add_turn_comment))
        .routes(routes!(merge_tickets))
        .routes(routes!(get_triage_settings, put_triage_settings))
}

/// A tickets page: 1 to 100, 100 unless asked.
const TICKETS_PAGE: PageSizeRule = PageSizeRule { min: 1, max: 100, default: 100 };
const MAX_COMMENT_CHARS: usize = 10_000;
const MAX_TITLE_CHARS: usize = 200;
const MAX_TURN_COMMENTS: usize = 200;

/// `status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Open,
    InProgress,
    Resolved,
    Merged,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InProgress => "in_progress",
            Status::Resolved => "resolved",
            Status::Merged => "merged",
        }
    }
}

/// `priority` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

impl Priority {
    fn as_str(self) -> &'static str {
        PRIORITIES[self as usize]
    }
}

/// `sources` values.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Source {
    Qa,
    Agent,
    Manual,
}

/// `sort_by` values.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SortBy {
    #[default]
    CreatedAt,
    Priority,
    LastReported,
}

/// A field of a PATCH that may be sent as `null` (clear it) or left out (keep it).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `body.<field>` is too short or too long.
fn check_text(loc: Vec<LocItem>, text: Option<&str>, max: usize, errors: &mut Vec<Violation>) {
    let Some(text) = text else { return };
    if text.trim().is_empty() {
        errors.push(Violation::new(
            loc,
            "string_too_short",
            "String should have at least 1 character",
        ));
    } else if text.chars().count() > max {
        errors.push(Violation::new(
            loc,
            "string_too_long",
            format!("String should have at most {max} characters"),
        ));
    }
}

fn at(field: &str) -> Vec<LocItem> {
    vec![LocItem::from("body"), LocItem::from(field)]
}

fn invalid(errors: Vec<Violation>) -> ApiResult<()> {
    if errors.is_empty() { Ok(()) } else { Err(ApiError::Invalid(errors)) }
}

// ---------------------------------------------------------------------------------------------
// Views

/// What a ticket is shown with.
struct Parts<'a> {
    conversations: Vec<&'a str>,
    notes: Vec<&'a TicketNoteRow>,
}

/// Colloquy's view of a ticket (see [`reference`] for the reference's).
fn ticket_view(t: &TicketRow, parts: &Parts<'_>, calls: &HashMap<String, Value>) -> Value {
    let secs = |ms: i64| ms.div_euclid(1000);
    let of = |kind: &'static str| parts.notes.iter().filter(move |n| n.kind == kind);
    let comments: Vec<Value> = of("comment")
        .map(|n| json!({"comment": n.text, "created_at_unix_secs": secs(n.at_ms), "owner_user_id": n.user_id}))
        .collect();
    let turn_comments: Vec<Value> = of("turn_comment")
        .map(|n| {
            let mut view = json!({"turn_index": n.turn_index, "comment": n.text,
                "created_at_unix_secs": secs(n.at_ms), "owner_user_id": n.user_id});
            if let Some(id) = &n.tool_execution_id {
                view["tool_call"] = calls.get(id).cloned().unwrap_or_else(|| json!({"id": id}));
            }
            view
        })
        .collect();
    let status_changes: Vec<Value> = of("status")
        .map(|n| json!({"status": n.text, "changed_by_user_id": n.user_id, "changed_at_unix_secs": secs(n.at_ms)}))
        .collect();
    let priority_changes: Vec<Value> = of("priority")
        .map(|n| json!({"priority": n.text, "changed_by_user_id": n.user_id.as_deref().unwrap_or(""), "changed_at_unix_secs": secs(n.at_ms)}))
        .collect();
    json!({
        "agentqa_ticket_id": t.id,
        "workspace_id": t.workspace_id,
        "owner_user_id": t.owner_user_id,
        "agent_id": t.agent_id,
        "needs_clustering": false,
        "title": t.title,
        "issue_type": null,
        "labels": [],
        "conversation_ids": parts.conversations,
        "first_seen_unix_secs": t.first_seen,
        "last_seen_unix_secs": t.last_seen,
        "qa_comment": t.qa_comment,
        "ticket_comments": comments,
        "turn_comments": turn_comments,
        "status": t.status,
        "priority": t.priority,
        "priority_changes": priority_changes,
        "status_changes": status_changes,
        "merged_into_ticket_id": t.merged_into_ticket_id,
        "source": t.source,
        "assignee_user_id": t.assignee_user_id,
        "created_at_unix_secs": t.created_at,
        "updated_at_unix_secs": t.updated_at,
    })
}

/// The tickets in Colloquy's view: their conversations, notes and the tool calls they point at read in
/// three statements whatever their number.
async fn views(cx: &Ctx, rows: &[TicketRow]) -> ApiResult<Vec<Value>> {
    let ids: Vec<String> = rows.iter().map(|t| t.id.clone()).collect();
    let links = cx.app.store.ticket_conversations(&ids).await?;
    let notes = cx.app.store.ticket_notes(&ids).await?;
    let call_ids: Vec<String> = notes.iter().filter_map(|n| n.tool_execution_id.clone()).collect();
    let calls: HashMap<String, Value> = cx
        .app
        .store
        .executions_by_id(&cx.workspace_id, &call_ids)
        .await?
        .iter()
        .map(|e| Ok((e.id.clone(), serde_json::to_value(super::tool_calls::view(e))?)))
        .collect::<Result<_, serde_json::Error>>()?;
    Ok(rows
        .iter()
        .map(|t| {
            let parts = Parts {
                conversations: links
                    .iter()
                    .filter(|l| l.ticket_id == t.id)
                    .map(|l| l.conversation_id.as_str())
                    .collect(),
                notes: notes.iter().filter(|n| n.ticket_id == t.id).collect(),
            };
            ticket_view(t, &parts, &calls)
        })
        .collect())
}

/// Fields of Colloquy's view that the reference's model does not have.
const OWN_FIELDS: [&str; 5] =
    ["title", "priority", "priority_changes", "status_changes", "merged_into_ticket_id"];

/// The reference's `AgentConversationTicketResponseModel` of Colloquy's view.
fn reference(mut view: Value) -> Value {
    if let Some(fields) = view.as_object_mut() {
        for own in OWN_FIELDS {
            fields.remove(own);
        }
    }
    for turn in view["turn_comments"].as_array_mut().into_iter().flatten() {
        turn.as_object_mut().map(|t| t.remove("tool_call"));
    }
    view
}

/// One ticket in Colloquy's view.
async fn full_view(cx: &Ctx, id: &str) -> ApiResult<Value> {
    let ticket = cx.app.store.get_ticket(&cx.workspace_id, id).await.or_not_found("ticket")?;
    Ok(views(cx, &[ticket]).await?.remove(0))
}

async fn view_one(cx: &Ctx, id: &str) -> ApiResult<Json<Value>> {
    Ok(Json(reference(full_view(cx, id).await?)))
}

// ---------------------------------------------------------------------------------------------
// Lists

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// 1..=100, default 100.
    page_size: Option<i64>,
    /// Only this agent's (the workspace list).
    agent_id: Option<String>,
    /// Only those about this conversation.
    conversation_id: Option<String>,
    /// Only in this status.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    status: Option<Status>,
    /// Only raised these ways (repeat the parameter).
    #[serde(default)]
    #[param(value_type = Vec<String>)]
    sources: Vec<Source>,
    /// Only of these priorities (repeat the parameter).
    #[serde(default)]
    #[param(value_type = Vec<String>)]
    priorities: Vec<Priority>,
    /// `created_at` (default), `priority` or `last_reported`; newest first.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sort_by: Option<SortBy>,
    /// Only raised by this user (`agent`: by the analysis).
    owner_user_id: Option<String>,
    /// Only assigned to this user (`unassigned`: to nobody).
    assignee_user_id: Option<String>,
    /// Only of this issue type (Colloquy classifies none).
    issue_type: Option<String>,
    /// Only with this label (Colloquy labels none).
    label: Option<String>,
    /// Only merged into this ticket.
    merged_into_ticket_id: Option<String>,
    /// Only those whose title, description or comments hold this text.
    search: Option<String>,
    /// From the previous page.
    cursor: Option<String>,
}

async fn list(cx: &Ctx, agent_id: Option<String>, p: ListParams) -> ApiResult<Json<Value>> {
    let given = |v: Option<String>| v.filter(|s| !s.is_empty());
    let sort = p.sort_by.unwrap_or_default();
    let filter = TicketFilter {
        agent_id: agent_id.or(given(p.agent_id)),
        conversation_id: given(p.conversation_id),
        status: p.status.map(|s| s.as_str().to_owned()),
        sources: p.sources.iter().map(|s| format!("{s:?}").to_lowercase()).collect(),
        priorities: p.priorities.iter().map(|s| s.as_str().to_owned()).collect(),
        owner_user_id: given(p.owner_user_id),
        assignee: given(p.assignee_user_id).map(|a| Some(a).filter(|a| a != "unassigned")),
        merged_into_ticket_id: given(p.merged_into_ticket_id),
        search: given(p.search),
        sort: match sort {
            SortBy::CreatedAt => TicketSort::CreatedAt,
            SortBy::Priority => TicketSort::Priority,
            SortBy::LastReported => TicketSort::LastReported,
        },
        after: None,
        limit: 0,
    };
    let filters = format!("{:?}", (&filter, &p.issue_type, &p.label));
    let pager = Pager::new(
        TICKETS_PAGE,
        p.page_size,
        p.cursor.as_deref(),
        &format!("{sort:?}"),
        Direction::Desc,
        &[&filters],
    )?;
    // Colloquy sets no issue types or labels: a filter on one keeps nothing.
    let rows = if given(p.issue_type).is_some() || given(p.label).is_some() {
        Vec::new()
    } else {
        let filter = TicketFilter { after: pager.after()?, limit: pager.fetch(), ..filter.clone() };
        cx.app.store.list_tickets(&cx.workspace_id, &filter).await?
    };
    let page = pager.page(rows, |t| (t.sort_key, t.id.as_str()));
    let tickets: Vec<Value> = views(cx, &page.items).await?.into_iter().map(reference).collect();
    Ok(Json(json!({
        "agent_conversation_tickets": tickets,
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    })))
}

#[utoipa::path(get, path = "/v1/convai/triage-tickets", params(ListParams), security(("api_key" = ["conversations:read"])))]
async fn list_tickets(cx: Ctx, Query(params): Query<ListParams>) -> ApiResult<Json<Value>> {
    list(&cx, None, params).await
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/triage-tickets", params(("agent_id" = String, Path), ListParams), security(("api_key" = ["conversations:read"])))]
async fn list_agent_tickets(
    cx: Ctx, Path(agent_id): Path<AgentId>, Query(params): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    cx.agent(&agent_id).await?;
    list(&cx, Some(agent_id.to_string()), params).await
}

// ---------------------------------------------------------------------------------------------
// Raising tickets

#[derive(Debug, Deserialize)]
struct TurnCommentIn {
    turn_index: i64,
    comment: String,
    /// Colloquy's addition: the tool call (its audit record's id) the comment is about.
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CreateTicket {
    conversation_id: ConversationId,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    qa_comment: Option<String>,
    #[serde(default)]
    turn_comments: Vec<TurnCommentIn>,
    #[serde(default)]
    priority: Option<Priority>,
}

/// Turn comments checked against the conversation: the turn exists, the tool call is one of
/// its calls. Errors are located at `loc` + the comment's index.
async fn turn_notes(
    cx: &Ctx, conversation_ids: &[&str], comments: Vec<TurnCommentIn>, loc: &[&str],
    errors: &mut Vec<Violation>,
) -> ApiResult<Vec<TurnNote>> {
    let mut turns = 0;
    let mut calls = Vec::new();
    for id in conversation_ids {
        let id = ConversationId::from(*id);
        let Ok(row) = cx.app.store.get_conversation(&cx.workspace_id, &id).await else { continue };
        let doc: Value = serde_json::from_str(&row.document).unwrap_or_default();
        turns = turns.max(doc["transcript"].as_array().map_or(0, Vec::len));
        calls.extend(cx.app.store.conversation_executions(&cx.workspace_id, &id).await?);
    }
    let mut notes = Vec::new();
    for (i, c) in comments.into_iter().enumerate() {
        let here = |field: &str| {
            let mut l: Vec<LocItem> = loc.iter().map(|s| LocItem::from(*s)).collect();
            if !loc.is_empty() && loc.len() > 1 {
                l.push(LocItem::from(i));
            }
            l.push(LocItem::from(field));
            l
        };
        check_text(here("comment"), Some(&c.comment), MAX_COMMENT_CHARS, errors);
        if c.turn_index < 0 || usize::try_from(c.turn_index).is_ok_and(|t| t >= turns) {
            let msg = format!("The conversation has {turns} turns (0 to {})", turns.max(1) - 1);
            errors.push(Violation::new(here("turn_index"), "value_error", msg));
        }
        if let Some(call) = &c.tool_call_id
            && !calls.iter().any(|e| &e.id == call)
        {
            let msg = format!("No tool call {call:?} in the ticket's conversations");
            errors.push(Violation::new(here("tool_call_id"), "value_error", msg));
        }
        notes.push(TurnNote {
            turn_index: c.turn_index,
            comment: c.comment,
            tool_execution_id: c.tool_call_id,
        });
    }
    Ok(notes)
}

#[utoipa::path(post, path = "/v1/convai/triage-tickets", security(("api_key" = ["conversations:write"])))]
async fn create_ticket(cx: Ctx, Json(body): Json<CreateTicket>) -> ApiResult<Json<Value>> {
    let conversation = cx.conversation(&body.conversation_id).await?;
    let mut errors = Vec::new();
    check_text(at("title"), body.title.as_deref(), MAX_TITLE_CHARS, &mut errors);
    check_text(at("qa_comment"), body.qa_comment.as_deref(), MAX_COMMENT_CHARS, &mut errors);
    if body.turn_comments.len() > MAX_TURN_COMMENTS {
        let msg = format!("At most {MAX_TURN_COMMENTS} turn comments");
        errors.push(Violation::new(at("turn_comments"), "too_long", msg));
    }
    if body.qa_comment.is_none() && body.turn_comments.is_empty() {
        let msg = "Give a qa_comment, turn_comments, or both";
        errors.push(Violation::new(at("qa_comment"), "missing", msg));
    }
    let id = conversation.id.to_string();
    let loc = ["body", "turn_comments"];
    let turns = turn_notes(&cx, &[&id], body.turn_comments, &loc, &mut errors).await?;
    invalid(errors)?;
    let finding = Finding {
        owner_user_id: cx.user_id.clone(),
        source: "qa",
        title: body.title,
        qa_comment: body.qa_comment,
        turn_comments: turns,
        priority: body.priority.map(|p| p.as_str().to_owned()),
    };
    let ticket =
        tickets::raise(cx.app.store.as_ref(), &cx.workspace_id, &conversation, finding).await?;
    view_one(&cx, &ticket.id).await
}

#[derive(Debug, Deserialize)]
struct CreateManual {
    qa_comment: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    priority: Option<Priority>,
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/triage-tickets", params(("agent_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn create_manual_ticket(
    cx: Ctx, Path(agent_id): Path<AgentId>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    cx.agent(&agent_id).await?;
    let body: CreateManual = from_body(body)?;
    let mut errors = Vec::new();
    check_text(at("title"), body.title.as_deref(), MAX_TITLE_CHARS, &mut errors);
    check_text(at("qa_comment"), Some(&body.qa_comment), MAX_COMMENT_CHARS, &mut errors);
    invalid(errors)?;
    let now = time::now_secs();
    let priority = body.priority.map(|p| p.as_str().to_owned());
    let ticket = TicketRow {
        id: ids::new_id(ids::prefix::TICKET),
        workspace_id: cx.workspace_id.clone(),
        agent_id: agent_id.to_string(),
        owner_user_id: cx.user_id.clone(),
        source: "manual".into(),
        title: Some(body.title.unwrap_or_else(|| tickets::derive_title(&body.qa_comment))),
        qa_comment: Some(body.qa_comment),
        status: "open".into(),
        priority_rank: priority_rank(priority.as_deref()),
        priority,
        assignee_user_id: None,
        merged_into_ticket_id: None,
        first_seen: None,
        last_seen: None,
        created_at: now,
        updated_at: now,
        sort_key: 0,
    };
    cx.app.store.insert_ticket(&ticket, &[], &[]).await?;
    view_one(&cx, &ticket.id).await
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/triage-tickets/assignable-users", params(("agent_id" = String, Path)), security(("api_key" = ["conversations:read"])))]
async fn assignable_users(cx: Ctx, Path(agent_id): Path<AgentId>) -> ApiResult<Json<Value>> {
    cx.agent(&agent_id).await?;
    // Every member of the workspace sees every agent of it: all have access.
    let users = cx.app.store.workspace_users(&cx.workspace_id).await?;
    Ok(Json(json!(users
        .iter()
        .map(|u| json!({"user_id": u.id, "email": u.email, "first_name": u.name.split_whitespace().next(), "is_service_account": false, "has_access": true}))
        .collect::<Vec<_>>())))
}

// ---------------------------------------------------------------------------------------------
// One ticket

#[utoipa::path(get, path = "/v1/convai/triage-tickets/{agentqa_ticket_id}", params(("agentqa_ticket_id" = String, Path)), security(("api_key" = ["conversations:read"])))]
async fn get_ticket(cx: Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    view_one(&cx, &id).await
}

/// Colloquy's view of a ticket: the reference's fields, its title, priority, status and
/// priority history, merge target, and the tool calls its turn comments point at (`tool_call`,
/// as `/api/tool-calls` shows them).
#[utoipa::path(get, path = "/api/triage-tickets/{agentqa_ticket_id}", params(("agentqa_ticket_id" = String, Path)), security(("api_key" = ["conversations:read"])))]
async fn get_full_ticket(cx: Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(full_view(&cx, &id).await?))
}

#[derive(Debug, Deserialize)]
struct PatchTicket {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    qa_comment: Option<String>,
    #[serde(default)]
    status: Option<Status>,
    #[serde(default, deserialize_with = "present")]
    assignee_user_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    priority: Option<Option<Priority>>,
}

#[utoipa::path(patch, path = "/v1/convai/triage-tickets/{agentqa_ticket_id}", params(("agentqa_ticket_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn update_ticket(
    cx: Ctx, Path(id): Path<String>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let mut t = cx.app.store.get_ticket(&cx.workspace_id, &id).await.or_not_found("ticket")?;
    let body: PatchTicket = from_body(body)?;
    let mut errors = Vec::new();
    check_text(at("title"), body.title.as_deref(), MAX_TITLE_CHARS, &mut errors);
    check_text(at("qa_comment"), body.qa_comment.as_deref(), MAX_COMMENT_CHARS, &mut errors);
    if body.status == Some(Status::Merged) && t.status != "merged" {
        let msg = "A ticket becomes merged by merging it into another (POST .../merge)";
        errors.push(Violation::new(at("status"), "value_error", msg));
    }
    if let Some(Some(user)) = &body.assignee_user_id {
        let users = cx.app.store.workspace_users(&cx.workspace_id).await?;
        if !users.iter().any(|u| &u.id == user) {
            let msg = format!("{user:?} is not a user of this workspace");
            errors.push(Violation::new(at("assignee_user_id"), "value_error", msg));
        }
    }
    invalid(errors)?;
    let me = Some(cx.user_id.as_str());
    let mut notes = Vec::new();
    if let Some(status) = body.status.map(Status::as_str).filter(|s| *s != t.status) {
        let mut n = tickets::note(&t.id, "status", me, notes.len());
        n.text = Some(status.to_owned());
        notes.push(n);
        t.status = status.to_owned();
        if status != "merged" {
            t.merged_into_ticket_id = None;
        }
    }
    if let Some(priority) = body.priority.map(|p| p.map(|p| p.as_str().to_owned())) {
        if priority != t.priority {
            let mut n = tickets::note(&t.id, "priority", me, notes.len());
            n.text.clone_from(&priority);
            notes.push(n);
        }
        t.priority_rank = priority_rank(priority.as_deref());
        t.priority = priority;
    }
    if let Some(assignee) = body.assignee_user_id {
        t.assignee_user_id = assignee;
    }
    t.title = body.title.or(t.title);
    t.qa_comment = body.qa_comment.or(t.qa_comment);
    t.updated_at = time::now_secs();
    cx.app.store.update_ticket(&t, &[], &notes).await.or_not_found("ticket")?;
    view_one(&cx, &id).await
}

#[utoipa::path(delete, path = "/v1/convai/triage-tickets/{agentqa_ticket_id}", params(("agentqa_ticket_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn delete_ticket(cx: Ctx, Path(id): Path<String>) -> ApiResult<StatusCode> {
    // As the reference: the ticket's creator or a workspace admin.
    let t = cx.app.store.get_ticket(&cx.workspace_id, &id).await.or_not_found("ticket")?;
    if t.owner_user_id != cx.user_id && cx.role() != Role::Admin {
        return Err(ApiError::MissingScope("admin (or the ticket's creator)".into()));
    }
    cx.app.store.delete_ticket(&cx.workspace_id, &id).await.or_not_found("ticket")?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct AddComment {
    comment: String,
}

#[utoipa::path(post, path = "/v1/convai/triage-tickets/{agentqa_ticket_id}/comments", params(("agentqa_ticket_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn add_comment(
    cx: Ctx, Path(id): Path<String>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let mut t = cx.app.store.get_ticket(&cx.workspace_id, &id).await.or_not_found("ticket")?;
    let body: AddComment = from_body(body)?;
    let mut errors = Vec::new();
    check_text(at("comment"), Some(&body.comment), MAX_COMMENT_CHARS, &mut errors);
    invalid(errors)?;
    let mut n = tickets::note(&t.id, "comment", Some(&cx.user_id), 0);
    n.text = Some(body.comment);
    t.updated_at = time::now_secs();
    cx.app.store.update_ticket(&t, &[], &[n]).await.or_not_found("ticket")?;
    view_one(&cx, &id).await
}

#[utoipa::path(post, path = "/v1/convai/triage-tickets/{agentqa_ticket_id}/turn-comments", params(("agentqa_ticket_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn add_turn_comment(
    cx: Ctx, Path(id): Path<String>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let mut t = cx.app.store.get_ticket(&cx.workspace_id, &id).await.or_not_found("ticket")?;
    let body: TurnCommentIn = from_body(body)?;
    let links = cx.app.store.ticket_conversations(std::slice::from_ref(&t.id)).await?;
    let conversations: Vec<&str> = links.iter().map(|l| l.conversation_id.as_str()).collect();
    let mut errors = Vec::new();
    if conversations.is_empty() {
        let msg = "The ticket is about no conversation: it has no turns to comment on";
        errors.push(Violation::new(at("turn_index"), "value_error", msg));
    }
    let turns = turn_notes(&cx, &conversations, vec![body], &["body"], &mut errors).await?;
    invalid(errors)?;
    let mut notes = Vec::new();
    for turn in turns {
        let mut n = tickets::note(&t.id, "turn_comment", Some(&cx.user_id), notes.len());
        n.turn_index = Some(turn.turn_index);
        n.text = Some(turn.comment);
        n.tool_execution_id = turn.tool_execution_id;
        notes.push(n);
    }
    t.updated_at = time::now_secs();
    cx.app.store.update_ticket(&t, &[], &notes).await.or_not_found("ticket")?;
    view_one(&cx, &id).await
}

#[derive(Debug, Deserialize)]
struct Merge {
    source_ticket_ids: Vec<String>,
}

#[utoipa::path(post, path = "/v1/convai/triage-tickets/{agentqa_ticket_id}/merge", params(("agentqa_ticket_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn merge_tickets(
    cx: Ctx, Path(id): Path<String>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let mut target = cx.app.store.get_ticket(&cx.workspace_id, &id).await.or_not_found("ticket")?;
    let body: Merge = from_body(body)?;
    let mut errors = Vec::new();
    if target.status == "merged" {
        let msg = format!("A {} ticket cannot take others", target.status);
        errors.push(Violation::new(["path", "agentqa_ticket_id"], "value_error", msg));
    }
    if body.source_ticket_ids.is_empty() {
        errors.push(Violation::new(
            at("source_ticket_ids"),
            "too_short",
            "Name at least one ticket",
        ));
    }
    let sources = cx.app.store.get_tickets(&cx.workspace_id, &body.source_ticket_ids).await?;
    for (i, source_id) in body.source_ticket_ids.iter().enumerate() {
        let loc = vec![LocItem::from("body"), LocItem::from("source_ticket_ids"), LocItem::from(i)];
        let why = match sources.iter().find(|s| &s.id == source_id) {
            None => Some(format!("No ticket has the id {source_id:?}")),
            Some(_) if source_id == &target.id => {
                Some("A ticket cannot be merged into itself".into())
            }
            Some(s) if s.agent_id != target.agent_id => {
                Some("The ticket is another agent's".into())
            }
            Some(s) if !matches!(s.status.as_str(), "open" | "in_progress") => {
                Some(format!("Only open tickets can be merged; this one is {}", s.status))
            }
            Some(_) => None,
        };
        errors.extend(why.map(|msg| Violation::new(loc, "value_error", msg)));
    }
    invalid(errors)?;
    let now = time::now_secs();
    let mut notes = Vec::new();
    for s in &sources {
        let mut n = tickets::note(&s.id, "status", Some(&cx.user_id), notes.len());
        n.text = Some("merged".into());
        notes.push(n);
        if s.priority_rank > target.priority_rank {
            let mut n = tickets::note(&target.id, "priority", Some(&cx.user_id), notes.len());
            n.text.clone_from(&s.priority);
            notes.push(n);
            target.priority.clone_from(&s.priority);
            target.priority_rank = s.priority_rank;
        }
        let earliest = [target.first_seen, s.first_seen].into_iter().flatten().min();
        let latest = [target.last_seen, s.last_seen].into_iter().flatten().max();
        (target.first_seen, target.last_seen) = (earliest, latest);
    }
    target.updated_at = now;
    let source_ids: Vec<String> = sources.iter().map(|s| s.id.clone()).collect();
    cx.app.store.merge_tickets(&target, &source_ids, &notes).await.or_not_found("ticket")?;
    view_one(&cx, &id).await
}

// ---------------------------------------------------------------------------------------------
// Settings

#[utoipa::path(get, path = "/api/settings/triage", security(("api_key" = ["conversations:read"])))]
async fn get_triage_settings(cx: Ctx) -> ApiResult<Json<TriageSettings>> {
    Ok(Json(TriageSettings::of(cx.app.store.as_ref(), &cx.workspace_id).await?))
}

#[utoipa::path(put, path = "/api/settings/triage", security(("api_key" = ["admin"])))]
async fn put_triage_settings(
    cx: Ctx, Json(body): Json<TriageSettings>,
) -> ApiResult<Json<TriageSettings>> {
    let text = serde_json::to_string(&body).map_err(anyhow::Error::from)?;
    let revision =
        cx.app.store.get_settings(&cx.workspace_id, TRIAGE_SETTINGS).await?.map(|r| r.revision);
    let now = time::now_secs();
    if !cx.app.store.put_settings(&cx.workspace_id, TRIAGE_SETTINGS, &text, revision, now).await? {
        return Err(ApiError::Conflict {
            status: "settings_changed",
            message: "The settings changed while this update was applied; send it again.".into(),
        });
    }
    Ok(Json(body))
}
