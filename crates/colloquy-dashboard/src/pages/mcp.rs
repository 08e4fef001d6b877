//! MCP servers: the registry with a form to add one (its tools then show on its page and
//! in an agent's Tools tab), and one server with its connection status and the tools it
//! offers, listed live from the server.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::{Markup, html};
use serde_json::{Value, json};

use crate::Dash;
use crate::error::Result;
use crate::format::{encode, pretty, text, unix_time};
use crate::forms::{Submitted, error_at, unplaced, violations};
use crate::layout::{self, Kind, Section};
use crate::session::Viewer;

pub fn routes() -> Router<Dash> {
    Router::new()
        .route("/mcp-servers", get(list).post(create))
        .route("/mcp-servers/{id}", get(detail))
}

/// The form's fields, each with the `config` key the API names in its refusals.
const FIELDS: [&str; 6] =
    ["name", "description", "url", "transport", "approval_policy", "secret_token"];

/// The form to add a server, with what was typed and the API's refusals at their fields.
fn new_server_form(
    viewer: &Viewer, secrets: &[(String, String)], typed: &Submitted,
    errors: &BTreeMap<String, String>,
) -> Markup {
    let value = |name: &str| typed.first(name).unwrap_or_default().to_owned();
    let error = |name: &str| error_at(errors, &format!("config.{name}"));
    let placed: Vec<String> = FIELDS.iter().map(|f| format!("config.{f}")).collect();
    let others = unplaced(errors, &placed.iter().map(String::as_str).collect::<Vec<_>>());
    let field = |name: &str, label: &str, kind: &str| {
        let id = format!("mcp-{name}");
        html! {
            div.field {
                label for=(id) { (label) }
                input #(id) type=(kind) name=(name) value=(value(name)) aria-invalid=[error(name).map(|_| "true")];
                @if let Some(e) = error(name) { span.field-error { (e) } }
            }
        }
    };
    html! {
        form.stack.settings method="post" action="/mcp-servers" aria-labelledby="new-server" novalidate {
            (layout::csrf(viewer))
            @if !others.is_empty() { p.error role="alert" { "Not saved: " (others.join("; ")) } }
            (field("name", "Name", "text"))
            (field("description", "Description (optional)", "text"))
            (field("url", "URL of the server", "url"))
            div.field {
                label for="mcp-transport" { "Transport" }
                select #mcp-transport name="transport" {
                    option value="SSE" { "SSE" }
                    option value="STREAMABLE_HTTP" selected[value("transport") == "STREAMABLE_HTTP"] { "Streamable HTTP" }
                }
            }
            div.field {
                label for="mcp-approval" { "Tool calls" }
                select #mcp-approval name="approval_policy" {
                    @for (v, label) in [("require_approval_all", "ask before each call"), ("require_approval_per_tool", "ask for the tools marked so"), ("auto_approve_all", "run without asking")] {
                        option value=(v) selected[value("approval_policy") == v] { (label) }
                    }
                }
            }
            div.field {
                label for="mcp-secret" { "Token (the Authorization header), from the workspace's secrets" }
                select #mcp-secret name="secret_token" {
                    option value="" { "— none —" }
                    @for (id, name) in secrets { option value=(id) selected[value("secret_token") == *id] { (name) } }
                }
            }
            button type="submit" { "Add server" }
        }
    }
}

async fn list(viewer: Viewer, State(dash): State<Dash>) -> Result<Html<String>> {
    let body = list_body(&viewer, &dash, &Submitted(Vec::new()), &BTreeMap::new()).await?;
    Ok(Html(layout::page(&viewer, Section::McpServers, "MCP servers", body).into_string()))
}

