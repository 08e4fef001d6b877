//! Webhook tools: the LLM's arguments are split into path, query and body parameters by the
//! tool's schemas (plus constants and dynamic variables it declares), headers get their
//! secrets resolved at call time, and the request goes through the egress guard with the
//! tool's timeout and a response size cap.

use std::time::Duration;

use colloquy_core::secret_key::secret_context;
use colloquy_core::template;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::{AgentTool, CallScope, CallStatus, ToolOutcome, strip_internal};

/// Timeout when the tool sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The single object schema the LLM fills: path, query and body parameters together, minus
/// those filled by constants or dynamic variables.
pub fn llm_parameters(config: &Value) -> Value {
    let api = &config["api_schema"];
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    if let Some(path) = api.get("path_params_schema").and_then(Value::as_object) {
        for (name, schema) in path {
            properties.insert(name.clone(), schema.clone());
            required.push(json!(name));
        }
    }
    for key in ["query_params_schema", "request_body_schema"] {
        if let Some(schema) = api.get(key).filter(|s| s.is_object()) {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                properties.extend(props.clone());
            }
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                required.extend(req.iter().cloned());
            }
        }
    }
    strip_internal(json!({"type": "object", "properties": properties, "required": required}))
}

/// The value of a declared parameter: its constant, its dynamic variable, or the LLM's.
fn value_of(name: &str, schema: &Value, args: &Value, vars: &Map<String, Value>) -> Option<Value> {
    if let Some(c) = schema
        .get("constant_value")
        .filter(|c| !c.is_null() && *c != "")
    {
        return Some(c.clone());
    }
    if let Some(var) = schema
        .get("dynamic_variable")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
    {
        return vars.get(var).cloned();
    }
    args.get(name).cloned()
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Calls the webhook.
pub async fn call(scope: &CallScope<'_>, tool: &AgentTool, args: &Value) -> ToolOutcome {
    let api = &tool.config["api_schema"];
    let method = api
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let mut url = template::render(
        api.get("url").and_then(Value::as_str).unwrap_or_default(),
        scope.vars,
    );
    let mut path_params = Map::new();
    if let Some(path) = api.get("path_params_schema").and_then(Value::as_object) {
        for (name, schema) in path {
            let value = value_of(name, schema, args, scope.vars)
                .map(|v| as_text(&v))
                .unwrap_or_default();
            url = url.replace(&format!("{{{name}}}"), &percent_encode(&value));
            path_params.insert(name.clone(), json!(value));
        }
    }
    let mut query_params = Map::new();
    if let Some(props) = api
        .pointer("/query_params_schema/properties")
        .and_then(Value::as_object)
    {
        for (name, schema) in props {
            if let Some(v) = value_of(name, schema, args, scope.vars) {
                query_params.insert(name.clone(), json!(as_text(&v)));
            }
        }
    }
    let mut body = None;
    if let Some(schema) = api.get("request_body_schema").filter(|s| s.is_object())
        && matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    {
        let mut obj = Map::new();
        for (name, prop) in schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if let Some(v) = value_of(name, prop, args, scope.vars) {
                obj.insert(name.clone(), v);
            }
        }
        body = Some(Value::Object(obj));
    }

    let mut headers = Map::new();
    let mut secret_headers = Vec::new();
    let mut secrets = Vec::new();
    for (name, value) in api
        .get("request_headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let resolved = if let Some(secret_id) = value.get("secret_id").and_then(Value::as_str) {
            match open_secret(scope, secret_id).await {
                Ok(v) => {
                    secret_headers.push(name.clone());
                    secrets.push(v.clone());
                    v
                }
                Err(why) => {
                    return ToolOutcome::error(
                        CallStatus::Error,
                        "customer_auth",
                        format!("Header {name}: {why}"),
                    );
                }
            }
        } else if let Some(var) = value.get("variable_name").and_then(Value::as_str) {
            scope.vars.get(var).map(as_text).unwrap_or_default()
        } else {
            template::render(&as_text(value), scope.vars)
        };
        headers.insert(name.clone(), json!(resolved));
    }

    let content_type = api
        .get("content_type")
        .and_then(Value::as_str)
        .unwrap_or("application/json");
    let body_text = body.as_ref().map(|b| {
        if content_type == "application/x-www-form-urlencoded" {
            b.as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            format!("{}={}", percent_encode(k), percent_encode(&as_text(v)))
                        })
                        .collect::<Vec<_>>()
                        .join("&")
                })
                .unwrap_or_default()
        } else {
            b.to_string()
        }
    });
    let details = json!({
        "type": "webhook",
        "method": method,
        "url": url,
        "headers": Value::Object(colloquy_core::redact::headers(&headers, &secret_headers)),
        "path_params": path_params,
        "query_params": query_params,
        "body": body_text,
    });
    let timeout = tool
        .config
        .get("response_timeout_secs")
        .and_then(Value::as_f64)
        .filter(|t| *t > 0.0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);

    let outcome = send(
        scope,
        &method,
        &url,
        &query_params,
        &headers,
        body_text,
        content_type,
        timeout,
    )
    .await;
    ToolOutcome {
        details: Some(details),
        secrets,
        ..outcome
    }
}

