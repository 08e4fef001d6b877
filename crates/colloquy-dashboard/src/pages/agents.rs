//! Agents: the list (search, paging), creating, the detail page with its settings in tabs
//! ([`agent_settings`]; the last is the whole configuration as JSON), duplicating and
//! deleting. Every save is the API's PATCH, so the API's validation decides.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::agent_settings::{self, Tab};
use crate::Dash;
use crate::error::{Error, Result};
use crate::format::{self, encode, text, unix_time, with_query};
use crate::layout::{self, Section};
use crate::session::{CsrfForm, Viewer};

pub fn routes() -> Router<Dash> {
    Router::new()
        .route("/agents", get(list).post(create))
        .route("/agents/{id}", get(detail).post(save))
        .route("/agents/{id}/duplicate", post(duplicate))
        .route("/agents/{id}/delete", get(confirm_delete).post(delete))
}

/// The parts of an agent document a user edits; the rest (ids, metadata, access) is the
/// server's.
const EDITABLE: [&str; 5] =
    ["name", "conversation_config", "platform_settings", "workflow", "tags"];

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    search: Option<String>,
    cursor: Option<String>,
    archived: Option<String>,
}

async fn list(
    viewer: Viewer, State(dash): State<Dash>, Query(q): Query<ListQuery>,
) -> Result<Html<String>> {
    let archived = q.archived.as_deref().filter(|a| *a == "true");
    let page = dash
        .api
        .get(
            &viewer.creds(),
            &with_query(
                "/v1/convai/agents",
                &[
                    ("page_size", Some("30")),
                    ("search", q.search.as_deref()),
                    ("cursor", q.cursor.as_deref()),
                    ("archived", archived),
                ],
            ),
        )
        .await?;
    let next = page["next_cursor"].as_str().map(|cursor| {
        with_query(
            "/agents",
            &[("search", q.search.as_deref()), ("archived", archived), ("cursor", Some(cursor))],
        )
    });
    let agents = page["agents"].as_array().cloned().unwrap_or_default();
    let filtered = q.search.as_deref().is_some_and(|s| !s.is_empty()) || archived.is_some();
    let body = html! {
        form.filters method="get" action="/agents" role="search" {
            label { "Search by name" input type="search" name="search" value=[q.search.as_deref()]; }
            label { "Archived"
                select name="archived" {
                    option value="" selected[archived.is_none()] { "Active agents" }
                    option value="true" selected[archived.is_some()] { "Archived agents" }
                }
            }
            button type="submit" { "Filter" }
        }
        @if agents.is_empty() && filtered {
            p.muted { "No agents match." }
        } @else if agents.is_empty() {
            // A new workspace: the form to create the first agent is what the page is for.
            p.muted { "No agents yet: create the first one." }
            h2 { "New agent" }
            (create_form(&viewer, &NewAgent::default(), None))
        } @else {
            table {
                thead { tr { th { "Name" } th { "Agent id" } th { "Tags" } th { "Created" } th { "Last call" } } }
                tbody {
                    @for agent in &agents {
                        tr {
                            td { a href={ "/agents/" (encode(text(&agent["agent_id"]))) } { (text(&agent["name"])) } }
                            td { code { (text(&agent["agent_id"])) } }
                            td { @for tag in agent["tags"].as_array().into_iter().flatten() { span.badge.neutral { (text(tag)) } " " } }
                            td { (unix_time(&agent["created_at_unix_secs"])) }
                            td { (unix_time(&agent["last_call_time_unix_secs"])) }
                        }
                    }
                }
            }
        }
        (layout::next_page(next))
        @if !agents.is_empty() || filtered {
            h2 { "New agent" }
            (create_form(&viewer, &NewAgent::default(), None))
        }
    };
    Ok(Html(layout::page(&viewer, Section::Agents, "Agents", body).into_string()))
}

#[derive(Debug, Default, Deserialize)]
pub struct NewAgent {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    first_message: String,
    #[serde(default)]
    llm: String,
}

fn create_form(viewer: &Viewer, values: &NewAgent, problem: Option<&str>) -> Markup {
    html! {
        form.stack method="post" action="/agents" aria-label="New agent" {
            (layout::csrf(viewer))
            (layout::problem(problem))
            label { "Name" input type="text" name="name" required value=(values.name); }
            label { "System prompt" textarea name="prompt" rows="4" { (values.prompt) } }
            label { "First message" input type="text" name="first_message" value=(values.first_message); }
            label { "LLM (empty for the default)" input type="text" name="llm" value=(values.llm); }
            button type="submit" { "Create agent" }
        }
    }
}

