//! The conversation-initiation webhook. An agent whose
//! `platform_settings.overrides.enable_conversation_initiation_client_data_from_webhook` is on
//! has its client data fetched, before a live conversation starts, from the webhook its
//! `workspace_overrides.conversation_initiation_client_data_webhook` or the workspace's settings
//! name: a POST of the caller, the agent and the client's own data, answered by
//! `{"type": "conversation_initiation_client_data", "dynamic_variables": {...},
//! "conversation_config_override": {...}, "custom_llm_extra_body": {...}}`. The answer is laid
//! over what the client sent (the agent's override policy then judges the result, as it judges
//! the client's). A webhook that fails, is slow or answers something else leaves the client's
//! data as it was: the conversation starts anyway. Every call is in the delivery log.

use std::time::{Duration, Instant};

use colloquy_core::agents::merge;
use colloquy_core::ids::WorkspaceId;
use colloquy_core::protocol::InitiationData;
use colloquy_core::time;
use colloquy_store::{CONVAI_SETTINGS, INITIATION_WEBHOOK, NewDelivery, StoreError, TryOutcome};
use serde_json::{Map, Value, json};

use crate::{AgentSnapshot, EngineDeps};

/// The event of an initiation call in the delivery log.
pub const EVENT: &str = "conversation_initiation_client_data";
/// How long the webhook has to answer before the conversation starts without it.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer read.
const MAX_ANSWER: usize = 256 * 1024;

/// The client's data with the webhook's answer laid over it, when the agent asks for the
/// webhook; else as it was.
pub async fn client_data(
    deps: &EngineDeps, agent: &AgentSnapshot, client: InitiationData,
) -> InitiationData {
    let (workspace_id, agent_id) = (&agent.workspace_id, &agent.agent_id);
    let platform_settings = &agent.platform_settings;
    let enabled = platform_settings
        .pointer("/overrides/enable_conversation_initiation_client_data_from_webhook")
        .and_then(Value::as_bool)
        == Some(true);
    if !enabled {
        return client;
    }
    let hook = match webhook(deps, workspace_id, platform_settings).await {
        Ok(Some(hook)) => hook,
        Ok(None) => return client,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the conversation-initiation webhook");
            return client;
        }
    };
    let body = json!({
        "agent_id": agent_id,
        "caller_id": client.user_id,
        "called_number": null,
        "call_sid": null,
        "conversation_initiation_client_data": client,
    });
    let started = Instant::now();
    let result = call(deps, workspace_id, &agent.environment, &hook, &body).await;
    let mut outcome = TryOutcome {
        latency_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        attempted: true,
        ..TryOutcome::default()
    };
    let answer = match result {
        Ok((status, text)) => {
            outcome.response_code = Some(i64::from(status));
            outcome.response_body = Some(text.chars().take(1024).collect());
            answer(status, &text)
        }
        Err(e) => Err(e),
    };
    outcome.success = answer.is_ok();
    outcome.error = answer.as_ref().err().cloned();
    let logged = NewDelivery {
        workspace_id: workspace_id.clone(),
        webhook_id: INITIATION_WEBHOOK.into(),
        conversation_id: None,
        event_type: EVENT.into(),
        payload: body.to_string(),
    };
    if let Err(e) = deps.store.record_call(&logged, &outcome, time::now_secs()).await {
        tracing::warn!(error = %e, "could not log a conversation-initiation webhook call");
    }
    match answer {
        Ok(answer) => lay_over(client, answer),
        Err(why) => {
            tracing::warn!(reason = %why, agent = %agent_id, "the conversation-initiation webhook failed; starting with the client's data");
            client
        }
    }
}

/// The agent's initiation webhook, else the workspace's.
async fn webhook(
    deps: &EngineDeps, workspace_id: &WorkspaceId, platform_settings: &Value,
) -> Result<Option<Value>, StoreError> {
    const FIELD: &str = "conversation_initiation_client_data_webhook";
    let own = platform_settings
        .pointer(&format!("/workspace_overrides/{FIELD}"))
        .filter(|h| h.get("url").is_some_and(Value::is_string));
    if let Some(own) = own {
        return Ok(Some(own.clone()));
    }
    let settings = deps.store.get_settings(workspace_id, CONVAI_SETTINGS).await?;
    Ok(settings
        .and_then(|row| serde_json::from_str::<Value>(&row.document).ok())
        .and_then(|d| d.get(FIELD).cloned())
        .filter(|h| h.get("url").is_some_and(Value::is_string)))
}

