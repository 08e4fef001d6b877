//! An agent's workflow (`workflow`, the reference's `AgentWorkflowRequestModel`): nodes (the
//! start, subagents that override the agent's configuration, tool nodes, hand-overs to other
//! agents, ends) joined by edges with conditions. This module reads a stored workflow into a
//! [`Workflow`], refuses graphs a conversation could not walk ([`check`]), and evaluates the
//! deterministic conditions ([`eval`]); the engine walks it turn by turn.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{Map, Value};

use crate::validation::{LocItem, Violation};

/// How many nodes the engine may pass through without waiting for anyone; more is a loop.
pub const MAX_STEPS: usize = 20;

/// What a node does.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// Where the conversation starts, with the agent's own configuration.
    Start,
    /// The conversation ends on reaching it.
    End,
    /// A subagent: the agent's configuration with this node's overrides.
    Subagent(Box<Subagent>),
    /// Hands the conversation to another agent (or, without one, to a node of this workflow).
    Standalone(Box<Standalone>),
    /// Runs tools in parallel; its edges branch on whether they all succeeded.
    Tools(Vec<ToolStep>),
    /// Telephony only; refused at save.
    PhoneNumber,
}

/// An `override_agent` node.
#[derive(Debug, Clone, PartialEq)]
pub struct Subagent {
    /// `conversation_config` overrides (objects merge into the agent's).
    pub conversation_config: Value,
    /// Added to the system prompt.
    pub additional_prompt: String,
    /// Tools added to the agent's.
    pub additional_tool_ids: Vec<String>,
    /// Knowledge-base documents added to the agent's (`KnowledgeBaseLocator`s).
    pub additional_knowledge_base: Vec<Value>,
    /// Whether entering it answers at once (`generate_immediately`), waits for the user
    /// (`wait_for_user`), or decides by the node before (`auto`).
    pub entry_behavior: String,
}

/// A `standalone_agent` node.
#[derive(Debug, Clone, PartialEq)]
pub struct Standalone {
    /// The agent taking over; `None`: a node of this workflow.
    pub agent_id: Option<String>,
    /// Where in the target's workflow the conversation starts.
    pub node_id: Option<String>,
    /// Wait before the hand-over.
    pub delay_ms: u64,
    /// Said before the hand-over.
    pub transfer_message: Option<String>,
    /// The new agent opens with its first message.
    pub first_message: bool,
}

/// One tool of a tool node (`WorkflowToolLocator`).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolStep {
    /// The tool.
    pub tool_id: String,
    /// Per-parameter overrides (`ConstantSchemaOverride`, ...), by dotted path.
    pub schema_overrides: Map<String, Value>,
}

/// A node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it does.
    pub kind: NodeKind,
    /// Outgoing edges in the order they are tried.
    pub edge_order: Vec<String>,
}

/// A condition on an edge.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Always true.
    Unconditional,
    /// Judged by the LLM: it takes the edge when the conversation meets this.
    Llm(String),
    /// Whether the last tool node's tools all succeeded.
    Result(bool),
    /// A deterministic expression over dynamic variables (`ASTNode`).
    Expression(Value),
}

/// An edge.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// Source node.
    pub source: String,
    /// Target node.
    pub target: String,
    /// From source to target.
    pub forward: Option<Condition>,
    /// From target back to source.
    pub backward: Option<Condition>,
}

/// A way out of a node: an edge, the node it leads to, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Exit<'a> {
    /// The edge.
    pub edge_id: &'a str,
    /// Where it leads.
    pub to: &'a str,
    /// When it may be taken.
    pub condition: &'a Condition,
}

