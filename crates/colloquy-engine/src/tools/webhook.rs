//! Webhook tools: the LLM's arguments are split into path, query and body parameters by the
//! tool's schemas (plus constants and dynamic variables it declares), headers get their
//! secrets resolved at call time, and the request goes through the egress guard with the
//! tool's timeout and a response size cap.

use std::time::Duration;

use colloquy_core::template;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::{AgentTool, CallScope, CallStatus, ToolOutcome, strip_internal};
use crate::secrets;

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
    if let Some(c) = schema.get("constant_value").filter(|c| !c.is_null() && *c != "") {
        return Some(c.clone());
    }
    if let Some(var) =
        schema.get("dynamic_variable").and_then(Value::as_str).filter(|v| !v.is_empty())
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

/// A webhook request, built from the tool's `api_schema` and the call's arguments.
struct Request {
    method: String,
    url: String,
    path_params: Map<String, Value>,
    query: Map<String, Value>,
    headers: Map<String, Value>,
    /// Headers whose values are secrets (redacted in the record).
    secret_headers: Vec<String>,
    /// The secret values used, scrubbed from what is recorded.
    secrets: Vec<String>,
    body: Option<String>,
    content_type: String,
    timeout: Duration,
}

impl Request {
    /// `tool_call_details` of the record, secret headers redacted.
    fn details(&self) -> Value {
        json!({
            "type": "webhook",
            "method": self.method,
            "url": self.url,
            "headers": Value::Object(colloquy_core::redact::headers(&self.headers, &self.secret_headers)),
            "path_params": self.path_params,
            "query_params": self.query,
            "body": self.body,
        })
    }
}

/// Calls the webhook.
pub async fn call(scope: &CallScope<'_>, tool: &AgentTool, args: &Value) -> ToolOutcome {
    let request = match request(scope, tool, args).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let outcome = send(scope, &request).await;
    ToolOutcome { details: Some(request.details()), secrets: request.secrets, ..outcome }
}

/// The request the call makes, or why it cannot be made (a header's secret cannot be opened).
async fn request(
    scope: &CallScope<'_>, tool: &AgentTool, args: &Value,
) -> Result<Request, ToolOutcome> {
    let api = &tool.config["api_schema"];
    let method = api.get("method").and_then(Value::as_str).unwrap_or("GET").to_ascii_uppercase();
    let (url, path_params) = url(api, args, scope.vars);
    let content_type =
        api.get("content_type").and_then(Value::as_str).unwrap_or("application/json").to_owned();
    let body = matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
        .then(|| body(api, args, scope.vars, &content_type))
        .flatten();
    let mut request = Request {
        method,
        url,
        path_params,
        query: query(api, args, scope.vars),
        headers: Map::new(),
        secret_headers: Vec::new(),
        secrets: Vec::new(),
        body,
        content_type,
        timeout: tool
            .config
            .get("response_timeout_secs")
            .and_then(Value::as_f64)
            .filter(|t| *t > 0.0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64),
    };
    add_headers(scope, api, &mut request).await?;
    Ok(request)
}

/// The URL with its path parameters filled (and percent-encoded), and those parameters.
fn url(api: &Value, args: &Value, vars: &Map<String, Value>) -> (String, Map<String, Value>) {
    let mut url =
        template::render(api.get("url").and_then(Value::as_str).unwrap_or_default(), vars);
    let mut path_params = Map::new();
    for (name, schema) in
        api.get("path_params_schema").and_then(Value::as_object).into_iter().flatten()
    {
        let value = value_of(name, schema, args, vars).map(|v| as_text(&v)).unwrap_or_default();
        url = url.replace(&format!("{{{name}}}"), &percent_encode(&value));
        path_params.insert(name.clone(), json!(value));
    }
    (url, path_params)
}

/// The query parameters that have a value.
fn query(api: &Value, args: &Value, vars: &Map<String, Value>) -> Map<String, Value> {
    api.pointer("/query_params_schema/properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, schema)| {
            let value = value_of(name, schema, args, vars)?;
            Some((name.clone(), json!(as_text(&value))))
        })
        .collect()
}

