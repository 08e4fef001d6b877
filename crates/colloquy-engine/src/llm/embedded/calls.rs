//! Tool calls in what a Qwen-family model writes: each one a JSON object
//! `{"name": ..., "arguments": {...}}` between `<tool_call>` and `</tool_call>`, text around
//! them, and (Qwen3) a `<think>` block first. What streams to the client is the text alone.

use crate::llm::ToolCall;

const CALL_OPEN: &str = "<tool_call>";
const CALL_CLOSE: &str = "</tool_call>";
const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";

/// A model's answer split into its text and its tool calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The text outside tool calls and thinking, trimmed.
    pub text: String,
    /// The calls in order. A call whose JSON is broken keeps its raw text as `arguments` (and
    /// the name when one can be read), so running it fails with a clear tool error.
    pub calls: Vec<ToolCall>,
}

/// Splits a complete answer.
pub fn parse(output: &str) -> Parsed {
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut rest = output;
    loop {
        let next = [CALL_OPEN, THINK_OPEN]
            .iter()
            .filter_map(|tag| rest.find(tag).map(|at| (at, *tag)))
            .min_by_key(|(at, _)| *at);
        let Some((at, tag)) = next else {
            text.push_str(rest);
            break;
        };
        text.push_str(&rest[..at]);
        let body = &rest[at + tag.len()..];
        let close = if tag == CALL_OPEN { CALL_CLOSE } else { THINK_CLOSE };
        // An unclosed call ends at the next call or at the end (the model stopped after it).
        let end = body.find(close).or_else(|| (tag == CALL_OPEN).then(|| body.find(CALL_OPEN))?);
        let (inner, after) = match end {
            Some(end) if body[end..].starts_with(close) => {
                (&body[..end], &body[end + close.len()..])
            }
            Some(end) => (&body[..end], &body[end..]),
            None => (body, ""),
        };
        if tag == CALL_OPEN {
            calls.push(call(inner.trim()));
        }
        rest = after;
    }
    Parsed { text: text.trim().to_owned(), calls }
}

/// One call's JSON.
fn call(body: &str) -> ToolCall {
    let id = colloquy_core::ids::new_id("call_");
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let name = parsed.as_ref().and_then(|v| v.get("name")?.as_str().map(str::to_owned));
    match (parsed.as_ref(), name) {
        (Some(value), Some(name)) => {
            let arguments = match value.get("arguments").or_else(|| value.get("parameters")) {
                // Some models write the arguments as a JSON string.
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(arguments) => arguments.to_string(),
                None => "{}".to_owned(),
            };
            ToolCall { id, name, arguments }
        }
        _ => ToolCall { id, name: name_in(body).unwrap_or_default(), arguments: body.to_owned() },
    }
}

/// The `"name": "..."` of a call whose JSON is broken.
fn name_in(body: &str) -> Option<String> {
    let after = &body[body.find("\"name\"")? + 6..];
    let after = after.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let name = &after[..after.find('"')?];
    (!name.is_empty()).then(|| name.to_owned())
}

/// Passes on the text of an answer as it streams, holding back tool calls and thinking (and
/// any tail that may be the start of either tag).
#[derive(Debug, Default)]
pub struct TextFilter {
    pending: String,
    /// The tag whose block is being skipped, if any.
    inside: Option<&'static str>,
}

impl TextFilter {
    /// Takes the next piece of the answer; returns the text that can be shown now.
    pub fn push(&mut self, piece: &str) -> String {
        self.pending.push_str(piece);
        let mut shown = String::new();
        loop {
            if let Some(close) = self.inside {
                match self.pending.find(close) {
                    Some(at) => {
                        self.pending.drain(..at + close.len());
                        self.inside = None;
                    }
                    None => {
                        let keep = partial_suffix(&self.pending, close);
                        self.pending.drain(..self.pending.len() - keep);
                        return shown;
                    }
                }
            }
            let next = [(CALL_OPEN, CALL_CLOSE), (THINK_OPEN, THINK_CLOSE)]
                .iter()
                .filter_map(|(open, close)| self.pending.find(open).map(|at| (at, *open, *close)))
                .min_by_key(|(at, ..)| *at);
            match next {
                Some((at, open, close)) => {
                    shown.push_str(&self.pending[..at]);
                    self.pending.drain(..at + open.len());
                    self.inside = Some(close);
                }
                None => {
                    let keep = partial_suffix(&self.pending, CALL_OPEN)
                        .max(partial_suffix(&self.pending, THINK_OPEN));
                    let cut = self.pending.len() - keep;
                    shown.push_str(&self.pending[..cut]);
                    self.pending.drain(..cut);
                    return shown;
                }
            }
        }
    }
}

