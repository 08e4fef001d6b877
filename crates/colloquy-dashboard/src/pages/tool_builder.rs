//! Tools made and edited in the browser: a webhook (method, URL, headers with values or the
//! workspace's secrets, path/query/body parameters with their types and descriptions) or a
//! client tool (its parameters, whether it answers). Saved through the API (`POST` to create,
//! `PATCH` the whole `tool_config` to edit), whose refusals are shown at their fields.
//!
//! Editing starts from the stored configuration, so what the form does not show (a header
//! from a dynamic variable, a parameter's `enum` or `dynamic_variable`, an object-typed
//! parameter, assignments, mocks) is kept as it is.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Dash;
use crate::error::{Error, Result};
use crate::format::{encode, text};
use crate::forms::{Submitted, error_at, unplaced, violations};
use crate::layout::{self, Section};
use crate::session::Viewer;

pub fn routes() -> Router<Dash> {
    Router::new()
        .route("/tools/new", get(new_form).post(create))
        .route("/tools/{id}/edit", get(edit_form).post(save))
}

/// Blank rows a form offers for new headers and parameters.
const BLANK_ROWS: usize = 3;
const PARAM_TYPES: [&str; 4] = ["string", "number", "integer", "boolean"];

/// A parameter row: where it goes, its name, type, description, whether it is required.
#[derive(Debug, Clone, Default, PartialEq)]
struct Param {
    place: String,
    name: String,
    kind: String,
    description: String,
    required: bool,
}

/// The parameter rows of a configuration, and the parameters rows cannot show (object or
/// array typed), kept as they are.
fn params_of(config: &Value) -> (Vec<Param>, Vec<String>) {
    let mut rows = Vec::new();
    let mut kept = Vec::new();
    let api = &config["api_schema"];
    let mut add = |place: &str, props: &Value, required: &Value| {
        for (name, prop) in props.as_object().into_iter().flatten() {
            let kind = text(&prop["type"]);
            if !PARAM_TYPES.contains(&kind) {
                kept.push(format!(
                    "{name} ({place}, {})",
                    if kind.is_empty() { "object" } else { kind }
                ));
                continue;
            }
            rows.push(Param {
                place: place.into(),
                name: name.clone(),
                kind: kind.into(),
                description: text(&prop["description"]).into(),
                required: place == "path"
                    || required.as_array().into_iter().flatten().any(|r| r == name.as_str()),
            });
        }
    };
    add("path", &api["path_params_schema"], &Value::Null);
    add(
        "query",
        &api["query_params_schema"]["properties"],
        &api["query_params_schema"]["required"],
    );
    add("body", &api["request_body_schema"]["properties"], &api["request_body_schema"]["required"]);
    add("body", &config["parameters"]["properties"], &config["parameters"]["required"]);
    (rows, kept)
}

/// The parameter rows a form sent, blank ones left out.
fn submitted_params(form: &Submitted) -> Vec<Param> {
    let (places, names, kinds, descriptions, required) = (
        form.all("param_in"),
        form.all("param_name"),
        form.all("param_type"),
        form.all("param_description"),
        form.all("param_required"),
    );
    names
        .iter()
        .enumerate()
        .filter(|(_, name)| !name.trim().is_empty())
        .map(|(i, name)| Param {
            place: places.get(i).cloned().unwrap_or_else(|| "body".into()),
            name: name.trim().to_owned(),
            kind: kinds.get(i).cloned().unwrap_or_else(|| "string".into()),
            description: descriptions.get(i).cloned().unwrap_or_default(),
            required: required.get(i).is_some_and(|r| r == "yes"),
        })
        .collect()
}

/// A property for `param`, starting from the stored one of that name (its other fields kept).
fn property(param: &Param, old: Option<&Value>) -> Value {
    let mut prop = old.filter(|p| p.is_object()).cloned().unwrap_or_else(|| json!({}));
    prop["type"] = json!(param.kind);
    prop["description"] = json!(param.description);
    prop
}

