//! MCP servers: the registry, and one server with its connection status and the tools it
//! offers, listed live from the server.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Html;
use axum::routing::get;
use maud::html;

use crate::Dash;
use crate::error::Result;
use crate::format::{encode, pretty, text, unix_time};
use crate::layout::{self, Kind, Section};
use crate::session::Viewer;

pub fn routes() -> Router<Dash> {
    Router::new().route("/mcp-servers", get(list)).route("/mcp-servers/{id}", get(detail))
}

async fn list(viewer: Viewer, State(dash): State<Dash>) -> Result<Html<String>> {
    let page = dash.api.get(&viewer.creds(), "/v1/convai/mcp-servers").await?;
    let servers = page["mcp_servers"].as_array().cloned().unwrap_or_default();
    let body = html! {
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
    };
    Ok(Html(layout::page(&viewer, Section::McpServers, "MCP servers", body).into_string()))
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
