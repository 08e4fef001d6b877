//! Tools: the list, and one tool's detail with its usage statistics, a latency histogram over
//! time and its execution log with the API's filters (outcome, agent, time range), paged.

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use colloquy_core::time::parse_utc_ms;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Dash;
use crate::charts::{self, Sample};
use crate::error::{Error, Result};
use crate::format::{duration_secs, encode, payload, pretty, text, unix_time, with_query};
use crate::layout::{self, Kind, Section};
use crate::session::Viewer;

/// Pages of 100 the histogram samples: the most recent calls that match the filters.
const HISTOGRAM_PAGES: usize = 3;

pub fn routes() -> Router<Dash> {
    Router::new()
        .route("/tools", get(list))
        .route("/tools/{id}", get(detail))
        .route("/tools/{id}/test", post(test))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    search: Option<String>,
    cursor: Option<String>,
}

async fn list(
    viewer: Viewer, State(dash): State<Dash>, Query(q): Query<ListQuery>,
) -> Result<Html<String>> {
    let page = dash
        .api
        .get(
            &viewer.creds(),
            &with_query(
                "/v1/convai/tools",
                &[
                    ("page_size", Some("30")),
                    ("search", q.search.as_deref()),
                    ("cursor", q.cursor.as_deref()),
                ],
            ),
        )
        .await?;
    let next = page["next_cursor"].as_str().map(|cursor| {
        with_query("/tools", &[("search", q.search.as_deref()), ("cursor", Some(cursor))])
    });
    let tools = page["tools"].as_array().cloned().unwrap_or_default();
    let body = html! {
        div.actions {
            a.button href="/tools/new?type=webhook" { "New webhook tool" }
            a.button href="/tools/new?type=client" { "New client tool" }
        }
        form.filters method="get" action="/tools" role="search" {
            label { "Search by name" input type="search" name="search" value=[q.search.as_deref()]; }
            button type="submit" { "Filter" }
        }
        @if tools.is_empty() { p.muted { "No tools match." } } @else {
            table {
                thead { tr { th { "Name" } th { "Type" } th { "Tool id" } th.num { "Calls" } th.num { "Average latency" } } }
                tbody {
                    @for tool in &tools {
                        tr {
                            td { a href={ "/tools/" (encode(text(&tool["id"]))) } { (text(&tool["tool_config"]["name"])) } }
                            td { (text(&tool["tool_config"]["type"])) }
                            td { code { (text(&tool["id"])) } }
                            td.num { (tool["usage_stats"]["total_calls"]) }
                            td.num { (duration_secs(tool["usage_stats"]["avg_latency_secs"].as_f64().unwrap_or(0.0))) }
                        }
                    }
                }
            }
        }
        (layout::next_page(next))
    };
    Ok(Html(layout::page(&viewer, Section::Tools, "Tools", body).into_string()))
}

#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    is_error: Option<String>,
    agent_id: Option<String>,
    after: Option<String>,
    before: Option<String>,
    cursor: Option<String>,
}

impl LogQuery {
    /// The API's filter parameters for these form values.
    fn api_filters(&self) -> Vec<(&'static str, Option<String>)> {
        let secs = |v: &Option<String>| {
            v.as_deref().and_then(parse_utc_ms).map(|ms| format!("{:.3}", ms as f64 / 1000.0))
        };
        let is_error = match self.is_error.as_deref() {
            Some("true") => Some("true".to_owned()),
            Some("false") => Some("false".to_owned()),
            _ => None,
        };
        vec![
            ("is_error", is_error),
            ("agent_id", self.agent_id.clone()),
            ("start_time", secs(&self.after)),
            ("end_time", secs(&self.before)),
        ]
    }

    /// The same filters as the dashboard's own query string (for paging links).
    fn form_pairs(&self) -> Vec<(&'static str, Option<&str>)> {
        vec![
            ("is_error", self.is_error.as_deref()),
            ("agent_id", self.agent_id.as_deref()),
            ("after", self.after.as_deref()),
            ("before", self.before.as_deref()),
        ]
    }
}

