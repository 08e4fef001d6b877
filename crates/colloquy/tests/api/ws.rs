//! The tests' client of the conversation WebSocket: connect, send [`ClientEvent`]s, read the
//! server's events (answering pings), and open a conversation the way the official clients
//! do. Messages are the server's own protocol types (`colloquy_core::protocol`), so a renamed
//! field fails to compile here as well as in the server.

use std::time::Duration;

use colloquy_core::protocol::{ClientEvent, InitiationData, ServerEvent};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A client socket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The conversation endpoint of the server at `base` (`http://...`), with `query`.
pub fn url(base: &str, query: &str) -> String {
    format!("{}/v1/convai/conversation?{query}", base.replacen("http://", "ws://", 1))
}

/// Connects with the `convai` subprotocol and `headers`; the subprotocol the server chose.
pub async fn connect(url: &str, headers: &[(&str, &str)]) -> (Socket, Option<String>) {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "convai".parse().unwrap());
    for (k, v) in headers {
        let name =
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        request.headers_mut().insert(name, v.parse().unwrap());
    }
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    let protocol =
        response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_owned());
    (socket, protocol)
}

/// Sends any JSON (for messages the protocol types cannot express: malformed ones, extra
/// fields).
pub async fn send(socket: &mut Socket, v: Value) {
    socket.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Sends a client event.
pub async fn send_event(socket: &mut Socket, event: &ClientEvent) {
    send(socket, serde_json::to_value(event).unwrap()).await;
}

/// Sends the user's text.
pub async fn say(socket: &mut Socket, text: &str) {
    send_event(socket, &ClientEvent::UserMessage { text: Some(text.into()) }).await;
}

/// Sends the initiation data.
pub async fn initiate(socket: &mut Socket, data: InitiationData) {
    send_event(socket, &ClientEvent::ConversationInitiationClientData(Box::new(data))).await;
}

/// The next JSON event (pings are answered and skipped), or the close frame as `{"close": code}`.
pub async fn next(socket: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message in time");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if let Ok(ServerEvent::Ping { ping_event }) = serde_json::from_value(v.clone()) {
                    let pong = ClientEvent::Pong { event_id: Some(ping_event.event_id) };
                    send_event(socket, &pong).await;
                    continue;
                }
                return v;
            }
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                return json!({"close": code, "reason": reason});
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return json!({"close": 1006, "reason": e.to_string()}),
            None => return json!({"close": 1006, "reason": "ended"}),
        }
    }
}

/// The next event, typed (a close frame or an unknown event fails the test).
pub async fn next_event(socket: &mut Socket) -> ServerEvent {
    let v = next(socket).await;
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v} is not a server event: {e}"))
}

/// Events until one of type `kind` (inclusive).
pub async fn until(socket: &mut Socket, kind: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let v = next(socket).await;
        let done = v["type"] == kind || v.get("close").is_some();
        out.push(v);
        if done {
            return out;
        }
    }
}

/// The next event of type `kind`, skipping others.
pub async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let e = next(socket).await;
        if e["type"] == kind || e.get("close").is_some() {
            return e;
        }
    }
}

/// Opens a conversation at `url` as the official clients do (initiation data first) and
/// returns the socket and the conversation's id, from its metadata.
pub async fn open(url: &str, data: InitiationData) -> (Socket, String) {
    let (mut socket, _) = connect(url, &[]).await;
    initiate(&mut socket, data).await;
    match next_event(&mut socket).await {
        ServerEvent::ConversationInitiationMetadata {
            conversation_initiation_metadata_event: metadata,
        } => (socket, metadata.conversation_id),
        other => panic!("the conversation did not start: {other:?}"),
    }
}

/// Sends a user message and returns the events up to the agent's answer.
pub async fn turn(socket: &mut Socket, said: &str) -> Vec<Value> {
    say(socket, said).await;
    until(socket, "agent_response").await
}
