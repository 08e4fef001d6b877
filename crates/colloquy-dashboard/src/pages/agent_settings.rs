//! An agent's settings as forms, in tabs like the reference dashboard's: the agent itself
//! (first message, prompt, language, model), its tools, its knowledge base, its voice, its
//! analysis, and the whole document as JSON.
//!
//! A tab's form saves only its own fields, through the API's PATCH, so the API's validation
//! decides what is valid; a refusal is shown at the field its `loc` names, with what was typed
//! kept (the form is drawn again from the agent with the refused patch laid over it).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use maud::{Markup, html};
use serde_json::{Map, Value, json};

use super::agents;
use crate::Dash;
use crate::error::Result;
use crate::format::{encode, text};
use crate::forms::{Submitted, error_at, unplaced, violations};
use crate::session::Viewer;

pub fn routes() -> Router<Dash> {
    Router::new().route("/agents/{id}/settings/{tab}", post(save))
}

/// The tabs of an agent's page, in the reference dashboard's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Agent,
    Tools,
    KnowledgeBase,
    Voice,
    Analysis,
    Advanced,
}

impl Tab {
    pub const ALL: [Tab; 6] =
        [Tab::Agent, Tab::Tools, Tab::KnowledgeBase, Tab::Voice, Tab::Analysis, Tab::Advanced];

    pub fn slug(self) -> &'static str {
        match self {
            Tab::Agent => "agent",
            Tab::Tools => "tools",
            Tab::KnowledgeBase => "knowledge-base",
            Tab::Voice => "voice",
            Tab::Analysis => "analysis",
            Tab::Advanced => "advanced",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Tab::Agent => "Agent",
            Tab::Tools => "Tools",
            Tab::KnowledgeBase => "Knowledge base",
            Tab::Voice => "Voice",
            Tab::Analysis => "Analysis",
            Tab::Advanced => "Advanced (JSON)",
        }
    }

    /// The tab a query names; the first for anything else.
    pub fn from_slug(slug: Option<&str>) -> Tab {
        Tab::ALL.into_iter().find(|t| Some(t.slug()) == slug).unwrap_or(Tab::Agent)
    }
}

/// The languages the reference's agents speak, by code.
const LANGUAGES: [(&str, &str); 33] = [
    ("en", "English"),
    ("ar", "Arabic"),
    ("bg", "Bulgarian"),
    ("zh", "Chinese"),
    ("hr", "Croatian"),
    ("cs", "Czech"),
    ("da", "Danish"),
    ("nl", "Dutch"),
    ("fil", "Filipino"),
    ("fi", "Finnish"),
    ("fr", "French"),
    ("de", "German"),
    ("el", "Greek"),
    ("hi", "Hindi"),
    ("hu", "Hungarian"),
    ("id", "Indonesian"),
    ("it", "Italian"),
    ("ja", "Japanese"),
    ("ko", "Korean"),
    ("ms", "Malay"),
    ("no", "Norwegian"),
    ("pl", "Polish"),
    ("pt", "Portuguese"),
    ("pt-br", "Portuguese (Brazil)"),
    ("ro", "Romanian"),
    ("ru", "Russian"),
    ("sk", "Slovak"),
    ("es", "Spanish"),
    ("sv", "Swedish"),
    ("ta", "Tamil"),
    ("tr", "Turkish"),
    ("uk", "Ukrainian"),
    ("vi", "Vietnamese"),
];

/// The reference's `TTSConversationalModel`s.
const TTS_MODELS: [&str; 6] = [
    "eleven_turbo_v2",
    "eleven_turbo_v2_5",
    "eleven_flash_v2",
    "eleven_flash_v2_5",
    "eleven_multilingual_v2",
    "eleven_v3_conversational",
];

