//! Procedures in a conversation: the agent's procedure versions read when it loads, the
//! `start_procedure` and `end_procedure` system tools that make one active or not, and what the
//! system prompt shows of them (those the agent may start, and the active ones' instructions
//! in `<active-procedures>`, as the reference's tool result tells the LLM to look for).

use colloquy_core::ids::WorkspaceId;
use colloquy_core::procedures::Kind;
use colloquy_store::StoreError;
use serde_json::{Map, Value, json};

use super::{AgentTool, CallStatus, Effect, ToolOutcome};
use crate::EngineDeps;

/// A procedure version an agent version names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procedure {
    /// `agtprc_...`
    pub id: String,
    /// Name.
    pub name: String,
    /// When to start it; empty for a sub-procedure another one starts.
    pub trigger: String,
    /// Instructions.
    pub content: String,
}

/// The procedures of an agent document's `procedures` map (folders left out).
pub async fn load(
    deps: &EngineDeps, workspace_id: &WorkspaceId, map: &Value,
) -> Result<Vec<Procedure>, StoreError> {
    let ids: Vec<String> = map
        .as_object()
        .into_iter()
        .flat_map(Map::values)
        .filter_map(|r| r.get("version_id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let versions = deps.store.procedure_versions(workspace_id, &ids).await?;
    Ok(versions
        .into_iter()
        .filter(|v| Kind::parse(&v.kind) != Kind::Folder)
        .map(|v| Procedure {
            id: v.procedure_id,
            name: v.name,
            trigger: v.trigger_text,
            content: v.content,
        })
        .collect())
}

/// The procedures a conversation may start and those it has started.
#[derive(Debug, Clone, Copy, Default)]
pub struct Procedures<'a> {
    /// The agent's.
    pub available: &'a [Procedure],
    /// Ids of the active ones.
    pub active: &'a [String],
}

/// How a call changes which procedures are active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This one starts.
    Start(String),
    /// This one ends.
    End(String),
}

/// Arguments of both tools.
pub(super) fn parameters() -> Value {
    json!({"type": "object", "properties": {"procedure_id": {"type": "string", "description": "Id of the procedure, as the system prompt lists it"}}, "required": ["procedure_id"]})
}

/// The procedure `args` names among those `tool` offers (its `params.procedures`, or all the
/// agent's when it names none).
fn named<'a>(tool: &AgentTool, args: &Value, procedures: Procedures<'a>) -> Option<&'a Procedure> {
    let id = args.get("procedure_id").and_then(Value::as_str)?;
    let offered = tool.config.pointer("/params/procedures").and_then(Value::as_object);
    let allowed = offered.is_none_or(|o| o.is_empty() || o.contains_key(id));
    procedures.available.iter().find(|p| p.id == id).filter(|_| allowed)
}

/// `start_procedure`.
pub(super) fn start(tool: &AgentTool, args: &Value, procedures: Procedures<'_>) -> ToolOutcome {
    let Some(procedure) = named(tool, args, procedures) else {
        let id = args.get("procedure_id").and_then(Value::as_str);
        return failed("start_procedure_error", "not_found", id, "No such procedure to start");
    };
    if procedures.active.contains(&procedure.id) {
        return failed(
            "start_procedure_error",
            "already_active",
            Some(&procedure.id),
            "The procedure is already active",
        );
    }
    let result = json!({
        "result_type": "start_procedure_success",
        "status": "success",
        "procedure_id": procedure.id,
        "procedure_name": procedure.name,
        "procedure_entry_workflow_node": null,
        "procedure_return_workflow_node": null,
        "message": "Procedure is now started. Follow its instructions from the <active-procedures> section of your system prompt.",
    });
    ToolOutcome {
        effect: Effect::Procedure(Change::Start(procedure.id.clone())),
        ..ToolOutcome::ok(result.to_string())
    }
}

/// `end_procedure`.
pub(super) fn end(tool: &AgentTool, args: &Value, procedures: Procedures<'_>) -> ToolOutcome {
    let id = args.get("procedure_id").and_then(Value::as_str);
    let Some(procedure) = named(tool, args, procedures) else {
        return failed("end_procedure_error", "not_found", id, "No such procedure");
    };
    if !procedures.active.contains(&procedure.id) {
        return failed("end_procedure_error", "invalid_id", id, "The procedure is not active");
    }
    let result = json!({
        "result_type": "end_procedure_success",
        "status": "success",
        "procedure_id": procedure.id,
        "procedure_name": procedure.name,
        "message": "",
    });
    ToolOutcome {
        effect: Effect::Procedure(Change::End(procedure.id.clone())),
        ..ToolOutcome::ok(result.to_string())
    }
}

fn failed(result_type: &str, status: &str, id: Option<&str>, message: &str) -> ToolOutcome {
    let result = json!({"result_type": result_type, "status": status, "procedure_id": id, "message": message});
    ToolOutcome::error(CallStatus::Error, "customer_config", result.to_string())
}

/// What the system prompt adds: the procedures the agent may start (when it has the tool to),
/// and the instructions of the active ones, dynamic variables filled by `render`.
pub fn prompt_section(
    procedures: Procedures<'_>, can_start: bool, render: impl Fn(&str) -> String,
) -> String {
    let mut out = String::new();
    if can_start {
        let startable: Vec<&Procedure> =
            procedures.available.iter().filter(|p| !p.trigger.is_empty()).collect();
        if !startable.is_empty() {
            out.push_str("\n\n<available-procedures>\nStart one with start_procedure when its trigger applies:\n");
            for p in startable {
                out.push_str(&format!("- {} ({}): {}\n", p.id, p.name, p.trigger));
            }
            out.push_str("</available-procedures>");
        }
    }
    let active: Vec<&Procedure> =
        procedures.available.iter().filter(|p| procedures.active.contains(&p.id)).collect();
    if !active.is_empty() {
        out.push_str("\n\n<active-procedures>\n");
        for p in active {
            out.push_str(&format!(
                "<procedure id=\"{}\" name=\"{}\">\n{}\n</procedure>\n",
                p.id,
                p.name,
                render(&p.content)
            ));
        }
        out.push_str("</active-procedures>");
    }
    out
}
