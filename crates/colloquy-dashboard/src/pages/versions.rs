//! An agent's branches and versions: the branches with their share of traffic and how far each
//! is from main, a new branch, the traffic split, a branch's versions with "run the tests on
//! this version", a side-by-side diff of two versions, and a merge shown before it is made
//! (conflicts listed by field) then made. Everything goes through the API.

use axum::extract::{Path, Query, RawForm, State};
use axum::http::Method;
use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use colloquy_core::merge::changed_paths;
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
        .route("/agents/{id}/versions", get(page))
        .route("/agents/{id}/branches", post(create_branch))
        .route("/agents/{id}/deploy", post(deploy))
        .route("/agents/{id}/merge", get(merge_preview).post(merge))
        .route("/agents/{id}/versions/{version}/run-tests", post(run_tests))
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// The branch whose versions are listed (main when absent).
    branch: Option<String>,
    /// Two versions to compare.
    a: Option<String>,
    b: Option<String>,
}

fn base(id: &str) -> String {
    format!("/agents/{}", encode(id))
}

/// A share of traffic as a whole percentage.
fn percent(share: &Value) -> String {
    format!("{:.0}", share.as_f64().unwrap_or(0.0) * 100.0)
}

/// The value at a dot-path, as short JSON (or "absent").
fn at_path(doc: &Value, path: &str) -> String {
    let mut v = doc;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        match v.get(part) {
            Some(next) => v = next,
            None => return "absent".into(),
        }
    }
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The agent document without what differs between any two reads (ids, times, access).
fn comparable(agent: &Value) -> Value {
    let mut doc = agent.clone();
    if let Some(obj) = doc.as_object_mut() {
        for key in
            ["agent_id", "metadata", "access_info", "version_id", "branch_id", "main_branch_id"]
        {
            obj.remove(key);
        }
    }
    doc
}

/// Two documents side by side, one row per field that differs.
fn diff_table(left: &Value, right: &Value, left_title: &str, right_title: &str) -> Markup {
    let (left, right) = (comparable(left), comparable(right));
    let paths = changed_paths(&left, &right);
    html! {
        @if paths.is_empty() { p.muted { "No differences." } } @else {
            table.diff {
                thead { tr { th { "Field" } th { (left_title) } th { (right_title) } } }
                tbody {
                    @for path in &paths {
                        tr {
                            td { code { (path) } }
                            td { pre { (at_path(&left, path)) } }
                            td { pre { (at_path(&right, path)) } }
                        }
                    }
                }
            }
        }
    }
}

fn branches_table(viewer: &Viewer, id: &str, branches: &[Value]) -> Markup {
    html! {
        form method="post" action={ (base(id)) "/deploy" } aria-label="Traffic split" {
            (layout::csrf(viewer))
            table {
                thead { tr { th { "Branch" } th.num { "Ahead of main" } th.num { "Behind main" } th.num { "Calls (7 days)" } th { "Live traffic (%)" } } }
                tbody {
                    @for b in branches {
                        @let bid = text(&b["id"]);
                        tr {
                            td { a href=(with_query(&format!("{}/versions", base(id)), &[("branch", Some(bid))])) { (text(&b["name"])) } }
                            td.num { (b["commits_ahead"]) }
                            td.num { (b["commits_behind"]) }
                            td.num { (b["calls_7d"]) }
                            td { input type="number" min="0" max="100" step="1" name={ "share_" (bid) } value=(percent(&b["current_live_percentage"])) aria-label={ "Traffic for " (text(&b["name"])) }; }
                        }
                    }
                }
            }
            div.actions { button type="submit" { "Set the traffic split" } }
        }
    }
}