#[allow(clippy::too_many_arguments)]
async fn send(
    scope: &CallScope<'_>,
    method: &str,
    url: &str,
    query: &Map<String, Value>,
    headers: &Map<String, Value>,
    body: Option<String>,
    content_type: &str,
    timeout: Duration,
) -> ToolOutcome {
    let mut parsed = match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ => {
            return ToolOutcome::error(
                CallStatus::Error,
                "customer_config",
                format!("The webhook URL {url:?} is not valid"),
            );
        }
    };
    if let Err(refused) = scope.deps.egress.check_url(&parsed) {
        return ToolOutcome::error(CallStatus::Error, "customer_config", refused.to_string());
    }
    if !query.is_empty() {
        let mut pairs = parsed.query_pairs_mut();
        for (k, v) in query {
            pairs.append_pair(k, &as_text(v));
        }
    }
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut request = scope.deps.http.request(method, parsed);
    for (name, value) in headers {
        request = request.header(name.as_str(), as_text(value));
    }
    if let Some(body) = body {
        request = request.header("content-type", content_type).body(body);
    }
    let limit = scope.deps.limits.webhook_max_response_bytes;
    let exchange = async {
        let response = request.send().await?;
        let status = response.status();
        let mut stream = response.bytes_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if bytes.len() + chunk.len() > limit {
                return Ok((status, None));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok::<_, reqwest::Error>((status, Some(bytes)))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => ToolOutcome::error(
            CallStatus::Timeout,
            "external_server",
            format!("The webhook did not answer within {timeout:?}"),
        ),
        Ok(Err(e)) => match crate::egress::refusal(&e) {
            Some(why) => ToolOutcome::error(CallStatus::Error, "customer_config", why),
            None => ToolOutcome::error(
                CallStatus::Error,
                "external_server",
                format!("The webhook could not be reached: {e}"),
            ),
        },
        Ok(Ok((_, None))) => ToolOutcome::error(
            CallStatus::Error,
            "external_server",
            format!("The webhook's response is larger than {limit} bytes"),
        ),
        Ok(Ok((status, Some(bytes)))) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if status.is_success() {
                ToolOutcome::ok(text)
            } else {
                let kind = if status.is_server_error() {
                    "external_server"
                } else {
                    "external_client"
                };
                ToolOutcome::error(
                    CallStatus::Error,
                    kind,
                    format!("The webhook answered HTTP {}: {text}", status.as_u16()),
                )
            }
        }
    }
}

async fn open_secret(scope: &CallScope<'_>, secret_id: &str) -> Result<String, String> {
    let secret = scope
        .deps
        .store
        .get_secret(scope.workspace_id, secret_id)
        .await
        .map_err(|_| format!("secret {secret_id} does not exist"))?;
    let plain = scope
        .deps
        .keyring
        .open(
            &secret.sealed_value,
            &secret_context(scope.workspace_id, secret_id),
        )
        .map_err(|e| format!("secret {secret_id} cannot be opened: {e}"))?;
    String::from_utf8(plain).map_err(|_| format!("secret {secret_id} is not text"))
}

#[cfg(test)]
mod tests {
    use colloquy_core::testing::arb_json;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn fuzz_percent_encoding_round_trips(text in "\\PC{0,60}") {
            let encoded = percent_encode(&text);
            prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
            let decoded: Vec<u8> = form_decode(&encoded);
            prop_assert_eq!(decoded, text.as_bytes().to_vec());
        }

        #[test]
        fn fuzz_parameter_mapping_never_panics(config in arb_json(), args in arb_json()) {
            let _ = llm_parameters(&config);
            if let Some(schema) = config.get("properties").and_then(Value::as_object) {
                for (name, s) in schema {
                    let _ = value_of(name, s, &args, &Map::new());
                }
            }
        }
    }

    fn form_decode(s: &str) -> Vec<u8> {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }
}
