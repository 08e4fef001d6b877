//! Tests made in the browser: from scratch (the conversation so far written as `user:` and
//! `agent:` lines), or from a turn of a real conversation, the reference's "create test from
//! conversation": what was said before the agent's turn becomes the test's history, and the
//! turn itself its expectation, a reply like the one given (a response test) or the tool it
//! called with the same arguments (a tool-call test). Saved through the API, whose refusals
//! are shown at their fields.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Dash;
use crate::error::Result;
use crate::format::{encode, text, with_query};
use crate::forms::{Submitted, error_at, unplaced, violations};
use crate::layout::{self, Section};
use crate::session::Viewer;

pub fn routes() -> Router<Dash> {
    Router::new().route("/tests/new", get(new_form).post(create))
}

/// Where a test comes from: a conversation's agent turn, by its place in the transcript.
#[derive(Debug, Default, Deserialize)]
pub struct Origin {
    conversation_id: Option<String>,
    turn: Option<usize>,
}

/// What the form starts from.
#[derive(Debug, Default)]
struct Draft {
    kind: String,
    name: String,
    agent_id: String,
    /// The history as `user:`/`agent:` lines (a test from scratch).
    lines: String,
    /// The history of a conversation, shown, not edited.
    history: Vec<Value>,
    condition: String,
    success: String,
    failure: String,
    tool_id: String,
    /// `(path, expected)` of the parameters checked.
    params: Vec<(String, String)>,
    absent: bool,
    conversation_id: String,
    turn: Option<usize>,
}

/// Up to 200 entries before `turn`, as the API's `chat_history` takes them.
fn history_before(transcript: &[Value], turn: usize) -> Vec<Value> {
    let start = turn.saturating_sub(200);
    transcript[start..turn.min(transcript.len())]
        .iter()
        .filter(|e| matches!(text(&e["role"]), "user" | "agent"))
        .map(|e| {
            json!({
                "role": e["role"],
                "message": e["message"],
                "time_in_call_secs": e["time_in_call_secs"].as_f64().unwrap_or(0.0) as i64,
            })
        })
        .collect()
}

/// `user: ...` / `agent: ...` lines as a chat history; a line without a role continues the
/// message before it.
fn history_of_lines(lines: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for line in lines.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()) {
        let lower = line.to_ascii_lowercase();
        let role = ["user", "agent"].into_iter().find(|r| lower.starts_with(&format!("{r}:")));
        match (role, out.last_mut()) {
            (Some(role), _) => out.push(json!({
                "role": role,
                "message": line[role.len() + 1..].trim(),
                "time_in_call_secs": out.len(),
            })),
            (None, Some(last)) => {
                let joined = format!("{}\n{}", text(&last["message"]), line.trim());
                last["message"] = json!(joined);
            }
            (None, None) => {
                out.push(json!({"role": "user", "message": line.trim(), "time_in_call_secs": 0}))
            }
        }
    }
    out
}

/// The draft a conversation's turn gives, `tools` being the workspace's `(id, name, type)`.
fn draft_of_turn(conversation: &Value, turn: usize, tools: &[(String, String, String)]) -> Draft {
    let transcript = conversation["transcript"].as_array().map(Vec::as_slice).unwrap_or_default();
    let entry = transcript.get(turn).cloned().unwrap_or(Value::Null);
    let reply = text(&entry["message"]).to_owned();
    let call = entry["tool_calls"].as_array().and_then(|c| c.first()).cloned();
    let mut draft = Draft {
        name: format!("Turn {} of {}", turn + 1, text(&conversation["conversation_id"])),
        agent_id: text(&conversation["agent_id"]).to_owned(),
        history: history_before(transcript, turn),
        conversation_id: text(&conversation["conversation_id"]).to_owned(),
        turn: Some(turn),
        ..Draft::default()
    };
    match call {
        Some(call) => {
            let name = text(&call["tool_name"]);
            draft.kind = "tool".into();
            draft.tool_id = tools
                .iter()
                .find(|(_, n, _)| n == name)
                .map_or(name, |(id, ..)| id.as_str())
                .into();
            let params: Value =
                serde_json::from_str(text(&call["params_as_json"])).unwrap_or(Value::Null);
            draft.params = params
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect();
        }
        None => {
            draft.kind = "llm".into();
            draft.condition = format!("The agent answers as this reply does: {reply}");
            draft.success = reply;
        }
    }
    draft
}

