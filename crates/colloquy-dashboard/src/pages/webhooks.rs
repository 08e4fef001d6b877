//! Webhooks (administrators): the workspace's webhooks with what uses them, which one gets the
//! post-call events, creating one (its secret shown once), enabling, disabling and deleting
//! it, and the delivery log with a way to send an entry's delivery again.

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Dash;
use crate::error::{Error, Result};
use crate::format::{encode, text, unix_time, with_query};
use crate::layout::{self, Section};
use crate::session::{CsrfForm, Viewer};

pub fn routes() -> Router<Dash> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/post-call", post(choose))
        .route("/webhooks/{id}/enable", post(enable))
        .route("/webhooks/{id}/disable", post(disable))
        .route("/webhooks/{id}/delete", get(confirm_delete).post(delete))
        .route("/webhooks/deliveries/{id}/redeliver", post(redeliver))
}

#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    webhook: Option<String>,
    conversation: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct NewWebhook {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    url: String,
}

#[derive(Debug, Deserialize)]
pub struct PostCallForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    /// Empty for none.
    webhook: String,
    #[serde(default)]
    transcript: Option<String>,
    #[serde(default)]
    audio: Option<String>,
}

async fn list(
    viewer: Viewer, State(dash): State<Dash>, Query(q): Query<LogQuery>,
) -> Result<Html<String>> {
    Ok(Html(page(&viewer, &dash, &q, None).await?.into_string()))
}

/// The page, with `notice` (a new webhook's secret, a refusal) above it.
async fn page(
    viewer: &Viewer, dash: &Dash, q: &LogQuery, notice: Option<Markup>,
) -> Result<Markup> {
    let who = viewer.creds();
    let hooks = dash.api.get(&who, "/v1/workspace/webhooks?include_usages=true").await?;
    let hooks = hooks["webhooks"].as_array().cloned().unwrap_or_default();
    let settings = dash.api.get(&who, "/v1/convai/settings").await?;
    let filters = [
        ("webhookId", q.webhook.as_deref()),
        ("conversationId", q.conversation.as_deref()),
        ("status", q.status.as_deref()),
    ];
    let mut pairs = filters.to_vec();
    pairs.push(("cursor", q.cursor.as_deref()));
    let log = dash.api.get(&who, &with_query("/api/webhook-deliveries", &pairs)).await?;
    let next = log["next_cursor"].as_str().map(|cursor| {
        with_query(
            "/webhooks",
            &[
                ("webhook", q.webhook.as_deref()),
                ("conversation", q.conversation.as_deref()),
                ("status", q.status.as_deref()),
                ("cursor", Some(cursor)),
            ],
        )
    });
    let entries = log["deliveries"].as_array().cloned().unwrap_or_default();
    let body = html! {
        @if let Some(notice) = notice { (notice) }
        @if hooks.is_empty() { p.muted { "No webhooks yet." } } @else {
            table {
                thead { tr { th { "Name" } th { "URL" } th { "State" } th { "Used by" } th { "Last failure" } th { "" } } }
                tbody {
                    @for h in &hooks { (row(viewer, h)) }
                }
            }
        }
        (post_call_form(viewer, &hooks, &settings["webhooks"]))
        form.stack method="post" action="/webhooks" aria-label="New webhook" {
            (layout::csrf(viewer))
            label { "Name" input type="text" name="name" required; }
            label { "URL (https, or http to a host in COLLOQUY_WEBHOOK_ALLOW)" input type="url" name="url" required; }
            button type="submit" { "Create webhook" }
        }
        (log_section(viewer, q, &entries, &hooks))
        (layout::next_page(next))
    };
    Ok(layout::page(viewer, Section::Webhooks, "Webhooks", body))
}

