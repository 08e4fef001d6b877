//! Tools: the list, and one tool's detail with its usage statistics, a latency histogram over
//! time and its execution log with the API's filters (outcome, agent, time range), paged.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use axum::routing::get;
use colloquy_core::time::parse_utc_ms;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::Dash;
use crate::charts::{self, Sample};
use crate::error::{Error, Result};
use crate::format::{duration_secs, encode, payload, pretty, text, unix_time, with_query};
use crate::layout::{self, Kind, Section};
use crate::session::Viewer;

/// Pages of 100 the histogram samples: the most recent calls that match the filters.
const HISTOGRAM_PAGES: usize = 3;

pub fn routes() -> Router<Dash> {
    Router::new().route("/tools", get(list)).route("/tools/{id}", get(detail))
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

#[derive(Debug, Deserialize)]
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
                        td { a href={ "/conversations/" (encode(text(&e["conversation_id"]))) } { code { (text(&e["conversation_id"])) } } }
                        td { a href={ "/agents/" (encode(text(&e["agent_id"]))) } { (agent_name(text(&e["agent_id"]))) } }
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
    let creds = viewer.creds();
    let tool_uri = format!("/v1/convai/tools/{}", encode(&id));
    let agents_uri = format!("/v1/convai/tools/{}/dependent-agents?page_size=100", encode(&id));
    let filters = q.api_filters();
    let log_uri = executions_uri(&id, &filters, "30", q.cursor.as_deref());
    let (tool, agents, log, samples) = futures_util::future::join4(
        dash.api.get(&creds, &tool_uri),
        dash.api.get(&creds, &agents_uri),
        dash.api.get(&creds, &log_uri),
        samples(&dash, &viewer, &id, &filters),
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
        with_query(&format!("/tools/{}", encode(&id)), &pairs)
    });
    let name = tool.as_ref().map_or(id.as_str(), |t| text(&t["tool_config"]["name"]));
    let body = html! {
        @if let Some(tool) = &tool { (facts(&id, tool)) }
        h2 { "Latency over time" }
        @if samples.is_empty() { p.muted { "No calls yet." } } @else { (charts::latency_histogram(&samples)) }
        h2 #log-heading { "Execution log" }
        (log_filters(&id, &q, &agents))
        @if executions.is_empty() { p.muted #no-executions { "No calls match." } } @else { (execution_rows(&executions, &agents)) }
        (layout::next_page(next))
    };
    Ok(Html(layout::page(&viewer, Section::Tools, name, body).into_string()))
}
