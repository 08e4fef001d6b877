//! Conversations: the filtered list, one conversation's transcript with each tool call inline
//! (input, output, status, duration), and its tool-call timeline from `/api/tool-calls`.

use axum::Router;
use axum::extract::Form;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::Redirect;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use colloquy_core::time::parse_utc_ms;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Dash;
use crate::charts::{self, Span, Turn};
use crate::error::Result;
use crate::format::{duration_secs, encode, payload, text, unix_time, with_query};
use crate::layout::{self, Kind, Section};
use crate::session::Viewer;

pub fn routes() -> Router<Dash> {
    Router::new()
        .route("/conversations", get(list))
        .route("/conversations/{id}", get(detail))
        .route("/conversations/{id}/timeline", get(timeline))
        .route("/conversations/{id}/audio", get(audio))
        .route("/conversations/{id}/tags", post(add_tag))
        .route("/conversations/{id}/tags/{tag_id}/remove", post(remove_tag))
        .route("/conversations/{id}/tickets", post(raise_ticket))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    agent_id: Option<String>,
    call_successful: Option<String>,
    after: Option<String>,
    before: Option<String>,
    cursor: Option<String>,
}

/// The agent filter: the workspace's agents by name (and the chosen one by id, should it not
/// be among them).
fn agent_filter(agents: &[Value], chosen: &str) -> Markup {
    let listed = agents.iter().any(|a| a["agent_id"] == chosen);
    html! {
        label { "Agent"
            select name="agent_id" {
                option value="" selected[chosen.is_empty()] { "All agents" }
                @for a in agents {
                    option value=(text(&a["agent_id"])) selected[a["agent_id"] == chosen] { (text(&a["name"])) }
                }
                @if !chosen.is_empty() && !listed { option value=(chosen) selected { (chosen) } }
            }
        }
    }
}

/// A `datetime-local` value as unix seconds, for the API's filters.
fn unix_secs(input: Option<&str>) -> Option<String> {
    input.and_then(parse_utc_ms).map(|ms| (ms / 1000).to_string())
}

async fn list(
    viewer: Viewer, State(dash): State<Dash>, Query(q): Query<ListQuery>,
) -> Result<Html<String>> {
    let after = unix_secs(q.after.as_deref());
    let before = unix_secs(q.before.as_deref());
    let creds = viewer.creds();
    let uri = with_query(
        "/v1/convai/conversations",
        &[
            ("page_size", Some("30")),
            ("agent_id", q.agent_id.as_deref()),
            ("call_successful", q.call_successful.as_deref()),
            ("call_start_after_unix", after.as_deref()),
            ("call_start_before_unix", before.as_deref()),
            ("cursor", q.cursor.as_deref()),
        ],
    );
    // The agent filter is a choice of the workspace's agents by name, not an id to type.
    let (page, agents) = futures_util::future::join(
        dash.api.get(&creds, &uri),
        dash.api.get(&creds, "/v1/convai/agents?page_size=100&sort_by=name&sort_direction=asc"),
    )
    .await;
    let page = page?;
    let agents = agents?["agents"].as_array().cloned().unwrap_or_default();
    let filters = [
        ("agent_id", q.agent_id.as_deref()),
        ("call_successful", q.call_successful.as_deref()),
        ("after", q.after.as_deref()),
        ("before", q.before.as_deref()),
    ];
    let next = page["next_cursor"].as_str().map(|cursor| {
        let mut pairs = filters.to_vec();
        pairs.push(("cursor", Some(cursor)));
        with_query("/conversations", &pairs)
    });
    let rows = page["conversations"].as_array().cloned().unwrap_or_default();
    let chosen = q.call_successful.as_deref().unwrap_or("");
    let body = html! {
        form.filters method="get" action="/conversations" role="search" {
            (agent_filter(&agents, q.agent_id.as_deref().unwrap_or("")))
            label { "Outcome"
                select name="call_successful" {
                    @for (value, label) in [("", "Any"), ("success", "Success"), ("failure", "Failure"), ("unknown", "Unknown")] {
                        option value=(value) selected[chosen == value] { (label) }
                    }
                }
            }
            label { "Started after (UTC)" input type="datetime-local" name="after" value=[q.after.as_deref()]; }
            label { "Started before (UTC)" input type="datetime-local" name="before" value=[q.before.as_deref()]; }
            button type="submit" { "Filter" }
        }
        @if rows.is_empty() {
            p.muted { "No conversations match." }
        } @else {
            table {
                thead { tr { th { "Conversation" } th { "Agent" } th { "Started" } th.num { "Duration" } th.num { "Messages" } th { "Status" } th { "Outcome" } } }
                tbody {
                    @for c in &rows {
                        tr {
                            td { a href={ "/conversations/" (encode(text(&c["conversation_id"]))) } { code { (text(&c["conversation_id"])) } } }
                            td { a href={ "/agents/" (encode(text(&c["agent_id"]))) } { (text(&c["agent_name"])) } }
                            td { (unix_time(&c["start_time_unix_secs"])) }
                            td.num { (call_duration(&c["call_duration_secs"])) }
                            td.num { (c["message_count"]) }
                            td { (layout::status(text(&c["status"]))) }
                            td { (layout::status(text(&c["call_successful"]))) }
                        }
                    }
                }
            }
        }
        (layout::next_page(next))
    };
    Ok(Html(layout::page(&viewer, Section::Conversations, "Conversations", body).into_string()))
}