/// POSTs `body` with the webhook's headers (secrets and environment variables opened); its
/// status and text.
async fn call(
    deps: &EngineDeps, workspace_id: &WorkspaceId, environment: &str, hook: &Value, body: &Value,
) -> Result<(u16, String), String> {
    let url = hook["url"].as_str().unwrap_or_default();
    deps.egress.check_callable(url)?;
    let mut request = deps.http.post(url).timeout(TIMEOUT).json(body);
    for (name, value) in
        hook.get("request_headers").and_then(Value::as_object).into_iter().flatten()
    {
        let value = match value {
            Value::String(s) => s.clone(),
            other => match crate::secrets::open_reference(deps, workspace_id, environment, other)
                .await
                .map_err(|e| format!("the header {name}: {e}"))?
            {
                Some(opened) => opened.value,
                None => continue,
            },
        };
        request = request.header(name.as_str(), value);
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            format!("no answer within {} s", TIMEOUT.as_secs())
        } else {
            format!("the webhook could not be reached: {e}")
        }
    })?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| format!("the answer was cut: {e}"))?;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_ANSWER)]).into_owned();
    Ok((status, text))
}

/// The webhook's answer, checked: a 2xx JSON object whose fields have the types the reference
/// gives them.
fn answer(status: u16, text: &str) -> Result<Map<String, Value>, String> {
    if !(200..300).contains(&status) {
        return Err(format!("the webhook answered HTTP {status}"));
    }
    let Ok(Value::Object(answer)) = serde_json::from_str::<Value>(text) else {
        return Err("the answer is not a JSON object".into());
    };
    for (field, object) in [
        ("dynamic_variables", true),
        ("conversation_config_override", true),
        ("custom_llm_extra_body", true),
        ("user_id", false),
    ] {
        let fits = match answer.get(field) {
            None | Some(Value::Null) => true,
            Some(v) if object => v.is_object(),
            Some(v) => v.is_string(),
        };
        if !fits {
            let kind = if object { "an object" } else { "a string" };
            return Err(format!("`{field}` in the answer is not {kind}"));
        }
    }
    let variables = answer.get("dynamic_variables").and_then(Value::as_object);
    if let Some((name, _)) = variables
        .into_iter()
        .flatten()
        .find(|(_, v)| !(v.is_string() || v.is_number() || v.is_boolean()))
    {
        return Err(format!("the dynamic variable `{name}` is not a string, number or boolean"));
    }
    Ok(answer)
}

/// The client's data with the answer's fields laid over it.
fn lay_over(mut client: InitiationData, answer: Map<String, Value>) -> InitiationData {
    let object = |key: &str| answer.get(key).and_then(Value::as_object).cloned();
    if let Some(variables) = object("dynamic_variables") {
        client.dynamic_variables.get_or_insert_with(Map::new).extend(variables);
    }
    if let Some(config) = object("conversation_config_override") {
        let merged = client.conversation_config_override.get_or_insert_with(|| json!({}));
        merge(merged, Value::Object(config));
    }
    if let Some(body) = object("custom_llm_extra_body") {
        client.custom_llm_extra_body.get_or_insert_with(Map::new).extend(body);
    }
    if client.user_id.is_none() {
        client.user_id = answer.get("user_id").and_then(Value::as_str).map(str::to_owned);
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_and_laid_over_the_clients_data() {
        assert!(answer(500, "{}").unwrap_err().contains("500"));
        assert!(answer(200, "[]").is_err());
        assert!(
            answer(200, r#"{"dynamic_variables": []}"#).unwrap_err().contains("dynamic_variables")
        );
        assert!(
            answer(200, r#"{"dynamic_variables": {"a": {"b": 1}}}"#).unwrap_err().contains("`a`")
        );
        let got = answer(
            200,
            r#"{"type": "conversation_initiation_client_data", "dynamic_variables": {"tier": "gold"},
                "conversation_config_override": {"agent": {"first_message": "Hi VIP"}}, "user_id": "u9"}"#,
        )
        .unwrap();
        let client = InitiationData {
            dynamic_variables: Some(Map::from_iter([
                ("name".into(), json!("Ada")),
                ("tier".into(), json!("basic")),
            ])),
            conversation_config_override: Some(json!({"agent": {"language": "en"}})),
            ..Default::default()
        };
        let laid = lay_over(client, got);
        assert_eq!(
            laid.dynamic_variables.unwrap(),
            Map::from_iter([("name".into(), json!("Ada")), ("tier".into(), json!("gold"))])
        );
        assert_eq!(
            laid.conversation_config_override.unwrap(),
            json!({"agent": {"language": "en", "first_message": "Hi VIP"}})
        );
        assert_eq!(laid.user_id.as_deref(), Some("u9"));
    }
}
