//! What a client may override at the start of a conversation: only the fields the agent's
//! `platform_settings.overrides` switch on (DESIGN.md §3.6, reference §D.1).

use serde_json::Value;

/// Whether the client asks for a text-only conversation (at the root, where the Python SDK
/// puts it, or under `conversation`).
pub fn text_only(config_override: &Value) -> bool {
    [config_override.get("text_only"), config_override.pointer("/conversation/text_only")]
        .into_iter()
        .flatten()
        .any(|v| v.as_bool() == Some(true))
}

/// The override with `text_only` removed from both places clients put it (the Python SDK puts
/// it at the root): it only takes the voice away, so any client may ask for it, and it is read
/// apart ([`text_only`]).
pub fn without_text_only(mut config_override: Value) -> Value {
    if let Some(obj) = config_override.as_object_mut() {
        obj.remove("text_only");
        if let Some(conv) = obj.get_mut("conversation").and_then(Value::as_object_mut) {
            conv.remove("text_only");
        }
    }
    config_override
}

/// Paths (dot-separated) of the override's values that `allowed` does not switch on.
pub fn refused(config_override: &Value, allowed: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(config_override, Some(allowed), &mut Vec::new(), &mut out);
    out
}

fn walk(value: &Value, allowed: Option<&Value>, path: &mut Vec<String>, out: &mut Vec<String>) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (key, v) in map {
                path.push(key.clone());
                let next = allowed.and_then(|a| a.get(key));
                match next {
                    // A `true` switch allows the whole subtree (e.g. a list value).
                    Some(Value::Bool(true)) => {}
                    _ if v.is_object() => walk(v, next, path, out),
                    _ if v.is_null() => {}
                    _ => out.push(path.join(".")),
                }
                path.pop();
            }
        }
        _ => {
            if allowed != Some(&Value::Bool(true)) {
                out.push(path.join("."));
            }
        }
    }
}

/// The `client_events` the client wants, if it narrows them (an empty list means all).
pub fn client_events(agent_config: &Value, config_override: &Value) -> Option<Vec<String>> {
    let list = config_override
        .pointer("/conversation/client_events")
        .or_else(|| agent_config.pointer("/conversation/client_events"))
        .and_then(Value::as_array)?;
    let events: Vec<String> = list.iter().filter_map(Value::as_str).map(str::to_owned).collect();
    (!events.is_empty()).then_some(events)
}

#[cfg(test)]
mod tests {
    use colloquy_core::testing::arb_json;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    proptest! {
        /// Whatever a client puts in its initiation message, the checks answer without
        /// panicking, and every field they refuse is one the client really sent.
        #[test]
        fn fuzz_initiation_data(data in arb_json(), allowed in arb_json()) {
            let config_override = without_text_only(
                data.get("conversation_config_override").cloned().unwrap_or(Value::Null),
            );
            let refusals = refused(&config_override, &allowed);
            if plain_keys(&config_override) {
                for path in refusals {
                    let pointer = format!("/{}", path.replace('.', "/"));
                    prop_assert!(config_override.pointer(&pointer).is_some_and(|v| !v.is_null()), "{path}");
                }
            }
            let _ = client_events(&allowed, &config_override);
            let _ = serde_json::from_value::<colloquy_core::protocol::InitiationData>(data);
        }
    }

    /// Whether every key can be told apart in a dotted path.
    fn plain_keys(v: &Value) -> bool {
        match v {
            Value::Object(m) => {
                m.iter().all(|(k, v)| !k.contains(['.', '/', '~']) && plain_keys(v))
            }
            Value::Array(items) => items.iter().all(plain_keys),
            _ => true,
        }
    }

    #[test]
    fn only_switched_on_fields_pass() {
        let allowed = json!({"agent": {"first_message": true, "prompt": {"prompt": false, "llm": true}}, "tts": {"voice_id": false}});
        let ok = json!({"agent": {"first_message": "hi", "prompt": {"llm": "x"}}, "tts": {}, "conversation": {}});
        assert!(refused(&ok, &allowed).is_empty());
        let bad = json!({"agent": {"prompt": {"prompt": "evil"}}, "tts": {"voice_id": "v"}, "asr": {"keywords": ["a"]}});
        assert_eq!(
            refused(&bad, &allowed),
            vec!["agent.prompt.prompt", "tts.voice_id", "asr.keywords"]
        );
        let nulls = json!({"agent": {"prompt": {"prompt": null}}});
        assert!(refused(&nulls, &allowed).is_empty(), "null means no override");
        let text =
            without_text_only(json!({"text_only": true, "conversation": {"text_only": false}}));
        assert!(refused(&text, &allowed).is_empty());
    }
}
