//! Post-call analysis without the I/O: what an agent asks of it (its evaluation criteria and
//! data-collection items, `platform_settings.evaluation` and `.data_collection`), the JSON
//! schema the analysing LLM must answer in, and the check of that answer, which turns it into
//! the reference's `ConversationHistoryAnalysisCommonModel` or says why it cannot be stored.
//! Nothing the LLM answers is stored unchecked: one wrong field fails the whole answer, so an
//! analysis is either whole or absent.

use serde_json::{Map, Value, json};

use crate::validation::Violation;

/// The forced tool the analysing LLM answers through.
pub const TOOL_NAME: &str = "record_analysis";

/// One evaluation criterion (`PromptEvaluationCriteria`).
#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    /// Its id, the key of its result.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What the conversation should have achieved.
    pub prompt: String,
    /// Its own model, when it names one.
    pub llm: Option<String>,
    /// `Some(max_score)` for `numeric_uniform` scoring, `None` for binary.
    pub max_score: Option<i64>,
    /// How to assign a numeric score.
    pub score_instructions: Option<String>,
}

/// The type of a collected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `boolean`.
    Boolean,
    /// `string`.
    String,
    /// `integer`.
    Integer,
    /// `number`.
    Number,
}

impl DataType {
    fn of(name: &str) -> Option<DataType> {
        Some(match name {
            "boolean" => DataType::Boolean,
            "string" => DataType::String,
            "integer" => DataType::Integer,
            "number" => DataType::Number,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            DataType::Boolean => "boolean",
            DataType::String => "string",
            DataType::Integer => "integer",
            DataType::Number => "number",
        }
    }

    fn holds(self, value: &Value) -> bool {
        match self {
            DataType::Boolean => value.is_boolean(),
            DataType::String => value.is_string(),
            DataType::Integer => value.is_i64() || value.is_u64(),
            DataType::Number => value.is_number(),
        }
    }
}

/// Where a data-collection item's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The LLM reads it from the conversation, as the description says.
    Llm(String),
    /// A dynamic variable of the conversation.
    Variable(String),
    /// A fixed value.
    Constant(Value),
}

/// One data-collection item (`AnalysisProperty`).
#[derive(Debug, Clone, PartialEq)]
pub struct DataItem {
    /// Its id, the key of its result.
    pub id: String,
    /// The value's type.
    pub kind: DataType,
    /// Where the value comes from.
    pub source: Source,
    /// The allowed values of a string.
    pub allowed: Option<Vec<String>>,
    /// Its own model, when it names one.
    pub llm: Option<String>,
    /// The item as configured, echoed in its result's `json_schema`.
    pub schema: Value,
}