async fn create(
    viewer: Viewer, State(dash): State<Dash>, Form(form): Form<NewAgent>,
) -> Result<Response> {
    viewer.check(&form.csrf)?;
    let mut prompt = Map::new();
    prompt.insert("prompt".into(), json!(form.prompt));
    if !form.llm.trim().is_empty() {
        prompt.insert("llm".into(), json!(form.llm.trim()));
    }
    let body = json!({
        "name": form.name,
        "conversation_config": {"agent": {"first_message": form.first_message, "prompt": prompt}},
    });
    match dash
        .api
        .call(&viewer.creds(), Method::POST, "/v1/convai/agents/create", Some(&body))
        .await
    {
        Ok(created) => Ok(Redirect::to(&format!("/agents/{}", encode(text(&created["agent_id"]))))
            .into_response()),
        Err(Error::Api { status, message }) if status.is_client_error() => {
            let page = layout::page(
                &viewer,
                Section::Agents,
                "New agent",
                create_form(&viewer, &form, Some(&message)),
            );
            Ok((status, Html(page.into_string())).into_response())
        }
        Err(e) => Err(e),
    }
}

/// The editable part of an agent document, as the editor shows it.
fn editable(agent: &Value) -> Value {
    let mut doc = Map::new();
    for key in EDITABLE {
        if let Some(v) = agent.get(key) {
            doc.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(doc)
}

/// The agent's tools as `(id, name)`, looked up through the API; a tool that cannot be read
/// (deleted meanwhile) shows its id.
async fn tools_of(dash: &Dash, viewer: &Viewer, agent: &Value) -> Vec<(String, String)> {
    let ids: Vec<String> = agent["conversation_config"]["agent"]["prompt"]["tool_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let creds = viewer.creds();
    let lookups = ids.iter().map(|id| {
        let uri = format!("/v1/convai/tools/{}", encode(id));
        let creds = &creds;
        async move {
            let name = match dash.api.get(creds, &uri).await {
                Ok(tool) => text(&tool["tool_config"]["name"]).to_owned(),
                Err(_) => String::new(),
            };
            (id.clone(), if name.is_empty() { id.clone() } else { name })
        }
    });
    futures_util::future::join_all(lookups).await
}

/// An agent's page: what it is, what can be done with it, its settings in tabs, and
/// `content`, the current tab.
pub async fn detail_page(
    viewer: &Viewer, agent: &Value, dash: &Dash, tab: Tab, content: Markup,
) -> Markup {
    let tools = tools_of(dash, viewer, agent).await;
    let id = text(&agent["agent_id"]);
    let href = |tail: &str| format!("/agents/{}{tail}", encode(id));
    let body = html! {
        dl.facts {
            dt { "Agent id" } dd { code { (id) } }
            dt { "LLM" } dd { (text(&agent["conversation_config"]["agent"]["prompt"]["llm"])) }
            dt { "Created" } dd { (unix_time(&agent["metadata"]["created_at_unix_secs"])) }
            dt { "Tools" } dd {
                @if tools.is_empty() { span.muted { "none" } }
                @for (tool_id, name) in &tools { a href={ "/tools/" (encode(tool_id)) } { (name) } " " }
            }
        }
        div.actions {
            a href=(href("/playground")) { "Open the playground" }
            a href=(with_query("/conversations", &[("agent_id", Some(id))])) { "Conversations" }
            a href=(href("/topics")) { "Topics" }
            a href=(with_query("/tests", &[("agent_id", Some(id))])) { "Tests" }
            a href=(href("/versions")) { "Branches and versions" }
            (layout::action_button(viewer, &href("/duplicate"), "Duplicate", "secondary"))
            a.button.danger href=(href("/delete")) { "Delete" }
        }
        h2 #config-heading { "Configuration" }
        (agent_settings::tabs(id, tab))
        (content)
    };
    layout::page(viewer, Section::Agents, text(&agent["name"]), body)
}

/// The Advanced tab: the editable part of the document as JSON.
fn json_editor(viewer: &Viewer, id: &str, editor: &str, problem: Option<&str>) -> Markup {
    html! {
        form.stack.wide method="post" action={ "/agents/" (encode(id)) } aria-label="Advanced settings" {
            (layout::csrf(viewer))
            (layout::problem(problem))
            label for="agent-json" { "Agent configuration (JSON; saved with the API's own validation)" }
            textarea.json #agent-json name="document" spellcheck="false" { (editor) }
            button type="submit" { "Save" }
        }
    }
}

pub async fn fetch(dash: &Dash, viewer: &Viewer, id: &str) -> Result<Value> {
    dash.api.get(&viewer.creds(), &format!("/v1/convai/agents/{}", encode(id))).await
}

#[derive(Debug, Deserialize)]
pub struct DetailQuery {
    tab: Option<String>,
    saved: Option<String>,
}

async fn detail(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Query(q): Query<DetailQuery>,
) -> Result<Html<String>> {
    let agent = fetch(&dash, &viewer, &id).await?;
    let tab = Tab::from_slug(q.tab.as_deref());
    let form = match tab {
        Tab::Advanced => json_editor(&viewer, &id, &format::pretty(&editable(&agent)), None),
        tab => {
            let choices = agent_settings::choices(&dash, &viewer, tab).await?;
            agent_settings::form(&viewer, tab, &id, &agent, &choices, &Default::default())
        }
    };
    let content = html! {
        @if q.saved.is_some() { p.saved role="status" { "Saved." } }
        (form)
    };
    Ok(Html(detail_page(&viewer, &agent, &dash, tab, content).await.into_string()))
}

#[derive(Debug, Deserialize)]
pub struct SaveForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    document: String,
}

/// `POST /agents/{id}`: the Advanced tab's JSON, as a PATCH.
async fn save(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<SaveForm>,
) -> Result<Response> {
    viewer.check(&form.csrf)?;
    // A refused edit is shown beside the saved agent, the editor keeping what was typed.
    let refuse = async |status: StatusCode, message: &str| -> Result<Response> {
        let agent = fetch(&dash, &viewer, &id).await?;
        let editor = json_editor(&viewer, &id, &form.document, Some(message));
        let page = detail_page(&viewer, &agent, &dash, Tab::Advanced, editor).await;
        Ok((status, Html(page.into_string())).into_response())
    };
    let parsed = match serde_json::from_str::<Value>(&form.document) {
        Ok(Value::Object(doc)) => Value::Object(doc),
        Ok(_) => {
            let message = "The configuration must be a JSON object.";
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, message).await;
        }
        Err(e) => {
            let message = format!("Not valid JSON: {e}");
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, &message).await;
        }
    };
    let uri = format!("/v1/convai/agents/{}", encode(&id));
    match dash.api.call(&viewer.creds(), Method::PATCH, &uri, Some(&parsed)).await {
        Ok(_) => {
            Ok(Redirect::to(&format!("/agents/{}?tab=advanced&saved=1", encode(&id)))
                .into_response())
        }
        Err(Error::Api { status, message })
            if status.is_client_error() && status != StatusCode::NOT_FOUND =>
        {
            refuse(status, &message).await
        }
        Err(e) => Err(e),
    }
}

async fn duplicate(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<CsrfForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let uri = format!("/v1/convai/agents/{}/duplicate", encode(&id));
    let copy = dash.api.call(&viewer.creds(), Method::POST, &uri, Some(&json!({}))).await?;
    Ok(Redirect::to(&format!("/agents/{}", encode(text(&copy["agent_id"])))))
}

/// Asks before deleting: deleting an agent cannot be undone.
async fn confirm_delete(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
) -> Result<Html<String>> {
    let agent =
        dash.api.get(&viewer.creds(), &format!("/v1/convai/agents/{}", encode(&id))).await?;
    let name = text(&agent["name"]);
    let href = format!("/agents/{}", encode(&id));
    let page = layout::confirm_page(
        &viewer,
        Section::Agents,
        &format!("Delete the agent \"{name}\"?"),
        "Its configuration goes for good; its conversations and their tool calls stay readable.",
        &format!("{href}/delete"),
        "Delete the agent",
        &href,
    );
    Ok(Html(page.into_string()))
}

async fn delete(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<CsrfForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let uri = format!("/v1/convai/agents/{}", encode(&id));
    dash.api.call(&viewer.creds(), Method::DELETE, &uri, None).await?;
    Ok(Redirect::to("/agents"))
}
