//! Post-call webhooks. When a live conversation has ended, its events (`post_call_transcription`,
//! and `post_call_audio` when asked for and recorded; `call_initiation_failure` for one that could
//! not start) are queued for the webhook its agent's
//! `platform_settings.workspace_overrides.webhooks` names, or else the one the workspace's
//! settings name; each node's [`worker`] sends them signed, tries transient failures again with
//! exponential backoff, and logs every try.

pub mod initiation;
pub mod worker;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use colloquy_core::ids::{AgentId, ConversationId, WorkspaceId};
use colloquy_core::time;
use colloquy_store::{CONVAI_SETTINGS, NewDelivery, StoreError};
use serde_json::{Value, json};

use crate::EngineDeps;
use crate::conversation::{otlp, view};

/// Where a conversation's events go, and which of them.
#[derive(Debug, PartialEq, Eq)]
struct Selection {
    webhook_id: String,
    transcript: bool,
    audio: bool,
    initiation_failure: bool,
    /// `transcript_format: opentelemetry`: the transcript's data carries its traces too.
    traces: bool,
}

/// Queues the post-call events of a finished conversation; failures are logged, never raised
/// (the conversation itself is already stored).
pub async fn post_call(deps: &EngineDeps, workspace_id: &WorkspaceId, id: &ConversationId) {
    match queue_post_call(deps, workspace_id, id).await {
        Ok(true) => deps.webhooks_queued.notify_one(),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, conversation = %id, "could not queue the post-call webhook");
        }
    }
}

async fn queue_post_call(
    deps: &EngineDeps, workspace_id: &WorkspaceId, id: &ConversationId,
) -> Result<bool, StoreError> {
    let row = deps.store.get_conversation(workspace_id, id).await?;
    let Some(selection) = selection(deps, workspace_id, &row.agent_id).await? else {
        return Ok(false);
    };
    let audio = deps.store.conversation_audio(workspace_id, id, selection.audio).await?;
    let now = time::now_secs();
    let mut events = Vec::new();
    if selection.transcript {
        let mut data = view::wire(&row, audio.as_ref());
        if selection.traces {
            let calls = deps.store.conversation_executions(workspace_id, id).await?;
            data["otlp_traces"] = otlp::traces(&row, &calls);
        }
        events
            .push(json!({"type": "post_call_transcription", "event_timestamp": now, "data": data}));
    }
    if let Some(recording) = audio.filter(|a| selection.audio && !a.audio.is_empty()) {
        events.push(json!({"type": "post_call_audio", "event_timestamp": now, "data": {
            "agent_id": row.agent_id,
            "conversation_id": row.id,
            "full_audio": STANDARD.encode(&recording.audio),
        }}));
    }
    for event in &events {
        let delivery = NewDelivery {
            workspace_id: workspace_id.clone(),
            webhook_id: selection.webhook_id.clone(),
            conversation_id: Some(row.id.to_string()),
            event_type: event["type"].as_str().unwrap_or_default().to_owned(),
            payload: event.to_string(),
        };
        deps.store.queue_delivery(&delivery, now).await?;
    }
    Ok(!events.is_empty())
}

/// Queues `call_initiation_failure` for a live conversation that could not start, when the
/// agent's or the workspace's webhook asks for that event. Failures are logged, never raised.
pub async fn initiation_failure(
    deps: &EngineDeps, workspace_id: &WorkspaceId, agent_id: &AgentId, reason: &str,
) {
    let queued = async {
        let Some(selection) = selection(deps, workspace_id, agent_id).await? else {
            return Ok(false);
        };
        if !selection.initiation_failure {
            return Ok(false);
        }
        let now = time::now_secs();
        let event = json!({"type": "call_initiation_failure", "event_timestamp": now, "data": {
            "agent_id": agent_id,
            "conversation_id": null,
            "failure_reason": reason,
            "metadata": {"type": "websocket", "body": {}},
        }});
        let delivery = NewDelivery {
            workspace_id: workspace_id.clone(),
            webhook_id: selection.webhook_id,
            conversation_id: None,
            event_type: "call_initiation_failure".into(),
            payload: event.to_string(),
        };
        deps.store.queue_delivery(&delivery, now).await?;
        Ok::<_, StoreError>(true)
    };
    match queued.await {
        Ok(true) => deps.webhooks_queued.notify_one(),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, agent = %agent_id, "could not queue call_initiation_failure")
        }
    }
}

/// The agent's own webhook selection when it names a webhook, else the workspace's.
async fn selection(
    deps: &EngineDeps, workspace_id: &WorkspaceId, agent_id: &AgentId,
) -> Result<Option<Selection>, StoreError> {
    let agent = match deps.store.get_agent(workspace_id, agent_id).await {
        Ok(agent) => serde_json::from_str::<Value>(&agent.document).ok(),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e),
    };
    let own = agent
        .as_ref()
        .and_then(|a| a.pointer("/platform_settings/workspace_overrides/webhooks"))
        .filter(|w| w.get("post_call_webhook_id").is_some_and(Value::is_string))
        .cloned();
    let hooks = match own {
        Some(hooks) => hooks,
        None => match deps.store.get_settings(workspace_id, CONVAI_SETTINGS).await? {
            Some(row) => serde_json::from_str::<Value>(&row.document)
                .ok()
                .and_then(|d| d.get("webhooks").cloned())
                .unwrap_or_default(),
            None => return Ok(None),
        },
    };
    Ok(choose(&hooks))
}

/// Which events a `ConvAIWebhooks` selection asks for. A webhook chosen with no events gets the
/// transcript, as post-call webhooks did before `events` existed; the deprecated `send_audio`
/// still asks for the audio.
fn choose(hooks: &Value) -> Option<Selection> {
    let webhook_id = hooks.get("post_call_webhook_id").and_then(Value::as_str)?;
    let events: Vec<&str> = hooks
        .get("events")
        .and_then(Value::as_array)
        .map(|e| e.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let has = |wanted: &[&str]| events.iter().any(|e| wanted.contains(e));
    Some(Selection {
        webhook_id: webhook_id.to_owned(),
        transcript: events.is_empty() || has(&["transcript", "unredacted_transcript"]),
        audio: has(&["audio", "unredacted_audio"])
            || hooks.get("send_audio").and_then(Value::as_bool) == Some(true),
        initiation_failure: has(&["call_initiation_failure"]),
        traces: hooks.get("transcript_format").and_then(Value::as_str) == Some("opentelemetry"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_names_a_webhook_and_its_events() {
        assert_eq!(choose(&json!({"post_call_webhook_id": null, "events": ["transcript"]})), None);
        let pick = |events: Value, send_audio: Value| {
            let s = choose(
                &json!({"post_call_webhook_id": "w", "events": events, "send_audio": send_audio}),
            )
            .unwrap();
            (s.transcript, s.audio, s.initiation_failure)
        };
        assert_eq!(pick(json!([]), Value::Null), (true, false, false), "no events: the transcript");
        assert_eq!(pick(json!(["audio"]), Value::Null), (false, true, false));
        assert_eq!(pick(json!(["transcript", "audio"]), Value::Null), (true, true, false));
        assert_eq!(pick(json!(["call_initiation_failure"]), Value::Null), (false, false, true));
        assert_eq!(pick(json!([]), json!(true)), (true, true, false), "send_audio still works");
    }
}
