//! The soft timeout (`turn.soft_timeout_config`): while the LLM has not started an answer, a
//! filler ("Hhmmmm...yeah.") is spoken every `timeout_seconds`, at most
//! `max_soft_timeouts_per_generation` times per answer, so the user knows they were heard.
//! With `use_llm_generated_message`, the agent's LLM writes each filler from the conversation
//! (the static one is spoken if it cannot).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use colloquy_engine::EngineDeps;
use serde_json::Value;

/// The instructions for a generated filler, unless `llm_generated_message_prompt_override`.
const FILLER_PROMPT: &str = "You are a voice agent who needs a moment before answering the user. \
Write one short, natural filler phrase (at most eight words) that fits the conversation below and \
tells the user you are on it. Answer with the phrase only.";

/// Fillers used after the configured ones when no additional messages are configured.
const BUILT_IN: &[&str] =
    &["One moment.", "Just a second.", "Still working on it.", "Almost there."];

/// A conversation's soft timeout settings.
#[derive(Debug, Clone)]
pub(super) struct SoftTimeout {
    every: Duration,
    message: String,
    additional: Vec<String>,
    max: usize,
    randomize: bool,
    /// `disable_until_first_user_message`.
    wait_for_user: bool,
    /// The instructions for generated fillers, with `use_llm_generated_message`.
    generate: Option<String>,
}

impl SoftTimeout {
    /// The settings of a conversation configuration; `None` when the soft timeout is off
    /// (`timeout_seconds` -1, the default).
    pub(super) fn of(config: &Value) -> Option<SoftTimeout> {
        let soft = config.pointer("/turn/soft_timeout_config")?;
        let secs = soft.get("timeout_seconds").and_then(Value::as_f64).filter(|s| *s > 0.0)?;
        let flag = |name: &str| soft.get(name).and_then(Value::as_bool) == Some(true);
        Some(SoftTimeout {
            every: Duration::from_secs_f64(secs),
            message: soft
                .get("message")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .unwrap_or("Hhmmmm...yeah.")
                .to_owned(),
            additional: soft
                .get("additional_soft_timeout_messages")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
            max: soft
                .get("max_soft_timeouts_per_generation")
                .and_then(Value::as_u64)
                .map_or(1, |m| m.clamp(1, 8) as usize),
            randomize: flag("randomize_fillers"),
            wait_for_user: flag("disable_until_first_user_message"),
            generate: flag("use_llm_generated_message").then(|| {
                soft.get("llm_generated_message_prompt_override")
                    .and_then(Value::as_str)
                    .unwrap_or(FILLER_PROMPT)
                    .to_owned()
            }),
        })
    }

    /// The fillers of one answer, their dynamic variables filled by `render`: the message,
    /// then the additional messages (the last one repeated), or built-in fillers when there
    /// are none; shuffled once with `randomize_fillers`. None before the user's first message
    /// with `disable_until_first_user_message`.
    pub(super) fn for_answer(
        &self, render: impl Fn(&str) -> String, user_spoke: bool,
    ) -> Option<Fillers> {
        if self.wait_for_user && !user_spoke {
            return None;
        }
        let mut configured: Vec<String> =
            std::iter::once(&self.message).chain(&self.additional).map(|m| render(m)).collect();
        if self.randomize {
            shuffle(&mut configured);
        }
        let mut queue: VecDeque<String> = configured.iter().take(self.max).cloned().collect();
        let mut built_in = BUILT_IN.iter().cycle();
        while queue.len() < self.max {
            let next = if self.additional.is_empty() {
                built_in.next().map(|m| (*m).to_owned())
            } else {
                configured.last().cloned()
            };
            queue.extend(next);
        }
        Some(Fillers { every: self.every, queue, generator: None })
    }

    /// Whether fillers are written by the agent's LLM; their instructions.
    pub(super) fn generated(&self) -> Option<&str> {
        self.generate.as_deref()
    }
}

/// Writes fillers with the agent's LLM.
pub(super) struct Generator {
    pub(super) deps: Arc<EngineDeps>,
    pub(super) model: String,
    /// The instructions, dynamic variables filled.
    pub(super) prompt: String,
    /// The conversation so far, as text.
    pub(super) conversation: String,
}

impl Generator {
    /// A filler for the conversation, or `None` if the LLM could not write one.
    pub(super) async fn write(&self) -> Option<String> {
        let asked =
            colloquy_engine::judge::ask(&self.deps, &self.model, &self.prompt, &self.conversation);
        match asked.await {
            Ok(text) => Some(text.trim().trim_matches('"').to_owned()).filter(|t| !t.is_empty()),
            Err(e) => {
                tracing::warn!(error = %e, "no filler could be generated; the static one is spoken");
                None
            }
        }
    }
}

/// Fisher–Yates with the system's randomness.
fn shuffle(items: &mut [String]) {
    for i in (1..items.len()).rev() {
        let r = u64::from_le_bytes(colloquy_core::random::bytes::<8>());
        items.swap(i, (r % (i as u64 + 1)) as usize);
    }
}

/// The fillers left for one answer.
pub(super) struct Fillers {
    pub(super) every: Duration,
    queue: VecDeque<String>,
    /// Writes each filler, the queued one standing in when it cannot.
    pub(super) generator: Option<Arc<Generator>>,
}

impl Fillers {
    /// The next filler to speak, if any is left.
    pub(super) fn next(&mut self) -> Option<String> {
        self.queue.pop_front()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fillers(soft: Value, user_spoke: bool) -> Option<Vec<String>> {
        let timeout = SoftTimeout::of(&json!({"turn": {"soft_timeout_config": soft}}))?;
        let mut fillers = timeout.for_answer(|t| t.replace("{{name}}", "Ada"), user_spoke)?;
        Some(std::iter::from_fn(|| fillers.next()).collect())
    }

    #[test]
    fn off_by_default_and_with_minus_one() {
        assert!(SoftTimeout::of(&json!({"turn": {}})).is_none());
        assert!(fillers(json!({"timeout_seconds": -1}), true).is_none());
    }

    #[test]
    fn the_message_then_the_additional_ones_then_the_last_again() {
        let all = fillers(
            json!({"timeout_seconds": 1, "message": "Hmm {{name}}.", "max_soft_timeouts_per_generation": 4,
                "additional_soft_timeout_messages": ["Still here.", "Nearly."]}),
            true,
        );
        assert_eq!(all.unwrap(), ["Hmm Ada.", "Still here.", "Nearly.", "Nearly."]);
        let built_in =
            fillers(json!({"timeout_seconds": 1, "max_soft_timeouts_per_generation": 3}), true);
        assert_eq!(built_in.unwrap(), ["Hhmmmm...yeah.", "One moment.", "Just a second."]);
        assert_eq!(fillers(json!({"timeout_seconds": 2}), true).unwrap(), ["Hhmmmm...yeah."]);
    }

    #[test]
    fn none_before_the_first_user_message_when_asked() {
        let soft = json!({"timeout_seconds": 1, "disable_until_first_user_message": true});
        assert!(fillers(soft.clone(), false).is_none());
        assert!(fillers(soft, true).is_some());
    }

    #[test]
    fn shuffled_fillers_are_the_same_fillers() {
        let soft = json!({"timeout_seconds": 1, "randomize_fillers": true, "message": "a",
            "additional_soft_timeout_messages": ["b", "c"], "max_soft_timeouts_per_generation": 3});
        let mut got = fillers(soft, true).unwrap();
        got.sort();
        assert_eq!(got, ["a", "b", "c"]);
    }
}