/// The body, when the tool declares one: JSON, or a form for `x-www-form-urlencoded`.
fn body(
    api: &Value, args: &Value, vars: &Map<String, Value>, content_type: &str,
) -> Option<String> {
    let schema = api.get("request_body_schema").filter(|s| s.is_object())?;
    let fields: Map<String, Value> = schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, prop)| Some((name.clone(), value_of(name, prop, args, vars)?)))
        .collect();
    Some(if content_type == "application/x-www-form-urlencoded" {
        fields
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(&as_text(v))))
            .collect::<Vec<_>>()
            .join("&")
    } else {
        Value::Object(fields).to_string()
    })
}

/// The tool's headers, each a value, a dynamic variable's value, a workspace secret's, or an
/// environment variable's in the conversation's environment.
async fn add_headers(
    scope: &CallScope<'_>, api: &Value, request: &mut Request,
) -> Result<(), ToolOutcome> {
    for (name, value) in api.get("request_headers").and_then(Value::as_object).into_iter().flatten()
    {
        let opened =
            secrets::open_reference(scope.deps, scope.workspace_id, scope.environment, value)
                .await
                .map_err(|why| {
                    ToolOutcome::error(
                        CallStatus::Error,
                        "customer_auth",
                        format!("Header {name}: {why}"),
                    )
                })?;
        let resolved = if let Some(opened) = opened {
            if opened.secret {
                request.secret_headers.push(name.clone());
                request.secrets.push(opened.value.clone());
            }
            opened.value
        } else if let Some(var) = value.get("variable_name").and_then(Value::as_str) {
            scope.vars.get(var).map(as_text).unwrap_or_default()
        } else {
            template::render(&as_text(value), scope.vars)
        };
        request.headers.insert(name.clone(), json!(resolved));
    }
    Ok(())
}

/// Sends the request through the egress guard, reading at most the response size limit.
async fn send(scope: &CallScope<'_>, request: &Request) -> ToolOutcome {
    let mut parsed = match reqwest::Url::parse(&request.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ => {
            return ToolOutcome::error(
                CallStatus::Error,
                "customer_config",
                format!("The webhook URL {:?} is not valid", request.url),
            );
        }
    };
    if let Err(refused) = scope.deps.egress.check_url(&parsed) {
        return ToolOutcome::error(CallStatus::Error, "customer_config", refused.to_string());
    }
    if !request.query.is_empty() {
        let mut pairs = parsed.query_pairs_mut();
        for (k, v) in &request.query {
            pairs.append_pair(k, &as_text(v));
        }
    }
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let host = parsed.clone();
    let mut http = scope.deps.http.request(method, parsed);
    for (name, value) in &request.headers {
        http = http.header(name.as_str(), as_text(value));
    }
    if let Some(body) = &request.body {
        http = http.header("content-type", request.content_type.as_str()).body(body.clone());
    }
    let limit = scope.deps.limits.webhook_max_response_bytes;
    let exchange = async {
        // A slot for this host first, inside the call's timeout: a host that hangs fills only
        // its own slots.
        let _slot = scope.deps.webhook_hosts.slot(&host).await;
        let response = http.send().await?;
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
    let timeout = request.timeout;
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
        Ok(Ok((status, Some(bytes)))) => answered(status, &bytes),
    }
}

/// The outcome of the webhook's answer: its text, an error when the status is not 2xx.
fn answered(status: reqwest::StatusCode, bytes: &[u8]) -> ToolOutcome {
    let text = String::from_utf8_lossy(bytes).into_owned();
    if status.is_success() {
        return ToolOutcome::ok(text);
    }
    let kind = if status.is_server_error() { "external_server" } else { "external_client" };
    ToolOutcome::error(
        CallStatus::Error,
        kind,
        format!("The webhook answered HTTP {}: {text}", status.as_u16()),
    )
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