/// An object schema of `params` placed at `place`, keeping what `old` had that rows cannot
/// show; `None` when it has no property at all.
fn object_schema(params: &[Param], place: &str, old: &Value) -> Option<Value> {
    let mut schema = if old.is_object() { old.clone() } else { json!({"type": "object"}) };
    let old_props = old["properties"].as_object();
    let mut props: Map<String, Value> = old_props
        .into_iter()
        .flatten()
        .filter(|(_, p)| !PARAM_TYPES.contains(&text(&p["type"])))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut required: Vec<Value> = old["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r.as_str().is_some_and(|r| props.contains_key(r)))
        .cloned()
        .collect();
    for p in params.iter().filter(|p| p.place == place) {
        props.insert(p.name.clone(), property(p, old_props.and_then(|o| o.get(&p.name))));
        if p.required {
            required.push(json!(p.name));
        }
    }
    if props.is_empty() {
        return None;
    }
    schema["properties"] = Value::Object(props);
    schema["required"] = Value::Array(required);
    Some(schema)
}

/// The `tool_config` a form asks for, built over `old` (the stored one, or nothing).
fn config_of(kind: &str, form: &Submitted, old: &Value) -> Value {
    let mut config = if old.is_object() { old.clone() } else { json!({}) };
    let field = |name: &str| form.first(name).unwrap_or_default().to_owned();
    config["type"] = json!(kind);
    config["name"] = json!(field("name").trim());
    config["description"] = json!(field("description"));
    let timeout = field("response_timeout_secs");
    config["response_timeout_secs"] = match timeout.trim().parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) if timeout.trim().is_empty() => json!(20),
        Err(_) => json!(timeout),
    };
    let params = submitted_params(form);
    if kind == "client" {
        config["expects_response"] = json!(form.first("expects_response").is_some());
        config["parameters"] =
            object_schema(&params, "body", &old["parameters"]).unwrap_or(Value::Null);
        return config;
    }
    let old_api = &old["api_schema"];
    let mut api = if old_api.is_object() { old_api.clone() } else { json!({}) };
    api["url"] = json!(field("url").trim());
    api["method"] = json!(field("method"));
    api["content_type"] = json!(form.first("content_type").unwrap_or("application/json"));
    api["request_headers"] = Value::Object(headers_of(form, &old_api["request_headers"]));
    let path: Map<String, Value> = params
        .iter()
        .filter(|p| p.place == "path")
        .map(|p| (p.name.clone(), property(p, old_api["path_params_schema"].get(&p.name))))
        .collect();
    api["path_params_schema"] = Value::Object(path);
    api["query_params_schema"] = object_schema(&params, "query", &old_api["query_params_schema"])
        .map_or(Value::Null, |mut q| {
            // The query schema has no `type`.
            q.as_object_mut().map(|o| o.remove("type"));
            q
        });
    api["request_body_schema"] =
        object_schema(&params, "body", &old_api["request_body_schema"]).unwrap_or(Value::Null);
    config["api_schema"] = api;
    config
}

/// The headers a form sent (a value, or a secret chosen by id), and those of `old` a row
/// cannot show (from a dynamic or environment variable), kept.
fn headers_of(form: &Submitted, old: &Value) -> Map<String, Value> {
    let mut headers: Map<String, Value> = old
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.is_object() && v.get("secret_id").is_none())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (names, values, secrets) =
        (form.all("header_name"), form.all("header_value"), form.all("header_secret"));
    for (i, name) in names.iter().enumerate().filter(|(_, n)| !n.trim().is_empty()) {
        let value = match secrets.get(i).filter(|s| !s.is_empty()) {
            Some(secret) => json!({"secret_id": secret}),
            None => json!(values.get(i).cloned().unwrap_or_default()),
        };
        headers.insert(name.trim().to_owned(), value);
    }
    headers
}

