//! The rules of agent procedures: what a procedure's fields may hold, the trigger derived from
//! its content when none is given, what its content refers to (tools, documents, other
//! procedures, dynamic variables), the reference entry an agent version keeps of it
//! (`ProcedureRefResponseModel`), and the workflow its procedures compile to.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::template;
use crate::validation::Violation;

/// Longest name.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest content.
pub const MAX_CONTENT_CHARS: usize = 50_000;
/// Longest trigger derived from content.
const DERIVED_TRIGGER_CHARS: usize = 200;

/// `ProcedureType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Instructions in prose.
    #[default]
    FreeForm,
    /// Steps to follow in order.
    Deterministic,
    /// Holds other procedures.
    Folder,
}

impl Kind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::FreeForm => "free_form",
            Kind::Deterministic => "deterministic",
            Kind::Folder => "folder",
        }
    }

    /// A stored name (an unknown one reads as free form).
    pub fn parse(s: &str) -> Kind {
        match s {
            "deterministic" => Kind::Deterministic,
            "folder" => Kind::Folder,
            _ => Kind::FreeForm,
        }
    }
}

/// A procedure's fields, as a draft or a version holds them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields {
    /// Name.
    pub name: String,
    /// Instructions.
    pub content: String,
    /// Type.
    pub kind: Kind,
    /// When the agent should start it; empty for a sub-procedure.
    pub trigger: String,
    /// The folder procedure it is in.
    pub folder_parent_id: Option<String>,
}

