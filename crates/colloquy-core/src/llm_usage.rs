//! Expected LLM cost of an agent, from the price table in `data/llm_prices.json`.
//!
//! The estimate per agent message: the system prompt (about four characters a token), 150
//! tokens per tool definition, the knowledge base (with RAG, about five 500-token chunks
//! retrieved; without it, 500 tokens a page in the prompt), 500 tokens of running history, and
//! 100 tokens of output. A minute of conversation is taken as four agent messages.

use std::sync::LazyLock;

use serde::Deserialize;

/// The embedded price table.
const PRICES_JSON: &str = include_str!("../data/llm_prices.json");

#[derive(Debug, Deserialize)]
struct Table {
    models: Vec<Price>,
}

/// A model's list prices in USD per million tokens.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Price {
    /// Model name.
    pub llm: String,
    /// Input price.
    pub input: f64,
    /// Output price.
    pub output: f64,
}

static PRICES: LazyLock<Vec<Price>> = LazyLock::new(|| {
    // Embedded at compile time and checked by a test.
    serde_json::from_str::<Table>(PRICES_JSON).map(|t| t.models).unwrap_or_default()
});

/// What drives the estimate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// System prompt length in characters.
    pub prompt_length: u64,
    /// Knowledge-base pages.
    pub number_of_pages: u64,
    /// Whether the knowledge base is retrieved (RAG) rather than put in the prompt.
    pub rag_enabled: bool,
    /// Tools offered to the LLM.
    pub tools: u64,
}

/// Agent messages per minute of conversation.
const MESSAGES_PER_MINUTE: f64 = 4.0;

/// `(llm, price_per_minute, price_per_message)` for every priced model.
pub fn estimate(usage: Usage) -> Vec<(String, f64, f64)> {
    let knowledge = if usage.rag_enabled { 5 * 500 } else { usage.number_of_pages * 500 };
    let input = usage.prompt_length / 4 + usage.tools * 150 + knowledge + 500;
    let output = 100;
    PRICES
        .iter()
        .map(|p| {
            let per_message = (input as f64 * p.input + output as f64 * p.output) / 1_000_000.0;
            (p.llm.clone(), per_message * MESSAGES_PER_MINUTE, per_message)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses_and_costs_grow_with_input() {
        assert!(PRICES.len() >= 10);
        let small = estimate(Usage { prompt_length: 400, ..Default::default() });
        let big = estimate(Usage {
            prompt_length: 40_000,
            number_of_pages: 10,
            tools: 5,
            ..Default::default()
        });
        let (llm, per_minute, per_message) = &small[0];
        assert_eq!(llm, "gpt-4o-mini");
        assert!((per_minute - per_message * 4.0).abs() < 1e-12);
        assert!(big[0].2 > small[0].2);
    }
}
