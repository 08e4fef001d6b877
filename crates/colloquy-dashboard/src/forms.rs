//! What a form sent, and what the API refused in it: the two halves of every settings form.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::format::text;

/// A submitted form: every name with its values in order (checkbox lists repeat a name).
pub struct Submitted(pub Vec<(String, String)>);

impl Submitted {
    pub fn first(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

/// The API's violations by the dotted path they name (without `body`); what names no path
/// is under the empty key.
pub fn violations(body: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for item in body["detail"].as_array().into_iter().flatten() {
        let path: Vec<String> = item["loc"]
            .as_array()
            .into_iter()
            .flatten()
            .skip_while(|p| p.as_str() == Some("body"))
            .map(|p| match p {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let msg = text(&item["msg"]).to_owned();
        out.entry(path.join("."))
            .and_modify(|m: &mut String| m.push_str(&format!("; {msg}")))
            .or_insert(msg);
    }
    if out.is_empty() {
        out.insert(String::new(), crate::api::message_of(body));
    }
    out
}

/// The violation a field shows: one at its dotted path or below it.
pub fn error_at<'a>(errors: &'a BTreeMap<String, String>, path: &str) -> Option<&'a String> {
    errors.iter().find(|(at, _)| *at == path || at.starts_with(&format!("{path}."))).map(|(_, m)| m)
}

/// The violations no field at `placed` (or below) shows, as `path: message`, for the top of
/// the form.
pub fn unplaced(errors: &BTreeMap<String, String>, placed: &[&str]) -> Vec<String> {
    errors
        .iter()
        .filter(|(at, _)| !placed.iter().any(|p| *at == p || at.starts_with(&format!("{p}."))))
        .map(|(at, m)| if at.is_empty() { m.clone() } else { format!("{at}: {m}") })
        .collect()
}
