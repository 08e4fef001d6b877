//! Tests and test invocations: the tests of the workspace, running a selection on an agent,
//! the agent's invocations, and one invocation's runs (pass/fail, the judge's rationale, a
//! re-run button), refreshing itself while runs are pending.

use axum::extract::{Path, Query, RawForm, State};
use axum::http::Method;
use axum::response::{Html, Redirect};
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

/// Seconds between refreshes of an invocation whose runs are still pending.
const REFRESH_SECS: u32 = 2;

pub fn routes() -> Router<Dash> {
    Router::new()
        .route("/tests", get(list))
        .route("/tests/run", post(run))
        .route("/tests/invocations/{id}", get(invocation))
        .route("/tests/invocations/{id}/rerun", post(rerun))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    agent_id: Option<String>,
    search: Option<String>,
    cursor: Option<String>,
}

async fn list(
    viewer: Viewer, State(dash): State<Dash>, Query(q): Query<ListQuery>,
) -> Result<Html<String>> {
    let creds = viewer.creds();
    let agent = q.agent_id.as_deref().filter(|a| !a.is_empty());
    let tests_uri = with_query(
        "/v1/convai/agent-testing",
        &[
            ("page_size", Some("100")),
            ("search", q.search.as_deref()),
            ("cursor", q.cursor.as_deref()),
        ],
    );
    let invocations_uri = agent.map(|a| {
        with_query(
            "/v1/convai/test-invocations",
            &[("agent_id", Some(a)), ("page_size", Some("30"))],
        )
    });
    let (tests, agents, invocations) = futures_util::future::join3(
        dash.api.get(&creds, &tests_uri),
        dash.api.get(&creds, "/v1/convai/agents?page_size=100"),
        async {
            match &invocations_uri {
                Some(uri) => dash.api.get(&creds, uri).await.map(Some),
                None => Ok(None),
            }
        },
    )
    .await;
    let tests = tests?;
    let agents =
        agents.map(|a| a["agents"].as_array().cloned().unwrap_or_default()).unwrap_or_default();
    let invocations = invocations?;
    let rows = tests["tests"].as_array().cloned().unwrap_or_default();
    let next = tests["next_cursor"].as_str().map(|cursor| {
        with_query(
            "/tests",
            &[("agent_id", agent), ("search", q.search.as_deref()), ("cursor", Some(cursor))],
        )
    });
    let body = html! {
        div.actions { a.button href="/tests/new" { "New test" } }
        (filters(agent, &agents, q.search.as_deref()))
        (tests_table(&viewer, agent, &rows))
        (layout::next_page(next))
        @if let Some(invocations) = invocations { (invocations_table(&invocations)) }
    };
    Ok(Html(layout::page(&viewer, Section::Tests, "Tests", body).into_string()))
}

/// The agent to run tests on, and the search.
fn filters(agent: Option<&str>, agents: &[Value], search: Option<&str>) -> Markup {
    html! {
        form.filters method="get" action="/tests" role="search" {
            label { "Agent"
                select name="agent_id" {
                    option value="" selected[agent.is_none()] { "Choose an agent to run tests on" }
                    @for a in agents {
                        option value=(text(&a["agent_id"])) selected[agent == Some(text(&a["agent_id"]))] { (text(&a["name"])) }
                    }
                }
            }
            label { "Search tests" input type="search" name="search" value=[search]; }
            button type="submit" { "Show" }
        }
    }
}

/// The workspace's tests, each with a box to run it.
fn tests_table(viewer: &Viewer, agent: Option<&str>, rows: &[Value]) -> Markup {
    html! {
        @if rows.is_empty() { p.muted { "No tests yet: make one with New test, or from an agent's turn on a conversation's page." } } @else {
            form method="post" action="/tests/run" aria-label="Run tests" {
                (layout::csrf(viewer))
                input type="hidden" name="agent_id" value=(agent.unwrap_or(""));
                table {
                    thead { tr { th { "Run" } th { "Name" } th { "Type" } th { "Test id" } } }
                    tbody {
                        @for t in rows {
                            @let id = text(&t["id"]);
                            tr {
                                td { input type="checkbox" name="test_id" value=(id) id={ "run-" (id) } aria-label={ "Run " (text(&t["name"])) }; }
                                td { label for={ "run-" (id) } { (text(&t["name"])) } }
                                td { (text(&t["type"])) }
                                td { code { (id) } }
                            }
                        }
                    }
                }
                div.actions {
                    @if agent.is_some() { button type="submit" { "Run selected tests" } }
                    @else { p.hint { "Choose an agent above to run tests on it." } }
                }
            }
        }
    }
}

/// The chosen agent's test invocations.
fn invocations_table(invocations: &Value) -> Markup {
    let list = invocations["results"].as_array().cloned().unwrap_or_default();
    html! {
        h2 { "Test runs of this agent" }
        @if list.is_empty() { p.muted { "None yet." } } @else {
            table {
                thead { tr { th { "Invocation" } th { "Started" } th.num { "Runs" } th.num { "Passed" } th.num { "Failed" } th.num { "Pending" } } }
                tbody {
                    @for inv in &list {
                        tr {
                            td { a href={ "/tests/invocations/" (encode(text(&inv["id"]))) } { (text(&inv["title"])) } }
                            td { (unix_time(&inv["created_at_unix_secs"])) }
                            td.num { (inv["test_run_count"]) }
                            td.num { (inv["passed_count"]) }
                            td.num { (inv["failed_count"]) }
                            td.num { (inv["pending_count"]) }
                        }
                    }
                }
            }
        }
    }
}

