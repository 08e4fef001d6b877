//! The three-way merge of two agent documents from their common ancestor, behind branch merges
//! and rebases. Objects merge key by key; anything else (strings, numbers, arrays: a tool list
//! or a list of evaluation criteria is one choice, not a set of independent edits) is taken
//! whole from the side that changed it. A field both sides changed, differently, is a conflict,
//! named by its dot-path as the reference's `overridden_fields` names them.

use serde_json::{Map, Value};

/// Which side a conflict resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefer {
    /// Keep the target's value (the branch merged into).
    Target,
    /// Take the source's value (the branch merged in).
    Source,
}

/// A merge's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The merged document, conflicts resolved as asked.
    pub value: Value,
    /// Dot-paths of the fields both sides changed differently, in document order.
    pub conflicts: Vec<String>,
}

/// Merges `source` into `target`, both changed from `base`.
pub fn three_way(base: &Value, target: &Value, source: &Value, prefer: Prefer) -> Merged {
    let mut conflicts = Vec::new();
    let value = merge_at(
        Some(base),
        Some(target),
        Some(source),
        prefer,
        &mut String::new(),
        &mut conflicts,
    )
    .unwrap_or(Value::Null);
    Merged { value, conflicts }
}

/// Merges one field, present or absent on each side (an absent field differs from `null`).
fn merge_at(
    base: Option<&Value>, target: Option<&Value>, source: Option<&Value>, prefer: Prefer,
    path: &mut String, conflicts: &mut Vec<String>,
) -> Option<Value> {
    if target == source || source == base {
        return target.cloned();
    }
    if target == base {
        return source.cloned();
    }
    if let (Some(Value::Object(t)), Some(Value::Object(s))) = (target, source) {
        let empty = Map::new();
        let b = base.and_then(Value::as_object).unwrap_or(&empty);
        return Some(Value::Object(merge_objects(b, t, s, prefer, path, conflicts)));
    }
    conflicts.push(path.clone());
    match prefer {
        Prefer::Target => target.cloned(),
        Prefer::Source => source.cloned(),
    }
}

fn merge_objects(
    base: &Map<String, Value>, target: &Map<String, Value>, source: &Map<String, Value>,
    prefer: Prefer, path: &mut String, conflicts: &mut Vec<String>,
) -> Map<String, Value> {
    let mut out = Map::new();
    let keys = target.keys().chain(source.keys().filter(|k| !target.contains_key(*k)));
    let keys: Vec<&String> = keys
        .chain(base.keys().filter(|k| !target.contains_key(*k) && !source.contains_key(*k)))
        .collect();
    for key in keys {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        let merged =
            merge_at(base.get(key), target.get(key), source.get(key), prefer, path, conflicts);
        path.truncate(len);
        if let Some(value) = merged {
            out.insert(key.clone(), value);
        }
    }
    out
}

/// The dot-paths where `a` and `b` differ (objects compared key by key, anything else whole).
pub fn changed_paths(a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_at(Some(a), Some(b), &mut String::new(), &mut out);
    out
}