/// A conversation and its audit records, fetched together.
/// A conversation as its pages show it: the document, its tool calls, and when each of its
/// entries was said.
struct Loaded {
    conversation: Value,
    calls: Vec<Value>,
    timing: Value,
}

async fn load(dash: &Dash, viewer: &Viewer, id: &str) -> Result<Loaded> {
    let creds = viewer.creds();
    let conversation_uri = format!("/v1/convai/conversations/{}", encode(id));
    let calls_uri = format!("/api/tool-calls?executionId={}", encode(id));
    let timing_uri = format!("/api/conversations/{}/timing", encode(id));
    let (conversation, calls, timing) = futures_util::future::join3(
        dash.api.get(&creds, &conversation_uri),
        dash.api.get(&creds, &calls_uri),
        dash.api.get(&creds, &timing_uri),
    )
    .await;
    Ok(Loaded {
        conversation: conversation?,
        calls: calls?.as_array().cloned().unwrap_or_default(),
        timing: timing?,
    })
}

/// Where the timeline starts: the conversation's start, or its first call if that is earlier.
fn origin_ms(loaded: &Loaded) -> f64 {
    let start = loaded.timing["started_at_unix_ms"].as_f64();
    timed_calls(loaded)
        .iter()
        .filter_map(|c| c["started_at_unix_ms"].as_f64())
        .chain(start)
        .fold(f64::INFINITY, f64::min)
}