/// The fields of a form with repeated keys (`test_id=a&test_id=b`).
fn fields(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw).into_owned().collect()
}

async fn run(viewer: Viewer, State(dash): State<Dash>, RawForm(raw): RawForm) -> Result<Redirect> {
    let fields = fields(&raw);
    let value =
        |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or("");
    viewer.check(value("_csrf"))?;
    let agent = value("agent_id");
    let tests: Vec<Value> = fields
        .iter()
        .filter(|(k, _)| k == "test_id")
        .map(|(_, v)| json!({ "test_id": v }))
        .collect();
    if agent.is_empty() || tests.is_empty() {
        return Err(Error::BadInput("Choose an agent and at least one test.".into()));
    }
    let uri = format!("/v1/convai/agents/{}/run-tests", encode(agent));
    let invocation = dash
        .api
        .call(&viewer.creds(), Method::POST, &uri, Some(&json!({ "tests": tests })))
        .await?;
    Ok(Redirect::to(&format!("/tests/invocations/{}", encode(text(&invocation["id"])))))
}

fn rationale(run: &Value) -> Markup {
    let r = &run["condition_result"]["rationale"];
    let summary = r["summary"].as_str().filter(|s| !s.is_empty());
    html! {
        @if let Some(summary) = summary { p { (summary) } }
        @for m in r["messages"].as_array().into_iter().flatten() {
            @if let Some(m) = m.as_str().filter(|m| Some(*m) != summary) { p.muted { (m) } }
        }
    }
}

async fn invocation(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
) -> Result<Html<String>> {
    let inv = dash
        .api
        .get(&viewer.creds(), &format!("/v1/convai/test-invocations/{}", encode(&id)))
        .await?;
    let runs = inv["test_runs"].as_array().cloned().unwrap_or_default();
    let links = dash
        .api
        .get(&viewer.creds(), &format!("/api/test-invocations/{}/conversations", encode(&id)))
        .await?;
    let conversation_of = |run: &Value| {
        links["conversations"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["test_run_id"] == run["test_run_id"])
            .and_then(|l| l["conversation_id"].as_str().map(str::to_owned))
    };
    let done = runs.iter().filter(|r| text(&r["status"]) != "pending").count();
    let passed = runs.iter().filter(|r| text(&r["status"]) == "passed").count();
    let pending = done < runs.len();
    let body = html! {
        p { a href=(with_query("/tests", &[("agent_id", Some(text(&inv["agent_id"])))])) { "← Tests of this agent" } }
        dl.facts {
            dt { "Agent" } dd { a href={ "/agents/" (encode(text(&inv["agent_id"]))) } { code { (text(&inv["agent_id"])) } } }
            dt { "Started" } dd { (unix_time(&inv["created_at"])) }
            dt { "Progress" } dd {
                progress #progress max=(runs.len()) value=(done) aria-label="Runs finished" { (done) " of " (runs.len()) }
                " " span #summary { (done) " of " (runs.len()) " finished, " (passed) " passed" }
            }
        }
        @if pending { p.hint role="status" { "Runs are pending; this page refreshes every " (REFRESH_SECS) " seconds." } }
        table {
            thead { tr { th { "Test" } th { "Status" } th { "Judge's rationale" } th { "Conversation" } } }
            tbody {
                @for r in &runs {
                    tr.run data-status=(text(&r["status"])) {
                        td { (text(&r["test_name"])) }
                        td { (layout::status(text(&r["status"]))) }
                        td { (rationale(r)) }
                        td { @if let Some(c) = conversation_of(r) { a href={ "/conversations/" (encode(&c)) } { code { (c) } } } }
                    }
                }
            }
        }
        @if !pending {
            div.actions { (layout::action_button(&viewer, &format!("/tests/invocations/{}/rerun", encode(&id)), "Re-run all tests", "")) }
        }
    };
    let refresh = html! {
        @if pending { meta http-equiv="refresh" content=(REFRESH_SECS); }
    };
    let name = text(&inv["name"]).trim();
    let title = format!("Test run {}", if name.is_empty() { id.as_str() } else { name });
    Ok(Html(layout::page_with(&viewer, Section::Tests, &title, refresh, body).into_string()))
}

async fn rerun(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<CsrfForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let creds = viewer.creds();
    let uri = format!("/v1/convai/test-invocations/{}", encode(&id));
    let inv = dash.api.get(&creds, &uri).await?;
    let run_ids: Vec<&Value> =
        inv["test_runs"].as_array().into_iter().flatten().map(|r| &r["test_run_id"]).collect();
    let body = json!({ "test_run_ids": run_ids, "agent_id": inv["agent_id"] });
    dash.api.call(&creds, Method::POST, &format!("{uri}/resubmit"), Some(&body)).await?;
    Ok(Redirect::to(&format!("/tests/invocations/{}", encode(&id))))
}