/// The delivery log: its filters and one row per try.
fn log_section(viewer: &Viewer, q: &LogQuery, entries: &[Value], hooks: &[Value]) -> Markup {
    // A delivery waiting for its next try is sent again on its own.
    let waiting: Vec<Option<&str>> = entries
        .iter()
        .filter(|e| e["status"] == "pending")
        .map(|e| e["delivery_id"].as_str())
        .collect();
    let name_of = |id: &Value| {
        hooks
            .iter()
            .find(|h| h["webhook_id"] == *id)
            .map_or_else(|| text(id).to_owned(), |h| text(&h["name"]).to_owned())
    };
    html! {
        h2 { "Deliveries" }
        form.filters method="get" action="/webhooks" role="search" {
            label { "Webhook id" input type="search" name="webhook" value=[q.webhook.as_deref()]; }
            label { "Conversation id" input type="search" name="conversation" value=[q.conversation.as_deref()]; }
            label { "Status"
                select name="status" {
                    option value="" { "any" }
                    @for s in ["pending", "success", "failed"] {
                        option value=(s) selected[q.status.as_deref() == Some(s)] { (s) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if entries.is_empty() { p.muted { "No deliveries match." } } @else {
            table {
                thead { tr { th { "When" } th { "Webhook" } th { "Event" } th { "Conversation" } th { "Try" } th { "Status" } th { "Answer" } th { "" } } }
                tbody {
                    @for e in entries {
                        tr {
                            td { (unix_time(&e["created_at_unix_secs"])) }
                            td { (name_of(&e["webhook_id"])) }
                            td { (text(&e["event_type"])) }
                            td { @if let Some(c) = e["conversation_id"].as_str() { a href={ "/conversations/" (encode(c)) } { code { (c) } } } }
                            td { (e["attempt"]) }
                            td { (layout::status(text(&e["status"]))) }
                            td {
                                @if let Some(code) = e["response_code"].as_i64() { (code) " " }
                                @if let Some(ms) = e["latency_ms"].as_i64() { span.muted { (ms) " ms " } }
                                @if let Some(error) = e["error"].as_str() { span.muted { (error) } }
                            }
                            td {
                                @if !waiting.contains(&e["delivery_id"].as_str()) {
                                    (layout::action_button(viewer, &format!("/webhooks/deliveries/{}/redeliver", encode(text(&e["id"]))), "Send again", ""))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn row(viewer: &Viewer, h: &Value) -> Markup {
    let id = encode(text(&h["webhook_id"]));
    let state = if h["is_auto_disabled"] == true {
        layout::badge("disabled after failures", layout::Kind::Bad)
    } else if h["is_disabled"] == true {
        layout::badge("disabled", layout::Kind::Neutral)
    } else {
        layout::badge("enabled", layout::Kind::Good)
    };
    let used: Vec<&str> = h["usage"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["usage_type"].as_str())
        .collect();
    html! {
        tr {
            td { a href={ "/webhooks?webhook=" (id) } { (text(&h["name"])) } }
            td { code { (text(&h["webhook_url"])) } }
            td { (state) }
            td { (used.join(", ")) }
            td {
                @if let Some(code) = h["most_recent_failure_error_code"].as_i64() { (code) " " }
                @if h["most_recent_failure_timestamp"].is_i64() { span.muted { (unix_time(&h["most_recent_failure_timestamp"])) } }
            }
            td.actions {
                @if h["is_disabled"] == true || h["is_auto_disabled"] == true {
                    (layout::action_button(viewer, &format!("/webhooks/{id}/enable"), "Enable", ""))
                } @else {
                    (layout::action_button(viewer, &format!("/webhooks/{id}/disable"), "Disable", ""))
                }
                a.button.danger href={ "/webhooks/" (id) "/delete" } { "Delete" }
            }
        }
    }
}

/// Which webhook gets the workspace's post-call events, and which events.
fn post_call_form(viewer: &Viewer, hooks: &[Value], chosen: &Value) -> Markup {
    let current = chosen["post_call_webhook_id"].as_str();
    let events: Vec<&str> =
        chosen["events"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let wants = |e: &str| events.is_empty() && e == "transcript" || events.contains(&e);
    html! {
        form.stack method="post" action="/webhooks/post-call" aria-label="Post-call webhook" {
            (layout::csrf(viewer))
            label { "Post-call webhook of the workspace"
                select name="webhook" {
                    option value="" selected[current.is_none()] { "none" }
                    @for h in hooks {
                        @let id = text(&h["webhook_id"]);
                        option value=(id) selected[current == Some(id)] { (text(&h["name"])) }
                    }
                }
            }
            label { input type="checkbox" name="transcript" value="on" checked[wants("transcript")]; " Transcript" }
            label { input type="checkbox" name="audio" value="on" checked[wants("audio")]; " Audio (voice conversations)" }
            button type="submit" { "Save" }
        }
    }
}

async fn create(
    viewer: Viewer, State(dash): State<Dash>, Form(form): Form<NewWebhook>,
) -> Result<Response> {
    viewer.check(&form.csrf)?;
    let body =
        json!({"settings": {"auth_type": "hmac", "name": form.name, "webhook_url": form.url}});
    let q = LogQuery::default();
    let notice = match dash
        .api
        .call(&viewer.creds(), Method::POST, "/v1/workspace/webhooks", Some(&body))
        .await
    {
        Ok(created) => html! {
            div.notice role="status" {
                p { "Webhook created. Its signing secret is shown only now: keep it where your receiver checks the "
                    code { "ElevenLabs-Signature" } " header." }
                p { code.secret { (text(&created["webhook_secret"])) } }
            }
        },
        Err(Error::Api { status, message }) if status.is_client_error() => {
            layout::problem(Some(&message))
        }
        Err(e) => return Err(e),
    };
    Ok(Html(page(&viewer, &dash, &q, Some(notice)).await?.into_string()).into_response())
}

async fn choose(
    viewer: Viewer, State(dash): State<Dash>, Form(form): Form<PostCallForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let mut events = Vec::new();
    if form.transcript.is_some() {
        events.push("transcript");
    }
    if form.audio.is_some() {
        events.push("audio");
    }
    let webhook = Some(form.webhook.as_str()).filter(|w| !w.is_empty());
    let body = json!({"webhooks": {"post_call_webhook_id": webhook, "events": events}});
    dash.api.call(&viewer.creds(), Method::PATCH, "/v1/convai/settings", Some(&body)).await?;
    Ok(Redirect::to("/webhooks"))
}

async fn enable(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<CsrfForm>,
) -> Result<Redirect> {
    switch(&viewer, &dash, &id, &form, false).await
}

async fn disable(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<CsrfForm>,
) -> Result<Redirect> {
    switch(&viewer, &dash, &id, &form, true).await
}

/// Disables or enables a webhook (the API's PATCH wants its name too).
async fn switch(
    viewer: &Viewer, dash: &Dash, id: &str, form: &CsrfForm, disabled: bool,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let name = named(viewer, dash, id).await?;
    let body = json!({"is_disabled": disabled, "name": name});
    let uri = format!("/v1/workspace/webhooks/{}", encode(id));
    dash.api.call(&viewer.creds(), Method::PATCH, &uri, Some(&body)).await?;
    Ok(Redirect::to("/webhooks"))
}

/// A webhook's name (the API has no GET of one webhook).
async fn named(viewer: &Viewer, dash: &Dash, id: &str) -> Result<String> {
    let hooks = dash.api.get(&viewer.creds(), "/v1/workspace/webhooks").await?;
    hooks["webhooks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["webhook_id"] == id)
        .map(|h| text(&h["name"]).to_owned())
        .ok_or_else(|| Error::Api {
            status: axum::http::StatusCode::NOT_FOUND,
            message: "No such webhook in this workspace.".into(),
        })
}

async fn confirm_delete(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
) -> Result<Html<String>> {
    let name = named(&viewer, &dash, &id).await?;
    let page = layout::confirm_page(
        &viewer,
        Section::Webhooks,
        &format!("Delete the webhook \"{name}\"?"),
        "Its deliveries stay in the log; nothing is sent to it any more.",
        &format!("/webhooks/{}/delete", encode(&id)),
        "Delete the webhook",
        "/webhooks",
    );
    Ok(Html(page.into_string()))
}

async fn delete(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<CsrfForm>,
) -> Result<Response> {
    viewer.check(&form.csrf)?;
    let uri = format!("/v1/workspace/webhooks/{}", encode(&id));
    match dash.api.call(&viewer.creds(), Method::DELETE, &uri, None).await {
        Ok(_) => Ok(Redirect::to("/webhooks").into_response()),
        Err(Error::Api { status, message }) if status.is_client_error() => {
            let notice = layout::problem(Some(&message));
            let shown = page(&viewer, &dash, &LogQuery::default(), Some(notice)).await?;
            Ok(Html(shown.into_string()).into_response())
        }
        Err(e) => Err(e),
    }
}

async fn redeliver(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<CsrfForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let uri = format!("/api/webhook-deliveries/{}/redeliver", encode(&id));
    dash.api.call(&viewer.creds(), Method::POST, &uri, Some(&json!({}))).await?;
    Ok(Redirect::to("/webhooks"))
}