fn timed_calls(loaded: &Loaded) -> &[Value] {
    loaded.timing["tool_calls"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The tool calls' bars, timed to the microsecond as the audit log has them (the same figure
/// the transcript shows inline).
fn spans(loaded: &Loaded, origin: f64) -> Vec<Span> {
    timed_calls(loaded)
        .iter()
        .map(|c| Span {
            label: text(&c["tool_name"]).to_owned(),
            start_ms: c["started_at_unix_ms"].as_f64().unwrap_or(origin) - origin,
            duration_ms: c["latency_secs"].as_f64().unwrap_or(0.0) * 1000.0,
            failed: c["is_error"].as_bool() == Some(true),
        })
        .collect()
}

/// The transcript's turns on the timeline's axis: when each was said, to the millisecond
/// (`time_in_call_secs`, whole seconds, for conversations recorded before times were kept).
fn turns(loaded: &Loaded, origin: f64) -> Vec<Turn> {
    let start = loaded.timing["started_at_unix_ms"].as_f64().unwrap_or(origin);
    let times = loaded.timing["entries"].as_array();
    loaded.conversation["transcript"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, e)| e["message"].as_str().is_some_and(|m| !m.is_empty()))
        .map(|(i, e)| {
            let at = times.and_then(|t| t.get(i)).and_then(|t| t["at_ms"].as_f64());
            let at = at.unwrap_or_else(|| e["time_in_call_secs"].as_f64().unwrap_or(0.0) * 1000.0);
            Turn {
                at_ms: (start + at - origin).max(0.0),
                agent: e["role"] == "agent",
                text: text(&e["message"]).to_owned(),
            }
        })
        .collect()
}

/// A conversation's length: the API counts whole seconds, so a shorter one is "under 1 s".
fn call_duration(secs: &Value) -> String {
    match secs.as_f64() {
        Some(s) if s < 1.0 => "under 1 s".to_owned(),
        Some(s) => duration_secs(s),
        None => "—".to_owned(),
    }
}

/// When entry `i` was said, from the start: to the millisecond where the time was kept.
fn offset(loaded: &Loaded, i: usize, entry: &Value) -> String {
    let kept = loaded.timing["entries"].get(i).and_then(|t| t["at_ms"].as_f64());
    match kept {
        Some(ms) => duration_secs(ms / 1000.0),
        None => duration_secs(entry["time_in_call_secs"].as_f64().unwrap_or(0.0)),
    }
}

/// The conversation's turns and tool calls on one time axis.
fn timeline_of(loaded: &Loaded) -> Markup {
    let origin = origin_ms(loaded);
    charts::timeline(&spans(loaded, origin), &turns(loaded, origin))
}

fn calls_table(calls: &[Value]) -> Markup {
    html! {
        table {
            thead { tr { th { "Tool" } th { "Started" } th.num { "Duration" } th { "Status" } th { "Input and output" } } }
            tbody {
                @for c in calls {
                    tr {
                        td { (text(&c["toolName"])) }
                        td { (text(&c["createdAt"])) }
                        td.num { (duration_secs(c["durationMs"].as_f64().unwrap_or(0.0) / 1000.0)) }
                        td { (layout::status(text(&c["status"]))) }
                        td { details { summary { "Show" } h3.muted { "Input" } pre { (payload(&c["input"])) } h3.muted { "Output" } pre { (payload(&c["output"])) } } }
                    }
                }
            }
        }
    }
}

fn facts(conversation: &Value) -> Markup {
    let meta = &conversation["metadata"];
    html! {
        dl.facts {
            dt { "Agent" } dd { a href={ "/agents/" (encode(text(&conversation["agent_id"]))) } { (text(&conversation["agent_name"])) } }
            dt { "Started" } dd { (unix_time(&meta["start_time_unix_secs"])) }
            dt { "Duration" } dd { (call_duration(&meta["call_duration_secs"])) }
            dt { "Status" } dd { (layout::status(text(&conversation["status"]))) }
            dt { "Outcome" } dd { (layout::status(text(&conversation["analysis"]["call_successful"]))) }
            dt { "Ended because" } dd { (text(&meta["termination_reason"])) }
        }
    }
}

/// The post-call analysis: its title and summary, each criterion's verdict, each collected
/// value. Nothing while none was made.
fn analysis(analysis: &Value) -> Markup {
    let criteria = analysis["evaluation_criteria_results"].as_object().cloned().unwrap_or_default();
    let data = analysis["data_collection_results"].as_object().cloned().unwrap_or_default();
    let summary = text(&analysis["transcript_summary"]);
    html! {
        @if !summary.is_empty() || !criteria.is_empty() || !data.is_empty() {
            h2 { "Analysis" }
            @if let Some(title) = analysis["call_summary_title"].as_str() { p { strong { (title) } } }
            @if !summary.is_empty() { p { (summary) } }
            @if !criteria.is_empty() {
                table {
                    thead { tr { th { "Criterion" } th { "Result" } th { "Why" } } }
                    tbody {
                        @for (id, r) in &criteria {
                            tr { td { (id) } td { (layout::status(text(&r["result"]))) } td { (text(&r["rationale"])) } }
                        }
                    }
                }
            }
            @if !data.is_empty() {
                table {
                    thead { tr { th { "Collected" } th { "Value" } th { "Why" } } }
                    tbody {
                        @for (id, r) in &data {
                            tr { td { (id) } td { (payload(&r["value"])) } td { (text(&r["rationale"])) } }
                        }
                    }
                }
            }
        }
    }
}

/// One transcript entry's tool calls, each with its result and duration.
fn inline_calls(entry: &Value) -> Markup {
    let results = entry["tool_results"].as_array().cloned().unwrap_or_default();
    html! {
        @for call in entry["tool_calls"].as_array().into_iter().flatten() {
            @let result = results.iter().find(|r| r["request_id"] == call["request_id"]);
            @let failed = result.is_some_and(|r| r["is_error"].as_bool() == Some(true));
            div class=(match result { None => "toolcall running", Some(_) if failed => "toolcall failed", Some(_) => "toolcall" }) {
                strong { "Tool " (text(&call["tool_name"])) }
                " "
                @match result {
                    None => (layout::badge("no result", Kind::Pending)),
                    Some(r) => {
                        @if failed { (layout::badge("failed", Kind::Bad)) } @else { (layout::badge("ok", Kind::Good)) }
                        " " (duration_secs(r["tool_latency_secs"].as_f64().unwrap_or(0.0)))
                    }
                }
                details {
                    summary { "Input and output" }
                    pre { (payload(&call["params_as_json"])) }
                    @if let Some(r) = result { pre { (payload(&r["result_value"])) } }
                }
            }
        }
    }
}

/// What the knowledge base gave the agent for this turn (`rag_retrieval_info`).
fn retrieval(entry: &Value) -> Markup {
    let info = &entry["rag_retrieval_info"];
    let chunks = info["chunks"].as_array().cloned().unwrap_or_default();
    html! {
        @if info.is_object() {
            details.retrieval {
                summary {
                    "Knowledge base: " (chunks.len()) " chunks for “" (text(&info["retrieval_query"])) "” in "
                    (duration_secs(info["rag_latency_secs"].as_f64().unwrap_or(0.0)))
                }
                ul {
                    @for c in &chunks {
                        li {
                            a href={ "/knowledge-base/doc/" (encode(text(&c["document_id"]))) } { code { (text(&c["chunk_id"])) } }
                            " · distance " (format!("{:.3}", c["vector_distance"].as_f64().unwrap_or(0.0)))
                        }
                    }
                }
            }
        }
    }
}

/// The conversation's recording, as the API serves it.
async fn audio(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
) -> Result<axum::response::Response> {
    let uri = format!("/v1/convai/conversations/{}/audio", encode(&id));
    let (content_type, bytes) = dash.api.file(&viewer.creds(), &uri).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], bytes).into_response())
}

