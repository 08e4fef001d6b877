//! Tool response mocks: which mock answers a tool call.
//!
//! A mock has parameter conditions and a result. Mocks are tried top to bottom and the first
//! whose conditions all hold answers the call; a mock without conditions always holds (a
//! default). A condition looks up `path` in the call's arguments (`user.id`, `items[0].sku`, an
//! optional leading `$.`) and evaluates it: `exact` compares with the expected text (a
//! non-string value by its JSON text), `regex` searches the value's text, `llm` asks a judge
//! (a callback, so this stays free of I/O), `anything` only needs the parameter present.

use std::future::Future;

use regex::Regex;
use serde_json::Value;

use crate::validation::{LocItem, Violation};

/// How a parameter is evaluated.
#[derive(Debug, Clone)]
pub enum Eval {
    /// Equal to this text.
    Exact(String),
    /// Matches this pattern somewhere.
    Regex(Regex),
    /// An LLM judges the value against this description.
    Llm(String),
    /// Present with any value.
    Anything,
}

/// One parameter condition.
#[derive(Debug, Clone)]
pub struct Condition {
    /// Where the parameter is in the arguments.
    pub path: String,
    /// How it is evaluated.
    pub eval: Eval,
}

/// One response mock.
#[derive(Debug, Clone)]
pub struct Mock {
    /// All must hold; none means always.
    pub conditions: Vec<Condition>,
    /// What the LLM sees.
    pub result: String,
    /// Whether the result is surfaced as a tool error.
    pub is_error: bool,
}

impl Mock {
    /// Parses a `ToolResponseMockConfig` (already checked against its schema); a regex that
    /// does not compile is a violation at `loc` + `parameter_conditions.<j>.eval.pattern`.
    pub fn parse(value: &Value, loc: &[LocItem]) -> Result<Mock, Violation> {
        let conditions = value
            .get("parameter_conditions")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .map(|(j, cond)| {
                        let path =
                            cond.get("path").and_then(Value::as_str).unwrap_or_default().to_owned();
                        let eval = &cond["eval"];
                        let text = |k: &str| {
                            eval.get(k).and_then(Value::as_str).unwrap_or_default().to_owned()
                        };
                        let eval = match eval.get("type").and_then(Value::as_str) {
                            Some("exact") => Eval::Exact(text("expected_value")),
                            Some("regex") => {
                                Eval::Regex(Regex::new(&text("pattern")).map_err(|e| {
                                    let mut at = loc.to_vec();
                                    at.extend([
                                        "parameter_conditions".into(),
                                        LocItem::Index(j),
                                        "eval".into(),
                                        "pattern".into(),
                                    ]);
                                    Violation::new(
                                        at,
                                        "value_error",
                                        format!("Invalid regular expression: {e}"),
                                    )
                                })?)
                            }
                            Some("llm") => Eval::Llm(text("description")),
                            _ => Eval::Anything,
                        };
                        Ok(Condition { path, eval })
                    })
                    .collect::<Result<Vec<_>, Violation>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Mock {
            conditions,
            result: value.get("mock_result").and_then(Value::as_str).unwrap_or_default().to_owned(),
            is_error: value.get("is_error").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

/// The mocks that apply to a call of a tool, in the order they are tried: mocks given for this
/// run (a test's or conversation's `tool_mock_overrides`), looked up by the tool's id and then
/// by its name, ahead of the tool's own `response_mocks`.
pub fn applicable<'a>(
    tool_id: &str, tool_name: &str, overrides: Option<&'a serde_json::Map<String, Value>>,
    own: &'a [Value],
) -> Vec<&'a Value> {
    let mut out = Vec::new();
    if let Some(overrides) = overrides {
        for key in [tool_id, tool_name] {
            if let Some(list) = overrides.get(key).and_then(Value::as_array) {
                out.extend(list.iter());
                break;
            }
        }
    }
    out.extend(own.iter());
    out
}

/// The value at `path` in `args`: dot-separated keys, `[n]` indexes, optional leading `$.`.
pub fn lookup<'a>(args: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.strip_prefix("$.").or_else(|| path.strip_prefix('$')).unwrap_or(path);
    let mut current = args;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (key, mut rest) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']')?;
            current = current.get(inner[..end].parse::<usize>().ok()?)?;
            rest = &inner[end + 1..];
        }
    }
    Some(current)
}