/// A workflow read from its stored form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Workflow {
    /// Nodes by id.
    pub nodes: BTreeMap<String, Node>,
    /// Edges by id.
    pub edges: BTreeMap<String, Edge>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn condition(v: &Value) -> Option<Condition> {
    let obj = v.as_object()?;
    let kind = obj.get("type").and_then(Value::as_str);
    Some(match kind {
        Some("llm") => Condition::Llm(text(v, "condition").unwrap_or_default()),
        Some("result") => Condition::Result(obj.get("successful")?.as_bool()?),
        Some("expression") => Condition::Expression(obj.get("expression")?.clone()),
        Some("unconditional") => Condition::Unconditional,
        // Untagged, as the reference's examples write them: by their fields.
        _ if obj.contains_key("condition") => Condition::Llm(text(v, "condition")?),
        _ if obj.contains_key("successful") => Condition::Result(obj["successful"].as_bool()?),
        _ if obj.contains_key("expression") => Condition::Expression(obj["expression"].clone()),
        _ => Condition::Unconditional,
    })
}

fn node(v: &Value) -> Node {
    let kind = match v.get("type").and_then(Value::as_str).unwrap_or("start") {
        "end" => NodeKind::End,
        "phone_number" => NodeKind::PhoneNumber,
        "override_agent" => NodeKind::Subagent(Box::new(Subagent {
            conversation_config: v.get("conversation_config").cloned().unwrap_or(Value::Null),
            additional_prompt: text(v, "additional_prompt").unwrap_or_default(),
            additional_tool_ids: strings(v, "additional_tool_ids"),
            additional_knowledge_base: v
                .get("additional_knowledge_base")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            entry_behavior: text(v, "entry_behavior").unwrap_or_else(|| "auto".into()),
        })),
        "standalone_agent" => NodeKind::Standalone(Box::new(Standalone {
            agent_id: text(v, "agent_id"),
            node_id: text(v, "node_id"),
            delay_ms: v.get("delay_ms").and_then(Value::as_u64).unwrap_or(0),
            transfer_message: text(v, "transfer_message"),
            first_message: v.get("enable_transferred_agent_first_message").and_then(Value::as_bool)
                == Some(true),
        })),
        "tool" => NodeKind::Tools(
            v.get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    Some(ToolStep {
                        tool_id: text(t, "tool_id")?,
                        schema_overrides: t
                            .get("schema_overrides")
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default(),
                    })
                })
                .collect(),
        ),
        _ => NodeKind::Start,
    };
    Node { kind, edge_order: strings(v, "edge_order") }
}

impl Workflow {
    /// The workflow of a stored `workflow` document; `None` when it has no edges (the lone
    /// start node every agent has), which a conversation need not walk.
    pub fn of(doc: &Value) -> Option<Workflow> {
        let edges: BTreeMap<String, Edge> = doc
            .get("edges")
            .and_then(Value::as_object)?
            .iter()
            .filter_map(|(id, e)| {
                Some((
                    id.clone(),
                    Edge {
                        source: text(e, "source")?,
                        target: text(e, "target")?,
                        forward: e.get("forward_condition").and_then(condition),
                        backward: e.get("backward_condition").and_then(condition),
                    },
                ))
            })
            .collect();
        if edges.is_empty() {
            return None;
        }
        let nodes = doc
            .get("nodes")
            .and_then(Value::as_object)?
            .iter()
            .map(|(id, n)| (id.clone(), node(n)))
            .collect();
        Some(Workflow { nodes, edges })
    }

    /// The start node's id.
    pub fn start(&self) -> Option<&str> {
        self.nodes.iter().find(|(_, n)| n.kind == NodeKind::Start).map(|(id, _)| id.as_str())
    }

    /// The ways out of `node`: its `edge_order` first, then its other edges by id, each
    /// forward from its source or backward from its target.
    pub fn exits(&self, node: &str) -> Vec<Exit<'_>> {
        let ordered = self.nodes.get(node).map(|n| n.edge_order.as_slice()).unwrap_or_default();
        let rest = self.edges.keys().filter(|id| !ordered.contains(id));
        let mut out = Vec::new();
        for id in ordered.iter().chain(rest) {
            let Some((edge_id, edge)) = self.edges.get_key_value(id) else { continue };
            if edge.source == node
                && let Some(condition) = &edge.forward
            {
                out.push(Exit { edge_id, to: &edge.target, condition });
            }
            if edge.target == node
                && let Some(condition) = &edge.backward
            {
                out.push(Exit { edge_id, to: &edge.source, condition });
            }
        }
        out
    }
}

