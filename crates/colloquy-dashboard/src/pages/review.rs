//! Reviewing conversations: a search over every transcript (by words or by meaning), the
//! ticket board (by status, filtered by assignee), a ticket's page with the transcript turn
//! and the tool call each turn comment points at, and an agent's topics. Tags and raising a
//! ticket live on the conversation's page (`conversations.rs`).

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::Method;
use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Dash;
use crate::error::Result;
use crate::format::{encode, payload, text, unix_time, with_query};
use crate::layout::{self, Section};
use crate::session::Viewer;

pub fn routes() -> Router<Dash> {
    Router::new()
        .route("/search", get(search))
        .route("/tickets", get(board))
        .route("/tickets/{id}", get(ticket))
        .route("/tickets/{id}/update", post(update))
        .route("/tickets/{id}/comments", post(comment))
        .route("/agents/{id}/topics", get(topics))
}

/// Ticket statuses, in the board's column order.
const STATUSES: [(&str, &str); 4] = [
    ("open", "Open"),
    ("in_progress", "In progress"),
    ("resolved", "Resolved"),
    ("merged", "Merged"),
];

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    agent_id: Option<String>,
    by: Option<String>,
    cursor: Option<String>,
}

/// A search result's text with the matched words marked (the words search's highlights).
fn highlighted(result: &Value) -> Markup {
    match result["chunk_highlights"].as_array() {
        Some(segments) => html! {
            @for s in segments {
                @if s["is_hit"] == true { mark { (text(&s["value"])) } } @else { (text(&s["value"])) }
            }
        },
        None => html! { (text(&result["chunk_text"])) },
    }
}

async fn search(
    viewer: Viewer, State(dash): State<Dash>, Query(q): Query<SearchQuery>,
) -> Result<Html<String>> {
    let query = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let by_meaning = q.by.as_deref() == Some("meaning");
    let agent = q.agent_id.as_deref().filter(|a| !a.is_empty());
    let creds = viewer.creds();
    let agents = dash
        .api
        .get(&creds, "/v1/convai/agents?page_size=100&sort_by=name&sort_direction=asc")
        .await?;
    let agents = agents["agents"].as_array().cloned().unwrap_or_default();
    let page = match query {
        Some(words) => {
            let path = if by_meaning {
                "/v1/convai/conversations/messages/smart-search"
            } else {
                "/v1/convai/conversations/messages/text-search"
            };
            let pairs = [
                ("text_query", Some(words)),
                ("agent_id", agent),
                ("page_size", Some("30")),
                ("cursor", q.cursor.as_deref()),
            ];
            Some(dash.api.get(&creds, &with_query(path, &pairs)).await?)
        }
        None => None,
    };
    let next = page.as_ref().and_then(|p| p["next_cursor"].as_str()).map(|cursor| {
        let by = if by_meaning { "meaning" } else { "words" };
        with_query(
            "/search",
            &[("q", query), ("agent_id", agent), ("by", Some(by)), ("cursor", Some(cursor))],
        )
    });
    let results = page.as_ref().and_then(|p| p["results"].as_array().cloned()).unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/search" role="search" {
            label { "Words" input type="search" name="q" value=[query] required; }
            label { "Agent"
                select name="agent_id" {
                    option value="" { "All agents" }
                    @for a in &agents {
                        option value=(text(&a["agent_id"])) selected[a["agent_id"].as_str() == agent] { (text(&a["name"])) }
                    }
                }
            }
            label { "Match"
                select name="by" {
                    option value="words" selected[!by_meaning] { "these words" }
                    option value="meaning" selected[by_meaning] { "this meaning" }
                }
            }
            button type="submit" { "Search" }
        }
        @if query.is_some() && results.is_empty() { p.muted { "No message matches." } }
        @if !results.is_empty() {
            ol.results {
                @for r in &results {
                    li {
                        a href={ "/conversations/" (encode(text(&r["conversation_id"]))) "#turn-" (r["transcript_index"]) } {
                            (text(&r["agent_name"])) " · " (unix_time(&r["conversation_start_time_unix_secs"]))
                        }
                        p { (highlighted(r)) }
                    }
                }
            }
        }
        (layout::next_page(next))
    };
    Ok(Html(layout::page(&viewer, Section::Search, "Search transcripts", body).into_string()))
}

#[derive(Debug, Deserialize)]
pub struct BoardQuery {
    assignee: Option<String>,
}

