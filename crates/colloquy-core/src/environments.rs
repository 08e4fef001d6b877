//! Environments and environment variables (`/v1/convai/environments`,
//! `/v1/convai/environment-variables`): one configuration of tools, MCP servers and custom LLMs
//! that reaches different URLs, keys or headers per environment. A configuration names a
//! variable by label (`{"env_var_label": "..."}`); a conversation resolves it in the
//! environment it runs in, falling back to the variable's `production` value.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::validation::Violation;

/// The environment every workspace has and every variable has a value for.
pub const PRODUCTION: &str = "production";

const MAX_NAME_CHARS: usize = 64;
const MAX_LABEL_CHARS: usize = 256;
const MAX_VALUE_BYTES: usize = 16 * 1024;

/// What a variable holds per environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarKind {
    /// A plain string, shown by the API.
    String,
    /// A workspace secret's id; the secret's value is used and never shown.
    Secret,
}

impl VarKind {
    /// The wire and stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            VarKind::String => "string",
            VarKind::Secret => "secret",
        }
    }

    /// The kind a stored or wire name names.
    pub fn parse(name: &str) -> Option<VarKind> {
        match name {
            "string" => Some(VarKind::String),
            "secret" => Some(VarKind::Secret),
            _ => None,
        }
    }

    /// A stored value as the API shows it: the string, or `{"secret_id"}`.
    pub fn wire(self, stored: &str) -> Value {
        match self {
            VarKind::String => json!(stored),
            VarKind::Secret => json!({"secret_id": stored}),
        }
    }
}

/// A create request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVariable {
    /// Unique in the workspace.
    pub label: String,
    /// What it holds.
    pub kind: VarKind,
    /// Stored value per environment (`production` among them).
    pub values: BTreeMap<String, String>,
}

/// What a PATCH does to each environment it names: a new value, or `None` to remove it.
pub type ValueChanges = BTreeMap<String, Option<String>>;

/// Whether `name` may name an environment: 1 to 64 letters, digits, `-` or `_`.
pub fn check_name(name: &str, loc: &[&str]) -> Result<(), Violation> {
    let fine = (1..=MAX_NAME_CHARS).contains(&name.chars().count())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fine {
        Ok(())
    } else {
        Err(Violation::new(
            loc.iter().copied(),
            "string_pattern_mismatch",
            format!(
                "An environment name is 1 to {MAX_NAME_CHARS} letters, digits, '-' or '_' (got {name:?})"
            ),
        ))
    }
}

/// Checks a create body (`CreateStringEnvironmentVariableRequest` or
/// `CreateSecretEnvironmentVariableRequest`). Whether the environments and secrets it names
/// exist is for the caller, which can look.
pub fn create(body: &Value) -> Result<NewVariable, Vec<Violation>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![Violation::new(["body"], "model_type", "The body must be an object")]);
    };
    let mut errors = Vec::new();
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some("auth_connection") => {
            errors.push(Violation::new(
                ["body", "type"],
                "value_error",
                "auth_connection variables need auth connections, which this server does not have; use a string or secret variable",
            ));
            None
        }
        Some(t) => VarKind::parse(t).or_else(|| {
            errors.push(Violation::new(
                ["body", "type"],
                "literal_error",
                "Input should be 'string', 'secret' or 'auth_connection'",
            ));
            None
        }),
        None => {
            errors.push(Violation::new(["body", "type"], "missing", "Field required"));
            None
        }
    };
    let label = match obj.get("label").and_then(Value::as_str) {
        Some(l) if !l.trim().is_empty() && l.chars().count() <= MAX_LABEL_CHARS => l.to_owned(),
        Some(_) => {
            errors.push(Violation::new(
                ["body", "label"],
                "string_too_short",
                format!("A label is 1 to {MAX_LABEL_CHARS} characters, not only spaces"),
            ));
            String::new()
        }
        None => {
            errors.push(Violation::new(["body", "label"], "missing", "Field required"));
            String::new()
        }
    };
    let mut values = BTreeMap::new();
    match obj.get("values").and_then(Value::as_object) {
        None => errors.push(Violation::new(
            ["body", "values"],
            "missing",
            "values is required: an object of environment names to values",
        )),
        Some(map) => {
            if !map.contains_key(PRODUCTION) {
                errors.push(Violation::new(
                    ["body", "values"],
                    "value_error",
                    "values must include the 'production' environment",
                ));
            }
            for (env, value) in map {
                if let Some(kind) = kind
                    && let Some(stored) = value_of(kind, env, value, &mut errors)
                {
                    values.insert(env.clone(), stored);
                }
            }
        }
    }
    match (errors.is_empty(), kind) {
        (true, Some(kind)) => Ok(NewVariable { label, kind, values }),
        _ => Err(errors),
    }
}