/// Checks a stored-to-be `workflow` (`base` is its location): one start node; edges between
/// existing nodes; `edge_order` naming the node's own edges; no phone-number node; every node
/// reachable from the start; no loop of unconditional edges (it would never stop); expressions
/// the engine can evaluate.
pub fn check(doc: &Value, base: &[&str]) -> Vec<Violation> {
    let at = |rest: &[&str]| -> Vec<LocItem> {
        base.iter().chain(rest).map(|k| LocItem::from(*k)).collect()
    };
    let mut errors = Vec::new();
    let Some(nodes) = doc.get("nodes").and_then(Value::as_object) else {
        return errors;
    };
    let Some(graph) = Workflow::of(doc) else {
        return errors;
    };
    let starts: Vec<&String> =
        graph.nodes.iter().filter(|(_, n)| n.kind == NodeKind::Start).map(|(id, _)| id).collect();
    if starts.len() != 1 {
        errors.push(Violation::new(
            at(&["nodes"]),
            "value_error",
            format!("A workflow has exactly one start node (it has {})", starts.len()),
        ));
    }
    for (id, n) in &graph.nodes {
        if n.kind == NodeKind::PhoneNumber {
            errors.push(Violation::new(
                at(&["nodes", id, "type"]),
                "value_error",
                "Phone-number nodes transfer a phone call, which this server does not carry; they are not supported",
            ));
        }
        for edge in &n.edge_order {
            let own = graph.edges.get(edge).is_some_and(|e| &e.source == id || &e.target == id);
            if !own {
                errors.push(Violation::new(
                    at(&["nodes", id, "edge_order"]),
                    "value_error",
                    format!("{edge:?} is not an edge of node {id:?}"),
                ));
            }
        }
    }
    for (id, e) in &graph.edges {
        for (end, node) in [("source", &e.source), ("target", &e.target)] {
            if !nodes.contains_key(node) {
                errors.push(Violation::new(
                    at(&["edges", id, end]),
                    "value_error",
                    format!("The workflow has no node {node:?}"),
                ));
            }
        }
        for (field, c) in [("forward_condition", &e.forward), ("backward_condition", &e.backward)] {
            if let Some(Condition::Expression(ast)) = c
                && let Err(why) = supported(ast)
            {
                errors.push(Violation::new(
                    at(&["edges", id, field, "expression"]),
                    "value_error",
                    why,
                ));
            }
        }
    }
    if !errors.is_empty() {
        return errors;
    }
    if let Some(start) = starts.first() {
        for id in unreachable(&graph, start) {
            errors.push(Violation::new(
                at(&["nodes", &id]),
                "value_error",
                format!("Node {id:?} cannot be reached from the start node"),
            ));
        }
    }
    if let Some(edge) = endless_loop(&graph) {
        errors.push(Violation::new(
            at(&["edges", &edge]),
            "value_error",
            "This edge closes a loop of unconditional edges, which the conversation could never leave; give one of them a condition",
        ));
    }
    errors
}

/// The nodes no path of edges leads to from `start`.
fn unreachable(graph: &Workflow, start: &str) -> Vec<String> {
    let mut seen = BTreeSet::from([start.to_owned()]);
    let mut queue = VecDeque::from([start.to_owned()]);
    while let Some(at) = queue.pop_front() {
        for exit in graph.exits(&at) {
            if seen.insert(exit.to.to_owned()) {
                queue.push_back(exit.to.to_owned());
            }
        }
    }
    graph.nodes.keys().filter(|id| !seen.contains(*id)).cloned().collect()
}

