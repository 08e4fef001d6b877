//! Reading a streamed (server-sent events) HTTP answer with an idle timeout.

use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::StreamExt;

use super::LlmError;

/// Sends the request, mapping failures and error statuses; `timeout` bounds the wait for the
/// response head.
pub async fn send(
    request: reqwest::RequestBuilder, timeout: Duration,
) -> Result<reqwest::Response, LlmError> {
    let response = tokio::time::timeout(timeout, request.send())
        .await
        .map_err(|_| LlmError::Timeout(timeout))?
        .map_err(|e| transport(&e))?;
    let status = response.status();
    if !status.is_success() {
        let body = tokio::time::timeout(timeout, response.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        return Err(LlmError::Status { status: status.as_u16(), body: super::snippet(&body) });
    }
    Ok(response)
}

fn transport(e: &reqwest::Error) -> LlmError {
    // The egress guard's refusal surfaces as a connect error whose source says why.
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<crate::egress::Refused>() {
            return LlmError::Refused(refused.to_string());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return LlmError::Timeout(Duration::ZERO);
    }
    LlmError::Transport(format!("{e}"))
}

/// A failure of the event stream (its bytes, or their framing).
type StreamError = eventsource_stream::EventStreamError<reqwest::Error>;

/// The events of a streamed answer. Each wait is bounded by `timeout`; a failure after the
/// stream began is reported as a protocol error, which is not retried (text may already have
/// reached the client).
pub struct Events {
    inner: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Event, StreamError>> + Send>>,
    timeout: Duration,
}

impl Events {
    /// Wraps a successful streamed response.
    pub fn new(response: reqwest::Response, timeout: Duration) -> Events {
        let inner = response.bytes_stream().eventsource();
        Events { inner: Box::pin(inner), timeout }
    }

    /// The next event, `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, LlmError> {
        match tokio::time::timeout(self.timeout, self.inner.next()).await {
            Err(_) => Err(LlmError::Timeout(self.timeout)),
            Ok(None) => Ok(None),
            Ok(Some(Ok(event))) => Ok(Some(event)),
            Ok(Some(Err(e))) => Err(LlmError::Protocol(format!("stream interrupted: {e}"))),
        }
    }
}

/// Whether the response is a stream of events (else a plain JSON answer).
pub fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}