impl Fields {
    /// The fields of a request: `trigger` (or its alias `description`) when given, else
    /// derived from the content. 422 violations for lengths beyond the reference's.
    pub fn from_request(
        name: String, content: String, kind: Kind, trigger: Option<String>,
        folder_parent_id: Option<String>,
    ) -> Result<Fields, Vec<Violation>> {
        let mut violations = Vec::new();
        if name.chars().count() > MAX_NAME_CHARS {
            violations.push(Violation::new(
                ["body", "name"],
                "string_too_long",
                format!("String should have at most {MAX_NAME_CHARS} characters"),
            ));
        }
        if content.chars().count() > MAX_CONTENT_CHARS {
            violations.push(Violation::new(
                ["body", "content"],
                "string_too_long",
                format!("String should have at most {MAX_CONTENT_CHARS} characters"),
            ));
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        let trigger = trigger.unwrap_or_else(|| derived_trigger(&content));
        Ok(Fields { name, content, kind, trigger, folder_parent_id })
    }
}

/// The first sentence (or line) of `content`, as the trigger of a procedure given none.
pub fn derived_trigger(content: &str) -> String {
    let first = content.trim().lines().next().unwrap_or_default();
    let sentence = first.split_inclusive(['.', '!', '?']).next().unwrap_or(first);
    sentence.trim().chars().take(DERIVED_TRIGGER_CHARS).collect()
}

static TOOL_ID: LazyLock<Regex> = LazyLock::new(|| id_pattern("tool_"));
static DOCUMENT_ID: LazyLock<Regex> = LazyLock::new(|| id_pattern("kbdoc_"));
static PROCEDURE_ID: LazyLock<Regex> = LazyLock::new(|| id_pattern("agtprc_"));

fn id_pattern(prefix: &str) -> Regex {
    // Ids are the prefix and lower-case letters and digits.
    Regex::new(&format!(r"\b{prefix}[a-z0-9]+\b")).unwrap_or_else(|e| unreachable!("{e}"))
}

fn matches(re: &Regex, text: &str) -> Vec<String> {
    let found: BTreeSet<&str> = re.find_iter(text).map(|m| m.as_str()).collect();
    found.into_iter().map(str::to_owned).collect()
}

/// `ProcedureRefResponseModel`: what an agent version records of one procedure version.
pub fn reference(procedure_id: &str, version_id: Option<&str>, fields: &Fields) -> Value {
    json!({
        "procedure_id": procedure_id,
        "version_id": version_id,
        "name": fields.name,
        "type": fields.kind.as_str(),
        "trigger": fields.trigger,
        "referenced_tool_ids": matches(&TOOL_ID, &fields.content),
        "referenced_kb_ids": matches(&DOCUMENT_ID, &fields.content),
        "referenced_procedure_ids": matches(&PROCEDURE_ID, &fields.content),
        "referenced_dynamic_variables": template::names(&fields.content),
        "folder_parent_id": fields.folder_parent_id,
    })
}

/// A procedure compiled into a workflow: its id and fields.
pub type Compiled<'a> = (&'a str, &'a Fields);

/// The workflow `procedures` compile to: from the start node, one subagent node per
/// procedure with a trigger, entered when the LLM judges the trigger met and carrying the
/// procedure's content as its additional prompt; sub-procedures (no trigger) are entered from
/// the procedures that name them. Folders hold procedures and compile to nothing. A
/// procedure with no content, or naming a procedure that is not among them, is an error
/// (`ProcedureValidationError`s keyed by procedure id).
pub fn compile(procedures: &[Compiled<'_>]) -> Result<Value, Map<String, Value>> {
    let mut errors = Map::new();
    let known: BTreeSet<&str> = procedures.iter().map(|(id, _)| *id).collect();
    let steps: Vec<&Compiled<'_>> =
        procedures.iter().filter(|(_, f)| f.kind != Kind::Folder).collect();
    for (id, fields) in &steps {
        let mut problems = Vec::new();
        if fields.content.trim().is_empty() {
            problems.push(json!({"path": "content", "message": "A procedure needs instructions"}));
        }
        for named in matches(&PROCEDURE_ID, &fields.content) {
            if !known.contains(named.as_str()) {
                problems.push(json!({"path": "content", "message": format!("Hands off to {named}, which is not a procedure of this branch")}));
            }
        }
        if !problems.is_empty() {
            errors.insert((*id).to_owned(), Value::Array(problems));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut nodes = Map::new();
    let mut edges = Map::new();
    let mut start_edges = Vec::new();
    for (i, (id, fields)) in steps.iter().enumerate() {
        let x = f64::from(u32::try_from(i).unwrap_or(u32::MAX)) * 300.0;
        let mut out_edges = Vec::new();
        for named in matches(&PROCEDURE_ID, &fields.content) {
            let edge = format!("{id}_to_{named}");
            let condition = json!({"type": "llm", "label": null, "condition": format!("The conversation needs the procedure {named}")});
            edges.insert(edge.clone(), json!({"source": id, "target": named, "forward_condition": condition, "backward_condition": null}));
            out_edges.push(edge);
        }
        nodes.insert(
            (*id).to_owned(),
            json!({"type": "override_agent", "label": fields.name, "additional_prompt": fields.content,
                "position": {"x": x, "y": 200.0}, "edge_order": out_edges}),
        );
        if !fields.trigger.is_empty() {
            let edge = format!("start_to_{id}");
            let condition =
                json!({"type": "llm", "label": fields.name, "condition": fields.trigger});
            edges.insert(edge.clone(), json!({"source": "start_node", "target": id, "forward_condition": condition, "backward_condition": null}));
            start_edges.push(edge);
        }
    }
    nodes.insert(
        "start_node".into(),
        json!({"type": "start", "position": {"x": 0.0, "y": 0.0}, "edge_order": start_edges}),
    );
    Ok(json!({"nodes": nodes, "edges": edges}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(content: &str, trigger: &str) -> Fields {
        Fields {
            name: "n".into(),
            content: content.into(),
            trigger: trigger.into(),
            ..Fields::default()
        }
    }

    #[test]
    fn triggers_derive_from_the_first_sentence() {
        assert_eq!(
            derived_trigger("When the user asks for a refund. Then check."),
            "When the user asks for a refund."
        );
        assert_eq!(derived_trigger("\n  Line one\nLine two"), "Line one");
    }

    #[test]
    fn references_name_what_the_content_uses() {
        let r = reference(
            "agtprc_a",
            Some("agtprcv_b"),
            &fields("Call tool_abc1 with {{order_id}}, read kbdoc_x9, then agtprc_next.", "t"),
        );
        assert_eq!(r["referenced_tool_ids"], json!(["tool_abc1"]));
        assert_eq!(r["referenced_kb_ids"], json!(["kbdoc_x9"]));
        assert_eq!(r["referenced_procedure_ids"], json!(["agtprc_next"]));
        assert_eq!(r["referenced_dynamic_variables"], json!(["order_id"]));
    }

    #[test]
    fn procedures_compile_to_a_workflow_or_errors() {
        let (a, b) =
            (fields("Refunds: then agtprc_b", "refund asked"), fields("Check the order", ""));
        let workflow = compile(&[("agtprc_a", &a), ("agtprc_b", &b)]).unwrap();
        assert_eq!(workflow["nodes"]["start_node"]["edge_order"], json!(["start_to_agtprc_a"]));
        assert_eq!(workflow["edges"]["agtprc_a_to_agtprc_b"]["target"], "agtprc_b");
        let empty = fields(" ", "t");
        let errors = compile(&[("agtprc_a", &a), ("agtprc_e", &empty)]).unwrap_err();
        assert!(errors.contains_key("agtprc_e") && errors.contains_key("agtprc_a"), "{errors:?}");
    }
}