/// The built-in system tools (`prompt.built_in_tools`), with what each does.
const SYSTEM_TOOLS: [(&str, &str); 7] = [
    ("end_call", "End the call when the conversation is over"),
    ("language_detection", "Switch language when the user speaks another"),
    ("skip_turn", "Let the user think without being answered"),
    ("transfer_to_agent", "Transfer to another agent (targets in the JSON)"),
    ("transfer_to_number", "Transfer to a phone number (telephony only)"),
    ("play_keypad_touch_tone", "Play keypad tones (telephony only)"),
    ("voicemail_detection", "Detect voicemail (telephony only)"),
];

const PROMPT: &str = "conversation_config.agent.prompt";

/// How a field is typed and read back.
enum Kind {
    Line,
    Text,
    /// A number; `empty` is what an empty box means (`None`: leave the setting as it is).
    Number {
        min: Option<f64>,
        max: Option<f64>,
        step: &'static str,
        empty: Option<Value>,
    },
    Integer {
        min: i64,
        empty: Option<Value>,
    },
    Choice(Vec<(String, String)>),
    Check,
}

/// One form field and the document path it edits (dotted, also its form name).
struct Field {
    path: &'static str,
    label: &'static str,
    hint: Option<&'static str>,
    kind: Kind,
}

fn field(path: &'static str, label: &'static str, kind: Kind) -> Field {
    Field { path, label, hint: None, kind }
}

/// What a dashboard needs besides the agent to draw a tab: choices from the API.
#[derive(Default)]
pub struct Choices {
    /// Model names this server can use.
    llms: Vec<String>,
    /// The workspace's tools, MCP servers and documents as `(id, name, kind)`.
    tools: Vec<(String, String, String)>,
    mcp_servers: Vec<(String, String, String)>,
    documents: Vec<(String, String, String)>,
}

/// `(id, name, kind)` of each item of a list the API answers.
fn items(page: &Value, list: &str, name: &str, kind: &str) -> Vec<(String, String, String)> {
    page[list]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let pick = |pointer: &str| item.pointer(pointer).map(text).unwrap_or_default();
            (pick("/id").to_owned(), pick(name).to_owned(), pick(kind).to_owned())
        })
        .collect()
}

/// The choices `tab` offers, read through the API.
pub async fn choices(dash: &Dash, viewer: &Viewer, tab: Tab) -> Result<Choices> {
    let creds = viewer.creds();
    let mut out = Choices::default();
    match tab {
        Tab::Agent => {
            let page = dash.api.get(&creds, "/v1/convai/llm/list").await?;
            out.llms = page["llms"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| text(&m["llm"]).to_owned())
                .collect();
        }
        Tab::Tools => {
            let tools = dash.api.get(&creds, "/v1/convai/tools?page_size=100").await?;
            out.tools = items(&tools, "tools", "/tool_config/name", "/tool_config/type");
            let servers = dash.api.get(&creds, "/v1/convai/mcp-servers").await?;
            out.mcp_servers = items(&servers, "mcp_servers", "/config/name", "/config/url");
        }
        Tab::KnowledgeBase => {
            let docs = dash.api.get(&creds, "/v1/convai/knowledge-base?page_size=100").await?;
            out.documents = items(&docs, "documents", "/name", "/type");
        }
        Tab::Voice | Tab::Analysis | Tab::Advanced => {}
    }
    Ok(out)
}

/// The fields of a tab drawn from [`Field`]s.
fn fields(tab: Tab, agent: &Value, choices: &Choices) -> Vec<Field> {
    match tab {
        Tab::Agent => agent_fields(agent, choices),
        Tab::Voice => voice_fields(),
        Tab::Tools | Tab::KnowledgeBase | Tab::Analysis | Tab::Advanced => Vec::new(),
    }
}

