//! The agent configurations a node's conversations share.
//!
//! Parsed, the `agent` part of a configuration is some 9 KB, the largest thing an idle
//! conversation held (FINDINGS.md), and the conversations of one agent nearly always run the
//! same one: a version never changes and most clients override nothing. So a conversation's
//! configuration is replaced, once made, by an equal one another conversation already holds.
//! Equality, not the version id, decides, so an override or a workflow node's changes never
//! reach a conversation that did not ask for them; a different configuration just takes the
//! slot for the next conversations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use colloquy_core::ids::AgentId;
use serde_json::Value;

/// Slots kept before the empty ones (no conversation holds their configuration) are dropped.
const PRUNE_AT: usize = 1024;

/// An agent, and the workflow node whose configuration it is when it is one.
type Slot = (AgentId, Option<String>);

/// The configuration last made for each agent (and workflow node), while a conversation holds it.
#[derive(Default)]
pub struct SharedConfigs {
    held: Mutex<HashMap<Slot, Weak<Value>>>,
}

impl SharedConfigs {
    /// `config` of `agent` (in workflow node `node`), or an equal one already held.
    pub(crate) fn share(
        &self, agent: &AgentId, node: Option<&str>, config: Arc<Value>,
    ) -> Arc<Value> {
        let key = (agent.clone(), node.map(str::to_owned));
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(same) = held.get(&key).and_then(Weak::upgrade).filter(|h| **h == *config) {
            return same;
        }
        if held.len() >= PRUNE_AT {
            held.retain(|_, config| config.strong_count() > 0);
        }
        held.insert(key, Arc::downgrade(&config));
        config
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn equal_configurations_are_one_and_a_different_one_stays_its_own() {
        let shared = SharedConfigs::default();
        let agent = AgentId::from("agent_1");
        let first = shared.share(&agent, None, Arc::new(json!({"agent": {"first_message": "Hi"}})));
        let again = shared.share(&agent, None, Arc::new(json!({"agent": {"first_message": "Hi"}})));
        assert!(Arc::ptr_eq(&first, &again));
        let other = shared.share(&agent, None, Arc::new(json!({"agent": {"first_message": "Yo"}})));
        assert_eq!(other["agent"]["first_message"], "Yo");
        assert_eq!(first["agent"]["first_message"], "Hi");
        let node =
            shared.share(&agent, Some("n1"), Arc::new(json!({"agent": {"first_message": "Yo"}})));
        assert!(!Arc::ptr_eq(&other, &node), "a workflow node has a slot of its own");
        drop((first, again, other, node));
        let fresh = shared.share(&agent, None, Arc::new(json!({"agent": {}})));
        assert_eq!(Arc::strong_count(&fresh), 1, "nothing held once its conversations are gone");
    }
}
