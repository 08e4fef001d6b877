//! The rules of agent test documents: which schema a body is checked against (by its `type`:
//! `llm`, the default, `tool` or `simulation`), the checks the schema cannot express (regular
//! expressions compile, a simulation has a success criterion), and the tool ids a test refers
//! to, which the caller checks against the workspace.

use serde_json::{Map, Value};

use crate::mocks::Mock;
use crate::schema::Spec;
use crate::validation::{LocItem, Violation, body_fields};

/// Test types.
pub const TYPES: [&str; 3] = ["llm", "tool", "simulation"];

/// Create or full update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// `POST .../create`.
    Create,
    /// `PUT .../{id}`.
    Update,
}

/// A validated test.
#[derive(Debug, Clone, PartialEq)]
pub struct TestDoc {
    /// Name.
    pub name: String,
    /// `llm`, `tool` or `simulation`.
    pub test_type: String,
    /// Parent folder, if any.
    pub parent_folder_id: Option<String>,
    /// The stored document: the body minus `name` and `parent_folder_id`, defaults filled.
    pub document: Map<String, Value>,
    /// Workspace tools the test names, with where (to check they exist).
    pub tool_refs: Vec<(Vec<LocItem>, String)>,
}

fn schema_for(test_type: &str, write: Write) -> &'static str {
    match (test_type, write) {
        ("tool", Write::Create) => "CreateToolCallUnitTestRequest",
        ("tool", Write::Update) => "UpdateToolCallUnitTestRequest",
        ("simulation", Write::Create) => "CreateSimulationTestRequest",
        ("simulation", Write::Update) => "UpdateSimulationTestRequest",
        (_, Write::Create) => "CreateResponseUnitTestRequest",
        (_, Write::Update) => "UpdateResponseUnitTestRequest",
    }
}

/// The model of a stored test: the GET model without its `id` and `name`.
fn stored_schema(test_type: &str) -> &'static str {
    match test_type {
        "tool" => "ToolCallUnitTestModel",
        "simulation" => "SimulationTestModel",
        _ => "ResponseUnitTestModel",
    }
}

fn loc(keys: &[&str]) -> Vec<LocItem> {
    let mut out = vec![LocItem::from("body")];
    out.extend(keys.iter().map(|k| LocItem::from(*k)));
    out
}