/// The dotted paths of the fields a form shows, beside the form names they have.
const FIELD_PATHS: [(&str, &str); 6] = [
    ("name", "tool_config.name"),
    ("description", "tool_config.description"),
    ("response_timeout_secs", "tool_config.response_timeout_secs"),
    ("url", "tool_config.api_schema.url"),
    ("method", "tool_config.api_schema.method"),
    ("content_type", "tool_config.api_schema.content_type"),
];

struct Builder<'a> {
    viewer: &'a Viewer,
    kind: &'a str,
    /// Where the form posts.
    action: String,
    config: &'a Value,
    secrets: &'a [(String, String)],
    errors: &'a BTreeMap<String, String>,
}

impl Builder<'_> {
    fn error(&self, name: &str) -> Option<&String> {
        let path = FIELD_PATHS.iter().find(|(n, _)| *n == name).map_or(name, |(_, p)| p);
        error_at(self.errors, path)
    }

    /// A labelled one-line box with its error.
    fn line(&self, name: &str, label: &str, value: &str, kind: &str) -> Markup {
        let id = format!("t-{name}");
        let error = self.error(name);
        html! {
            div.field {
                label for=(id) { (label) }
                input #(id) type=(kind) name=(name) value=(value) aria-invalid=[error.map(|_| "true")]
                    aria-describedby=[error.map(|_| format!("{id}-error"))];
                @if let Some(e) = error { span.field-error id={ (id) "-error" } { (e) } }
            }
        }
    }

    fn render(&self) -> Markup {
        let c = self.config;
        let api = &c["api_schema"];
        let placed: Vec<&str> = FIELD_PATHS.iter().map(|(_, p)| *p).collect();
        let others = unplaced(self.errors, &placed);
        let (params, kept) = params_of(c);
        let timeout =
            c["response_timeout_secs"].as_i64().map_or_else(|| "20".into(), |t| t.to_string());
        html! {
            form.stack.settings method="post" action=(self.action) aria-label="Tool" novalidate {
                (layout::csrf(self.viewer))
                input type="hidden" name="type" value=(self.kind);
                @if !others.is_empty() { p.error role="alert" { "Not saved: " (others.join("; ")) } }
                @else if !self.errors.is_empty() { p.error role="alert" { "Not saved: see the fields marked below." } }
                (self.line("name", "Name (letters, digits, _ and -)", text(&c["name"]), "text"))
                (self.line("description", "Description (what the LLM reads to decide when to call it)", text(&c["description"]), "text"))
                @if self.kind == "webhook" {
                    div.field {
                        label for="t-method" { "Method" }
                        select #t-method name="method" {
                            @for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                                option value=(m) selected[text(&api["method"]).eq_ignore_ascii_case(m)] { (m) }
                            }
                        }
                    }
                    (self.line("url", "URL (path parameters as {name})", text(&api["url"]), "url"))
                    div.field {
                        label for="t-content-type" { "Body format" }
                        select #t-content-type name="content_type" {
                            option value="application/json" { "JSON" }
                            option value="application/x-www-form-urlencoded" selected[text(&api["content_type"]) == "application/x-www-form-urlencoded"] { "Form (x-www-form-urlencoded)" }
                        }
                    }
                    (self.headers(&api["request_headers"]))
                } @else {
                    label.toggle for="t-expects" {
                        input #t-expects type="checkbox" name="expects_response" value="true" checked[c["expects_response"].as_bool() == Some(true)];
                        "The client answers (the agent waits for its result)"
                    }
                }
                (self.line("response_timeout_secs", "Timeout (seconds, 1 to 120)", &timeout, "number"))
                (self.params(&params, &kept))
                button type="submit" { "Save tool" }
            }
        }
    }

    fn headers(&self, stored: &Value) -> Markup {
        let rows: Vec<(String, String, String)> = stored
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone(), String::new())),
                Value::Object(o) => {
                    o.get("secret_id").map(|s| (k.clone(), String::new(), text(s).to_owned()))
                }
                _ => None,
            })
            .chain(std::iter::repeat_n(Default::default(), BLANK_ROWS.min(2)))
            .collect();
        let kept: Vec<&String> = stored
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.is_object() && v.get("secret_id").is_none())
            .map(|(k, _)| k)
            .collect();
        html! {
            fieldset {
                legend { "Headers (a value, or a secret of the workspace)" }
                @for (n, (name, value, secret)) in rows.iter().enumerate() {
                    div.row {
                        label { "Header " (n + 1) " name" input type="text" name="header_name" value=(name); }
                        label { "Header " (n + 1) " value" input type="text" name="header_value" value=(value); }
                        label { "Header " (n + 1) " secret"
                            select name="header_secret" {
                                option value="" { "— the value —" }
                                @for (id, label) in self.secrets {
                                    option value=(id) selected[*id == *secret] { (label) }
                                }
                            }
                        }
                    }
                }
                @if !kept.is_empty() {
                    p.hint { "Kept as configured (from variables): " @for k in kept { code { (k) } " " } }
                }
            }
        }
    }

    fn params(&self, params: &[Param], kept: &[String]) -> Markup {
        let blank = Param { place: "body".into(), kind: "string".into(), ..Param::default() };
        let rows: Vec<&Param> =
            params.iter().chain(std::iter::repeat_n(&blank, BLANK_ROWS)).collect();
        let webhook = self.kind == "webhook";
        html! {
            fieldset {
                legend { "Parameters (the LLM fills them; a row with no name is left out)" }
                @for (n, p) in rows.iter().enumerate() {
                    div.row {
                        @if webhook {
                            label { "Parameter " (n + 1) " in"
                                select name="param_in" {
                                    @for place in ["body", "query", "path"] { option value=(place) selected[p.place == place] { (place) } }
                                }
                            }
                        } @else {
                            input type="hidden" name="param_in" value="body";
                        }
                        label { "Parameter " (n + 1) " name" input type="text" name="param_name" value=(p.name); }
                        label { "Parameter " (n + 1) " type"
                            select name="param_type" {
                                @for t in PARAM_TYPES { option value=(t) selected[p.kind == t] { (t) } }
                            }
                        }
                        label { "Parameter " (n + 1) " description" input type="text" name="param_description" value=(p.description); }
                        label { "Parameter " (n + 1) " required"
                            select name="param_required" {
                                option value="yes" selected[p.required] { "required" }
                                option value="no" selected[!p.required] { "optional" }
                            }
                        }
                    }
                }
                @if !kept.is_empty() { p.hint { "Kept as configured: " (kept.join(", ")) } }
            }
        }
    }
}