/// Checks a PATCH body (`{"values": {...}}`) of a variable of `kind`: a value per environment
/// to set, or `null` to remove one (never `production`).
pub fn update(kind: VarKind, body: &Value) -> Result<ValueChanges, Vec<Violation>> {
    let Some(map) = body.get("values").and_then(Value::as_object) else {
        return Err(vec![Violation::new(
            ["body", "values"],
            "missing",
            "values is required: an object of environment names to values (null removes one)",
        )]);
    };
    let mut errors = Vec::new();
    let mut changes = ValueChanges::new();
    for (env, value) in map {
        if value.is_null() {
            if env == PRODUCTION {
                errors.push(Violation::new(
                    ["body", "values", PRODUCTION],
                    "value_error",
                    "The production value cannot be removed",
                ));
            } else {
                changes.insert(env.clone(), None);
            }
        } else if let Some(stored) = value_of(kind, env, value, &mut errors) {
            changes.insert(env.clone(), Some(stored));
        }
    }
    if errors.is_empty() { Ok(changes) } else { Err(errors) }
}

/// The stored form of one environment's value, or why it is not one.
fn value_of(
    kind: VarKind, env: &str, value: &Value, errors: &mut Vec<Violation>,
) -> Option<String> {
    let loc = ["body", "values", env];
    if let Err(e) = check_name(env, &loc) {
        errors.push(e);
        return None;
    }
    match (kind, value) {
        (VarKind::String, Value::String(s)) if !s.is_empty() && s.len() <= MAX_VALUE_BYTES => {
            Some(s.clone())
        }
        (VarKind::String, _) => {
            errors.push(Violation::new(
                loc,
                "string_type",
                format!("A string variable's value is a non-empty string of at most {MAX_VALUE_BYTES} bytes"),
            ));
            None
        }
        (VarKind::Secret, v) => match v.get("secret_id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Some(id.to_owned()),
            _ => {
                errors.push(Violation::new(
                    loc,
                    "model_type",
                    "A secret variable's value is {\"secret_id\": \"...\"}",
                ));
                None
            }
        },
    }
}

/// The labels a stored configuration names in `{"env_var_label": ...}` anywhere in it.
pub fn labels_in(config: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect(config, &mut out);
    out
}

fn collect(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(label) = locator(map) {
                out.insert(label.to_owned());
            }
            map.values().for_each(|v| collect(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

/// The label an `{"env_var_label": ...}` locator names.
pub fn locator(map: &Map<String, Value>) -> Option<&str> {
    map.get("env_var_label").and_then(Value::as_str)
}

/// The text a stored configuration has for a locator of `label`, to find the configurations
/// that use a variable (`"env_var_label":"<label>"` as compact JSON writes it).
pub fn locator_text(label: &str) -> String {
    format!("\"env_var_label\":{}", Value::String(label.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_variable_needs_production_and_non_empty_values() {
        let ok = create(&json!({"type": "string", "label": "API_URL", "values": {"production": "https://p", "staging": "https://s"}})).unwrap();
        assert_eq!(ok.kind, VarKind::String);
        assert_eq!(ok.values.len(), 2);
        for bad in [
            json!({"type": "string", "label": "A", "values": {"staging": "x"}}),
            json!({"type": "string", "label": "A", "values": {"production": ""}}),
            json!({"type": "string", "label": " ", "values": {"production": "x"}}),
            json!({"type": "string", "label": "A", "values": {"production": "x", "bad env": "y"}}),
            json!({"type": "secret", "label": "A", "values": {"production": "plain"}}),
            json!({"type": "auth_connection", "label": "A", "values": {"production": {"auth_connection_id": "c"}}}),
            json!({"label": "A", "values": {"production": "x"}}),
            json!([]),
        ] {
            assert!(create(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_update_removes_any_environment_but_production() {
        let changes = update(
            VarKind::Secret,
            &json!({"values": {"staging": null, "dev": {"secret_id": "s"}}}),
        )
        .unwrap();
        assert_eq!(changes.get("staging"), Some(&None));
        assert_eq!(changes.get("dev"), Some(&Some("s".to_owned())));
        assert!(update(VarKind::String, &json!({"values": {"production": null}})).is_err());
        assert!(update(VarKind::String, &json!({})).is_err());
    }

    #[test]
    fn labels_are_found_anywhere_in_a_configuration() {
        let config = json!({"api_schema": {"request_headers": {"A": {"env_var_label": "KEY"}, "B": "x"}}, "list": [{"env_var_label": "URL"}]});
        assert_eq!(labels_in(&config).into_iter().collect::<Vec<_>>(), ["KEY", "URL"]);
        let text = serde_json::to_string(&config).unwrap();
        assert!(text.contains(&locator_text("KEY")));
    }
}