fn agent_fields(agent: &Value, choices: &Choices) -> Vec<Field> {
    let number = |min, max, step, empty| Kind::Number { min, max, step, empty };
    let current = value_at(agent, "conversation_config.agent.prompt.llm");
    let mut llms: Vec<(String, String)> =
        choices.llms.iter().map(|m| (m.clone(), m.clone())).collect();
    if let Some(current) = current.as_str().filter(|c| !choices.llms.iter().any(|m| m == c)) {
        llms.insert(0, (current.to_owned(), format!("{current} (current)")));
    }
    let language = value_at(agent, "conversation_config.agent.language");
    let mut languages: Vec<(String, String)> =
        LANGUAGES.iter().map(|(c, n)| ((*c).to_owned(), format!("{n} ({c})"))).collect();
    if let Some(code) = language.as_str().filter(|c| !LANGUAGES.iter().any(|(l, _)| l == c)) {
        languages.insert(0, (code.to_owned(), code.to_owned()));
    }
    vec![
        field("name", "Name", Kind::Line),
        Field {
            hint: Some("Empty: the agent waits for the user to speak first."),
            ..field("conversation_config.agent.first_message", "First message", Kind::Line)
        },
        field("conversation_config.agent.prompt.prompt", "System prompt", Kind::Text),
        field("conversation_config.agent.language", "Language", Kind::Choice(languages)),
        field("conversation_config.agent.prompt.llm", "LLM", Kind::Choice(llms)),
        Field {
            hint: Some("Empty: the model's own default."),
            ..field(
                "conversation_config.agent.prompt.temperature",
                "Temperature",
                number(Some(0.0), Some(2.0), "0.01", Some(Value::Null)),
            )
        },
        Field {
            hint: Some("-1 or empty: no limit."),
            ..field(
                "conversation_config.agent.prompt.max_tokens",
                "Maximum tokens per answer",
                Kind::Integer { min: -1, empty: Some(json!(-1)) },
            )
        },
    ]
}

fn voice_fields() -> Vec<Field> {
    let number = |min, max, step, empty| Kind::Number { min, max, step, empty };
    vec![
        Field {
            hint: Some("The agent reads and writes text; no audio either way."),
            ..field("conversation_config.conversation.text_only", "Text only", Kind::Check)
        },
        field("conversation_config.tts.voice_id", "Voice id", Kind::Line),
        field(
            "conversation_config.tts.model_id",
            "Speech model",
            Kind::Choice(TTS_MODELS.iter().map(|m| ((*m).into(), (*m).into())).collect()),
        ),
        field("conversation_config.tts.speed", "Speed", number(Some(0.7), Some(1.2), "0.05", None)),
        field(
            "conversation_config.tts.stability",
            "Stability",
            number(Some(0.0), Some(1.0), "0.05", None),
        ),
        field(
            "conversation_config.tts.similarity_boost",
            "Similarity boost",
            number(Some(0.0), Some(1.0), "0.05", None),
        ),
        field(
            "conversation_config.conversation.max_duration_seconds",
            "Longest conversation (seconds)",
            Kind::Integer { min: 1, empty: None },
        ),
    ]
}

/// The value at a dotted path of a document (`Null` when absent).
fn value_at<'a>(doc: &'a Value, path: &str) -> &'a Value {
    path.split('.').try_fold(doc, |v, key| v.get(key)).unwrap_or(&Value::Null)
}

/// Sets the value at a dotted path, making the objects on the way.
fn set_at(doc: &mut Value, path: &str, value: Value) {
    let mut at = doc;
    for key in path.split('.') {
        if !at.is_object() {
            *at = json!({});
        }
        at = &mut at[key];
    }
    *at = value;
}

/// What a typed number box means: the number, or the text as it is (the API then says
/// where it is wrong), or the field's meaning of empty.
fn number_of(raw: &str, integer: bool, empty: &Option<Value>) -> Option<Value> {
    let raw = raw.trim();
    if raw.is_empty() {
        return empty.clone();
    }
    let parsed = if integer {
        raw.parse::<i64>().ok().map(Value::from)
    } else {
        raw.parse::<f64>().ok().and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
    };
    Some(parsed.unwrap_or_else(|| Value::String(raw.to_owned())))
}