fn executions_uri(
    id: &str, filters: &[(&str, Option<String>)], page_size: &str, cursor: Option<&str>,
) -> String {
    let mut pairs: Vec<(&str, Option<&str>)> =
        filters.iter().map(|(k, v)| (*k, v.as_deref())).collect();
    pairs.push(("page_size", Some(page_size)));
    pairs.push(("cursor", cursor));
    with_query(&format!("/v1/convai/tools/{}/executions", encode(id)), &pairs)
}

/// The most recent calls matching the filters, for the histogram: a few pages at most, so the
/// page costs the same at a thousand records or a million.
async fn samples(
    dash: &Dash, viewer: &Viewer, id: &str, filters: &[(&str, Option<String>)],
) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..HISTOGRAM_PAGES {
        let page = dash
            .api
            .get(&viewer.creds(), &executions_uri(id, filters, "100", cursor.as_deref()))
            .await?;
        for e in page["executions"].as_array().into_iter().flatten() {
            out.push(Sample {
                at_ms: (e["timestamp"].as_f64().unwrap_or(0.0) * 1000.0) as i64,
                latency_secs: e["latency_secs"].as_f64().unwrap_or(0.0),
                failed: e["is_error"].as_bool() == Some(true),
            });
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    Ok(out)
}

/// The log's rows; agents are named from `agents` (the tool's dependents), by id otherwise.
fn execution_rows(executions: &[Value], agents: &[Value]) -> Markup {
    let agent_name = |id: &str| {
        agents
            .iter()
            .find(|a| a["id"] == id)
            .and_then(|a| a["name"].as_str())
            .filter(|n| !n.is_empty())
            .map_or_else(|| html! { code { (id) } }, |n| html! { (n) })
    };
    html! {
        table {
            thead { tr { th { "When" } th { "Conversation" } th { "Agent" } th.num { "Latency" } th { "Status" } th { "Details" } } }
            tbody {
                @for e in executions {
                    tr {
                        td { (unix_time(&e["timestamp"])) }
                        @if text(&e["agent_id"]).is_empty() {
                            // A call made by hand ("test this tool"): no conversation, no agent.
                            td { code { (text(&e["conversation_id"])) } }
                            td { span.badge.neutral { "test call" } }
                        } @else {
                            td { a href={ "/conversations/" (encode(text(&e["conversation_id"]))) } { code { (text(&e["conversation_id"])) } } }
                            td { a href={ "/agents/" (encode(text(&e["agent_id"]))) } { (agent_name(text(&e["agent_id"]))) } }
                        }
                        td.num { (duration_secs(e["latency_secs"].as_f64().unwrap_or(0.0))) }
                        td {
                            @if e["is_error"].as_bool() == Some(true) {
                                (layout::badge("error", Kind::Bad))
                                @if let Some(m) = e["error_message"].as_str() { " " span.muted { (m) } }
                            } @else { (layout::badge("ok", Kind::Good)) }
                        }
                        td { details { summary { "Payloads" } h3.muted { "Request" } pre { (payload(&e["request_payload"])) } h3.muted { "Response" } pre { (payload(&e["response_payload"])) } } }
                    }
                }
            }
        }
    }
}

/// What the tool is and how it has done.
fn facts(id: &str, tool: &Value) -> Markup {
    html! {
        dl.facts {
            dt { "Tool id" } dd { code { (id) } }
            dt { "Type" } dd { (text(&tool["tool_config"]["type"])) }
            dt { "Description" } dd { (text(&tool["tool_config"]["description"])) }
            dt { "Calls" } dd { (tool["usage_stats"]["total_calls"]) }
            dt { "Average latency" } dd { (duration_secs(tool["usage_stats"]["avg_latency_secs"].as_f64().unwrap_or(0.0))) }
        }
        details { summary { "Configuration" } pre { (pretty(&tool["tool_config"])) } }
    }
}

/// The execution log's filters: outcome, agent, time range.
fn log_filters(id: &str, q: &LogQuery, agents: &[Value]) -> Markup {
    let outcome = q.is_error.as_deref().unwrap_or("");
    let chosen_agent = q.agent_id.as_deref().unwrap_or("");
    html! {
        form.filters method="get" action={ "/tools/" (encode(id)) } aria-labelledby="log-heading" {
            label { "Outcome"
                select name="is_error" {
                    @for (value, label) in [("", "Any"), ("true", "Errors"), ("false", "Successes")] {
                        option value=(value) selected[outcome == value] { (label) }
                    }
                }
            }
            label { "Agent"
                select name="agent_id" {
                    option value="" selected[chosen_agent.is_empty()] { "Any agent" }
                    @for a in agents {
                        option value=(text(&a["id"])) selected[chosen_agent == text(&a["id"])] { (text(&a["name"])) }
                    }
                    @if !chosen_agent.is_empty() && !agents.iter().any(|a| text(&a["id"]) == chosen_agent) {
                        option value=(chosen_agent) selected { (chosen_agent) }
                    }
                }
            }
            label { "After (UTC)" input type="datetime-local" step="1" name="after" value=[q.after.as_deref()]; }
            label { "Before (UTC)" input type="datetime-local" step="1" name="before" value=[q.before.as_deref()]; }
            button type="submit" { "Filter" }
        }
    }
}

async fn detail(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Query(q): Query<LogQuery>,
) -> Result<Html<String>> {
    Ok(Html(detail_page(&viewer, &dash, &id, &q, None).await?.into_string()))
}

/// A tool's page; `tried` is a call made by hand: the arguments as typed, and its outcome.
async fn detail_page(
    viewer: &Viewer, dash: &Dash, id: &str, q: &LogQuery, tried: Option<(String, Markup)>,
) -> Result<Markup> {
    let creds = viewer.creds();
    let tool_uri = format!("/v1/convai/tools/{}", encode(id));
    let agents_uri = format!("/v1/convai/tools/{}/dependent-agents?page_size=100", encode(id));
    let filters = q.api_filters();
    let log_uri = executions_uri(id, &filters, "30", q.cursor.as_deref());
    let (tool, agents, log, samples) = futures_util::future::join4(
        dash.api.get(&creds, &tool_uri),
        dash.api.get(&creds, &agents_uri),
        dash.api.get(&creds, &log_uri),
        samples(dash, viewer, id, &filters),
    )
    .await;
    // An MCP tool offered only through its server has a log but no tool record.
    let tool = match tool {
        Err(Error::Api { status, .. })
            if status == 404 && id.starts_with(colloquy_core::ids::prefix::MCP_TOOL) =>
        {
            None
        }
        other => Some(other?),
    };
    let agents =
        agents.map(|a| a["agents"].as_array().cloned().unwrap_or_default()).unwrap_or_default();
    let log = log?;
    let samples = samples?;
    let executions = log["executions"].as_array().cloned().unwrap_or_default();
    let next = log["next_cursor"].as_str().map(|cursor| {
        let mut pairs = q.form_pairs();
        pairs.push(("cursor", Some(cursor)));
        with_query(&format!("/tools/{}", encode(id)), &pairs)
    });
    let name = tool.as_ref().map_or(id, |t| text(&t["tool_config"]["name"]));
    let kind = tool.as_ref().map_or("", |t| text(&t["tool_config"]["type"]));
    let body = html! {
        @if let Some(tool) = &tool {
            (facts(id, tool))
            @if kind == "webhook" || kind == "client" {
                div.actions { a href={ "/tools/" (encode(id)) "/edit" } { "Edit this tool" } }
            }
            @if kind == "webhook" {
                h2 #test-heading { "Test this tool" }
                (test_form(viewer, id, tool, tried.as_ref().map(|(typed, _)| typed.as_str())))
                @if let Some((_, outcome)) = &tried { (outcome) }
            }
        }
        h2 { "Latency over time" }
        @if samples.is_empty() { p.muted { "No calls yet." } } @else { (charts::latency_histogram(&samples)) }
        h2 #log-heading { "Execution log" }
        (log_filters(id, q, &agents))
        @if executions.is_empty() { p.muted #no-executions { "No calls match." } } @else { (execution_rows(&executions, &agents)) }
        (layout::next_page(next))
    };
    Ok(layout::page(viewer, Section::Tools, name, body))
}

/// Arguments to start a test from: a plausible value for each parameter the LLM would fill.
fn sample_arguments(config: &Value) -> Value {
    let api = &config["api_schema"];
    let mut out = Map::new();
    for props in [
        &api["path_params_schema"],
        &api["query_params_schema"]["properties"],
        &api["request_body_schema"]["properties"],
        &config["parameters"]["properties"],
    ] {
        for (name, prop) in props.as_object().into_iter().flatten() {
            out.insert(name.clone(), sample(prop));
        }
    }
    Value::Object(out)
}

fn sample(prop: &Value) -> Value {
    if let Some(first) = prop["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match text(&prop["type"]) {
        "number" | "integer" => json!(1),
        "boolean" => json!(true),
        "array" => json!([]),
        "object" => {
            let inner: Map<String, Value> = prop["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), sample(v)))
                .collect();
            Value::Object(inner)
        }
        _ => json!("example"),
    }
}

fn test_form(viewer: &Viewer, id: &str, tool: &Value, typed: Option<&str>) -> Markup {
    let arguments =
        typed.map_or_else(|| pretty(&sample_arguments(&tool["tool_config"])), str::to_owned);
    html! {
        form.stack.wide method="post" action={ "/tools/" (encode(id)) "/test" } aria-labelledby="test-heading" {
            (layout::csrf(viewer))
            label for="tool-arguments" { "Arguments (JSON), as the LLM would send them" }
            textarea.json.short #tool-arguments name="arguments" spellcheck="false" { (arguments) }
            button type="submit" { "Test this tool" }
        }
    }
}

/// What a call made by hand gave: its outcome, time, response and the request it made.
fn tried_panel(answer: &Value) -> Markup {
    let failed = answer["is_error"].as_bool() == Some(true);
    html! {
        section.tried aria-label="Test result" role="status" {
            p {
                @if failed { (layout::badge(text(&answer["status"]), Kind::Bad)) } @else { (layout::badge("success", Kind::Good)) }
                " in " (duration_secs(answer["latency_secs"].as_f64().unwrap_or(0.0)))
                @if let Some(kind) = answer["error_type"].as_str() { " " span.muted { "(" (kind) ")" } }
                " · recorded in the log below as a test call"
            }
            h3 { "Response" }
            pre { (payload(&answer["response"])) }
            @if answer["request"].is_object() {
                details { summary { "The request it made" } pre { (pretty(&answer["request"])) } }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct TestForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    arguments: String,
}

/// `POST /tools/{id}/test`: calls the tool by hand through the API and shows what it gave.
async fn test(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<TestForm>,
) -> Result<Response> {
    viewer.check(&form.csrf)?;
    let (status, outcome) = match serde_json::from_str::<Value>(&form.arguments) {
        Ok(arguments @ Value::Object(_)) => {
            let uri = format!("/api/tools/{}/test", encode(&id));
            let body = json!({"arguments": arguments});
            match dash.api.call(&viewer.creds(), Method::POST, &uri, Some(&body)).await {
                Ok(answer) => (StatusCode::OK, tried_panel(&answer)),
                Err(Error::Api { status, message })
                    if status.is_client_error() && status != StatusCode::NOT_FOUND =>
                {
                    (status, layout::problem(Some(&message)))
                }
                Err(e) => return Err(e),
            }
        }
        _ => {
            let message = "The arguments must be a JSON object.";
            (StatusCode::UNPROCESSABLE_ENTITY, layout::problem(Some(message)))
        }
    };
    let q = LogQuery::default();
    let page = detail_page(&viewer, &dash, &id, &q, Some((form.arguments, outcome))).await?;
    Ok((status, Html(page.into_string())).into_response())
}
