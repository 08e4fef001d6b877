//! What an agent's configured behaviour costs a turn: a workflow agent (three nodes, its `llm`
//! edges offered as tools the zero-latency fake never calls) and an agent with every guardrail
//! on (focus, prompt injection, content, a custom rule, blocking), each against the plain
//! agent on the same node, in the same run.

use std::time::Duration;

use serde_json::{Value, json};

use crate::live;
use crate::load;
use crate::node::{self, Node};
use crate::report::{Goal, Row};
use crate::scenarios::Sizes;

/// Conversations taking turns at once in each measurement.
const CONVERSATIONS: usize = 20;
/// Turns per second offered across them.
const OFFERED: f64 = 200.0;

async fn agent(node: &Node, extra: Value) -> anyhow::Result<String> {
    let mut body = json!({"name": "bench behaviour", "conversation_config": {"conversation": {"text_only": true},
        "agent": {"first_message": "", "prompt": {"prompt": "Be brief.", "llm": "gpt-4o-mini"}}}});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let created = node.post(&reqwest::Client::new(), "/v1/convai/agents/create", &body).await?;
    Ok(created["agent_id"].as_str().unwrap_or_default().to_owned())
}

fn workflow() -> Value {
    json!({"workflow": {
        "nodes": {
            "start_node": {"type": "start", "edge_order": ["to_a"]},
            "a": {"type": "override_agent", "label": "A", "additional_prompt": "Help with orders.", "edge_order": ["to_b"]},
            "b": {"type": "override_agent", "label": "B", "additional_prompt": "Help with refunds."}
        },
        "edges": {
            "to_a": {"source": "start_node", "target": "a", "forward_condition": {"type": "unconditional"}},
            "to_b": {"source": "a", "target": "b", "forward_condition": {"type": "llm", "condition": "The user asks for a refund"},
                "backward_condition": {"type": "llm", "condition": "The user asks about an order"}}
        }
    }})
}

fn guardrails() -> Value {
    json!({"platform_settings": {"guardrails": {
        "focus": {"is_enabled": true},
        "prompt_injection": {"is_enabled": true},
        "content": {"execution_mode": "blocking", "config": {"profanity": {"is_enabled": true}, "violence": {"is_enabled": true}}},
        "custom": {"config": {"configs": [{"is_enabled": true, "name": "No prices", "prompt": "Never quote a price.", "execution_mode": "blocking"}]}}
    }}})
}

/// The p50 turn time of `agent_id`, in ms.
async fn p50(node: &Node, agent_id: &str, turns: usize) -> anyhow::Result<f64> {
    let (mut times, _) =
        live::conversations_at_once(node, agent_id, CONVERSATIONS, turns, Some(OFFERED)).await?;
    times.sort_unstable();
    Ok(load::quantile(&times, 0.5))
}

pub async fn behaviour(binary: &std::path::Path, sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let llm = node::fake_llm(Duration::ZERO).await?;
    let node = Node::start(
        binary,
        &[("OPENAI_BASE_URL", llm.clone()), ("OPENAI_API_KEY", "sk-bench".into())],
    )
    .await?;
    let agents = [
        agent(&node, json!({})).await?,
        agent(&node, workflow()).await?,
        agent(&node, guardrails()).await?,
    ];
    // Enough turns that a p50 holds still from run to run.
    let turns = sizes.turns_per_conversation * 4;
    // A first round warms the node; then the three alternate, best of three each.
    p50(&node, &agents[0], turns).await?;
    let mut best = [f64::INFINITY; 3];
    for _ in 0..3 {
        for (i, agent_id) in agents.iter().enumerate() {
            best[i] = best[i].min(p50(&node, agent_id, turns).await?);
        }
    }
    let (mut direct, _) = live::llm_direct(&llm, CONVERSATIONS, turns, Some(OFFERED)).await?;
    direct.sort_unstable();
    let judge = load::quantile(&direct, 0.5);
    // The goal: within 1.2× the plain turn plus the judge calls' own time. Every
    // guardrail on is one judge call (the user's words, the answer's content and its rules
    // in one request), timed as the fake LLM answers a direct client.
    let judged = 1.2 * best[0] + judge;
    Ok(vec![
        Row {
            scenario: format!(
                "turn p50, workflow agent (3 nodes, llm edges) against the plain agent ({CONVERSATIONS} conversations, {OFFERED:.0} turns/s offered)"
            ),
            unit: "ms".into(),
            ours: best[1],
            baseline: Some(best[0]),
            goal: Goal::RatioAtMost(1.2),
        },
        Row {
            scenario: format!(
                "turn p50, every guardrail on (blocking) against 1.2 × the plain agent's plus its judge call to the fake LLM (1.2 × {:.2} ms + {judge:.2} ms)",
                best[0]
            ),
            unit: "ms".into(),
            ours: best[2],
            baseline: Some(judged),
            goal: Goal::RatioAtMost(1.0),
        },
    ])
}