async fn detail(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
) -> Result<Html<String>> {
    let loaded = load(&dash, &viewer, &id).await?;
    let (conversation, calls) = (&loaded.conversation, &loaded.calls);
    let tags = dash.api.get(&viewer.creds(), "/v1/convai/tags?page_size=100").await?;
    let tags = tags["conversation_tags"].as_array().cloned().unwrap_or_default();
    let transcript = conversation["transcript"].as_array().cloned().unwrap_or_default();
    let body = html! {
        (facts(conversation))
        (tag_list(&viewer, &id, &conversation["tag_ids"], &tags))
        (analysis(&conversation["analysis"]))
        @if conversation["has_audio"] == true {
            h2 { "Recording" }
            audio.recording controls preload="metadata" src={ "/conversations/" (encode(&id)) "/audio" } {}
        }
        h2 { "Transcript" }
        @if transcript.is_empty() { p.muted { "Nothing was said." } }
        ol.transcript {
            @for (i, entry) in transcript.iter().enumerate() {
                li id={ "turn-" (i) } class=(if text(&entry["role"]) == "user" { "user" } else { "agent" }) {
                    div.who { (if text(&entry["role"]) == "user" { "User" } else { "Agent" }) " · +" (offset(&loaded, i, entry)) }
                    // In the order they happened: what was retrieved, the tools called, then
                    // the answer (as the playground shows them).
                    (retrieval(entry))
                    (inline_calls(entry))
                    @if let Some(message) = entry["message"].as_str() { div.text { (message) } }
                    @if text(&entry["role"]) == "agent" {
                        a.muted href=(with_query("/tests/new", &[("conversation_id", Some(&id)), ("turn", Some(&i.to_string()))])) { "Make a test of turn " (i + 1) }
                    }
                }
            }
        }
        h2 { "Timeline" }
        @if calls.is_empty() && transcript.is_empty() {
            p.muted { "Nothing happened." }
        } @else {
            (timeline_of(&loaded))
            @if calls.is_empty() { p.muted { "No tool calls." } }
            @else { p { a href={ "/conversations/" (encode(&id)) "/timeline" } { "Timeline with every call's input and output" } } }
        }
        (ticket_form(&viewer, &id, &transcript, calls))
    };
    let title = format!("Conversation {id}");
    Ok(Html(layout::page(&viewer, Section::Conversations, &title, body).into_string()))
}

async fn timeline(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
) -> Result<Html<String>> {
    let loaded = load(&dash, &viewer, &id).await?;
    let (conversation, calls) = (&loaded.conversation, &loaded.calls);
    let body = html! {
        p { a href={ "/conversations/" (encode(&id)) } { "← Transcript" } }
        (facts(conversation))
        h2 { "Timeline" }
        @if calls.is_empty() { p.muted { "No tool calls." } } @else {
            (timeline_of(&loaded))
            h2 { "Calls" }
            (calls_table(calls))
        }
    };
    let title = format!("Tool calls of {id}");
    Ok(Html(layout::page(&viewer, Section::Conversations, &title, body).into_string()))
}