/// An edge that closes a cycle of unconditional edges, if there is one.
fn endless_loop(graph: &Workflow) -> Option<String> {
    let mut next: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for (id, e) in &graph.edges {
        if e.forward == Some(Condition::Unconditional) {
            next.entry(&e.source).or_default().push((&e.target, id));
        }
        if e.backward == Some(Condition::Unconditional) {
            next.entry(&e.target).or_default().push((&e.source, id));
        }
    }
    // Depth-first, colouring nodes: an edge back to a node on the current path closes a cycle.
    fn visit<'a>(
        node: &'a str, next: &BTreeMap<&'a str, Vec<(&'a str, &'a str)>>,
        state: &mut BTreeMap<&'a str, bool>,
    ) -> Option<String> {
        state.insert(node, true);
        for &(to, edge) in next.get(node).into_iter().flatten() {
            match state.get(to) {
                Some(true) => return Some(edge.to_owned()),
                Some(false) => {}
                None => {
                    if let Some(found) = visit(to, next, state) {
                        return Some(found);
                    }
                }
            }
        }
        state.insert(node, false);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.nodes.keys() {
        if !state.contains_key(node.as_str())
            && let Some(edge) = visit(node, &next, &mut state)
        {
            return Some(edge);
        }
    }
    None
}

/// Whether the engine can evaluate an expression: every node of a known kind, and no `llm`
/// node (a value the LLM would extract; an `llm` condition on the edge does that).
fn supported(ast: &Value) -> Result<(), String> {
    supported_at(ast, 0)
}

fn supported_at(ast: &Value, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("Expressions nest at most {MAX_DEPTH} deep"));
    }
    let inner = |v: &Value| supported_at(v, depth + 1);
    let kind = ast.get("type").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "string_literal" | "number_literal" | "boolean_literal" | "null_literal"
        | "dynamic_variable" => Ok(()),
        "llm" => Err("Expressions with values the LLM extracts are not supported; use an llm condition on the edge".into()),
        "and_operator" | "or_operator" => ast
            .get("children")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .try_for_each(inner),
        "conditional_operator" => ["condition", "trueExpression", "falseExpression"]
            .iter()
            .try_for_each(|k| inner(ast.get(*k).unwrap_or(&Value::Null))),
        k if BINARY.contains(&k) => {
            inner(ast.get("left").unwrap_or(&Value::Null))?;
            inner(ast.get("right").unwrap_or(&Value::Null))
        }
        other => Err(format!("Unknown expression node type {other:?}")),
    }
}

const BINARY: [&str; 10] = [
    "add_operator",
    "sub_operator",
    "mul_operator",
    "div_operator",
    "eq_operator",
    "neq_operator",
    "gt_operator",
    "gte_operator",
    "lt_operator",
    "lte_operator",
];

/// The value of an expression over dynamic variables `vars`; a variable nobody set is null,
/// and an operation on values it does not take gives null (a condition that is null is not
/// met).
pub fn eval(ast: &Value, vars: &Map<String, Value>) -> Value {
    eval_at(ast, vars, 0)
}

/// Deeper than this, an expression is null: a client's nesting must not exhaust the stack.
const MAX_DEPTH: usize = 64;

fn eval_at(ast: &Value, vars: &Map<String, Value>, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    let arg = |k: &str| eval_at(ast.get(k).unwrap_or(&Value::Null), vars, depth + 1);
    match ast.get("type").and_then(Value::as_str).unwrap_or_default() {
        "string_literal" | "number_literal" | "boolean_literal" => {
            ast.get("value").cloned().unwrap_or(Value::Null)
        }
        "dynamic_variable" => ast
            .get("name")
            .and_then(Value::as_str)
            .and_then(|n| vars.get(n))
            .cloned()
            .unwrap_or(Value::Null),
        "and_operator" => Value::Bool(children(ast).all(|c| truthy(&eval_at(c, vars, depth + 1)))),
        "or_operator" => Value::Bool(children(ast).any(|c| truthy(&eval_at(c, vars, depth + 1)))),
        "conditional_operator" => {
            if truthy(&arg("condition")) {
                arg("trueExpression")
            } else {
                arg("falseExpression")
            }
        }
        "eq_operator" => Value::Bool(same(&arg("left"), &arg("right"))),
        "neq_operator" => Value::Bool(!same(&arg("left"), &arg("right"))),
        op if BINARY.contains(&op) => arithmetic(op, &arg("left"), &arg("right")),
        _ => Value::Null,
    }
}