fn diff_at(a: Option<&Value>, b: Option<&Value>, path: &mut String, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    let (Some(Value::Object(a)), Some(Value::Object(b))) = (a, b) else {
        out.push(path.clone());
        return;
    };
    let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
    for key in keys {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        diff_at(a.get(key), b.get(key), path, out);
        path.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::testing::arb_json;

    #[test]
    fn one_sided_changes_are_taken_and_both_sided_ones_conflict() {
        let base = json!({"a": {"x": 1, "y": 1}, "b": [1], "c": "same"});
        let target = json!({"a": {"x": 2, "y": 1}, "b": [1], "c": "target"});
        let source = json!({"a": {"x": 1, "y": 3}, "b": [1, 2], "c": "source", "d": true});
        let merged = three_way(&base, &target, &source, Prefer::Target);
        assert_eq!(
            merged.value,
            json!({"a": {"x": 2, "y": 3}, "b": [1, 2], "c": "target", "d": true})
        );
        assert_eq!(merged.conflicts, ["c"]);
        let forced = three_way(&base, &target, &source, Prefer::Source);
        assert_eq!(forced.value["c"], "source");
    }

    #[test]
    fn a_deletion_on_one_side_is_kept() {
        let base = json!({"a": 1, "b": 2});
        let merged = three_way(&base, &json!({"a": 1}), &json!({"a": 5, "b": 2}), Prefer::Target);
        assert_eq!(merged.value, json!({"a": 5}));
        assert!(merged.conflicts.is_empty());
    }

    /// Changes `doc` at the keys `edits` names (a path of keys, then the new value).
    fn edited(doc: &Value, edits: &[(Vec<String>, Value)]) -> Value {
        let mut out = doc.clone();
        for (keys, value) in edits {
            let mut at = &mut out;
            for key in keys {
                if !at.is_object() {
                    *at = json!({});
                }
                at = at.as_object_mut().unwrap().entry(key.clone()).or_insert(Value::Null);
            }
            *at = value.clone();
        }
        out
    }

    fn arb_edits() -> impl Strategy<Value = Vec<(Vec<String>, Value)>> {
        prop::collection::vec((prop::collection::vec("[a-c]", 1..3), arb_json()), 0..4)
    }

    proptest! {
        #[test]
        fn merging_with_an_unchanged_side_or_itself_is_the_identity(base in arb_json(), edits in arb_edits()) {
            let changed = edited(&base, &edits);
            let onto_unchanged = three_way(&base, &base, &changed, Prefer::Target);
            prop_assert_eq!(&onto_unchanged.value, &changed);
            prop_assert!(onto_unchanged.conflicts.is_empty());
            let unchanged_in = three_way(&base, &changed, &base, Prefer::Target);
            prop_assert_eq!(&unchanged_in.value, &changed);
            let itself = three_way(&base, &changed, &changed, Prefer::Target);
            prop_assert_eq!(&itself.value, &changed);
            prop_assert!(itself.conflicts.is_empty());
        }

        #[test]
        fn non_overlapping_changes_commute(
            base in prop::collection::btree_map("[a-c]", arb_json(), 0..4),
            left in arb_json(), right in arb_json(),
        ) {
            let base = json!({"left": base.clone(), "right": base});
            let target = edited(&base, &[(vec!["left".into(), "x".into()], left)]);
            let source = edited(&base, &[(vec!["right".into(), "y".into()], right)]);
            let one = three_way(&base, &target, &source, Prefer::Target);
            let other = three_way(&base, &source, &target, Prefer::Target);
            prop_assert!(one.conflicts.is_empty());
            prop_assert_eq!(&one.value, &other.value);
        }

        #[test]
        fn every_conflict_is_reported_with_its_path(
            base in arb_json(), a in arb_json(), b in arb_json(), key in "[a-c]",
        ) {
            prop_assume!(a != b);
            let base = json!({"outer": {key.clone(): base}});
            let target = edited(&base, &[(vec!["outer".into(), key.clone()], a.clone())]);
            let source = edited(&base, &[(vec!["outer".into(), key.clone()], b.clone())]);
            let merged = three_way(&base, &target, &source, Prefer::Target);
            let changed_both = changed_paths(&base, &target).iter().any(|p| changed_paths(&base, &source).contains(p));
            if changed_both && !(a.is_object() && b.is_object()) {
                let path = format!("outer.{key}");
                prop_assert!(merged.conflicts.iter().any(|c| c == &path || c.starts_with(&format!("{path}."))), "{:?}", merged.conflicts);
            }
            for conflict in &merged.conflicts {
                let mut v = &merged.value;
                for part in conflict.split('.') { v = v.get(part).unwrap_or(&Value::Null); }
                let mut t = &target;
                for part in conflict.split('.') { t = t.get(part).unwrap_or(&Value::Null); }
                prop_assert_eq!(v, t);
            }
        }
    }
}