/// The workspace's secrets as `(id, name)`, for the choices of a header or a token.
pub(crate) async fn secrets(dash: &Dash, viewer: &Viewer) -> Result<Vec<(String, String)>> {
    let page = dash.api.get(&viewer.creds(), "/v1/convai/secrets?page_size=100").await?;
    Ok(page["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| (text(&s["secret_id"]).to_owned(), text(&s["name"]).to_owned()))
        .collect())
}

#[derive(Debug, Deserialize)]
pub struct NewQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

fn kind_of(asked: Option<&str>) -> &'static str {
    if asked == Some("client") { "client" } else { "webhook" }
}

fn page(viewer: &Viewer, title: &str, builder: &Builder<'_>) -> Markup {
    layout::page(viewer, Section::Tools, title, builder.render())
}

async fn new_form(
    viewer: Viewer, State(dash): State<Dash>, Query(q): Query<NewQuery>,
) -> Result<Html<String>> {
    let kind = kind_of(q.kind.as_deref());
    let secrets = secrets(&dash, &viewer).await?;
    let config = json!({"type": kind, "api_schema": {"method": "POST"}});
    let builder = Builder {
        viewer: &viewer,
        kind,
        action: "/tools/new".into(),
        config: &config,
        secrets: &secrets,
        errors: &BTreeMap::new(),
    };
    Ok(Html(page(&viewer, &format!("New {kind} tool"), &builder).into_string()))
}

