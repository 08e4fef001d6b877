//! The change log: who created, updated and deleted what in the workspace (administrators).

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use crate::Dash;
use crate::error::Result;
use crate::format::{text, with_query};
use crate::layout::{self, Section};
use crate::session::Viewer;

pub fn routes() -> Router<Dash> {
    Router::new().route("/changes", get(list))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    resource: Option<String>,
    actor: Option<String>,
    cursor: Option<String>,
}

async fn list(
    viewer: Viewer, State(dash): State<Dash>, Query(q): Query<ListQuery>,
) -> Result<Html<String>> {
    let filters = [("resource", q.resource.as_deref()), ("actor", q.actor.as_deref())];
    let mut pairs = filters.to_vec();
    pairs.push(("cursor", q.cursor.as_deref()));
    let page = dash.api.get(&viewer.creds(), &with_query("/api/changes", &pairs)).await?;
    let next = page["next_cursor"].as_str().map(|cursor| {
        let mut pairs = filters.to_vec();
        pairs.push(("cursor", Some(cursor)));
        with_query("/changes", &pairs)
    });
    let changes = page["changes"].as_array().cloned().unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/changes" role="search" {
            label { "Resource type or id" input type="search" name="resource" value=[q.resource.as_deref()]; }
            label { "Key or user id" input type="search" name="actor" value=[q.actor.as_deref()]; }
            button type="submit" { "Filter" }
        }
        @if changes.is_empty() { p.muted { "No changes match." } } @else {
            table {
                thead { tr { th { "When" } th { "Operation" } th { "Resource" } th { "By" } th { "Paths written" } } }
                tbody {
                    @for c in &changes {
                        tr {
                            td { (when(&c["at_unix_ms"])) }
                            td { (text(&c["operation"])) }
                            td { (text(&c["resource"]["type"])) " " code { (text(&c["resource"]["id"])) } }
                            td { code { (text(&c["actor"]["key_id"])) } }
                            td { (paths(&c["paths"])) }
                        }
                    }
                }
            }
        }
        (layout::next_page(next))
    };
    Ok(Html(layout::page(&viewer, Section::Changes, "Change log", body).into_string()))
}

fn when(ms: &Value) -> String {
    colloquy_core::time::rfc3339_ms(ms.as_i64().unwrap_or(0))
}

fn paths(list: &Value) -> String {
    let names: Vec<&str> =
        list.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    names.join(", ")
}