fn children(ast: &Value) -> impl Iterator<Item = &Value> {
    ast.get("children").and_then(Value::as_array).into_iter().flatten()
}

/// Whether a value counts as true: `true`, a non-zero number, a non-empty string.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Null => false,
    }
}

/// Equality that compares numbers by value and a number with its text (dynamic variables
/// arrive as text from some clients).
fn same(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn arithmetic(op: &str, a: &Value, b: &Value) -> Value {
    if op == "add_operator"
        && let (Value::String(x), Value::String(y)) = (a, b)
    {
        return Value::String(format!("{x}{y}"));
    }
    let (Some(x), Some(y)) = (number(a), number(b)) else {
        return Value::Null;
    };
    let n = match op {
        "add_operator" => x + y,
        "sub_operator" => x - y,
        "mul_operator" => x * y,
        "div_operator" if y != 0.0 => x / y,
        "gt_operator" => return Value::Bool(x > y),
        "gte_operator" => return Value::Bool(x >= y),
        "lt_operator" => return Value::Bool(x < y),
        "lte_operator" => return Value::Bool(x <= y),
        _ => return Value::Null,
    };
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::testing::arb_json;

    fn graph() -> Value {
        json!({
            "nodes": {
                "start_node": {"type": "start", "edge_order": ["to_help"]},
                "help": {"type": "override_agent", "label": "Help", "additional_prompt": "Help.", "edge_order": ["to_lookup"]},
                "lookup": {"type": "tool", "tools": [{"tool_id": "tool_1"}], "edge_order": ["ok", "failed"]},
                "billing": {"type": "standalone_agent", "agent_id": "agent_b"},
                "end": {"type": "end"}
            },
            "edges": {
                "to_help": {"source": "start_node", "target": "help", "forward_condition": {"type": "unconditional"}},
                "to_lookup": {"source": "help", "target": "lookup", "forward_condition": {"type": "llm", "condition": "The user asks for an order"}},
                "ok": {"source": "lookup", "target": "billing", "forward_condition": {"type": "result", "successful": true}},
                "failed": {"source": "lookup", "target": "end", "forward_condition": {"type": "result", "successful": false}}
            }
        })
    }

    fn problems(doc: &Value) -> Vec<String> {
        check(doc, &["body", "workflow"])
            .iter()
            .map(|v| serde_json::to_string(&v.loc).unwrap())
            .collect()
    }

    #[test]
    fn a_walkable_graph_is_accepted_and_read() {
        assert!(problems(&graph()).is_empty(), "{:?}", problems(&graph()));
        let wf = Workflow::of(&graph()).unwrap();
        assert_eq!(wf.start(), Some("start_node"));
        let exits: Vec<&str> = wf.exits("lookup").iter().map(|e| e.to).collect();
        assert_eq!(exits, ["billing", "end"]);
        assert!(Workflow::of(&json!({"nodes": {"start_node": {"type": "start"}}})).is_none());
    }

    #[test]
    fn broken_graphs_are_refused_where_they_break() {
        let mut no_start = graph();
        no_start["nodes"]["start_node"]["type"] = json!("end");
        assert_eq!(problems(&no_start), [r#"["body","workflow","nodes"]"#]);
        let mut dangling = graph();
        dangling["edges"]["ok"]["target"] = json!("nowhere");
        assert_eq!(problems(&dangling), [r#"["body","workflow","edges","ok","target"]"#]);
        let mut cut = graph();
        cut["edges"].as_object_mut().unwrap().remove("failed");
        cut["nodes"]["lookup"]["edge_order"] = json!(["ok"]);
        assert_eq!(problems(&cut), [r#"["body","workflow","nodes","end"]"#]);
        let mut phone = graph();
        phone["nodes"]["billing"] = json!({"type": "phone_number", "transfer_destination": {"type": "phone", "phone_number": "+1"}});
        assert_eq!(problems(&phone), [r#"["body","workflow","nodes","billing","type"]"#]);
        let mut looping = graph();
        looping["edges"]["back"] = json!({"source": "help", "target": "start_node", "forward_condition": {"type": "unconditional"}});
        let closing = problems(&looping);
        assert!(
            closing == [r#"["body","workflow","edges","back"]"#]
                || closing == [r#"["body","workflow","edges","to_help"]"#],
            "an edge of the loop: {closing:?}"
        );
        let mut order = graph();
        order["nodes"]["help"]["edge_order"] = json!(["ok"]);
        assert_eq!(problems(&order), [r#"["body","workflow","nodes","help","edge_order"]"#]);
    }

    #[test]
    fn expressions_evaluate_over_variables() {
        let vars: Map<String, Value> =
            serde_json::from_value(json!({"tier": "gold", "spent": "120"})).unwrap();
        let ast = json!({"type": "and_operator", "children": [
            {"type": "eq_operator", "left": {"type": "dynamic_variable", "name": "tier"}, "right": {"type": "string_literal", "value": "gold"}},
            {"type": "gt_operator", "left": {"type": "dynamic_variable", "name": "spent"}, "right": {"type": "number_literal", "value": 100}}
        ]});
        assert_eq!(eval(&ast, &vars), json!(true));
        let missing = json!({"type": "gt_operator", "left": {"type": "dynamic_variable", "name": "nope"}, "right": {"type": "number_literal", "value": 1}});
        assert_eq!(eval(&missing, &vars), Value::Null);
        assert!(supported(&json!({"type": "llm", "prompt": "x"})).is_err());
    }

    proptest! {
        /// Whatever a client sends, the check answers without panicking, and a graph it
        /// accepts has every node, its ends among them, reachable from its one start.
        #[test]
        fn fuzz_checks_never_panic_and_accepted_graphs_can_end(doc in arb_json(), vars in arb_json(), ast in arb_json()) {
            let errors = check(&doc, &["body", "workflow"]);
            if errors.is_empty() && let Some(graph) = Workflow::of(&doc) {
                let start = graph.start().unwrap();
                prop_assert!(unreachable(&graph, start).is_empty());
            }
            let vars = vars.as_object().cloned().unwrap_or_default();
            let _ = eval(&ast, &vars);
        }

        #[test]
        fn fuzz_random_graphs(edges in proptest::collection::vec((0usize..5, 0usize..5, 0u8..3), 0..8), kinds in proptest::collection::vec(0u8..4, 5)) {
            let names = ["start_node", "a", "b", "c", "d"];
            let kind = |i: usize| if i == 0 { "start" } else { ["override_agent", "end", "tool", "override_agent"][kinds[i] as usize] };
            let nodes: Map<String, Value> = (0..5).map(|i| (names[i].to_owned(), json!({"type": kind(i)}))).collect();
            let edges: Map<String, Value> = edges.iter().enumerate().map(|(i, (s, t, c))| {
                let condition = match c { 0 => json!({"type": "unconditional"}), 1 => json!({"type": "llm", "condition": "x"}), _ => json!({"type": "result", "successful": true}) };
                (format!("e{i}"), json!({"source": names[*s], "target": names[*t], "forward_condition": condition}))
            }).collect();
            let doc = json!({"nodes": nodes, "edges": edges});
            if check(&doc, &["w"]).is_empty() && let Some(graph) = Workflow::of(&doc) {
                prop_assert!(unreachable(&graph, "start_node").is_empty());
                prop_assert!(endless_loop(&graph).is_none());
            }
        }
    }
}