/// Length of the longest end of `text` that begins `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| text.is_char_boundary(text.len() - n) && text.ends_with(&tag[..n]))
        .unwrap_or(0)
}

/// Where a JSON object that starts at the beginning of `text` ends (the index just past its
/// closing brace), if it has ended: generation of a forced call stops there.
pub fn object_end(text: &str) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' | '[' if !in_string => depth += 1,
            '}' | ']' if !in_string => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(output: &str) -> Vec<(String, String)> {
        parse(output).calls.into_iter().map(|c| (c.name, c.arguments)).collect()
    }

    #[test]
    fn real_outputs_split_into_text_and_calls() {
        let one = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
        assert_eq!(calls(one), [("get_weather".into(), r#"{"city":"Paris"}"#.into())]);
        assert_eq!(parse(one).text, "");

        let two = "Let me check both.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {\"n\": 2}}\n</tool_call>";
        assert_eq!(calls(two), [("a".into(), "{}".into()), ("b".into(), r#"{"n":2}"#.into())]);
        assert_eq!(parse(two).text, "Let me check both.");

        // Stopped at the end of the call without its closing tag; arguments as a string.
        let unclosed = "<tool_call>\n{\"name\": \"lookup\", \"arguments\": \"{\\\"id\\\": 7}\"}";
        assert_eq!(calls(unclosed), [("lookup".into(), r#"{"id": 7}"#.into())]);

        let thinking = "<think>\nThe user wants the time.\n</think>\n\nIt is noon.";
        assert_eq!(parse(thinking), Parsed { text: "It is noon.".into(), calls: vec![] });

        assert_eq!(parse("Just text, no <b>calls</b>.").text, "Just text, no <b>calls</b>.");
    }

    #[test]
    fn broken_calls_keep_their_text_for_a_clear_error() {
        let broken =
            "<tool_call>\n{\"name\": \"book\", \"arguments\": {\"date\": \n</tool_call> Done.";
        let parsed = parse(broken);
        assert_eq!(parsed.text, "Done.");
        assert_eq!(parsed.calls[0].name, "book");
        assert!(serde_json::from_str::<serde_json::Value>(&parsed.calls[0].arguments).is_err());

        let nameless = "<tool_call>not json at all</tool_call>";
        assert_eq!(calls(nameless), [(String::new(), "not json at all".into())]);
        assert_ne!(parse(two_ids()).calls[0].id, parse(two_ids()).calls[1].id);
    }

    fn two_ids() -> &'static str {
        "<tool_call>{\"name\":\"a\"}</tool_call><tool_call>{\"name\":\"a\"}</tool_call>"
    }

    #[test]
    fn the_stream_shows_text_only() {
        let mut filter = TextFilter::default();
        let pieces = [
            "Hel",
            "lo <",
            "tool_",
            "call>\n{\"name\"",
            ": \"x\"}</tool",
            "_call> bye",
            " <th",
            "ink>hm</think>!",
        ];
        let shown: String = pieces.iter().map(|p| filter.push(p)).collect();
        assert_eq!(shown, "Hello  bye !");
        assert_eq!(filter.push("a < b"), "a < b");
    }

    #[test]
    fn objects_end_at_their_closing_brace() {
        assert_eq!(object_end(r#"{"a": {"b": "}"}} tail"#), Some(17));
        assert_eq!(object_end(r#"{"a": "\"}"#), None);
        assert_eq!(object_end("{\"a\": [1, 2"), None);
    }
}
