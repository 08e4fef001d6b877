//! Tracing spans as OpenTelemetry sees them. A conversation's trace id is its own id (a UUIDv7
//! is 128 bits, as a trace id is): its spans, its analysis job's spans and the audit records of
//! its tool calls (which carry the conversation id) join without a lookup, and a trace can be
//! found from a conversation and back. When no exporter is installed these calls do nothing.

use colloquy_core::ids::ConversationId;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace id of a conversation: its id's 128 bits (all zero, which no trace may have, for an
/// id that is not a UUID).
pub fn trace_id(id: &ConversationId) -> TraceId {
    let hex: String = id.as_str().chars().filter(char::is_ascii_hexdigit).collect();
    match u128::from_str_radix(&hex, 16) {
        Ok(bits) if hex.len() == 32 => TraceId::from_bytes(bits.to_be_bytes()),
        _ => TraceId::INVALID,
    }
}

/// Puts `span` in the conversation's trace, under a remote parent standing for the
/// conversation: the conversation's own span, and jobs about it that run later or elsewhere.
pub fn join_conversation(span: &tracing::Span, id: &ConversationId) {
    let trace_id = trace_id(id);
    if trace_id == TraceId::INVALID {
        return;
    }
    // The parent's span id: the id's last 64 bits, so every node names it alike.
    let bits = u128::from_be_bytes(trace_id.to_bytes());
    let parent = SpanId::from_bytes((bits as u64 | 1).to_be_bytes());
    let context = SpanContext::new(trace_id, parent, TraceFlags::SAMPLED, true, TraceState::NONE);
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(context));
}

/// A conversation's own span, open for its whole life, in its trace.
pub fn conversation_span(id: &ConversationId, agent_id: &str, source: &str) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "conversation",
        conversation = %id,
        colloquy.agent.id = agent_id,
        colloquy.conversation.source = source,
    );
    join_conversation(&span, id);
    span
}