struct Choices {
    agents: Vec<(String, String)>,
    tools: Vec<(String, String, String)>,
}

async fn choices(dash: &Dash, viewer: &Viewer) -> Result<Choices> {
    let creds = viewer.creds();
    let (agents, tools) = futures_util::future::join(
        dash.api.get(&creds, "/v1/convai/agents?page_size=100"),
        dash.api.get(&creds, "/v1/convai/tools?page_size=100"),
    )
    .await;
    let agents = agents?["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| (text(&a["agent_id"]).to_owned(), text(&a["name"]).to_owned()))
        .collect();
    let tools = tools?["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let c = &t["tool_config"];
            (text(&t["id"]).to_owned(), text(&c["name"]).to_owned(), text(&c["type"]).to_owned())
        })
        .collect();
    Ok(Choices { agents, tools })
}

/// A violation's message under a field, when there is one at `path`.
fn error(errors: &BTreeMap<String, String>, path: &str, id: &str) -> Markup {
    html! { @if let Some(m) = error_at(errors, path) { span.field-error id={ (id) "-error" } { (m) } } }
}

fn render(
    viewer: &Viewer, draft: &Draft, choices: &Choices, errors: &BTreeMap<String, String>,
) -> Markup {
    let placed =
        ["name", "success_condition", "success_examples", "tool_call_parameters", "chat_history"];
    let others = unplaced(errors, &placed);
    html! {
        form.stack.settings method="post" action="/tests/new" aria-label="New test" novalidate {
            (layout::csrf(viewer))
            @if !others.is_empty() { p.error role="alert" { "Not saved: " (others.join("; ")) } }
            @else if !errors.is_empty() { p.error role="alert" { "Not saved: see the fields marked below." } }
            input type="hidden" name="conversation_id" value=(draft.conversation_id);
            @if let Some(turn) = draft.turn { input type="hidden" name="turn" value=(turn); }
            div.field {
                label for="test-name" { "Name" }
                input #test-name type="text" name="name" value=(draft.name) aria-invalid=[error_at(errors, "name").map(|_| "true")];
                (error(errors, "name", "test-name"))
            }
            div.field {
                label for="test-agent" { "Agent to run it on (its tests list)" }
                select #test-agent name="agent_id" {
                    option value="" { "— any —" }
                    @for (id, name) in &choices.agents { option value=(id) selected[*id == draft.agent_id] { (name) } }
                }
            }
            (history_fields(draft, errors))
            fieldset {
                legend { "What the agent must do next" }
                label.toggle { input type="radio" name="type" value="llm" checked[draft.kind != "tool"]; "Reply (judged against a condition)" }
                label.toggle { input type="radio" name="type" value="tool" checked[draft.kind == "tool"]; "Call a tool" }
            }
            (reply_fields(draft, errors))
            (tool_fields(draft, choices, errors))
            button type="submit" { "Create test" }
        }
    }
}

/// The conversation before the expected turn: typed as lines, or shown from a conversation.
fn history_fields(draft: &Draft, errors: &BTreeMap<String, String>) -> Markup {
    html! {
        @if draft.history.is_empty() && draft.conversation_id.is_empty() {
            div.field {
                label for="test-history" { "The conversation so far, a line each: \"user: ...\" or \"agent: ...\"" }
                textarea #test-history name="history" rows="6" { (draft.lines) }
                (error(errors, "chat_history", "test-history"))
            }
        } @else {
            fieldset {
                legend { "The conversation so far (from the conversation, up to the turn)" }
                @if draft.history.is_empty() { p.muted { "Nothing: the turn opened the conversation." } }
                ol.transcript {
                    @for e in &draft.history {
                        li class=(text(&e["role"])) { div.who { (text(&e["role"])) } div.text { (text(&e["message"])) } }
                    }
                }
            }
        }
    }
}

fn reply_fields(draft: &Draft, errors: &BTreeMap<String, String>) -> Markup {
    html! {
        fieldset {
            legend { "A reply" }
            div.field {
                label for="test-condition" { "Success condition" }
                textarea #test-condition name="success_condition" rows="3" { (draft.condition) }
                (error(errors, "success_condition", "test-condition"))
            }
            div.field {
                label for="test-success" { "A reply that passes" }
                textarea #test-success name="success_example" rows="2" { (draft.success) }
                (error(errors, "success_examples", "test-success"))
            }
            div.field {
                label for="test-failure" { "A reply that fails (optional)" }
                textarea #test-failure name="failure_example" rows="2" { (draft.failure) }
            }
        }
    }
}

