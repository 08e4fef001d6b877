//! The HTTP+SSE transport of MCP (protocol 2024-11-05; the reference's default `SSE`), which
//! rmcp no longer ships as a client: a `GET` opens an event stream whose first `endpoint`
//! event names the URL to `POST` messages to; the server's messages arrive as `message`
//! events on the stream. Both go through the egress guard, and the endpoint must be on the
//! stream's own origin, so a server cannot aim our requests elsewhere.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::McpError;
use crate::egress::EgressGuard;

/// Messages from the server waiting to be read.
const INBOX: usize = 64;

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The request failed.
    #[error("posting to the MCP server failed: {0}")]
    Http(String),
    /// The server refused the message.
    #[error("the MCP server answered HTTP {0}")]
    Status(u16),
}

/// A connected SSE session.
pub struct SseTransport {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    timeout: Duration,
    inbox: mpsc::Receiver<ServerJsonRpcMessage>,
    reader: JoinHandle<()>,
}

fn header_map(headers: &[(String, String)]) -> Result<reqwest::header::HeaderMap, McpError> {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        let bad = |e: &dyn std::fmt::Display| McpError::Config(format!("header {name}: {e}"));
        let name = reqwest::header::HeaderName::try_from(name.as_str()).map_err(|e| bad(&e))?;
        let value = reqwest::header::HeaderValue::try_from(value.as_str()).map_err(|e| bad(&e))?;
        map.insert(name, value);
    }
    Ok(map)
}

fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

impl SseTransport {
    /// Opens the event stream at `url` and waits (up to `timeout`) for its endpoint.
    pub async fn connect(
        http: &reqwest::Client, guard: &EgressGuard, url: &str, headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<SseTransport, McpError> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| McpError::Config(format!("bad MCP server URL: {e}")))?;
        guard.check_url(&url).map_err(|e| McpError::Config(e.to_string()))?;
        let headers = header_map(headers)?;
        let response = http
            .get(url.clone())
            .headers(headers.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| McpError::Transport(crate::egress::explain(&e)))?;
        if !response.status().is_success() {
            return Err(McpError::Transport(format!(
                "the MCP server answered HTTP {} to the event stream request",
                response.status().as_u16()
            )));
        }
        let mut events = response.bytes_stream().eventsource();
        let endpoint = endpoint(&mut events, &url).await?;
        let (tx, inbox) = mpsc::channel(INBOX);
        let reader = tokio::spawn(read_messages(events, tx));
        Ok(SseTransport { http: http.clone(), endpoint, headers, timeout, inbox, reader })
    }
}

/// Waits for the stream's `endpoint` event: the URL to post messages to, which must be on the
/// stream's own origin.
async fn endpoint<S, E>(events: &mut S, url: &reqwest::Url) -> Result<reqwest::Url, McpError>
where
    S: futures_util::Stream<Item = Result<eventsource_stream::Event, E>> + Unpin,
    E: std::fmt::Display,
{
    loop {
        match events.next().await {
            Some(Ok(event)) if event.event == "endpoint" => {
                let endpoint = url.join(event.data.trim()).map_err(|e| {
                    McpError::Transport(format!("the MCP server sent a bad endpoint: {e}"))
                })?;
                if !same_origin(url, &endpoint) {
                    return Err(McpError::Transport(
                        "the MCP server's endpoint is on another origin than its event stream"
                            .into(),
                    ));
                }
                return Ok(endpoint);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                return Err(McpError::Transport(format!("the MCP event stream failed: {e}")));
            }
            None => {
                return Err(McpError::Transport("the MCP server closed the event stream".into()));
            }
        }
    }
}

/// Hands the server's `message` events to the transport's inbox until the stream ends or the
/// transport is gone.
async fn read_messages<S, E>(mut events: S, tx: mpsc::Sender<ServerJsonRpcMessage>)
where
    S: futures_util::Stream<Item = Result<eventsource_stream::Event, E>> + Unpin,
{
    while let Some(Ok(event)) = events.next().await {
        if event.event != "message" && !event.event.is_empty() {
            continue;
        }
        match serde_json::from_str::<ServerJsonRpcMessage>(&event.data) {
            Ok(message) => {
                if tx.send(message).await.is_err() {
                    break;
                }
            }
            Err(e) => tracing::warn!(error = %e, "ignoring an MCP message that does not parse"),
        }
    }
}

impl Transport<RoleClient> for SseTransport {
    type Error = SseError;

    fn send(
        &mut self, item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), SseError>> + Send + 'static {
        let request = self
            .http
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .timeout(self.timeout)
            .json(&item);
        async move {
            let response =
                request.send().await.map_err(|e| SseError::Http(crate::egress::explain(&e)))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(SseError::Status(response.status().as_u16()))
            }
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ServerJsonRpcMessage>> + Send {
        self.inbox.recv()
    }

    async fn close(&mut self) -> Result<(), SseError> {
        self.reader.abort();
        Ok(())
    }
}

impl Drop for SseTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