/// Validates a create or update body and fills its defaults.
pub fn prepare(mut body: Value, write: Write) -> Result<TestDoc, Vec<Violation>> {
    let Some(obj) = body.as_object_mut() else {
        return Err(vec![Violation::new(
            ["body"],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        )]);
    };
    obj.remove("id");
    let test_type = match obj.get("type") {
        None | Some(Value::Null) => "llm".to_owned(),
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => t.clone(),
        Some(_) => {
            return Err(vec![Violation::new(
                ["body", "type"],
                "literal_error",
                "Input should be 'llm', 'tool' or 'simulation'",
            )]);
        }
    };
    obj.insert("type".into(), Value::String(test_type.clone()));
    Spec::reference().check(schema_for(&test_type, write), &mut body, &[LocItem::from("body")])?;
    let mut errors = check_patterns(&body);
    let tool_refs = tool_refs(&body, &mut errors);
    if test_type == "simulation" && !has_success_condition(&body) {
        errors.push(Violation::new(
            loc(&["success_conditions"]),
            "value_error",
            "A simulation test needs success_conditions (or the legacy success_condition)",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut document = body_fields(body)?;
    let name = match document.remove("name") {
        Some(Value::String(n)) => n,
        _ => String::new(),
    };
    let parent_folder_id = match document.remove("parent_folder_id") {
        Some(Value::String(p)) if !p.is_empty() => Some(p),
        _ => None,
    };
    // Kept as the response model serves it: fields it does not declare are dropped.
    let mut shaped = Value::Object(document.clone());
    if Spec::reference().project(stored_schema(&test_type), &mut shaped).is_ok()
        && let Value::Object(shaped) = shaped
    {
        document = shaped;
    }
    Ok(TestDoc { name, test_type, parent_folder_id, document, tool_refs })
}

/// The regular expressions of a tool test's parameter checks must compile.
fn check_patterns(document: &Value) -> Vec<Violation> {
    let params = document.pointer("/tool_call_parameters/parameters").and_then(Value::as_array);
    params
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, p)| p.pointer("/eval/type").and_then(Value::as_str) == Some("regex"))
        .filter_map(|(i, p)| {
            let pattern = p.pointer("/eval/pattern").and_then(Value::as_str).unwrap_or_default();
            let e = regex::Regex::new(pattern).err()?;
            let mut at = loc(&["tool_call_parameters", "parameters"]);
            at.extend([LocItem::Index(i), "eval".into(), "pattern".into()]);
            Some(Violation::new(at, "value_error", format!("Invalid regular expression: {e}")))
        })
        .collect()
}

/// The workspace tools a test names, with where: its referenced tool, the tools its mock
/// overrides and mock config name. Mocks that can never match are reported in `errors`.
fn tool_refs(document: &Value, errors: &mut Vec<Violation>) -> Vec<(Vec<LocItem>, String)> {
    let mut refs = Vec::new();
    if let Some(tool) =
        document.pointer("/tool_call_parameters/referenced_tool").filter(|t| t.is_object())
    {
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or_default();
        let id = tool.get("id").and_then(Value::as_str).unwrap_or_default();
        let derived_mcp = kind == "mcp" && id.starts_with(crate::ids::prefix::MCP_TOOL);
        if matches!(kind, "webhook" | "client" | "mcp") && !derived_mcp {
            let at = loc(&["tool_call_parameters", "referenced_tool", "id"]);
            refs.push((at, id.to_owned()));
        }
    }
    for (tool_id, mocks) in
        document.get("tool_mock_overrides").and_then(Value::as_object).into_iter().flatten()
    {
        refs.push((loc(&["tool_mock_overrides", tool_id]), tool_id.clone()));
        for (i, m) in mocks.as_array().into_iter().flatten().enumerate() {
            let mut at = loc(&["tool_mock_overrides", tool_id]);
            at.push(LocItem::Index(i));
            if let Err(v) = Mock::parse(m, &at) {
                errors.push(v);
            }
        }
    }
    let mocked = document.pointer("/tool_mock_config/mocked_tool_ids").and_then(Value::as_array);
    for (i, id) in mocked.into_iter().flatten().enumerate() {
        let mut at = loc(&["tool_mock_config", "mocked_tool_ids"]);
        at.push(LocItem::Index(i));
        refs.push((at, id.as_str().unwrap_or_default().to_owned()));
    }
    refs
}

/// A simulation test needs a success criterion.
fn has_success_condition(document: &Value) -> bool {
    let single = document
        .get("success_condition")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty());
    let many =
        document.get("success_conditions").and_then(Value::as_array).is_some_and(|l| !l.is_empty());
    single || many
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_type_validates_and_fills_defaults() {
        let llm = prepare(json!({"name": "greets", "success_condition": "says hi"}), Write::Create)
            .unwrap();
        assert_eq!(llm.test_type, "llm");
        assert_eq!(llm.document["type"], "llm");
        let sim = prepare(
            json!({"type": "simulation", "name": "s", "success_conditions": ["resolved"]}),
            Write::Create,
        )
        .unwrap();
        assert_eq!(sim.document["simulation_max_turns"], 5);
        let tool = prepare(
            json!({"type": "tool", "name": "t", "tool_call_parameters": {"referenced_tool": {"id": "tool_x", "type": "webhook"},
                "parameters": [{"path": "city", "eval": {"type": "regex", "pattern": "^Par"}}]}}),
            Write::Create,
        )
        .unwrap();
        assert_eq!(tool.tool_refs[0].1, "tool_x");
    }

    #[test]
    fn refuses_what_cannot_run() {
        let err = prepare(json!({"type": "quiz", "name": "q"}), Write::Create).unwrap_err();
        assert_eq!(err[0].loc, loc(&["type"]));
        let err = prepare(json!({"name": "x", "type": "tool", "tool_call_parameters": {"parameters": [{"path": "a", "eval": {"type": "regex", "pattern": "("}}]}}), Write::Create).unwrap_err();
        assert_eq!(err[0].loc.last(), Some(&LocItem::from("pattern")));
        let err = prepare(json!({"type": "simulation", "name": "s"}), Write::Create).unwrap_err();
        assert_eq!(err[0].loc, loc(&["success_conditions"]));
        let err = prepare(json!({"success_condition": "x"}), Write::Create).unwrap_err();
        assert_eq!(err[0].loc, loc(&["name"]));
        let err = prepare(json!({"type": "simulation", "name": "s", "success_conditions": ["x"], "simulation_max_turns": 99}), Write::Create).unwrap_err();
        assert_eq!(err[0].kind, "less_than_equal");
    }
}