/// The first segment of a path: the name of the top-level parameter it reads.
pub fn root_parameter(path: &str) -> &str {
    let path = path.strip_prefix("$.").or_else(|| path.strip_prefix('$')).unwrap_or(path);
    let first = path.split('.').next().unwrap_or_default();
    first.split('[').next().unwrap_or_default()
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether one condition holds for `args`; `llm` judges `Llm` conditions.
pub async fn holds<F, Fut>(condition: &Condition, args: &Value, llm: &mut F) -> bool
where
    F: FnMut(String, Value) -> Fut,
    Fut: Future<Output = bool>,
{
    let Some(value) = lookup(args, &condition.path) else {
        return false;
    };
    match &condition.eval {
        Eval::Exact(expected) => as_text(value) == *expected,
        Eval::Regex(re) => re.is_match(&as_text(value)),
        Eval::Llm(description) => llm(description.clone(), value.clone()).await,
        Eval::Anything => true,
    }
}

/// The mock that answers a call with `args`: the first whose conditions all hold.
pub async fn select<'m, F, Fut>(mocks: &'m [Mock], args: &Value, mut llm: F) -> Option<&'m Mock>
where
    F: FnMut(String, Value) -> Fut,
    Fut: Future<Output = bool>,
{
    'mocks: for mock in mocks {
        for condition in &mock.conditions {
            if !holds(condition, args, &mut llm).await {
                continue 'mocks;
            }
        }
        return Some(mock);
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mock(conditions: Value, result: &str) -> Mock {
        Mock::parse(&json!({"parameter_conditions": conditions, "mock_result": result}), &[])
            .unwrap()
    }

    fn run<T>(f: impl Future<Output = T>) -> T {
        // The futures here never wait on I/O, so polling them to completion needs no runtime.
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn lookup_paths() {
        let args = json!({"user": {"id": 7, "tags": ["a", {"x": true}]}, "q": "hi"});
        let cases = [
            ("q", Some(json!("hi"))),
            ("$.q", Some(json!("hi"))),
            ("user.id", Some(json!(7))),
            ("user.tags[0]", Some(json!("a"))),
            ("user.tags[1].x", Some(json!(true))),
            ("user.tags[2]", None),
            ("missing", None),
            ("user.id.deeper", None),
        ];
        for (path, want) in cases {
            assert_eq!(lookup(&args, path).cloned(), want, "{path}");
        }
        assert_eq!(root_parameter("$.user.tags[0]"), "user");
        assert_eq!(root_parameter("items[2].sku"), "items");
    }

    #[test]
    fn first_matching_mock_wins_table() {
        let mocks = vec![
            mock(
                json!([{"path": "city", "eval": {"type": "exact", "expected_value": "Paris"}}]),
                "paris",
            ),
            mock(
                json!([{"path": "city", "eval": {"type": "regex", "pattern": "^Lon"}}, {"path": "units", "eval": {"type": "anything"}}]),
                "london-with-units",
            ),
            mock(
                json!([{"path": "zip", "eval": {"type": "exact", "expected_value": "75001"}}]),
                "zip-as-number",
            ),
            mock(
                json!([{"path": "city", "eval": {"type": "llm", "description": "a city in Germany"}}]),
                "german",
            ),
            mock(json!([]), "default"),
        ];
        let cases = [
            (json!({"city": "Paris"}), Some("paris")),
            (json!({"city": "London", "units": "metric"}), Some("london-with-units")),
            (json!({"city": "London"}), Some("default")),
            (json!({"zip": 75001}), Some("zip-as-number")),
            (json!({"city": "Berlin"}), Some("german")),
            (json!({}), Some("default")),
        ];
        for (args, want) in cases {
            let judge = |description: String, value: Value| async move {
                description.contains("Germany") && value == json!("Berlin")
            };
            let got = run(select(&mocks, &args, judge)).map(|m| m.result.as_str());
            assert_eq!(got, want, "{args}");
        }
        let no_default = &mocks[..2];
        assert!(
            run(select(no_default, &json!({"city": "Rome"}), |_, _| async { false })).is_none()
        );
    }

    #[test]
    fn overrides_by_id_or_name_come_first() {
        let own = vec![json!({"mock_result": "own"})];
        let by_id =
            json!({"tool_1": [{"mock_result": "by id"}], "weather": [{"mock_result": "by name"}]});
        let by_name = json!({"weather": [{"mock_result": "by name"}]});
        let results = |o: Option<&Value>| -> Vec<String> {
            applicable("tool_1", "weather", o.and_then(Value::as_object), &own)
                .iter()
                .map(|m| m["mock_result"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(results(Some(&by_id)), vec!["by id", "own"]);
        assert_eq!(results(Some(&by_name)), vec!["by name", "own"]);
        assert_eq!(results(None), vec!["own"]);
    }

    #[test]
    fn bad_regex_is_located() {
        let err = Mock::parse(
            &json!({"mock_result": "x", "parameter_conditions": [{"path": "a", "eval": {"type": "regex", "pattern": "("}}]}),
            &["body".into(), "response_mocks".into(), LocItem::Index(0)],
        )
        .unwrap_err();
        assert_eq!(err.loc.last(), Some(&LocItem::from("pattern")));
        assert_eq!(err.loc[3], LocItem::from("parameter_conditions"));
    }
}
