//! The rules of agent documents: what a create or update body may contain, how defaults are
//! filled, how a PATCH merges, and which parts of a document are indexed columns.
//!
//! An agent is stored as its wire document (everything a client wrote, defaults filled, unknown
//! fields kept) plus the columns lists filter and sort on. The fields the server computes on
//! every read (`agent_id`, `metadata`, `access_info`, branch and version ids, ...) are never
//! stored in the document: clients that send them back (the agents-as-code CLI pushes what it
//! pulled) have them dropped.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ids::{DocumentId, ToolId};
use crate::schema::Spec;
use crate::validation::{LocItem, Violation, body_fields};

/// What the agents list sorts by (`sort_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentSort {
    /// By name (byte order).
    Name,
    /// By creation time (the default).
    #[default]
    CreatedAt,
    /// By last update.
    UpdatedAt,
    /// By conversations in the last 7 days.
    #[serde(rename = "call_count_7d")]
    CallCount7d,
}

impl AgentSort {
    /// The wire name, which cursors carry too.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentSort::Name => "name",
            AgentSort::CreatedAt => "created_at",
            AgentSort::UpdatedAt => "updated_at",
            AgentSort::CallCount7d => "call_count_7d",
        }
    }
}

/// Schema of the create body.
pub const CREATE_SCHEMA: &str = "Body_Create_Agent_v1_convai_agents_create_post";
/// Schema of the PATCH body.
pub const PATCH_SCHEMA: &str = "Body_Patches_an_Agent_settings_v1_convai_agents__agent_id__patch";
/// Schema of the GET response.
pub const RESPONSE_SCHEMA: &str = "GetAgentResponseModel";

/// Top-level fields computed on read; dropped from anything a client writes.
pub const COMPUTED_FIELDS: [&str; 9] = [
    "agent_id",
    "metadata",
    "access_info",
    "phone_numbers",
    "whatsapp_accounts",
    "version_id",
    "branch_id",
    "main_branch_id",
    "default_hold_audio_url",
];

/// A validated agent document and the columns derived from it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentDoc {
    /// The agent's name (`""` when none was given).
    pub name: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// `platform_settings.archived`.
    pub archived: bool,
    /// `conversation_config.tts.voice_id`.
    pub voice_id: String,
    /// The stored document: every written field except `name`, `tags` and computed fields,
    /// defaults filled.
    pub document: Map<String, Value>,
}

impl AgentDoc {
    /// `conversation_config.agent.prompt.tool_ids`: the workspace tools the agent uses.
    pub fn tool_ids(&self) -> Vec<ToolId> {
        self.prompt()
            .and_then(|p| p.get("tool_ids"))
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).map(ToolId::from).collect())
            .unwrap_or_default()
    }

    /// `prompt.knowledge_base[].id`: the knowledge-base documents and folders the agent names.
    pub fn document_ids(&self) -> Vec<DocumentId> {
        self.prompt()
            .and_then(|p| p.get("knowledge_base"))
            .and_then(Value::as_array)
            .map(|kb| {
                kb.iter().filter_map(|l| l.get("id")?.as_str()).map(DocumentId::from).collect()
            })
            .unwrap_or_default()
    }

    /// `prompt.mcp_server_ids` and `prompt.native_mcp_server_ids`: the MCP servers the agent
    /// uses, with the field each id is in.
    pub fn mcp_server_ids(&self) -> Vec<(&'static str, usize, String)> {
        let mut out = Vec::new();
        for field in ["mcp_server_ids", "native_mcp_server_ids"] {
            let ids = self.prompt().and_then(|p| p.get(field)).and_then(Value::as_array);
            for (i, id) in ids.into_iter().flatten().enumerate() {
                if let Some(id) = id.as_str() {
                    out.push((field, i, id.to_owned()));
                }
            }
        }
        out
    }

    /// Names of the tools defined inside the agent: the (deprecated) inline `prompt.tools` and
    /// the enabled `built_in_tools`.
    pub fn inline_tool_names(&self) -> Vec<String> {
        let Some(prompt) = self.prompt() else {
            return Vec::new();
        };
        let mut names: Vec<String> = prompt
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        if let Some(builtins) = prompt.get("built_in_tools").and_then(Value::as_object) {
            for (key, tool) in builtins {
                if !tool.is_null() {
                    names.push(tool.get("name").and_then(Value::as_str).unwrap_or(key).to_owned());
                }
            }
        }
        names
    }

    /// Removes `tool_id` from `prompt.tool_ids` (a tool deleted with `force`).
    pub fn detach_tool(&mut self, tool_id: &ToolId) {
        if let Some(ids) = self
            .document
            .get_mut("conversation_config")
            .and_then(|c| c.pointer_mut("/agent/prompt/tool_ids"))
            .and_then(Value::as_array_mut)
        {
            ids.retain(|id| id.as_str() != Some(tool_id.as_str()));
        }
    }

    fn prompt(&self) -> Option<&Value> {
        self.document.get("conversation_config")?.pointer("/agent/prompt")
    }
}