/// The PATCH body a tab's form asks for.
fn patch_of(tab: Tab, agent: &Value, choices: &Choices, form: &Submitted) -> Value {
    let mut patch = json!({});
    for f in fields(tab, agent, choices) {
        let raw = form.first(f.path).unwrap_or_default();
        let value = match &f.kind {
            Kind::Line | Kind::Text => Some(Value::String(raw.to_owned())),
            // Nothing to choose from leaves the setting as it is.
            Kind::Choice(_) => Some(Value::String(raw.to_owned())).filter(|_| !raw.is_empty()),
            Kind::Number { empty, .. } => number_of(raw, false, empty),
            Kind::Integer { empty, .. } => number_of(raw, true, empty),
            Kind::Check => Some(Value::Bool(form.first(f.path).is_some())),
        };
        if let Some(value) = value {
            set_at(&mut patch, f.path, value);
        }
    }
    match tab {
        Tab::Tools => tools_patch(agent, form, &mut patch),
        Tab::KnowledgeBase => knowledge_patch(agent, choices, form, &mut patch),
        Tab::Analysis => analysis_patch(form, &mut patch),
        Tab::Agent | Tab::Voice | Tab::Advanced => {}
    }
    patch
}

fn tools_patch(agent: &Value, form: &Submitted, patch: &mut Value) {
    set_at(patch, &format!("{PROMPT}.tool_ids"), json!(form.all("tool_ids")));
    set_at(patch, &format!("{PROMPT}.mcp_server_ids"), json!(form.all("mcp_server_ids")));
    let on = form.all("built_in_tools");
    let current = value_at(agent, &format!("{PROMPT}.built_in_tools"));
    let mut builtins = Map::new();
    for (key, _) in SYSTEM_TOOLS {
        let value = if !on.iter().any(|k| k == key) {
            Value::Null
        } else if current[key].is_object() {
            // Kept as configured (a transfer's targets, a description).
            current[key].clone()
        } else {
            let mut params = json!({"system_tool_type": key});
            if key.starts_with("transfer_to_") {
                params["transfers"] = json!([]);
            }
            json!({"type": "system", "name": key, "description": "", "params": params})
        };
        builtins.insert(key.to_owned(), value);
    }
    set_at(patch, &format!("{PROMPT}.built_in_tools"), Value::Object(builtins));
}

fn knowledge_patch(agent: &Value, choices: &Choices, form: &Submitted, patch: &mut Value) {
    let chosen = form.all("knowledge_base");
    let current = value_at(agent, &format!("{PROMPT}.knowledge_base"));
    let locators: Vec<Value> = chosen
        .iter()
        .filter_map(|id| {
            let known = choices.documents.iter().find(|(d, ..)| d == id);
            let attached = current.as_array().into_iter().flatten().find(|l| l["id"] == **id);
            let (name, kind) = match (known, attached) {
                (Some((_, name, kind)), _) => (name.clone(), kind.clone()),
                (None, Some(l)) => (text(&l["name"]).to_owned(), text(&l["type"]).to_owned()),
                (None, None) => return None,
            };
            let mode = form.first(&format!("usage_mode.{id}")).unwrap_or("auto");
            Some(json!({"type": kind, "name": name, "id": id, "usage_mode": mode}))
        })
        .collect();
    set_at(patch, &format!("{PROMPT}.knowledge_base"), Value::Array(locators));
    set_at(patch, &format!("{PROMPT}.rag.enabled"), json!(form.first("rag_enabled").is_some()));
}

fn analysis_patch(form: &Submitted, patch: &mut Value) {
    let (ids, names, goals) =
        (form.all("criterion_id"), form.all("criterion_name"), form.all("criterion_goal"));
    let mut criteria = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let goal = goals.get(i).map(String::as_str).unwrap_or_default();
        if name.trim().is_empty() && goal.trim().is_empty() {
            continue;
        }
        let id = ids.get(i).filter(|id| !id.is_empty()).cloned().unwrap_or_else(|| slug(name));
        criteria.push(json!({"id": id, "name": name.trim(), "type": "prompt", "conversation_goal_prompt": goal}));
    }
    set_at(patch, "platform_settings.evaluation.criteria", Value::Array(criteria));
    let (keys, types, descriptions) =
        (form.all("data_id"), form.all("data_type"), form.all("data_description"));
    let mut collected = Map::new();
    for (i, key) in keys.iter().enumerate() {
        if key.trim().is_empty() {
            continue;
        }
        let kind = types.get(i).map(String::as_str).unwrap_or("string");
        let description = descriptions.get(i).map(String::as_str).unwrap_or_default();
        collected.insert(key.trim().to_owned(), json!({"type": kind, "description": description}));
    }
    if !collected.is_empty() {
        set_at(patch, "platform_settings.data_collection", Value::Object(collected));
    }
}