async fn edit_form(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
) -> Result<Html<String>> {
    let tool = dash.api.get(&viewer.creds(), &format!("/v1/convai/tools/{}", encode(&id))).await?;
    let config = &tool["tool_config"];
    let kind = text(&config["type"]);
    if kind != "webhook" && kind != "client" {
        return Err(Error::Api {
            status: StatusCode::BAD_REQUEST,
            message: format!("A {kind} tool is edited through the API, not this form."),
        });
    }
    let secrets = secrets(&dash, &viewer).await?;
    let builder = Builder {
        viewer: &viewer,
        kind,
        action: format!("/tools/{}/edit", encode(&id)),
        config,
        secrets: &secrets,
        errors: &BTreeMap::new(),
    };
    Ok(Html(page(&viewer, &format!("Edit {}", text(&config["name"])), &builder).into_string()))
}

/// Sends `config` with `method` to `uri`; the tool's page on success, the form again with the
/// refusal at its fields otherwise.
async fn submit(
    viewer: &Viewer, dash: &Dash, method: Method, uri: &str, action: String, config: Value,
) -> Result<Response> {
    let body = json!({"tool_config": config});
    let (status, answer) = dash.api.raw(&viewer.creds(), method, uri, Some(&body)).await?;
    if status.is_success() {
        let id = text(&answer["id"]);
        return Ok(Redirect::to(&format!("/tools/{}", encode(id))).into_response());
    }
    if !status.is_client_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::NOT_FOUND
    {
        return Err(crate::api::refusal(status, &answer));
    }
    let kind = text(&config["type"]);
    // The API names the union's branch too (`tool_config.webhook.name`); fields do not.
    let branch = format!("tool_config.{kind}.");
    let errors = violations(&answer)
        .into_iter()
        .map(|(at, m)| match at.strip_prefix(&branch) {
            Some(rest) => (format!("tool_config.{rest}"), m),
            None => (at, m),
        })
        .collect();
    let secrets = secrets(dash, viewer).await?;
    let builder =
        Builder { viewer, kind, action, config: &config, secrets: &secrets, errors: &errors };
    let title = if kind == "client" { "Client tool" } else { "Webhook tool" };
    Ok((status, Html(page(viewer, title, &builder).into_string())).into_response())
}

