//! The home page of a workspace: its numbers over the last 7 or 30 days (conversations per
//! day and how they ended, tool calls and their failures, latency per tool, the slowest and
//! most failing tools, test runs), from `GET /api/stats`.

use axum::extract::{Query, State};
use axum::response::Html;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::Dash;
use crate::charts::{self, Day};
use crate::error::Result;
use crate::format::{duration_secs, encode, text};
use crate::layout::{self, Section};
use crate::session::Viewer;

/// How many tools the "slowest" and "most failing" lists name.
const TOP: usize = 5;

#[derive(Debug, Deserialize)]
pub struct HomeQuery {
    days: Option<u32>,
}

/// A share as `93.5 %`, or a dash when there is nothing to divide.
fn percent(rate: &Value) -> String {
    rate.as_f64().map_or_else(|| "—".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

/// A tool's p95: an upper bound, from the histogram's buckets.
fn p95(tool: &Value) -> String {
    let secs = tool["p95_latency_secs"].as_f64().unwrap_or(0.0);
    if tool["p95_beyond_histogram"] == true {
        format!("> {}", duration_secs(secs))
    } else {
        format!("≤ {}", duration_secs(secs))
    }
}

fn tile(label: &str, value: &str, detail: &str) -> Markup {
    html! {
        div.tile {
            div.tile-label { (label) }
            div.tile-value { (value) }
            div.muted { (detail) }
        }
    }
}

fn tool_link(tool: &Value) -> Markup {
    html! { a href={ "/tools/" (encode(text(&tool["tool_id"]))) } { (text(&tool["tool_name"])) } }
}

fn tool_lists(tools: &[Value]) -> Markup {
    let mut slowest: Vec<&Value> = tools.iter().collect();
    slowest.sort_by(|a, b| {
        let key = |t: &Value| {
            (t["p95_beyond_histogram"] == true, t["p95_latency_secs"].as_f64().unwrap_or(0.0))
        };
        key(b).partial_cmp(&key(a)).unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut failing: Vec<&Value> =
        tools.iter().filter(|t| t["errors"].as_i64().unwrap_or(0) > 0).collect();
    failing.sort_by(|a, b| {
        let rate = |t: &Value| t["error_rate"].as_f64().unwrap_or(0.0);
        rate(b).total_cmp(&rate(a))
    });
    html! {
        div.grid {
            section aria-labelledby="slowest-heading" {
                h2 #slowest-heading { "Slowest tools (p95)" }
                @if slowest.is_empty() { p.muted { "No tool calls." } }
                ol { @for t in slowest.iter().take(TOP) { li { (tool_link(t)) " " span.muted { (p95(t)) } } } }
            }
            section aria-labelledby="failing-heading" {
                h2 #failing-heading { "Most failing tools" }
                @if failing.is_empty() { p.muted { "No failed tool calls." } }
                ol { @for t in failing.iter().take(TOP) { li { (tool_link(t)) " " span.muted { (percent(&t["error_rate"])) " of " (t["calls"]) } } } }
            }
        }
    }
}

fn tools_table(tools: &[Value]) -> Markup {
    html! {
        @if tools.is_empty() { p.muted { "No tool calls in these days." } } @else {
            table {
                thead { tr { th { "Tool" } th.num { "Calls" } th.num { "Errors" } th.num { "Error rate" } th.num { "Mean latency" } th.num { "p95 latency" } } }
                tbody {
                    @for t in tools {
                        tr {
                            td { (tool_link(t)) }
                            td.num { (t["calls"]) }
                            td.num { (t["errors"]) }
                            td.num { (percent(&t["error_rate"])) }
                            td.num { (duration_secs(t["mean_latency_secs"].as_f64().unwrap_or(0.0))) }
                            td.num { (p95(t)) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /`: the workspace's numbers.
pub async fn home(
    viewer: Viewer, State(dash): State<Dash>, Query(q): Query<HomeQuery>,
) -> Result<Html<String>> {
    let days = if q.days == Some(30) { 30 } else { 7 };
    let stats = dash.api.get(&viewer.creds(), &format!("/api/stats?days={days}")).await?;
    let conversations = &stats["conversations"];
    let per_day: Vec<Day> = conversations["per_day"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| Day {
            date: text(&d["date"]).to_owned(),
            started: d["started"].as_i64().unwrap_or(0),
            successes: d["successes"].as_i64().unwrap_or(0),
            failures: d["failures"].as_i64().unwrap_or(0),
        })
        .collect();
    let tools = stats["tools"].as_array().cloned().unwrap_or_default();
    let judged = conversations["successes"].as_i64().unwrap_or(0)
        + conversations["failures"].as_i64().unwrap_or(0);
    let tests = &stats["tests"];
    let body = html! {
        nav.tabs aria-label="Period" {
            @for (n, label) in [(7, "Last 7 days"), (30, "Last 30 days")] {
                a href={ "/?days=" (n) } aria-current=[(n == days).then_some("page")] { (label) }
            }
        }
        div.tiles {
            (tile("Conversations", &conversations["total"].to_string(), &format!("{} to {}", text(&stats["from"]), text(&stats["to"]))))
            (tile("Success rate", &percent(&conversations["success_rate"]), &format!("of {judged} judged")))
            (tile("Tool calls", &stats["tool_calls"]["total"].to_string(), &format!("{} failed", stats["tool_calls"]["errors"])))
            (tile("Tool error rate", &percent(&stats["tool_calls"]["error_rate"]), "of every call"))
            (tile("Tests passing", &percent(&tests["pass_rate"]), &format!("{} passed, {} failed", tests["passed"], tests["failed"])))
        }
        h2 { "Conversations per day" }
        (charts::daily_bars(&per_day))
        p.muted { "Green: succeeded; red: failed; grey: not judged (yet)." }
        (tool_lists(&tools))
        h2 { "Tools" }
        (tools_table(&tools))
    };
    Ok(Html(layout::page(&viewer, Section::Home, "Overview", body).into_string()))
}
