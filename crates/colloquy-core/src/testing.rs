//! Property-test strategies shared by the crates' fuzz tests (feature `proptest`).

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Any JSON value: scalars, strings with any characters, nested arrays and objects whose keys
/// lean towards the names the documents use, so the generated inputs reach deep code.
pub fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("type".to_owned()),
        Just("name".to_owned()),
        Just("url".to_owned()),
        Just("agent".to_owned()),
        Just("prompt".to_owned()),
        Just("conversation".to_owned()),
        Just("config".to_owned()),
        Just("secret_id".to_owned()),
        Just("properties".to_owned()),
        "\\PC{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}
