//! The sending half of a live conversation: every event goes through one bounded queue to
//! the writer task, the only owner of the socket's sending half, so a client that does not
//! read slows its own conversation down instead of making the server buffer without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use colloquy_core::protocol::ServerEvent;
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::{Notify, mpsc};

/// Messages queued for the client; the queue's bound is the backpressure on a slow client.
const OUTBOX: usize = 64;
/// Quiet time after `conversation_initiation_metadata`, so it is read apart from what follows.
/// `@elevenlabs/client` on Node (with `ws`) reads the metadata with a one-shot listener and
/// attaches its real one only after an `await`; a frame that reaches it in the same read as the
/// metadata is dropped. Sockets are TCP_NODELAY, so the writer holds what follows the metadata
/// this long, once per conversation; a client that has already sent a message after the
/// handshake is past that point, so its message ends the pause (its first turn does not wait).
/// 20 ms was not enough on a loaded machine (two cores running the soak, the fuzzer and the
/// clients' suites side by side): the Node client lost a greeting once, so it is 100 ms.
const METADATA_PAUSE: Duration = Duration::from_millis(100);

enum Outgoing {
    Event(Box<ServerEvent>),
    Close(u16, String),
}

/// The sending side shared by the tasks: numbering, filtering and queueing of server events.
#[derive(Clone)]
pub(super) struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    next_event: Arc<AtomicU64>,
    filter: Option<Arc<Vec<String>>>,
}

/// The writer task, sending what the [`Outbox`] queues.
pub(super) struct Writer {
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Waits until everything queued is sent (or the client is gone).
    pub(super) async fn finish(self) {
        let _ = self.task.await;
    }
}

impl Outbox {
    /// Starts the writer over `sink`; `heard` is notified by the reader when the client speaks.
    pub(super) fn start(
        sink: SplitSink<WebSocket, Message>, heard: Arc<Notify>,
    ) -> (Outbox, Writer) {
        let (tx, rx) = mpsc::channel(OUTBOX);
        let task = tokio::spawn(write_socket(sink, rx, heard));
        let outbox = Outbox { tx, next_event: Arc::new(AtomicU64::new(1)), filter: None };
        (outbox, Writer { task })
    }

    /// Sends only the `client_events` the client asked for (the handshake, pings and errors
    /// always go).
    pub(super) fn filter(&mut self, events: Option<Vec<String>>) {
        self.filter = events.map(Arc::new);
    }

    /// Whether the client asked for `kind` by name (for events sent only on request, such as
    /// `vad_score`, a score for every piece of audio).
    pub(super) fn wants(&self, kind: &str) -> bool {
        self.filter.as_ref().is_some_and(|f| f.iter().any(|e| e == kind))
    }

    /// A new event id.
    pub(super) fn event_id(&self) -> u64 {
        self.next_event.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues an event, unless the client's `client_events` leave it out.
    pub(super) async fn send(&self, event: ServerEvent) {
        let always = matches!(
            event,
            ServerEvent::ConversationInitiationMetadata { .. }
                | ServerEvent::Ping { .. }
                | ServerEvent::Error { .. }
        );
        if !always && self.filter.as_ref().is_some_and(|f| !f.iter().any(|e| e == event.kind())) {
            return;
        }
        let _ = self.tx.send(Outgoing::Event(Box::new(event))).await;
    }

    /// Queues an `error` event.
    pub(super) async fn error(&self, code: u16, error_type: &str, message: &str) {
        self.send(ServerEvent::error(code, error_type, message)).await;
    }

    /// Queues the close frame: the writer sends it and stops.
    pub(super) async fn close(&self, code: u16, reason: &str) {
        let _ = self.tx.send(Outgoing::Close(code, reason.to_owned())).await;
    }
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

/// Closes a socket that may not start a conversation.
pub(super) async fn refuse(mut socket: WebSocket, code: u16, reason: String) {
    let _ = socket.send(close_frame(code, &reason)).await;
}

/// The writer task: sends what is queued, flushing once per burst (a turn queues several events
/// at once, and a write per frame was a system call and a TCP segment each), until a close.
async fn write_socket(
    mut sink: SplitSink<WebSocket, Message>, mut rx: mpsc::Receiver<Outgoing>, heard: Arc<Notify>,
) {
    'burst: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            let (message, done, metadata) = match out {
                Outgoing::Event(event) => {
                    let metadata =
                        matches!(*event, ServerEvent::ConversationInitiationMetadata { .. });
                    let text = serde_json::to_string(&event).unwrap_or_default();
                    (Message::Text(text.into()), false, metadata)
                }
                Outgoing::Close(code, reason) => (close_frame(code, &reason), true, false),
            };
            if sink.feed(message).await.is_err() || done {
                break 'burst;
            }
            if metadata {
                if sink.flush().await.is_err() {
                    break 'burst;
                }
                tokio::select! {
                    () = tokio::time::sleep(METADATA_PAUSE) => {}
                    () = heard.notified() => {}
                }
            }
            next = rx.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}