/// An id made of a name: lower case, words joined by `_`.
fn slug(name: &str) -> String {
    let words: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if words.is_empty() { "criterion".to_owned() } else { words.join("_") }
}

fn input_id(path: &str) -> String {
    format!("f-{}", path.replace(['.', '_'], "-"))
}

fn render_field(f: &Field, doc: &Value, errors: &BTreeMap<String, String>) -> Markup {
    let id = input_id(f.path);
    let value = value_at(doc, f.path);
    let shown = match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let error = error_at(errors, f.path);
    let error_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let described = match (error.is_some(), f.hint.is_some()) {
        (true, true) => Some(format!("{error_id} {hint_id}")),
        (true, false) => Some(error_id.clone()),
        (false, true) => Some(hint_id.clone()),
        (false, false) => None,
    };
    let invalid = error.map(|_| "true");
    html! {
        div.field {
            @match &f.kind {
                Kind::Check => {
                    label.toggle for=(id) {
                        input #(id) type="checkbox" name=(f.path) value="true" checked[value.as_bool() == Some(true)]
                            aria-invalid=[invalid] aria-describedby=[described.as_deref()];
                        (f.label)
                    }
                }
                kind => {
                    label for=(id) { (f.label) }
                    @match kind {
                        Kind::Text => textarea #(id) name=(f.path) rows="8" aria-invalid=[invalid] aria-describedby=[described.as_deref()] { (shown) },
                        Kind::Choice(options) => select #(id) name=(f.path) aria-invalid=[invalid] aria-describedby=[described.as_deref()] {
                            @for (v, label) in options { option value=(v) selected[*v == shown] { (label) } }
                        },
                        Kind::Number { min, max, step, .. } => input #(id) type="number" name=(f.path) value=(shown) step=(step)
                            min=[min] max=[max] aria-invalid=[invalid] aria-describedby=[described.as_deref()];,
                        Kind::Integer { min, .. } => input #(id) type="number" name=(f.path) value=(shown) step="1" min=(min)
                            aria-invalid=[invalid] aria-describedby=[described.as_deref()];,
                        _ => input #(id) type="text" name=(f.path) value=(shown) aria-invalid=[invalid] aria-describedby=[described.as_deref()];,
                    }
                }
            }
            @if let Some(hint) = f.hint { span.hint #(hint_id) { (hint) } }
            @if let Some(error) = error { span.field-error #(error_id) { (error) } }
        }
    }
}

/// A tab's form, drawn from `doc` (the agent, or the agent with a refused patch over it).
pub fn form(
    viewer: &Viewer, tab: Tab, agent_id: &str, doc: &Value, choices: &Choices,
    errors: &BTreeMap<String, String>,
) -> Markup {
    let fields = fields(tab, doc, choices);
    let mut placed: Vec<&str> = fields.iter().map(|f| f.path).collect();
    let extra = match tab {
        Tab::Tools => {
            placed.extend([PROMPT]);
            tools_fields(doc, choices)
        }
        Tab::KnowledgeBase => {
            placed.extend([PROMPT]);
            knowledge_fields(doc, choices)
        }
        Tab::Analysis => {
            placed.extend(["platform_settings"]);
            analysis_fields(doc)
        }
        Tab::Agent | Tab::Voice | Tab::Advanced => html! {},
    };
    let problems = unplaced(errors, &placed);
    let action = format!("/agents/{}/settings/{}", encode(agent_id), tab.slug());
    html! {
        form.stack.settings method="post" action=(action) aria-label=(format!("{} settings", tab.label())) novalidate {
            (crate::layout::csrf(viewer))
            @if !problems.is_empty() {
                p.error role="alert" { "Not saved: " (problems.join("; ")) }
            } @else if !errors.is_empty() {
                p.error role="alert" { "Not saved: see the fields marked below." }
            }
            @for f in &fields { (render_field(f, doc, errors)) }
            (extra)
            button type="submit" { "Save" }
        }
    }
}

fn tools_fields(doc: &Value, choices: &Choices) -> Markup {
    let prompt = value_at(doc, PROMPT);
    let has = |list: &str, id: &str| {
        prompt[list].as_array().into_iter().flatten().any(|v| v.as_str() == Some(id))
    };
    html! {
        fieldset {
            legend { "Tools of this workspace" }
            @if choices.tools.is_empty() { p.muted { "No tools yet: " a href="/tools" { "create one" } "." } }
            @for (id, name, kind) in &choices.tools {
                label.toggle { input type="checkbox" name="tool_ids" value=(id) checked[has("tool_ids", id)]; (name) " " span.muted { "(" (kind) ")" } }
            }
        }
        fieldset {
            legend { "System tools" }
            @for (key, what) in SYSTEM_TOOLS {
                label.toggle {
                    input type="checkbox" name="built_in_tools" value=(key) checked[prompt["built_in_tools"][key].is_object()];
                    code { (key) } " " span.muted { (what) }
                }
            }
        }
        fieldset {
            legend { "MCP servers" }
            @if choices.mcp_servers.is_empty() { p.muted { "No MCP servers in this workspace." } }
            @for (id, name, _) in &choices.mcp_servers {
                label.toggle { input type="checkbox" name="mcp_server_ids" value=(id) checked[has("mcp_server_ids", id)]; (name) }
            }
        }
    }
}

fn knowledge_fields(doc: &Value, choices: &Choices) -> Markup {
    let prompt = value_at(doc, PROMPT);
    let attached: Vec<&Value> = prompt["knowledge_base"].as_array().into_iter().flatten().collect();
    // Documents attached but not in the first page of the list are still shown.
    let mut documents = choices.documents.clone();
    for l in &attached {
        if !documents.iter().any(|(id, ..)| l["id"] == id.as_str()) {
            documents.push((
                text(&l["id"]).to_owned(),
                text(&l["name"]).to_owned(),
                text(&l["type"]).to_owned(),
            ));
        }
    }
    html! {
        fieldset {
            legend { "Documents the agent knows" }
            @if documents.is_empty() { p.muted { "No documents yet: " a href="/knowledge-base" { "add one" } "." } }
            @for (id, name, kind) in &documents {
                @let locator = attached.iter().find(|l| l["id"] == id.as_str());
                @let mode = locator.map(|l| text(&l["usage_mode"])).unwrap_or("auto");
                div.row {
                    label.toggle { input type="checkbox" name="knowledge_base" value=(id) checked[locator.is_some()]; (name) " " span.muted { "(" (kind) ")" } }
                    label { "Use of " (name)
                        select name={ "usage_mode." (id) } {
                            option value="auto" selected[mode != "prompt"] { "retrieved when relevant" }
                            option value="prompt" selected[mode == "prompt"] { "always in the prompt" }
                        }
                    }
                }
            }
        }
        label.toggle for="f-rag" {
            input #f-rag type="checkbox" name="rag_enabled" value="true" checked[prompt["rag"]["enabled"].as_bool() == Some(true)];
            "Retrieval (RAG): pick the passages relevant to each turn"
        }
    }
}

fn analysis_fields(doc: &Value) -> Markup {
    let criteria: Vec<&Value> = value_at(doc, "platform_settings.evaluation.criteria")
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let data: Vec<(&String, &Value)> = value_at(doc, "platform_settings.data_collection")
        .as_object()
        .into_iter()
        .flatten()
        .collect();
    let blank = json!({});
    html! {
        fieldset {
            legend { "Evaluation criteria (a criterion with no name and no goal is removed)" }
            @for (n, c) in criteria.iter().copied().chain(std::iter::once(&blank)).enumerate() {
                div.row {
                    input type="hidden" name="criterion_id" value=(text(&c["id"]));
                    label { "Criterion " (n + 1) " name" input type="text" name="criterion_name" value=(text(&c["name"])); }
                    label { "Criterion " (n + 1) " goal" textarea name="criterion_goal" rows="2" { (text(&c["conversation_goal_prompt"])) } }
                }
            }
        }
        fieldset {
            legend { "Data collection" }
            @for (n, (key, item)) in data.iter().copied().chain(std::iter::once((&String::new(), &blank))).enumerate() {
                @let kind = item["type"].as_str().unwrap_or("string");
                div.row {
                    label { "Item " (n + 1) " id" input type="text" name="data_id" value=(key) readonly[!key.is_empty()]; }
                    label { "Item " (n + 1) " type"
                        select name="data_type" {
                            @for t in ["string", "number", "integer", "boolean"] { option value=(t) selected[t == kind] { (t) } }
                        }
                    }
                    label { "Item " (n + 1) " description" input type="text" name="data_description" value=(text(&item["description"])); }
                }
            }
        }
    }
}

/// The tab bar of an agent's page.
pub fn tabs(agent_id: &str, current: Tab) -> Markup {
    html! {
        nav.tabs aria-label="Agent settings" {
            @for tab in Tab::ALL {
                a href={ "/agents/" (encode(agent_id)) "?tab=" (tab.slug()) } aria-current=[(tab == current).then_some("page")] { (tab.label()) }
            }
        }
    }
}

async fn save(
    viewer: Viewer, State(dash): State<Dash>, Path((id, tab)): Path<(String, String)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response> {
    let submitted = Submitted(pairs);
    viewer.check(submitted.first("_csrf").unwrap_or_default())?;
    let tab = Tab::from_slug(Some(&tab));
    let agent = agents::fetch(&dash, &viewer, &id).await?;
    let choices = choices(&dash, &viewer, tab).await?;
    let patch = patch_of(tab, &agent, &choices, &submitted);
    let uri = format!("/v1/convai/agents/{}", encode(&id));
    let (status, body) = dash.api.raw(&viewer.creds(), Method::PATCH, &uri, Some(&patch)).await?;
    if status.is_success() {
        let to = format!("/agents/{}?tab={}&saved=1", encode(&id), tab.slug());
        return Ok(Redirect::to(&to).into_response());
    }
    if status == StatusCode::UNAUTHORIZED
        || status == StatusCode::NOT_FOUND
        || !status.is_client_error()
    {
        return Err(crate::api::refusal(status, &body));
    }
    let mut shown = agent.clone();
    colloquy_core::agents::merge(&mut shown, patch);
    // Boxes show what was typed ("3", not the number it was read as).
    for f in fields(tab, &agent, &choices).iter().filter(|f| !matches!(f.kind, Kind::Check)) {
        if let Some(raw) = submitted.first(f.path) {
            set_at(&mut shown, f.path, Value::String(raw.to_owned()));
        }
    }
    let errors = violations(&body);
    let content = form(&viewer, tab, &id, &shown, &choices, &errors);
    let page = agents::detail_page(&viewer, &agent, &dash, tab, content).await;
    Ok((status, Html(page.into_string())).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submitted(pairs: &[(&str, &str)]) -> Submitted {
        Submitted(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn a_tabs_form_patches_only_its_fields_typed_as_the_schema_wants() {
        let agent = json!({"conversation_config": {"agent": {"prompt": {"llm": "gpt-4o"}}}});
        let choices = Choices { llms: vec!["gpt-4o".into()], ..Choices::default() };
        let form = submitted(&[
            ("name", "Ada"),
            ("conversation_config.agent.prompt.temperature", ""),
            ("conversation_config.agent.prompt.max_tokens", "200"),
            ("conversation_config.agent.prompt.llm", "gpt-4o"),
        ]);
        let patch = patch_of(Tab::Agent, &agent, &choices, &form);
        assert_eq!(patch["name"], "Ada");
        let prompt = &patch["conversation_config"]["agent"]["prompt"];
        assert_eq!(prompt["temperature"], Value::Null, "empty: the model's default");
        assert_eq!(prompt["max_tokens"], 200);
        assert!(patch.get("platform_settings").is_none());
        let voice = submitted(&[("conversation_config.tts.speed", "fast")]);
        let patch = patch_of(Tab::Voice, &agent, &choices, &voice);
        assert_eq!(patch["conversation_config"]["tts"]["speed"], "fast", "the API says why");
        assert_eq!(patch["conversation_config"]["conversation"]["text_only"], false);
        assert!(patch["conversation_config"]["tts"].get("stability").is_none(), "empty: unchanged");
    }

    #[test]
    fn system_tools_keep_their_configuration_and_turn_off_as_null() {
        let agent = json!({"conversation_config": {"agent": {"prompt": {"built_in_tools": {
            "transfer_to_agent": {"type": "system", "name": "transfer_to_agent", "params": {"system_tool_type": "transfer_to_agent", "transfers": [{"agent_id": "a"}]}},
            "end_call": {"type": "system", "name": "end_call", "params": {"system_tool_type": "end_call"}}}}}}});
        let form = submitted(&[
            ("built_in_tools", "transfer_to_agent"),
            ("built_in_tools", "skip_turn"),
            ("tool_ids", "t1"),
        ]);
        let patch = patch_of(Tab::Tools, &agent, &Choices::default(), &form);
        let prompt = &patch["conversation_config"]["agent"]["prompt"];
        assert_eq!(prompt["tool_ids"], json!(["t1"]));
        assert_eq!(
            prompt["built_in_tools"]["transfer_to_agent"]["params"]["transfers"][0]["agent_id"],
            "a"
        );
        assert_eq!(
            prompt["built_in_tools"]["skip_turn"]["params"]["system_tool_type"],
            "skip_turn"
        );
        assert_eq!(prompt["built_in_tools"]["end_call"], Value::Null);
    }

    #[test]
    fn violations_land_on_their_fields_and_the_rest_on_top() {
        let errors = violations(&json!({"detail": [
            {"loc": ["body", "conversation_config", "tts", "speed"], "msg": "Input should be less than or equal to 1.2"},
            {"loc": ["body", "tags"], "msg": "bad"}]}));
        assert_eq!(
            error_at(&errors, "conversation_config.tts.speed").unwrap(),
            "Input should be less than or equal to 1.2"
        );
        assert_eq!(unplaced(&errors, &["conversation_config.tts.speed"]), vec!["tags: bad"]);
        let plain = violations(&json!({"detail": {"message": "Agent is archived"}}));
        assert_eq!(unplaced(&plain, &["name"]), vec!["Agent is archived"]);
    }

    #[test]
    fn criteria_rows_become_the_list_and_blank_rows_go() {
        let form = submitted(&[
            ("criterion_id", "kept"),
            ("criterion_name", "Solved"),
            ("criterion_goal", "The issue was solved"),
            ("criterion_id", ""),
            ("criterion_name", "Polite Tone!"),
            ("criterion_goal", "Stayed polite"),
            ("criterion_id", ""),
            ("criterion_name", ""),
            ("criterion_goal", ""),
            ("data_id", "city"),
            ("data_type", "string"),
            ("data_description", "The city"),
            ("data_id", ""),
            ("data_type", "string"),
            ("data_description", ""),
        ]);
        let patch = patch_of(Tab::Analysis, &json!({}), &Choices::default(), &form);
        let criteria = &patch["platform_settings"]["evaluation"]["criteria"];
        assert_eq!(criteria.as_array().unwrap().len(), 2);
        assert_eq!(criteria[0]["id"], "kept");
        assert_eq!(criteria[1]["id"], "polite_tone");
        assert_eq!(
            patch["platform_settings"]["data_collection"]["city"]["description"],
            "The city"
        );
    }
}