async fn create(
    viewer: Viewer, State(dash): State<Dash>, Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response> {
    let form = Submitted(pairs);
    viewer.check(form.first("_csrf").unwrap_or_default())?;
    let config = config_of(kind_of(form.first("type")), &form, &Value::Null);
    submit(&viewer, &dash, Method::POST, "/v1/convai/tools", "/tools/new".into(), config).await
}

async fn save(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response> {
    let form = Submitted(pairs);
    viewer.check(form.first("_csrf").unwrap_or_default())?;
    let uri = format!("/v1/convai/tools/{}", encode(&id));
    let tool = dash.api.get(&viewer.creds(), &uri).await?;
    let old = &tool["tool_config"];
    let config = config_of(kind_of(old["type"].as_str()), &form, old);
    let action = format!("/tools/{}/edit", encode(&id));
    submit(&viewer, &dash, Method::PATCH, &uri, action, config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submitted(pairs: &[(&str, &str)]) -> Submitted {
        Submitted(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn a_webhook_form_becomes_its_api_schema() {
        let form = submitted(&[
            ("name", "get_order"),
            ("description", "Finds an order"),
            ("response_timeout_secs", "10"),
            ("method", "POST"),
            ("url", "https://shop.example/orders/{order_id}"),
            ("content_type", "application/json"),
            ("header_name", "Authorization"),
            ("header_value", ""),
            ("header_secret", "sec_1"),
            ("header_name", "X-Shop"),
            ("header_value", "main"),
            ("header_secret", ""),
            ("header_name", ""),
            ("header_value", ""),
            ("header_secret", ""),
            ("param_in", "path"),
            ("param_name", "order_id"),
            ("param_type", "string"),
            ("param_description", "The order"),
            ("param_required", "yes"),
            ("param_in", "query"),
            ("param_name", "verbose"),
            ("param_type", "boolean"),
            ("param_description", "More"),
            ("param_required", "no"),
            ("param_in", "body"),
            ("param_name", "note"),
            ("param_type", "string"),
            ("param_description", "A note"),
            ("param_required", "yes"),
            ("param_in", "body"),
            ("param_name", " "),
            ("param_type", "string"),
            ("param_description", ""),
            ("param_required", "no"),
        ]);
        let c = config_of("webhook", &form, &Value::Null);
        assert_eq!(
            (c["name"].as_str(), c["response_timeout_secs"].as_i64()),
            (Some("get_order"), Some(10))
        );
        let api = &c["api_schema"];
        assert_eq!(
            api["request_headers"],
            json!({"Authorization": {"secret_id": "sec_1"}, "X-Shop": "main"})
        );
        assert_eq!(
            api["path_params_schema"],
            json!({"order_id": {"type": "string", "description": "The order"}})
        );
        assert_eq!(
            api["query_params_schema"],
            json!({"properties": {"verbose": {"type": "boolean", "description": "More"}}, "required": []})
        );
        assert_eq!(api["request_body_schema"]["required"], json!(["note"]));
        assert_eq!(api["request_body_schema"]["type"], "object");
        assert_eq!(params_of(&c).0.len(), 3, "the rows come back from the schema");
    }

    #[test]
    fn editing_keeps_what_the_form_does_not_show() {
        let old = json!({"type": "webhook", "name": "x", "assignments": [{"dynamic_variable": "v", "value_path": "a"}],
            "api_schema": {"url": "https://a.example", "method": "POST",
                "request_headers": {"X-User": {"variable_name": "user"}, "Old": "gone"},
                "request_body_schema": {"type": "object", "required": ["address"], "properties": {
                    "address": {"type": "object", "properties": {"city": {"type": "string"}}},
                    "city": {"type": "string", "description": "old", "enum": ["Paris", "Rome"]}}}}});
        let form = submitted(&[
            ("name", "x"),
            ("method", "POST"),
            ("url", "https://a.example"),
            ("param_in", "body"),
            ("param_name", "city"),
            ("param_type", "string"),
            ("param_description", "The city"),
            ("param_required", "yes"),
        ]);
        let c = config_of("webhook", &form, &old);
        assert_eq!(c["assignments"], old["assignments"]);
        let api = &c["api_schema"];
        assert_eq!(
            api["request_headers"],
            json!({"X-User": {"variable_name": "user"}}),
            "a removed row goes, a variable stays"
        );
        let body = &api["request_body_schema"];
        assert_eq!(
            body["properties"]["address"],
            old["api_schema"]["request_body_schema"]["properties"]["address"]
        );
        assert_eq!(
            body["properties"]["city"],
            json!({"type": "string", "description": "The city", "enum": ["Paris", "Rome"]})
        );
        assert_eq!(body["required"], json!(["address", "city"]));
        assert_eq!(params_of(&old).1, vec!["address (body, object)"]);
    }

    #[test]
    fn a_client_form_has_parameters_and_an_answer_flag() {
        let form = submitted(&[
            ("name", "show_map"),
            ("expects_response", "true"),
            ("response_timeout_secs", "soon"),
            ("param_in", "body"),
            ("param_name", "place"),
            ("param_type", "string"),
            ("param_description", "Where"),
            ("param_required", "yes"),
        ]);
        let c = config_of("client", &form, &Value::Null);
        assert_eq!(c["expects_response"], true);
        assert_eq!(c["response_timeout_secs"], "soon", "the API says what is wrong with it");
        assert_eq!(c["parameters"]["properties"]["place"]["description"], "Where");
        assert!(c.get("api_schema").is_none());
    }
}