/// The workspace's users by id, for names and the assignee choice.
async fn users(dash: &Dash, viewer: &Viewer, agent_id: &str) -> Result<Vec<Value>> {
    let uri = format!("/v1/convai/agents/{}/triage-tickets/assignable-users", encode(agent_id));
    let found = dash.api.get(&viewer.creds(), &uri).await?;
    Ok(found["users"].as_array().cloned().unwrap_or_default())
}

fn first_line(comment: &Value, most: usize) -> String {
    let line = text(comment).lines().next().unwrap_or_default();
    match line.char_indices().nth(most) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    }
}

async fn board(
    viewer: Viewer, State(dash): State<Dash>, Query(q): Query<BoardQuery>,
) -> Result<Html<String>> {
    let assignee = q.assignee.as_deref().filter(|a| !a.is_empty());
    let uri = with_query(
        "/v1/convai/triage-tickets",
        &[("page_size", Some("100")), ("assignee_user_id", assignee)],
    );
    let page = dash.api.get(&viewer.creds(), &uri).await?;
    let tickets = page["agent_conversation_tickets"].as_array().cloned().unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/tickets" {
            label { "Assignee (user id)" input type="search" name="assignee" value=[assignee]; }
            button type="submit" { "Filter" }
        }
        @if tickets.is_empty() {
            p.muted { "No tickets. Raise one from a conversation's page, or let failed evaluations raise them (" code { "PUT /api/settings/triage" } ")." }
        }
        div.board {
            @for (status, label) in STATUSES {
                @let column: Vec<&Value> = tickets.iter().filter(|t| t["status"] == status).collect();
                section.column aria-label=(label) {
                    h2 { (label) " " span.muted { (column.len()) } }
                    @for t in column {
                        article.card {
                            a href={ "/tickets/" (encode(text(&t["agentqa_ticket_id"]))) } { (first_line(&t["qa_comment"], 80)) }
                            p.muted {
                                (t["conversation_ids"].as_array().map_or(0, Vec::len)) " conversation(s) · "
                                @match t["assignee_user_id"].as_str() { Some(who) => { "assigned to " code { (who) } }, None => "unassigned" }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(layout::page(&viewer, Section::Tickets, "Tickets", body).into_string()))
}

/// A turn comment: the transcript turn it is about, and the tool call it points at.
fn turn_comment(turn: &Value, transcript: &[Value], conversation: &str) -> Markup {
    let index = turn["turn_index"].as_u64().unwrap_or(0);
    let entry = usize::try_from(index).ok().and_then(|i| transcript.get(i));
    html! {
        article.turn-comment {
            p {
                a href={ "/conversations/" (encode(conversation)) "#turn-" (index) } { "Turn " (index) }
                @if let Some(e) = entry { " · " (text(&e["role"])) ": “" (text(&e["message"])) "”" }
            }
            p { (text(&turn["comment"])) }
            @let call = &turn["tool_call"];
            @if call.is_object() {
                div class=(if text(&call["status"]) == "success" { "toolcall" } else { "toolcall failed" }) {
                    strong { "Tool " (text(&call["toolName"])) } " " (layout::status(text(&call["status"])))
                    " " (call["durationMs"].as_i64().unwrap_or(0)) " ms"
                    h3.muted { "Input" } pre { (payload(&call["input"])) }
                    h3.muted { "Output" } pre { (payload(&call["output"])) }
                }
            }
        }
    }
}

async fn ticket(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
) -> Result<Html<String>> {
    let creds = viewer.creds();
    let t = dash.api.get(&creds, &format!("/api/triage-tickets/{}", encode(&id))).await?;
    let conversation = t["conversation_ids"][0].as_str().map(str::to_owned);
    let transcript = match &conversation {
        Some(c) => {
            let found =
                dash.api.get(&creds, &format!("/v1/convai/conversations/{}", encode(c))).await?;
            found["transcript"].as_array().cloned().unwrap_or_default()
        }
        None => Vec::new(),
    };
    let people = users(&dash, &viewer, text(&t["agent_id"])).await?;
    let action = format!("/tickets/{}", encode(&id));
    let body = html! {
        dl.facts {
            dt { "Status" } dd { (layout::status(text(&t["status"]))) }
            dt { "Priority" } dd { (t["priority"].as_str().unwrap_or("none")) }
            dt { "Assignee" } dd { (t["assignee_user_id"].as_str().unwrap_or("nobody")) }
            dt { "Agent" } dd { a href={ "/agents/" (encode(text(&t["agent_id"]))) } code { (text(&t["agent_id"])) } }
            dt { "Raised" } dd { (unix_time(&t["created_at_unix_secs"])) " by " code { (text(&t["owner_user_id"])) } }
            dt { "Conversations" } dd {
                @for c in t["conversation_ids"].as_array().into_iter().flatten() {
                    a href={ "/conversations/" (encode(text(c))) } { code { (text(c)) } } " "
                }
            }
        }
        @if let Some(comment) = t["qa_comment"].as_str() { p { (comment) } }
        form.filters method="post" action={ (action) "/update" } {
            (layout::csrf(&viewer))
            label { "Status"
                select name="status" {
                    @for (status, label) in &STATUSES[..3] {
                        option value=(status) selected[t["status"] == *status] { (label) }
                    }
                }
            }
            label { "Assignee"
                select name="assignee" {
                    option value="" { "Nobody" }
                    @for u in &people {
                        option value=(text(&u["user_id"])) selected[u["user_id"] == t["assignee_user_id"]] { (text(&u["email"])) }
                    }
                }
            }
            button type="submit" { "Save" }
        }
        @if let Some(c) = &conversation {
            @let turns = t["turn_comments"].as_array().cloned().unwrap_or_default();
            @if !turns.is_empty() { h2 { "On the transcript" } }
            @for turn in &turns { (turn_comment(turn, &transcript, c)) }
        }
        h2 { "Discussion" }
        @for c in t["ticket_comments"].as_array().into_iter().flatten() {
            article.comment { p.muted { code { (text(&c["owner_user_id"])) } " · " (unix_time(&c["created_at_unix_secs"])) } p { (text(&c["comment"])) } }
        }
        form method="post" action={ (action) "/comments" } {
            (layout::csrf(&viewer))
            label { "Comment" textarea name="comment" required {} }
            button type="submit" { "Add comment" }
        }
    };
    let title = t["title"].as_str().unwrap_or("Ticket").to_owned();
    Ok(Html(layout::page(&viewer, Section::Tickets, &title, body).into_string()))
}

#[derive(Debug, Deserialize)]
pub struct UpdateForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    status: String,
    assignee: String,
}

async fn update(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<UpdateForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let assignee = Some(form.assignee).filter(|a| !a.is_empty());
    let body = json!({"status": form.status, "assignee_user_id": assignee});
    let uri = format!("/v1/convai/triage-tickets/{}", encode(&id));
    dash.api.call(&viewer.creds(), Method::PATCH, &uri, Some(&body)).await?;
    Ok(Redirect::to(&format!("/tickets/{}", encode(&id))))
}

#[derive(Debug, Deserialize)]
pub struct CommentForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    comment: String,
}

async fn comment(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<CommentForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let uri = format!("/v1/convai/triage-tickets/{}/comments", encode(&id));
    let body = json!({"comment": form.comment});
    dash.api.call(&viewer.creds(), Method::POST, &uri, Some(&body)).await?;
    Ok(Redirect::to(&format!("/tickets/{}", encode(&id))))
}

#[derive(Debug, Deserialize)]
pub struct TopicsQuery {
    sort_by: Option<String>,
}

async fn topics(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Query(q): Query<TopicsQuery>,
) -> Result<Html<String>> {
    let sort = q.sort_by.as_deref().filter(|s| *s == "success_rate").unwrap_or("conversations");
    let uri = format!("/v1/convai/agents/{}/topics?sort_by={sort}", encode(&id));
    let found = dash.api.get(&viewer.creds(), &uri).await?;
    let topics = found["topics"].as_array().cloned().unwrap_or_default();
    let body = html! {
        p { a href={ "/agents/" (encode(&id)) } { "← Agent" } " · "
            (unix_time(&found["window_start_unix_secs"])) " to " (unix_time(&found["window_end_unix_secs"])) }
        form.filters method="get" {
            label { "Rank by"
                select name="sort_by" {
                    option value="conversations" selected[sort == "conversations"] { "conversations" }
                    option value="success_rate" selected[sort == "success_rate"] { "success rate" }
                }
            }
            button type="submit" { "Rank" }
        }
        @if topics.is_empty() { p.muted { "No analysed conversations in this window." } } @else {
            table {
                thead { tr { th { "Topic" } th.num { "Conversations" } th.num { "Success rate" } th { "What it covers" } } }
                tbody {
                    @for t in &topics {
                        tr {
                            td { (text(&t["label"])) }
                            td.num { (t["conversation_count"]) }
                            td.num { @match t["success_rate"].as_f64() { Some(r) => { (format!("{:.0} %", r * 100.0)) }, None => "–" } }
                            td.muted { (text(&t["description"])) }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(layout::page(&viewer, Section::Agents, "Topics", body).into_string()))
}