fn tool_fields(draft: &Draft, choices: &Choices, errors: &BTreeMap<String, String>) -> Markup {
    let mut tools = choices.tools.clone();
    if !draft.tool_id.is_empty() && !tools.iter().any(|(id, ..)| *id == draft.tool_id) {
        tools.insert(0, (draft.tool_id.clone(), draft.tool_id.clone(), "system".into()));
    }
    let rows: Vec<(String, String)> =
        draft.params.iter().cloned().chain(std::iter::repeat_n(Default::default(), 2)).collect();
    html! {
        fieldset {
            legend { "A tool call" }
            div.field {
                label for="test-tool" { "Tool" }
                select #test-tool name="tool_id" {
                    option value="" { "—" }
                    @for (id, name, kind) in &tools { option value={ (kind) ":" (id) } selected[*id == draft.tool_id] { (name) " (" (kind) ")" } }
                }
                (error(errors, "tool_call_parameters", "test-tool"))
            }
            @for (n, (path, expected)) in rows.iter().enumerate() {
                div.row {
                    label { "Argument " (n + 1) " name" input type="text" name="param_path" value=(path); }
                    label { "Argument " (n + 1) " expected value" input type="text" name="param_value" value=(expected); }
                }
            }
            label.toggle { input type="checkbox" name="verify_absence" value="true" checked[draft.absent]; "Passes when the tool is NOT called" }
        }
    }
}

async fn new_form(
    viewer: Viewer, State(dash): State<Dash>, Query(origin): Query<Origin>,
) -> Result<Html<String>> {
    let choices = choices(&dash, &viewer).await?;
    let draft = match (origin.conversation_id.as_deref().filter(|c| !c.is_empty()), origin.turn) {
        (Some(id), Some(turn)) => {
            let uri = format!("/v1/convai/conversations/{}", encode(id));
            let conversation = dash.api.get(&viewer.creds(), &uri).await?;
            draft_of_turn(&conversation, turn, &choices.tools)
        }
        _ => Draft { kind: "llm".into(), ..Draft::default() },
    };
    let title = if draft.turn.is_some() { "New test from a conversation" } else { "New test" };
    let page = layout::page(
        &viewer,
        Section::Tests,
        title,
        render(&viewer, &draft, &choices, &BTreeMap::new()),
    );
    Ok(Html(page.into_string()))
}

/// The API's request for a submitted form, and the draft to show again if it is refused.
async fn request_of(
    dash: &Dash, viewer: &Viewer, form: &Submitted, choices: &Choices,
) -> Result<(Value, Draft)> {
    let field = |name: &str| form.first(name).unwrap_or_default().to_owned();
    let turn = form.first("turn").and_then(|t| t.parse::<usize>().ok());
    let mut draft = match (field("conversation_id"), turn) {
        (id, Some(turn)) if !id.is_empty() => {
            let uri = format!("/v1/convai/conversations/{}", encode(&id));
            draft_of_turn(&dash.api.get(&viewer.creds(), &uri).await?, turn, &choices.tools)
        }
        _ => Draft { lines: field("history"), ..Draft::default() },
    };
    let (kind, tool) = field("tool_id")
        .split_once(':')
        .map_or((String::new(), String::new()), |(k, i)| (k.into(), i.into()));
    draft.kind = if field("type") == "tool" { "tool".into() } else { "llm".into() };
    draft.name = field("name");
    draft.agent_id = field("agent_id");
    draft.condition = field("success_condition");
    draft.success = field("success_example");
    draft.failure = field("failure_example");
    draft.tool_id = tool.clone();
    draft.absent = form.first("verify_absence").is_some();
    draft.params = form
        .all("param_path")
        .into_iter()
        .zip(form.all("param_value"))
        .filter(|(p, _)| !p.trim().is_empty())
        .map(|(p, v)| (p.trim().to_owned(), v))
        .collect();
    let history = if draft.conversation_id.is_empty() {
        history_of_lines(&draft.lines)
    } else {
        draft.history.clone()
    };
    let mut body = json!({"name": draft.name, "type": draft.kind, "chat_history": history});
    if draft.kind == "tool" {
        let parameters: Vec<Value> = draft
            .params
            .iter()
            .map(|(path, value)| json!({"path": path, "eval": {"type": "exact", "expected_value": value}}))
            .collect();
        let referenced = (!tool.is_empty()).then(|| json!({"id": tool, "type": kind}));
        body["tool_call_parameters"] = json!({"referenced_tool": referenced, "parameters": parameters, "verify_absence": draft.absent});
    } else {
        body["success_condition"] = json!(draft.condition);
        let example = |text: &str, kind: &str| {
            (!text.trim().is_empty())
                .then(|| json!([{"response": text, "type": kind}]))
                .unwrap_or(json!([]))
        };
        body["success_examples"] = example(&draft.success, "success");
        body["failure_examples"] = example(&draft.failure, "failure");
    }
    if !draft.conversation_id.is_empty() {
        body["from_conversation_metadata"] =
            json!({"conversation_id": draft.conversation_id, "agent_id": draft.agent_id});
    }
    Ok((body, draft))
}