/// `POST /mcp-servers`: adds a server through the API.
async fn create(
    viewer: Viewer, State(dash): State<Dash>, Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response> {
    let form = Submitted(pairs);
    viewer.check(form.first("_csrf").unwrap_or_default())?;
    let field = |name: &str| form.first(name).unwrap_or_default().trim().to_owned();
    let mut config = json!({
        "name": field("name"), "description": field("description"), "url": field("url"),
        "transport": field("transport"), "approval_policy": field("approval_policy"),
    });
    if !field("secret_token").is_empty() {
        config["secret_token"] = json!({"secret_id": field("secret_token")});
    }
    let body = json!({"config": config});
    let (status, answer) =
        dash.api.raw(&viewer.creds(), Method::POST, "/v1/convai/mcp-servers", Some(&body)).await?;
    if status.is_success() {
        return Ok(
            Redirect::to(&format!("/mcp-servers/{}", encode(text(&answer["id"])))).into_response()
        );
    }
    if !status.is_client_error() || status == StatusCode::UNAUTHORIZED {
        return Err(crate::api::refusal(status, &answer));
    }
    let errors = violations(&answer);
    let body = list_body(&viewer, &dash, &form, &errors).await?;
    let page = layout::page(&viewer, Section::McpServers, "MCP servers", body);
    Ok((status, Html(page.into_string())).into_response())
}

async fn list_body(
    viewer: &Viewer, dash: &Dash, typed: &Submitted, errors: &BTreeMap<String, String>,
) -> Result<Markup> {
    let page = dash.api.get(&viewer.creds(), "/v1/convai/mcp-servers").await?;
    let servers: Vec<Value> = page["mcp_servers"].as_array().cloned().unwrap_or_default();
    let secrets = super::tool_builder::secrets(dash, viewer).await?;
    Ok(html! {
        @if servers.is_empty() { p.muted { "No MCP servers yet." } } @else {
            table {
                thead { tr { th { "Name" } th { "URL" } th { "Transport" } th { "Approval" } th.num { "Agents" } th { "Created" } } }
                tbody {
                    @for s in &servers {
                        tr {
                            td { a href={ "/mcp-servers/" (encode(text(&s["id"]))) } { (text(&s["config"]["name"])) } }
                            td { code { (s["config"]["url"].as_str().unwrap_or("(secret)")) } }
                            td { (text(&s["config"]["transport"])) }
                            td { (text(&s["config"]["approval_policy"])) }
                            td.num { (s["dependent_agents"].as_array().map_or(0, Vec::len)) }
                            td { (unix_time(&s["metadata"]["created_at"])) }
                        }
                    }
                }
            }
        }
        h2 #new-server { "Add a server" }
        (new_server_form(viewer, &secrets, typed, errors))
    })
}

async fn detail(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
) -> Result<Html<String>> {
    let creds = viewer.creds();
    let server_uri = format!("/v1/convai/mcp-servers/{}", encode(&id));
    let tools_uri = format!("{server_uri}/tools");
    let (server, tools) = futures_util::future::join(
        dash.api.get(&creds, &server_uri),
        dash.api.get(&creds, &tools_uri),
    )
    .await;
    let server = server?;
    let tools = tools?;
    let connected = tools["success"].as_bool() == Some(true);
    let listed = tools["tools"].as_array().cloned().unwrap_or_default();
    let body = html! {
        dl.facts {
            dt { "Server id" } dd { code { (id) } }
            dt { "Connection" } dd #connection {
                @if connected { (layout::badge("connected", Kind::Good)) " " (listed.len()) " tools" }
                @else { (layout::badge("unreachable", Kind::Bad)) " " (text(&tools["error_message"])) }
            }
            dt { "Transport" } dd { (text(&server["config"]["transport"])) }
            dt { "Approval policy" } dd { (text(&server["config"]["approval_policy"])) }
            dt { "Used by" } dd {
                @for a in server["dependent_agents"].as_array().into_iter().flatten() {
                    a href={ "/agents/" (encode(text(&a["id"]))) } { (text(&a["name"])) } " "
                }
            }
        }
        details { summary { "Configuration" } pre { (pretty(&server["config"])) } }
        h2 { "Tools" }
        @if listed.is_empty() { p.muted { "No tools listed." } } @else {
            table {
                thead { tr { th { "Name" } th { "Description" } th { "Input schema" } } }
                tbody {
                    @for t in &listed {
                        tr {
                            td { code { (text(&t["name"])) } }
                            td { (text(&t["description"])) }
                            td { details { summary { "Schema" } pre { (pretty(&t["inputSchema"])) } } }
                        }
                    }
                }
            }
        }
    };
    let name = text(&server["config"]["name"]).to_owned();
    Ok(Html(layout::page(&viewer, Section::McpServers, &name, body).into_string()))
}
