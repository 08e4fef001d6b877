//! The playground: a live text conversation with an agent, held by the page's script over the
//! WebSocket protocol, with a signed URL the dashboard fetches for it.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};
use maud::html;
use serde_json::{Value, json};

use crate::Dash;
use crate::error::{Error, Result};
use crate::format::{encode, text};
use crate::layout::{self, Section};
use crate::session::Viewer;

pub fn routes() -> Router<Dash> {
    Router::new()
        .route("/agents/{id}/playground", get(page))
        .route("/agents/{id}/playground/session", post(session))
}

async fn page(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
) -> Result<Html<String>> {
    let agent =
        dash.api.get(&viewer.creds(), &format!("/v1/convai/agents/{}", encode(&id))).await?;
    let title = format!("Playground: {}", text(&agent["name"]));
    let body = html! {
        p { a href={ "/agents/" (encode(&id)) } { "← Back to the agent" } }
        section #playground data-session-url={ "/agents/" (encode(&id)) "/playground/session" } aria-label="Conversation" {
            div.actions {
                button #start type="button" { "Start conversation" }
                button #end.secondary type="button" disabled { "End conversation" }
                label.toggle { input #voice type="checkbox"; " Talk with the microphone" }
                a #conversation-link hidden href="#" { "" }
            }
            p #status role="status" aria-live="polite" { "Not connected." }
            ol #chat-log.transcript aria-live="polite" aria-label="Conversation so far" {}
            form #composer.composer {
                label for="message" { "Your message" }
                input #message type="text" autocomplete="off" disabled;
                button type="submit" disabled { "Send" }
            }
        }
        noscript { p.error { "The playground needs JavaScript: it holds a live WebSocket conversation." } }
    };
    let script = html! { script type="module" src="/assets/playground.js" {} };
    Ok(Html(layout::page_with(&viewer, Section::Agents, &title, script, body).into_string()))
}

/// `POST /agents/{id}/playground/session`: a one-time signed WebSocket URL for the page's
/// script, which sends the session's CSRF token in `x-csrf-token`.
async fn session(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>, headers: HeaderMap,
) -> Result<Json<Value>> {
    let presented =
        headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).ok_or(Error::Forbidden)?;
    viewer.check(presented)?;
    let signed = dash
        .api
        .get(
            &viewer.creds(),
            &format!("/v1/convai/conversation/get-signed-url?agent_id={}", encode(&id)),
        )
        .await?;
    Ok(Json(json!({ "signed_url": signed["signed_url"] })))
}