fn versions_table(viewer: &Viewer, id: &str, branch: &Value, others: &[Value]) -> Markup {
    let versions = branch["most_recent_versions"].as_array().cloned().unwrap_or_default();
    let bid = text(&branch["id"]);
    html! {
        h2 { "Versions of " (text(&branch["name"])) }
        form method="get" action={ (base(id)) "/versions" } aria-label="Compare versions" {
            input type="hidden" name="branch" value=(bid);
            table {
                thead { tr { th { "#" } th { "Saved" } th { "By" } th { "Summary" } th { "Compare" } th { "Tests" } } }
                tbody {
                    @for (i, v) in versions.iter().enumerate() {
                        @let vid = text(&v["id"]);
                        tr {
                            td.num { (v["seq_no_in_branch"]) }
                            td { (unix_time(&v["time_committed_secs"])) }
                            td { (text(&v["access_info"]["creator_name"])) }
                            td { (text(&v["version_description"])) }
                            td {
                                label { input type="radio" name="a" value=(vid) checked[i == 1]; " A" }
                                " "
                                label { input type="radio" name="b" value=(vid) checked[i == 0]; " B" }
                            }
                            td { (layout::action_button(viewer, &format!("{}/versions/{}/run-tests", base(id), encode(vid)), "Run tests on this version", "secondary")) }
                        }
                    }
                }
            }
            div.actions { button type="submit" { "Compare A with B" } }
        }
        h2 { "Merge " (text(&branch["name"])) }
        form method="get" action={ (base(id)) "/merge" } aria-label="Merge" {
            input type="hidden" name="source" value=(bid);
            label { "Into " select name="target" {
                @for b in others.iter().filter(|b| b["id"] != branch["id"]) {
                    option value=(text(&b["id"])) { (text(&b["name"])) }
                }
            } }
            button type="submit" { "Preview the merge" }
        }
    }
}

fn new_branch_form(viewer: &Viewer, id: &str, head: &str) -> Markup {
    html! {
        h2 { "New branch" }
        form.stack method="post" action={ (base(id)) "/branches" } aria-label="New branch" {
            (layout::csrf(viewer))
            input type="hidden" name="parent_version_id" value=(head);
            label { "Name" input type="text" name="name" required maxlength="140"; }
            label { "Description" input type="text" name="description" maxlength="4096"; }
            button type="submit" { "Create the branch from this branch's latest version" }
        }
    }
}

