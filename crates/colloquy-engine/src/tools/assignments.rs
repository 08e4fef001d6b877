//! A tool's `assignments`: values taken from its JSON response by dot-path (`order.id`,
//! `items.0.sku`) into the conversation's dynamic variables, which later prompts and tool
//! parameters read. A scalar keeps its type; a list or object becomes its JSON text unless the
//! assignment sets `preserve_native_type`. A `sanitize`d value is taken out of the response
//! before anyone sees it — the LLM, the transcript (its update is not listed either), the
//! audit log — and still assigned.

use serde_json::Value;

/// One variable a response assigns.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The variable.
    pub name: String,
    /// Its new value.
    pub value: Value,
    /// Taken out of the response: the value is not to be shown anywhere.
    pub sanitized: bool,
}

/// What one call's response assigns, in the tool's order.
pub type Assigned = Vec<Assignment>;

/// Applies `config`'s assignments to the response text `result`: the values assigned, and the
/// response with the sanitized values taken out (`None` when nothing was taken out). A
/// response that is not JSON, or a path that finds nothing, assigns nothing.
pub fn take(config: &Value, result: &str) -> (Assigned, Option<String>) {
    let Some(assignments) = config.get("assignments").and_then(Value::as_array) else {
        return (Vec::new(), None);
    };
    if assignments.is_empty() {
        return (Vec::new(), None);
    }
    let Ok(mut response) = serde_json::from_str::<Value>(result) else {
        return (Vec::new(), None);
    };
    let mut assigned = Vec::new();
    let mut sanitized = false;
    for a in assignments {
        let source = a.get("source").and_then(Value::as_str).unwrap_or("response");
        let (Some(name), Some(path)) = (
            a.get("dynamic_variable").and_then(Value::as_str).filter(|n| !n.is_empty()),
            a.get("value_path").and_then(Value::as_str),
        ) else {
            continue;
        };
        if source != "response" {
            continue;
        }
        let Some(found) = find(&response, path) else { continue };
        let native = a.get("preserve_native_type").and_then(Value::as_bool) == Some(true);
        let value = match found {
            Value::Array(_) | Value::Object(_) if !native => Value::String(found.to_string()),
            other => other.clone(),
        };
        let sanitize = a.get("sanitize").and_then(Value::as_bool) == Some(true);
        assigned.push(Assignment { name: name.to_owned(), value, sanitized: sanitize });
        if sanitize {
            sanitized |= remove(&mut response, path);
        }
    }
    (assigned, sanitized.then(|| response.to_string()))
}

/// The value at a dot-path: object keys, and array indexes where the value is a list.
fn find<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').filter(|s| !s.is_empty()).try_fold(value, |v, step| match v {
        Value::Object(map) => map.get(step),
        Value::Array(items) => items.get(step.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Takes the value at a dot-path out; whether there was one.
fn remove(value: &mut Value, path: &str) -> bool {
    let steps: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    let Some((last, parents)) = steps.split_last() else { return false };
    let mut at = value;
    for step in parents {
        at = match at {
            Value::Object(map) => match map.get_mut(*step) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(items) => {
                match step.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    Some(v) => v,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    match at {
        Value::Object(map) => map.remove(*last).is_some(),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_are_taken_by_path_typed_and_sanitized() {
        let config = json!({"assignments": [
            {"dynamic_variable": "order_id", "value_path": "order.id"},
            {"dynamic_variable": "first_sku", "value_path": "order.items.0.sku"},
            {"dynamic_variable": "items", "value_path": "order.items"},
            {"dynamic_variable": "items_native", "value_path": "order.items", "preserve_native_type": true},
            {"dynamic_variable": "token", "value_path": "token", "sanitize": true},
            {"dynamic_variable": "missing", "value_path": "order.nope"},
        ]});
        let response = json!({"order": {"id": 4711, "items": [{"sku": "A1"}]}, "token": "t0k3n"});
        let (assigned, sanitized) = take(&config, &response.to_string());
        let assigned: Vec<(String, Value)> =
            assigned.into_iter().map(|a| (a.name, a.value)).collect();
        assert_eq!(
            assigned,
            vec![
                ("order_id".to_owned(), json!(4711)),
                ("first_sku".to_owned(), json!("A1")),
                ("items".to_owned(), json!(r#"[{"sku":"A1"}]"#)),
                ("items_native".to_owned(), json!([{"sku": "A1"}])),
                ("token".to_owned(), json!("t0k3n")),
            ]
        );
        let sanitized: Value = serde_json::from_str(&sanitized.unwrap()).unwrap();
        assert_eq!(sanitized, json!({"order": {"id": 4711, "items": [{"sku": "A1"}]}}));
    }

    #[test]
    fn nothing_is_assigned_from_what_is_not_json() {
        let config = json!({"assignments": [{"dynamic_variable": "x", "value_path": "a"}]});
        assert_eq!(take(&config, "plain text"), (Vec::new(), None));
        assert_eq!(take(&json!({}), r#"{"a": 1}"#), (Vec::new(), None));
        let mut list = json!([1, 2, 3]);
        assert!(remove(&mut list, "1"));
        assert_eq!(list, json!([1, 3]));
        assert!(!remove(&mut list, "9"));
    }
}