/// What an analysis evaluates and collects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Evaluation criteria.
    pub criteria: Vec<Criterion>,
    /// Data-collection items.
    pub data: Vec<DataItem>,
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn model(v: &Value) -> Option<String> {
    v.get("llm").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

impl Plan {
    /// The plan of an agent's `platform_settings`.
    pub fn of_agent(platform_settings: &Value) -> Plan {
        let criteria = platform_settings
            .pointer("/evaluation/criteria")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| Criterion {
                id: text(c, "id"),
                name: text(c, "name"),
                prompt: text(c, "conversation_goal_prompt"),
                llm: model(c),
                max_score: (c.get("scoring_mode").and_then(Value::as_str)
                    == Some("numeric_uniform"))
                .then(|| c.get("max_score").and_then(Value::as_i64).unwrap_or(100).max(1)),
                score_instructions: c
                    .get("score_instructions")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
            .collect();
        let data = platform_settings
            .get("data_collection")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(id, item)| {
                let kind = DataType::of(item.get("type").and_then(Value::as_str)?)?;
                Some(DataItem {
                    id: id.clone(),
                    kind,
                    source: source(item),
                    allowed: item
                        .get("enum")
                        .and_then(Value::as_array)
                        .map(|e| e.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
                    llm: model(item),
                    schema: item.clone(),
                })
            })
            .collect();
        Plan { criteria, data }
    }

    /// Only the criterion `id` (an evaluation re-run), or `None` when the plan has no such
    /// criterion.
    pub fn only_criterion(&self, id: &str) -> Option<Plan> {
        let criterion = self.criteria.iter().find(|c| c.id == id)?.clone();
        Some(Plan { criteria: vec![criterion], data: Vec::new() })
    }

    /// Whether the LLM has anything to say about this plan beyond the summary.
    pub fn asks_llm(&self) -> bool {
        !self.criteria.is_empty() || self.data.iter().any(|d| matches!(d.source, Source::Llm(_)))
    }

    /// The plan split by the model each part is asked with (`default` for parts naming none),
    /// the default model's part first: one LLM request per model.
    pub fn by_model(&self, default: &str) -> Vec<(String, Plan)> {
        let mut parts: Vec<(String, Plan)> = vec![(default.to_owned(), Plan::default())];
        let mut part = |model: &Option<String>| -> usize {
            let model = model.as_deref().unwrap_or(default);
            match parts.iter().position(|(m, _)| m == model) {
                Some(i) => i,
                None => {
                    parts.push((model.to_owned(), Plan::default()));
                    parts.len() - 1
                }
            }
        };
        let mut placed: Vec<(usize, Option<Criterion>, Option<DataItem>)> = Vec::new();
        for c in &self.criteria {
            placed.push((part(&c.llm), Some(c.clone()), None));
        }
        for d in self.data.iter().filter(|d| matches!(d.source, Source::Llm(_))) {
            placed.push((part(&d.llm), None, Some(d.clone())));
        }
        for (i, c, d) in placed {
            parts[i].1.criteria.extend(c);
            parts[i].1.data.extend(d);
        }
        parts
    }

    /// The instructions for this plan's part of the analysis, after the transcript.
    pub fn instructions(&self, with_summary: bool, language: Option<&str>) -> String {
        let mut out = String::new();
        if with_summary {
            out.push_str(
                "Write `transcript_summary`: what happened in the conversation, in two to four \
                 sentences. Write `call_summary_title`: a title of at most eight words.\n",
            );
        }
        if !self.criteria.is_empty() {
            out.push_str(
                "\nEvaluate each criterion against the conversation. `success`: the \
                 conversation meets it; `failure`: it does not; `unknown`: the conversation \
                 does not tell. Give a one-sentence rationale.\n",
            );
            for c in &self.criteria {
                out.push_str(&format!("- `{}` ({}): {}\n", c.id, c.name, c.prompt));
                if let Some(max) = c.max_score {
                    out.push_str(&format!(
                        "  Score it from 0 to {max}{}.\n",
                        c.score_instructions
                            .as_deref()
                            .map(|s| format!(": {s}"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
        let asked: Vec<&DataItem> =
            self.data.iter().filter(|d| matches!(d.source, Source::Llm(_))).collect();
        if !asked.is_empty() {
            out.push_str(
                "\nExtract each item from the conversation, or `null` when the conversation \
                 does not contain it. Give a one-sentence rationale.\n",
            );
            for d in asked {
                let Source::Llm(description) = &d.source else { continue };
                out.push_str(&format!("- `{}` ({}): {description}\n", d.id, d.kind.name()));
            }
        }
        if let Some(language) = language {
            out.push_str(&format!("\nWrite every summary, title and rationale in {language}.\n"));
        }
        out
    }

    /// The JSON schema of the forced tool's arguments: every field required, nothing else
    /// allowed (what strict structured output accepts).
    pub fn schema(&self, with_summary: bool) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        if with_summary {
            properties.insert("transcript_summary".into(), json!({"type": "string"}));
            properties.insert("call_summary_title".into(), json!({"type": "string"}));
            required.extend(["transcript_summary", "call_summary_title"].map(Value::from));
        }
        if !self.criteria.is_empty() {
            let mut each = Map::new();
            for c in &self.criteria {
                let mut fields = json!({
                    "result": {"type": "string", "enum": ["success", "failure", "unknown"]},
                    "rationale": {"type": "string"},
                });
                let mut needed = vec!["result", "rationale"];
                if let Some(max) = c.max_score {
                    fields["score"] = json!({"type": "integer", "minimum": 0, "maximum": max});
                    needed.push("score");
                }
                each.insert(c.id.clone(), strict(fields, &needed));
            }
            let ids: Vec<&str> = self.criteria.iter().map(|c| c.id.as_str()).collect();
            properties.insert("evaluation_criteria_results".into(), strict(each.into(), &ids));
            required.push("evaluation_criteria_results".into());
        }
        let asked: Vec<&DataItem> =
            self.data.iter().filter(|d| matches!(d.source, Source::Llm(_))).collect();
        if !asked.is_empty() {
            let mut each = Map::new();
            for d in &asked {
                let mut value = json!({"type": [d.kind.name(), "null"]});
                if let Some(allowed) = &d.allowed {
                    let mut values: Vec<Value> = allowed.iter().map(|a| json!(a)).collect();
                    values.push(Value::Null);
                    value["enum"] = values.into();
                }
                let fields = json!({"value": value, "rationale": {"type": "string"}});
                each.insert(d.id.clone(), strict(fields, &["value", "rationale"]));
            }
            let ids: Vec<&str> = asked.iter().map(|d| d.id.as_str()).collect();
            properties.insert("data_collection_results".into(), strict(each.into(), &ids));
            required.push("data_collection_results".into());
        }
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }

    /// Checks the LLM's answer to this plan's part and adds it to `into`; why not, otherwise
    /// (and `into` is left as it was).
    pub fn read(
        &self, answer: &Value, with_summary: bool, into: &mut Analysis,
    ) -> Result<(), String> {
        let mut out = into.clone();
        if with_summary {
            out.summary = string(answer, "transcript_summary")?;
            out.title = Some(string(answer, "call_summary_title")?);
        }
        for c in &self.criteria {
            let got = answer
                .pointer(&format!("/evaluation_criteria_results/{}", pointer_key(&c.id)))
                .ok_or_else(|| format!("no result for the criterion `{}`", c.id))?;
            out.criteria.insert(c.id.clone(), criterion_result(c, got)?);
        }
        for d in self.data.iter().filter(|d| matches!(d.source, Source::Llm(_))) {
            let got = answer
                .pointer(&format!("/data_collection_results/{}", pointer_key(&d.id)))
                .ok_or_else(|| format!("no value for the data item `{}`", d.id))?;
            let value = got.get("value").cloned().unwrap_or(Value::Null);
            check_value(d, &value)?;
            let rationale = string(got, "rationale")?;
            out.data.insert(d.id.clone(), data_result(d, value, rationale));
        }
        *into = out;
        Ok(())
    }

    /// The results of the items whose values are not asked of the LLM: constants, and dynamic
    /// variables read from `variables`.
    pub fn fixed_values(&self, variables: &Value, into: &mut Analysis) {
        for d in &self.data {
            let (value, rationale) = match &d.source {
                Source::Llm(_) => continue,
                Source::Constant(v) => (v.clone(), "A constant value.".to_owned()),
                Source::Variable(name) => (
                    variables.get(name).cloned().unwrap_or(Value::Null),
                    format!("The dynamic variable `{name}`."),
                ),
            };
            into.data.insert(d.id.clone(), data_result(d, value, rationale));
        }
    }
}

fn source(item: &Value) -> Source {
    let variable = text(item, "dynamic_variable");
    if !variable.is_empty() {
        return Source::Variable(variable);
    }
    match item.get("constant_value") {
        Some(Value::String(s)) if s.is_empty() => Source::Llm(text(item, "description")),
        Some(Value::Null) | None => Source::Llm(text(item, "description")),
        Some(v) => Source::Constant(v.clone()),
    }
}

/// An object schema with exactly these properties, all required.
fn strict(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// `key` as one JSON pointer step.
fn pointer_key(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn string(v: &Value, key: &str) -> Result<String, String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("`{key}` is missing or not a string"))
}

fn criterion_result(c: &Criterion, got: &Value) -> Result<Value, String> {
    let rationale = string(got, "rationale")?;
    let mut result = match got.get("result").and_then(Value::as_str) {
        Some(r @ ("success" | "failure" | "unknown")) => r.to_owned(),
        _ => {
            return Err(format!(
                "the criterion `{}` has no result of success, failure or unknown",
                c.id
            ));
        }
    };
    let mut out = json!({"criteria_id": c.id, "result": "", "rationale": rationale});
    if let Some(max) = c.max_score {
        let score = got
            .get("score")
            .and_then(Value::as_i64)
            .filter(|s| (0..=max).contains(s))
            .ok_or_else(|| format!("the criterion `{}` has no score from 0 to {max}", c.id))?;
        // A numeric criterion passes at half its scale or more.
        result = if score * 2 >= max { "success" } else { "failure" }.to_owned();
        out["scoring_mode"] = json!("numeric_uniform");
        out["score"] = json!(score);
        out["max_score"] = json!(max);
    }
    out["result"] = json!(result);
    Ok(out)
}

fn check_value(d: &DataItem, value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    if !d.kind.holds(value) {
        return Err(format!("the value of `{}` is not a {}", d.id, d.kind.name()));
    }
    if let (Some(allowed), Some(s)) = (&d.allowed, value.as_str())
        && !allowed.iter().any(|a| a == s)
    {
        return Err(format!("the value of `{}` is not one of its allowed values", d.id));
    }
    Ok(())
}

fn data_result(d: &DataItem, value: Value, rationale: String) -> Value {
    json!({
        "data_collection_id": d.id,
        "value": value,
        "json_schema": d.schema,
        "rationale": rationale,
    })
}

/// An analysis as it is built up, part by part.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// `transcript_summary`.
    pub summary: String,
    /// `call_summary_title`.
    pub title: Option<String>,
    /// Criterion results by id.
    pub criteria: Map<String, Value>,
    /// Data-collection results by id.
    pub data: Map<String, Value>,
}

impl Analysis {
    /// `call_successful`: the criteria's verdict (any failure fails, all successes succeed,
    /// anything else is unknown), or `recorded` (how the conversation ended) when the agent
    /// has no criteria.
    pub fn call_successful(&self, recorded: &str) -> String {
        if self.criteria.is_empty() {
            return recorded.to_owned();
        }
        let results: Vec<&str> =
            self.criteria.values().filter_map(|c| c["result"].as_str()).collect();
        if results.contains(&"failure") {
            "failure".into()
        } else if results.iter().all(|r| *r == "success") {
            "success".into()
        } else {
            "unknown".into()
        }
    }

    /// The reference's `ConversationHistoryAnalysisCommonModel`.
    pub fn to_wire(&self, call_successful: &str) -> Value {
        json!({
            "evaluation_criteria_results": self.criteria,
            "data_collection_results": self.data,
            "evaluation_criteria_results_list": self.criteria.values().collect::<Vec<_>>(),
            "data_collection_results_list": self.data.values().collect::<Vec<_>>(),
            "call_successful": call_successful,
            "transcript_summary": self.summary,
            "call_summary_title": self.title,
        })
    }

    /// An analysis read back from [`Analysis::to_wire`]'s form (a stored one, to re-run one
    /// criterion over).
    pub fn from_wire(wire: &Value) -> Analysis {
        let map = |key: &str| wire.get(key).and_then(Value::as_object).cloned().unwrap_or_default();
        Analysis {
            summary: text(wire, "transcript_summary"),
            title: wire.get("call_summary_title").and_then(Value::as_str).map(str::to_owned),
            criteria: map("evaluation_criteria_results"),
            data: map("data_collection_results"),
        }
    }
}

/// What the schema cannot say about an agent's analysis settings: a criterion needs an id and a
/// prompt, ids are unique, and a data-collection item needs an id.
pub fn check(platform_settings: &Value, at: &[&str]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let criteria = platform_settings.pointer("/evaluation/criteria").and_then(Value::as_array);
    let mut seen = Vec::new();
    for (i, c) in criteria.into_iter().flatten().enumerate() {
        let loc = |field: &str| {
            let mut loc: Vec<crate::validation::LocItem> = at.iter().map(|s| (*s).into()).collect();
            loc.extend(["evaluation".into(), "criteria".into(), i.into(), field.into()]);
            loc
        };
        let id = text(c, "id");
        if id.trim().is_empty() {
            violations.push(Violation::new(loc("id"), "value_error", "A criterion needs an id"));
        } else if seen.contains(&id) {
            violations.push(Violation::new(
                loc("id"),
                "value_error",
                format!("The criterion id `{id}` is used twice"),
            ));
        }
        seen.push(id);
        if text(c, "conversation_goal_prompt").trim().is_empty() {
            violations.push(Violation::new(
                loc("conversation_goal_prompt"),
                "value_error",
                "A criterion needs a prompt saying what the conversation should achieve",
            ));
        }
    }
    let items = platform_settings.get("data_collection").and_then(Value::as_object);
    for id in items.into_iter().flatten().map(|(id, _)| id) {
        if id.trim().is_empty() {
            let mut loc: Vec<crate::validation::LocItem> = at.iter().map(|s| (*s).into()).collect();
            loc.extend(["data_collection".into(), id.as_str().into()]);
            violations.push(Violation::new(
                loc,
                "value_error",
                "A data-collection item needs an id",
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::of_agent(&json!({
            "evaluation": {"criteria": [
                {"id": "greeted", "name": "Greeting", "conversation_goal_prompt": "The agent greeted the user"},
                {"id": "helpful", "name": "Helpful", "conversation_goal_prompt": "Helped", "scoring_mode": "numeric_uniform", "max_score": 10, "llm": "judge-model"},
            ]},
            "data_collection": {
                "city": {"type": "string", "description": "The user's city", "enum": ["Oslo", "Paris"]},
                "order": {"type": "integer", "dynamic_variable": "order_id"},
                "channel": {"type": "string", "constant_value": "web"},
            },
        }))
    }

    #[test]
    fn a_plan_splits_by_model_with_the_default_first() {
        let parts = plan().by_model("gpt-4o");
        let names: Vec<(&str, usize, usize)> =
            parts.iter().map(|(m, p)| (m.as_str(), p.criteria.len(), p.data.len())).collect();
        assert_eq!(names, [("gpt-4o", 1, 1), ("judge-model", 1, 0)]);
    }

    #[test]
    fn answers_are_checked_before_they_are_kept() {
        let plan = plan();
        let (_, part) = &plan.by_model("m")[0];
        let mut analysis = Analysis::default();
        let good = json!({
            "transcript_summary": "The user asked about Oslo.", "call_summary_title": "Oslo",
            "evaluation_criteria_results": {"greeted": {"result": "success", "rationale": "said hi"}},
            "data_collection_results": {"city": {"value": "Oslo", "rationale": "named it"}},
        });
        part.read(&good, true, &mut analysis).unwrap();
        assert_eq!(analysis.criteria["greeted"]["result"], "success");
        assert_eq!(analysis.data["city"]["value"], "Oslo");
        assert_eq!(analysis.call_successful("unknown"), "success");

        let mut bad = good.clone();
        bad["data_collection_results"]["city"]["value"] = json!("Rome");
        let before = analysis.clone();
        assert!(part.read(&bad, true, &mut analysis).unwrap_err().contains("allowed"));
        assert_eq!(analysis, before, "a wrong answer changes nothing");
        bad = good.clone();
        bad["evaluation_criteria_results"]["greeted"]["result"] = json!("maybe");
        assert!(part.read(&bad, true, &mut analysis).is_err());
    }

    #[test]
    fn numeric_criteria_pass_at_half_their_scale() {
        let plan = plan();
        let only = plan.only_criterion("helpful").unwrap();
        let mut analysis = Analysis::default();
        let answer = json!({"evaluation_criteria_results": {"helpful": {"result": "unknown", "rationale": "ok", "score": 4}}});
        only.read(&answer, false, &mut analysis).unwrap();
        assert_eq!(analysis.criteria["helpful"]["result"], "failure");
        assert_eq!(analysis.criteria["helpful"]["score"], 4);
        let too_high = json!({"evaluation_criteria_results": {"helpful": {"result": "success", "rationale": "ok", "score": 11}}});
        assert!(only.read(&too_high, false, &mut analysis).is_err());
    }

    #[test]
    fn fixed_values_come_from_variables_and_constants() {
        let mut analysis = Analysis::default();
        plan().fixed_values(&json!({"order_id": 42}), &mut analysis);
        assert_eq!(analysis.data["order"]["value"], 42);
        assert_eq!(analysis.data["channel"]["value"], "web");
        assert!(!analysis.data.contains_key("city"));
    }

    #[test]
    fn settings_checks_name_the_field() {
        let violations = check(
            &json!({"evaluation": {"criteria": [
                {"id": "a", "name": "A", "conversation_goal_prompt": " "},
                {"id": "a", "name": "B", "conversation_goal_prompt": "fine"},
            ]}}),
            &["body", "platform_settings"],
        );
        let locs: Vec<String> =
            violations.iter().map(|v| serde_json::to_string(&v.loc).unwrap()).collect();
        assert_eq!(
            locs,
            [
                r#"["body","platform_settings","evaluation","criteria",0,"conversation_goal_prompt"]"#,
                r#"["body","platform_settings","evaluation","criteria",1,"id"]"#,
            ]
        );
    }
}