async fn page(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Query(q): Query<PageQuery>,
) -> Result<Html<String>> {
    let who = viewer.creds();
    let agent_uri = format!("/v1/convai/agents/{}", encode(&id));
    let agent = dash.api.get(&who, &agent_uri).await?;
    let list =
        dash.api.get(&who, &format!("{agent_uri}/branches?include_commit_status=true")).await?;
    let branches = list["results"].as_array().cloned().unwrap_or_default();
    let branch_id = q.branch.unwrap_or_else(|| text(&agent["main_branch_id"]).to_owned());
    let branch =
        dash.api.get(&who, &format!("{agent_uri}/branches/{}", encode(&branch_id))).await?;
    let head =
        dash.api.get(&who, &with_query(&agent_uri, &[("branch_id", Some(&branch_id))])).await?;
    let compared = match (q.a.as_deref(), q.b.as_deref()) {
        (Some(a), Some(b)) => {
            let left =
                dash.api.get(&who, &with_query(&agent_uri, &[("version_id", Some(a))])).await?;
            let right =
                dash.api.get(&who, &with_query(&agent_uri, &[("version_id", Some(b))])).await?;
            Some(diff_table(&left, &right, "A", "B"))
        }
        _ => None,
    };
    let body = html! {
        p { a href=(base(&id)) { "← " (text(&agent["name"])) } }
        h2 { "Branches" }
        (branches_table(&viewer, &id, &branches))
        (versions_table(&viewer, &id, &branch, &branches))
        @if let Some(diff) = compared { h2 #diff { "A compared with B" } (diff) }
        (new_branch_form(&viewer, &id, text(&head["version_id"])))
    };
    let title = format!("Versions of {}", text(&agent["name"]));
    Ok(Html(layout::page(&viewer, Section::Agents, &title, body).into_string()))
}

#[derive(Debug, Deserialize)]
pub struct BranchForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    parent_version_id: String,
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_branch(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<BranchForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let uri = format!("/v1/convai/agents/{}/branches", encode(&id));
    let body = json!({"parent_version_id": form.parent_version_id, "name": form.name, "description": form.description});
    let made = dash.api.call(&viewer.creds(), Method::POST, &uri, Some(&body)).await?;
    let branch = text(&made["created_branch_id"]);
    Ok(Redirect::to(&with_query(&format!("{}/versions", base(&id)), &[("branch", Some(branch))])))
}

async fn deploy(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, RawForm(raw): RawForm,
) -> Result<Redirect> {
    let fields: Vec<(String, String)> = form_urlencoded::parse(&raw).into_owned().collect();
    let csrf = fields.iter().find(|(k, _)| k == "_csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    viewer.check(csrf)?;
    let mut requests = Vec::new();
    for (key, value) in &fields {
        let Some(branch) = key.strip_prefix("share_") else { continue };
        let share: f64 = value
            .trim()
            .parse()
            .map_err(|_| Error::BadInput(format!("{value:?} is not a percentage")))?;
        if share > 0.0 {
            requests.push(json!({"branch_id": branch, "deployment_strategy": {"type": "percentage", "traffic_percentage": share / 100.0}}));
        }
    }
    let uri = format!("/v1/convai/agents/{}/deployments", encode(&id));
    let body = json!({"deployment_request": {"requests": requests}});
    dash.api.call(&viewer.creds(), Method::POST, &uri, Some(&body)).await?;
    Ok(Redirect::to(&format!("{}/versions", base(&id))))
}

#[derive(Debug, Deserialize)]
pub struct MergeQuery {
    source: String,
    target: String,
}

async fn merge_preview(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Query(q): Query<MergeQuery>,
) -> Result<Html<String>> {
    let who = viewer.creds();
    let agent_uri = format!("/v1/convai/agents/{}", encode(&id));
    let preview_uri = with_query(
        &format!("{agent_uri}/branches/{}/merge-preview", encode(&q.source)),
        &[("target_branch_id", Some(&q.target))],
    );
    let preview = dash.api.get(&who, &preview_uri).await?;
    let target =
        dash.api.get(&who, &with_query(&agent_uri, &[("branch_id", Some(&q.target))])).await?;
    let conflicts = preview["overridden_fields"].as_array().cloned().unwrap_or_default();
    let body = html! {
        p { a href={ (base(&id)) "/versions" } { "← Branches and versions" } }
        @if conflicts.is_empty() { p { "No conflicts: every field changed on one side only." } } @else {
            p.error role="alert" { "Both branches changed these fields; merging keeps the target's values unless you take the source's:" }
            ul { @for c in &conflicts { li { code { (text(c)) } } } }
        }
        h2 { "What the merge changes on the target" }
        (diff_table(&target, &preview, "Target now", "After the merge"))
        form.stack method="post" action={ (base(&id)) "/merge" } aria-label="Merge" {
            (layout::csrf(&viewer))
            input type="hidden" name="source" value=(q.source);
            input type="hidden" name="target" value=(q.target);
            @if !conflicts.is_empty() { label { input type="checkbox" name="force" value="true"; " Take the source's values where both changed" } }
            label { input type="checkbox" name="archive" value="true" checked; " Archive the source branch afterwards" }
            button type="submit" { "Merge" }
        }
    };
    Ok(Html(layout::page(&viewer, Section::Agents, "Merge preview", body).into_string()))
}

#[derive(Debug, Deserialize)]
pub struct MergeForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    source: String,
    target: String,
    force: Option<String>,
    archive: Option<String>,
}

async fn merge(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, Form(form): Form<MergeForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let uri = with_query(
        &format!("/v1/convai/agents/{}/branches/{}/merge", encode(&id), encode(&form.source)),
        &[("target_branch_id", Some(&form.target))],
    );
    let body =
        json!({"force": form.force.is_some(), "archive_source_branch": form.archive.is_some()});
    dash.api.call(&viewer.creds(), Method::POST, &uri, Some(&body)).await?;
    Ok(Redirect::to(&with_query(
        &format!("{}/versions", base(&id)),
        &[("branch", Some(&form.target))],
    )))
}

async fn run_tests(
    viewer: Viewer, State(dash): State<Dash>, Path((id, version)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let who = viewer.creds();
    let agent_uri = format!("/v1/convai/agents/{}", encode(&id));
    let agent =
        dash.api.get(&who, &with_query(&agent_uri, &[("version_id", Some(&version))])).await?;
    let tests: Vec<Value> = agent["platform_settings"]["testing"]["attached_tests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| json!({"test_id": t["test_id"]}))
        .collect();
    if tests.is_empty() {
        return Err(Error::BadInput("This version has no attached tests to run.".into()));
    }
    let body = json!({"tests": tests, "version_id": version});
    let invocation =
        dash.api.call(&who, Method::POST, &format!("{agent_uri}/run-tests"), Some(&body)).await?;
    Ok(Redirect::to(&format!("/tests/invocations/{}", encode(text(&invocation["id"])))))
}