/// The conversation's tags, each with a remove button, and a form to add one (an existing tag,
/// or a new one by its title).
fn tag_list(viewer: &Viewer, id: &str, tag_ids: &Value, tags: &[Value]) -> Markup {
    let on: Vec<&str> =
        tag_ids.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let title = |tag_id: &str| {
        tags.iter()
            .find(|t| t["tag_id"] == tag_id)
            .map_or(tag_id.to_owned(), |t| text(&t["title"]).to_owned())
    };
    let base = format!("/conversations/{}/tags", encode(id));
    html! {
        div.tags {
            strong { "Tags " }
            @if on.is_empty() { span.muted { "none" } }
            @for tag_id in &on {
                span.tag { (title(tag_id)) " "
                    (layout::action_button(viewer, &format!("{base}/{}/remove", encode(tag_id)), "×", "secondary")) }
            }
            form.inline method="post" action=(base) {
                (layout::csrf(viewer))
                select name="tag_id" aria-label="Tag" {
                    option value="" { "New tag…" }
                    @for t in tags.iter().filter(|t| !on.contains(&text(&t["tag_id"]))) {
                        option value=(text(&t["tag_id"])) { (text(&t["title"])) }
                    }
                }
                input type="text" name="title" placeholder="New tag's title" aria-label="New tag's title";
                button type="submit" { "Add tag" }
            }
        }
    }
}

/// Raising a ticket on this conversation: what went wrong, optionally on which turn and which
/// tool call (the audit record the ticket will show).
fn ticket_form(viewer: &Viewer, id: &str, transcript: &[Value], calls: &[Value]) -> Markup {
    html! {
        details.raise {
            summary { "Raise a ticket" }
            form method="post" action={ "/conversations/" (encode(id)) "/tickets" } {
                (layout::csrf(viewer))
                label { "Title" input type="text" name="title" maxlength="120"; }
                label { "What went wrong" textarea name="comment" required {} }
                label { "On turn"
                    select name="turn" {
                        option value="" { "The whole conversation" }
                        @for (i, e) in transcript.iter().enumerate() {
                            option value=(i) { (i) " · " (text(&e["role"])) ": " (text(&e["message"]).chars().take(60).collect::<String>()) }
                        }
                    }
                }
                label { "Tool call"
                    select name="tool_call" {
                        option value="" { "None" }
                        @for c in calls {
                            option value=(text(&c["id"])) { (text(&c["toolName"])) " · " (text(&c["status"])) " · " (text(&c["createdAt"])) }
                        }
                    }
                }
                button type="submit" { "Raise ticket" }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct TagForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    tag_id: String,
    #[serde(default)]
    title: String,
}

async fn add_tag(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<TagForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let creds = viewer.creds();
    let tag_id = if form.tag_id.is_empty() {
        let made = dash
            .api
            .call(
                &creds,
                Method::POST,
                "/v1/convai/tags",
                Some(&json!({"title": form.title.trim()})),
            )
            .await?;
        text(&made["tag_id"]).to_owned()
    } else {
        form.tag_id
    };
    let uri = format!("/v1/convai/conversations/{}/tags", encode(&id));
    dash.api.call(&creds, Method::POST, &uri, Some(&json!({"tag_ids": [tag_id]}))).await?;
    Ok(Redirect::to(&format!("/conversations/{}", encode(&id))))
}

async fn remove_tag(
    viewer: Viewer, State(dash): State<Dash>, Path((id, tag_id)): Path<(String, String)>,
    Form(form): Form<crate::session::CsrfForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let uri = format!("/v1/convai/conversations/{}/tags/{}", encode(&id), encode(&tag_id));
    dash.api.call(&viewer.creds(), Method::DELETE, &uri, None).await?;
    Ok(Redirect::to(&format!("/conversations/{}", encode(&id))))
}

#[derive(Debug, Deserialize)]
pub struct TicketForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    title: String,
    comment: String,
    #[serde(default)]
    turn: String,
    #[serde(default)]
    tool_call: String,
}

async fn raise_ticket(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<TicketForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let mut body = json!({"conversation_id": id, "qa_comment": form.comment});
    if !form.title.trim().is_empty() {
        body["title"] = json!(form.title.trim());
    }
    if let Ok(turn) = form.turn.parse::<i64>() {
        let tool_call = Some(form.tool_call).filter(|c| !c.is_empty());
        body["turn_comments"] =
            json!([{"turn_index": turn, "comment": form.comment, "tool_call_id": tool_call}]);
    }
    let made = dash
        .api
        .call(&viewer.creds(), Method::POST, "/v1/convai/triage-tickets", Some(&body))
        .await?;
    Ok(Redirect::to(&format!("/tickets/{}", encode(text(&made["agentqa_ticket_id"])))))
}
