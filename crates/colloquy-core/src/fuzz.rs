//! Property tests of the parsers and rules that take client input: any JSON a client may send
//! is either accepted or refused with violations, never a panic; PATCH merging behaves as
//! documented. `PROPTEST_CASES` raises the number of cases (`scripts/fuzz`).

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::testing::arb_json;
use crate::{agent_tests, agents, mcp_servers, mocks, tools};

proptest! {
    #[test]
    fn documents_are_accepted_or_refused_never_panic(body in arb_json()) {
        let _ = agents::prepare_create(body.clone());
        let _ = agents::apply_patch(json!({"conversation_config": {}}), body.clone());
        let _ = tools::prepare(body.clone());
        let _ = mcp_servers::prepare_create(body.clone());
        let _ = mcp_servers::prepare_create(json!({"config": body.clone()}));
        let _ = agent_tests::prepare(body.clone(), agent_tests::Write::Create);
        let _ = agent_tests::prepare(body.clone(), agent_tests::Write::Update);
        let _ = mocks::Mock::parse(&body, &[]);
    }

    #[test]
    fn mcp_updates_never_panic(patch in arb_json(), approval in arb_json(), override_body in arb_json()) {
        let doc = mcp_servers::prepare_create(json!({"config": {"name": "x", "url": "https://h"}})).unwrap();
        let _ = mcp_servers::apply_update(&doc.config, patch);
        let mut config = doc.config.clone();
        let _ = mcp_servers::add_tool_approval(&mut config, approval);
        let _ = mcp_servers::add_tool_config(&mut config, override_body.clone());
        let _ = mcp_servers::update_tool_config(&mut config, "t", override_body);
        let _ = mcp_servers::recheck(config);
    }

    #[test]
    fn merge_sets_scalars_and_merges_objects(target in arb_json(), patch in arb_json()) {
        let mut once = target.clone();
        agents::merge(&mut once, patch.clone());
        let mut twice = once.clone();
        agents::merge(&mut twice, patch.clone());
        prop_assert_eq!(&once, &twice, "merging the same patch again changes nothing");
        if let (Value::Object(merged), Value::Object(patch)) = (&once, &patch) {
            for (key, value) in patch {
                if !value.is_object() && !value.is_null() {
                    prop_assert_eq!(merged.get(key), Some(value));
                }
            }
        }
    }
}