async fn create(
    viewer: Viewer, State(dash): State<Dash>, Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response> {
    let form = Submitted(pairs);
    viewer.check(form.first("_csrf").unwrap_or_default())?;
    let choices = choices(&dash, &viewer).await?;
    let (body, draft) = request_of(&dash, &viewer, &form, &choices).await?;
    if draft.name.trim().is_empty() {
        // The API takes an empty name; a list of tests cannot show one.
        let errors = BTreeMap::from([("name".to_owned(), "A test needs a name.".to_owned())]);
        let page = layout::page(
            &viewer,
            Section::Tests,
            "New test",
            render(&viewer, &draft, &choices, &errors),
        );
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.into_string())).into_response());
    }
    let (status, answer) = dash
        .api
        .raw(&viewer.creds(), Method::POST, "/v1/convai/agent-testing/create", Some(&body))
        .await?;
    if status.is_success() {
        let agent = Some(draft.agent_id.as_str()).filter(|a| !a.is_empty());
        let to = with_query("/tests", &[("agent_id", agent)]);
        return Ok(Redirect::to(&to).into_response());
    }
    if !status.is_client_error() || status == StatusCode::UNAUTHORIZED {
        return Err(crate::api::refusal(status, &answer));
    }
    // The API names the union's branch too (`llm.name`); fields do not.
    let errors = violations(&answer)
        .into_iter()
        .map(|(at, m)| match at.split_once('.') {
            Some((branch, rest)) if branch == "llm" || branch == "tool" => (rest.to_owned(), m),
            _ => (at, m),
        })
        .collect();
    let page = layout::page(
        &viewer,
        Section::Tests,
        "New test",
        render(&viewer, &draft, &choices, &errors),
    );
    Ok((status, Html(page.into_string())).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_a_chat_history() {
        let history =
            history_of_lines("User: hi\nagent: Hello!\nHow can I help?\n\nuser: my order");
        assert_eq!(history.len(), 3);
        assert_eq!(
            history[1],
            json!({"role": "agent", "message": "Hello!\nHow can I help?", "time_in_call_secs": 1})
        );
        assert_eq!(history[2]["message"], "my order");
    }

    #[test]
    fn a_turn_that_called_a_tool_becomes_a_tool_test_with_its_arguments() {
        let conversation = json!({"conversation_id": "c1", "agent_id": "a1", "transcript": [
            {"role": "agent", "message": "Hi", "time_in_call_secs": 0},
            {"role": "user", "message": "weather in Lyon?", "time_in_call_secs": 2},
            {"role": "agent", "message": null, "time_in_call_secs": 3,
                "tool_calls": [{"tool_name": "get_weather", "params_as_json": "{\"city\": \"Lyon\", \"days\": 2}"}]},
            {"role": "agent", "message": "Sunny.", "time_in_call_secs": 4}]});
        let tools = vec![("tool_w".to_owned(), "get_weather".to_owned(), "webhook".to_owned())];
        let tool = draft_of_turn(&conversation, 2, &tools);
        assert_eq!((tool.kind.as_str(), tool.tool_id.as_str()), ("tool", "tool_w"));
        assert_eq!(tool.params, vec![("city".into(), "Lyon".into()), ("days".into(), "2".into())]);
        assert_eq!(tool.history.len(), 2);
        let reply = draft_of_turn(&conversation, 3, &tools);
        assert_eq!((reply.kind.as_str(), reply.success.as_str()), ("llm", "Sunny."));
        assert_eq!(reply.history.len(), 3);
    }
}
