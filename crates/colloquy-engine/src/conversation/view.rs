//! A stored conversation as the reference shapes it: `GET /v1/convai/conversations/{id}`
//! answers it, and the post-call webhook's `post_call_transcription` carries it as its `data`.

use colloquy_core::environments::PRODUCTION;
use colloquy_core::schema::Spec;
use colloquy_store::{ConversationAudio, ConversationRow};
use serde_json::{Value, json};

/// The conversation's `GetConversationResponseModel`.
pub fn wire(row: &ConversationRow, audio: Option<&ConversationAudio>) -> Value {
    let doc: Value = serde_json::from_str(&row.document).unwrap_or_else(|_| json!({}));
    let meta = &doc["metadata"];
    let (likes, dislikes) = match row.feedback.as_deref() {
        Some("like") => (1, 0),
        Some("dislike") => (0, 1),
        _ => (0, 0),
    };
    let mut out = json!({
        "agent_id": row.agent_id,
        "agent_name": row.agent_name,
        "conversation_product": "agent",
        "status": row.status,
        "user_id": row.user_id,
        "branch_id": row.branch_id,
        "version_id": row.version_id,
        "metadata": {
            "start_time_unix_secs": row.started_at,
            "accepted_time_unix_secs": row.started_at,
            "call_duration_secs": row.duration_secs,
            "cost": null,
            "cost_fiat": null,
            "feedback": {"type": null, "overall_score": row.feedback, "likes": likes, "dislikes": dislikes, "rating": null, "comment": null},
            "termination_reason": row.termination_reason,
            "error": meta.get("error").cloned().unwrap_or(Value::Null),
            "main_language": meta.get("main_language").cloned().unwrap_or(Value::Null),
            "text_only": meta.get("text_only").cloned().unwrap_or(json!(true)),
            "conversation_initiation_source": "unknown",
        },
        "analysis": analysis(row),
        "visited_agents": doc.get("visited_agents").filter(|v| v.is_array()).cloned().unwrap_or_else(|| json!([])),
        "conversation_initiation_client_data": doc.get("conversation_initiation_client_data").filter(|v| v.is_object()).cloned().unwrap_or_else(|| json!({})),
        "environment": doc.get("environment").and_then(Value::as_str).unwrap_or(PRODUCTION),
        "conversation_id": row.id,
        "has_audio": audio.is_some(),
        "has_user_audio": audio.is_some_and(|a| a.has_user_audio),
        "has_response_audio": audio.is_some_and(|a| a.has_response_audio),
        "has_auxiliary_audio": false,
        "transcript": doc.get("transcript").cloned().unwrap_or_else(|| json!([])),
        "tag_ids": [],
    });
    // Fill what the reference's response model declares beyond these fields, and keep only
    // what it declares (the initiation data is stored as the client sent it).
    let mut filled = out.clone();
    if Spec::reference().project("GetConversationResponseModel", &mut filled).is_ok() {
        out = filled;
    }
    out
}

/// The conversation's analysis: the last one that succeeded, or an empty one with the outcome
/// the engine recorded.
pub fn analysis(row: &ConversationRow) -> Value {
    row.analysis
        .as_deref()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| {
            json!({
                "call_successful": row.call_successful,
                "transcript_summary": "",
                "evaluation_criteria_results": {},
                "data_collection_results": {},
            })
        })
}
