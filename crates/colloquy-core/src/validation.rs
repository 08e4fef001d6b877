//! The shape of an input violation, as FastAPI reports it on the reference API:
//! `{"loc": ["body", "conversation_config", "agent"], "msg": "...", "type": "..."}`.
//! Every layer that rejects client input speaks in these, so the API maps them to one 422.

use serde::Serialize;

/// One step of a location path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum LocItem {
    /// Object key, or the part of the request (`body`, `query`, `path`, `header`).
    Key(String),
    /// Array index.
    Index(usize),
}

impl From<&str> for LocItem {
    fn from(s: &str) -> Self {
        LocItem::Key(s.to_owned())
    }
}

impl From<String> for LocItem {
    fn from(s: String) -> Self {
        LocItem::Key(s)
    }
}

impl From<usize> for LocItem {
    fn from(i: usize) -> Self {
        LocItem::Index(i)
    }
}

/// A location from its parts: `path(["body", "tools", 0])`.
pub fn path<I, L>(items: I) -> Vec<LocItem>
where
    I: IntoIterator<Item = L>,
    L: Into<LocItem>,
{
    items.into_iter().map(Into::into).collect()
}

/// One violation of the input contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Where in the request the problem is.
    pub loc: Vec<LocItem>,
    /// Human-readable explanation.
    pub msg: String,
    /// Machine-readable kind, using pydantic's names where one fits (`missing`, `int_parsing`,
    /// `less_than_equal`, ...).
    #[serde(rename = "type")]
    pub kind: String,
}

impl Violation {
    /// A violation at `loc` of kind `kind`.
    pub fn new<I, L>(loc: I, kind: &str, msg: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = L>,
        L: Into<LocItem>,
    {
        Violation { loc: path(loc), msg: msg.into(), kind: kind.to_owned() }
    }
}

/// The fields of a body already checked against its schema (so an object): the one
/// violation a non-object could still produce, in the reference's words.
pub fn body_fields(
    body: serde_json::Value,
) -> Result<serde_json::Map<String, serde_json::Value>, Vec<Violation>> {
    match body {
        serde_json::Value::Object(fields) => Ok(fields),
        _ => Err(vec![Violation::new(
            ["body"],
            "model_attributes_type",
            "Input should be an object",
        )]),
    }
}
