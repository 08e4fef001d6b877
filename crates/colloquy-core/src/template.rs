//! Dynamic variables in agent text: `{{name}}` is replaced by the variable's value. Names are
//! trimmed (`{{ name }}` works); unknown names are left as written, so a missing variable is
//! visible rather than silently empty. Values that are not strings render as their JSON text.

use serde_json::{Map, Value};

/// `text` with every known `{{name}}` replaced.
pub fn render(text: &str, vars: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                match vars.get(name) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Null) | None => out.push_str(&rest[start..start + 2 + end + 2]),
                    Some(other) => out.push_str(&other.to_string()),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Names of the variables `text` refers to.
pub fn names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push(after[..end].trim().to_owned());
        rest = &after[end + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_known_and_keeps_unknown() {
        let vars = json!({"name": "Ada", "n": 3, "flag": true, "nothing": null});
        let vars = vars.as_object().unwrap();
        assert_eq!(render("Hi {{name}}, {{ n }} {{flag}}", vars), "Hi Ada, 3 true");
        assert_eq!(
            render("{{missing}} {{nothing}} {{name", vars),
            "{{missing}} {{nothing}} {{name"
        );
        assert_eq!(render("{{}}{{name}}}}", vars), "{{}}Ada}}");
        assert_eq!(names("a {{x}} b {{ y }} {{z"), vec!["x", "y"]);
    }

    proptest! {
        #[test]
        fn never_panics_and_is_identity_without_vars(text in "\\PC{0,200}") {
            let empty = Map::new();
            prop_assert_eq!(render(&text, &empty), text.clone());
            let _ = names(&text);
        }
    }
}