impl AgentDoc {
    /// The document as the client wrote it plus defaults: `name` and `tags` included.
    pub fn to_body(&self) -> Value {
        let mut body = Map::with_capacity(self.document.len() + 2);
        body.insert("name".into(), Value::String(self.name.clone()));
        body.insert(
            "tags".into(),
            Value::Array(self.tags.iter().cloned().map(Value::String).collect()),
        );
        body.extend(self.document.clone());
        Value::Object(body)
    }
}

/// Validates a create body and fills its defaults.
pub fn prepare_create(mut body: Value) -> Result<AgentDoc, Vec<Violation>> {
    strip_computed(&mut body);
    strip_read_only(&mut body);
    if let Some(obj) = body.as_object_mut() {
        // A missing or null `platform_settings` gets the full defaults, as the hosted API
        // returns them.
        if obj.get("platform_settings").is_none_or(Value::is_null) {
            obj.insert("platform_settings".into(), Value::Object(Map::new()));
        }
        // A workflow needs at least one node; the hosted API starts every agent with a lone
        // start node.
        let workflow = obj.entry("workflow").or_insert_with(|| Value::Object(Map::new()));
        if let Some(wf) = workflow.as_object_mut()
            && !wf.contains_key("nodes")
        {
            wf.insert("nodes".into(), serde_json::json!({"start_node": {"type": "start"}}));
        }
    }
    finish(body)
}

/// Applies a PATCH body to the stored `current` body (as [`AgentDoc::to_body`] gives it):
/// objects merge recursively, arrays and scalars replace, `null` is accepted only where the
/// schema allows it; the result is revalidated and its defaults refilled.
pub fn apply_patch(current: Value, mut patch: Value) -> Result<AgentDoc, Vec<Violation>> {
    strip_computed(&mut patch);
    strip_read_only(&mut patch);
    Spec::reference().check(PATCH_SCHEMA, &mut patch.clone(), &[LocItem::from("body")])?;
    if let Some(obj) = patch.as_object_mut() {
        obj.remove("version_description");
        // A `null` name or tag list means "leave unchanged", as the PATCH schema allows them.
        for key in ["name", "tags", "procedures"] {
            if obj.get(key).is_some_and(Value::is_null) {
                obj.remove(key);
            }
        }
    }
    let mut merged = current;
    merge(&mut merged, patch);
    finish(merged)
}

/// Checks a whole body (as [`AgentDoc::to_body`] gives it) made by the server rather than
/// written by a client, such as the result of merging two branches, and refills its defaults.
pub fn revalidate(mut body: Value) -> Result<AgentDoc, Vec<Violation>> {
    strip_computed(&mut body);
    finish(body)
}

/// The body of a duplicate of `source` named `name` (or "<name> (copy)").
pub fn duplicate(source: &AgentDoc, name: Option<String>) -> AgentDoc {
    let mut copy = source.clone();
    copy.name = name.unwrap_or_else(|| format!("{} (copy)", source.name));
    copy
}

/// Settings a client may read but not write: the hold audio is set by uploading a file
/// (`POST /agents/{id}/hold-audio`), and a value in a create or update body is ignored.
fn strip_read_only(body: &mut Value) {
    if let Some(queueing) =
        body.pointer_mut("/platform_settings/queueing_config").and_then(Value::as_object_mut)
    {
        queueing.remove("hold_audio");
    }
}

fn strip_computed(body: &mut Value) {
    if let Some(obj) = body.as_object_mut() {
        for key in COMPUTED_FIELDS {
            obj.remove(key);
        }
    }
}

fn finish(mut body: Value) -> Result<AgentDoc, Vec<Violation>> {
    let spec = Spec::reference();
    spec.check(CREATE_SCHEMA, &mut body, &[LocItem::from("body")])?;
    if let Some(settings) = body.get("platform_settings") {
        let violations = crate::analysis::check(settings, &["body", "platform_settings"]);
        if !violations.is_empty() {
            return Err(violations);
        }
    }
    if let Some(workflow) = body.get("workflow") {
        let violations = crate::workflow::check(workflow, &["body", "workflow"]);
        if !violations.is_empty() {
            return Err(violations);
        }
    }
    // The document is kept as the read model serves it: fields only the read models declare
    // are filled so a GET is complete, and fields they do not declare (input-only ones, keys
    // the reference does not know) are dropped, as the reference's response models drop them.
    // The document already passed the write schema, so any complaint here is about
    // response-only fields and is not the client's to fix.
    if let Some(obj) = body.as_object_mut() {
        let served = spec.property_names(RESPONSE_SCHEMA);
        obj.retain(|key, _| served.iter().any(|s| s == key));
        for (field, schema) in [
            ("conversation_config", "ConversationalConfigAPIModel-Output"),
            ("platform_settings", "AgentPlatformSettingsResponseModel"),
            ("workflow", "AgentWorkflowResponseModel"),
        ] {
            if let Some(v) = obj.get_mut(field).filter(|v| v.is_object()) {
                let mut filled = v.clone();
                if spec.project(schema, &mut filled).is_ok() {
                    *v = filled;
                }
            }
        }
        if !obj.contains_key("procedures") || obj.get("procedures").is_some_and(Value::is_null) {
            obj.insert("procedures".into(), Value::Object(Map::new()));
        }
    }
    stored(body)
}

/// A body already in the stored form (two stored documents merged field by field, say) as an
/// [`AgentDoc`], without checking it again: what a preview shows. What is committed goes
/// through [`revalidate`].
pub fn stored(body: Value) -> Result<AgentDoc, Vec<Violation>> {
    let mut document = body_fields(body)?;
    let name = match document.remove("name") {
        Some(Value::String(s)) => s,
        _ => String::new(),
    };
    let tags = match document.remove("tags") {
        Some(Value::Array(items)) => {
            items.into_iter().filter_map(|t| t.as_str().map(str::to_owned)).collect()
        }
        _ => Vec::new(),
    };
    let archived = document
        .get("platform_settings")
        .and_then(|p| p.get("archived"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let voice_id = document
        .get("conversation_config")
        .and_then(|c| c.pointer("/tts/voice_id"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(AgentDoc { name, tags, archived, voice_id, document })
}

/// JSON merge: objects merge key by key (recursively), anything else replaces.
pub fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k, v);
                    }
                }
            }
        }
        (t, p) => *t = p,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn created(body: Value) -> AgentDoc {
        prepare_create(body).expect("valid")
    }

    #[test]
    fn create_fills_everything_and_derives_columns() {
        let doc = created(
            json!({"conversation_config": {}, "name": "Ada", "tags": ["x"], "agent_id": "forged"}),
        );
        assert_eq!(doc.name, "Ada");
        assert_eq!(doc.tags, vec!["x"]);
        assert!(!doc.archived);
        assert!(!doc.voice_id.is_empty());
        assert!(doc.document["platform_settings"]["widget"].is_object());
        assert!(!doc.document.contains_key("agent_id"));
        assert_eq!(doc.document["procedures"], json!({}));
    }

    #[test]
    fn patch_merges_objects_and_replaces_arrays() {
        let doc = created(
            json!({"conversation_config": {"agent": {"first_message": "hi", "prompt": {"prompt": "p", "tool_ids": ["a", "b"]}}}, "tags": ["t1"]}),
        );
        let patched = apply_patch(
            doc.to_body(),
            json!({"conversation_config": {"agent": {"prompt": {"tool_ids": ["c"]}}}, "tags": null, "metadata": {"created_at_unix_secs": 1}}),
        )
        .unwrap();
        let agent = &patched.document["conversation_config"]["agent"];
        assert_eq!(agent["first_message"], "hi", "untouched sibling kept");
        assert_eq!(agent["prompt"]["prompt"], "p");
        assert_eq!(agent["prompt"]["tool_ids"], json!(["c"]), "arrays replace");
        assert_eq!(patched.tags, vec!["t1"], "null tags leave them unchanged");
    }

    #[test]
    fn patch_null_only_where_nullable() {
        let doc = created(json!({"conversation_config": {}}));
        let ok = apply_patch(
            doc.to_body(),
            json!({"conversation_config": {"agent": {"prompt": {"custom_llm": null}}}}),
        );
        assert!(ok.is_ok(), "{ok:?}");
        let err = apply_patch(
            doc.to_body(),
            json!({"conversation_config": {"agent": {"first_message": null}}}),
        )
        .unwrap_err();
        assert_eq!(
            err[0].loc,
            crate::validation::path(["body", "conversation_config", "agent", "first_message"])
        );
    }

    #[test]
    fn archived_follows_platform_settings() {
        let doc =
            created(json!({"conversation_config": {}, "platform_settings": {"archived": true}}));
        assert!(doc.archived);
    }
}
