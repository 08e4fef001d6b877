//! What becomes of the user's speech, by the reference's turn settings. Speech over an agent
//! that may be interrupted stops it at once, unless the agent has
//! `turn.interruption_ignore_terms`: then a short utterance is recognized first and interrupts
//! only when it is not one of those terms ("gotcha", "okay"); speech that goes on longer than a
//! backchannel interrupts without waiting for its words. Speech over an agent that cannot be
//! interrupted (an uninterruptible first message or tool) is dropped, or kept for the next turn
//! with `turn.transcribe_on_disabled_interruptions`. Utterances are recognized by the
//! [`Recognizer`], which sends `tentative_user_transcript` as a streaming provider's text grows.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use colloquy_core::protocol::{ServerEvent, UserTranscription};
use colloquy_engine::EngineDeps;
use colloquy_engine::voice::AgentVoice;
use serde_json::Value;
use tokio::sync::mpsc;

use super::outbox::Outbox;

/// Speech over the agent longer than this is not a backchannel: it interrupts at once.
const BACKCHANNEL_MS: u64 = 1500;

/// The curated terms `merge_with_default_ignore_terms` adds, by language.
const DEFAULT_IGNORE_TERMS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "okay",
            "ok",
            "yeah",
            "yes",
            "yep",
            "uh huh",
            "mhm",
            "mm hmm",
            "right",
            "sure",
            "gotcha",
            "got it",
            "i see",
            "understood",
            "alright",
            "all right",
            "cool",
            "great",
        ],
    ),
    ("es", &["vale", "sí", "si", "claro", "ajá", "entiendo", "de acuerdo", "ok"]),
    ("fr", &["d'accord", "oui", "ouais", "ok", "je vois", "entendu", "bien sûr"]),
    ("de", &["ja", "genau", "okay", "ok", "verstehe", "alles klar", "stimmt"]),
    ("it", &["sì", "si", "certo", "ok", "capito", "va bene"]),
    ("pt", &["sim", "certo", "entendi", "tá", "ok", "beleza"]),
    ("nl", &["ja", "oké", "ok", "precies", "klopt", "begrijp het"]),
];

/// Words that do not interrupt the agent (`turn.interruption_ignore_terms`, with the curated
/// defaults of `turn.interruption_ignore_term_languages` when
/// `turn.merge_with_default_ignore_terms` is on), matched whole and case-insensitively.
#[derive(Debug, Default)]
pub(super) struct IgnoreTerms(HashSet<String>);

impl IgnoreTerms {
    /// The terms of a conversation configuration.
    pub(super) fn of(config: &Value) -> IgnoreTerms {
        let strings = |pointer: &str| -> Vec<String> {
            config
                .pointer(pointer)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let mut terms: HashSet<String> = strings("/turn/interruption_ignore_terms")
            .iter()
            .map(|t| normalize(t))
            .filter(|t| !t.is_empty())
            .collect();
        if config.pointer("/turn/merge_with_default_ignore_terms").and_then(Value::as_bool)
            == Some(true)
        {
            for language in strings("/turn/interruption_ignore_term_languages") {
                let base = language.split(['-', '_']).next().unwrap_or_default().to_lowercase();
                let defaults = DEFAULT_IGNORE_TERMS.iter().find(|(code, _)| *code == base);
                terms
                    .extend(defaults.into_iter().flat_map(|(_, t)| t.iter().map(|t| normalize(t))));
            }
        }
        IgnoreTerms(terms)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `transcript` is one of the terms and nothing else.
    pub(super) fn matches(&self, transcript: &str) -> bool {
        self.0.contains(&normalize(transcript))
    }
}

/// Lower case, punctuation and hyphens as spaces (apostrophes kept), single spaces.
fn normalize(text: &str) -> String {
    let cleaned: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '\'' { c } else { ' ' })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `transcript` ends mid-spelling: its last words are single letters or digits, or a
/// number ("my code is 4 7", "it's A B", "call 555"), so more is likely to follow.
pub(super) fn spells(transcript: &str) -> bool {
    let words: Vec<&str> = transcript
        .split(|c: char| c.is_whitespace() || c == '-' || c == ',')
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .collect();
    let single = |w: &&str| w.chars().count() == 1;
    let digits = |w: &&str| w.chars().all(|c| c.is_ascii_digit());
    let trailing = words.iter().rev().take_while(|w| single(w) || digits(w)).count();
    trailing >= 2 || words.last().is_some_and(|w| digits(w) && w.len() >= 2)
}

/// Whether the agent is speaking, and whether it may be interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Playing {
    No,
    Uninterruptible,
    Interruptible,
}

/// An utterance recognized.
#[derive(Debug)]
pub(super) struct Recognized {
    pub(super) text: String,
    /// The recognition's `conversation_turn_metrics`.
    pub(super) metrics: Value,
    /// The event id of its tentative and final transcripts.
    pub(super) event_id: u64,
}

/// Recognizes the user's utterances with the agent's speech recognition provider.
#[derive(Clone)]
pub(super) struct Recognizer {
    pub(super) deps: Arc<EngineDeps>,
    pub(super) voice: AgentVoice,
    /// The input's sample rate.
    pub(super) rate: u32,
}

impl Recognizer {
    /// The text of an utterance, with `tentative_user_transcript`s sent while a streaming
    /// provider recognizes it; `None` when it holds no words, or when recognition failed
    /// (the client is told, with `asr_transcription_error`).
    pub(super) async fn recognize(&self, samples: &[i16], outbox: &Outbox) -> Option<Recognized> {
        let started = Instant::now();
        let event_id = outbox.event_id();
        let (partials, mut partial_rx) = mpsc::unbounded_channel();
        let transcription =
            self.deps.voice.transcribe(&self.voice, samples, self.rate, Some(&partials));
        tokio::pin!(transcription);
        let result = loop {
            tokio::select! {
                result = &mut transcription => break result,
                Some(text) = partial_rx.recv() => tentative(outbox, text, event_id).await,
            }
        };
        while let Ok(text) = partial_rx.try_recv() {
            tentative(outbox, text, event_id).await;
        }
        match result {
            Ok(text) if text.is_empty() => None,
            Ok(text) => {
                let metrics = serde_json::json!({"metrics": {
                    "convai_asr_trailing_service_latency": {"elapsed_time": started.elapsed().as_secs_f64()},
                }});
                Some(Recognized { text, metrics, event_id })
            }
            Err(e) => {
                outbox.error(1002, "asr_transcription_error", &e.to_string()).await;
                None
            }
        }
    }
}

/// Sends what the user is heard to say so far.
pub(super) async fn tentative(outbox: &Outbox, user_transcript: String, event_id: u64) {
    let event = UserTranscription { user_transcript, event_id };
    outbox
        .send(ServerEvent::TentativeUserTranscript { tentative_user_transcription_event: event })
        .await;
}

/// What the utterance under way becomes, decided when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Utterance {
    /// A turn of the user (recognized by the engine task, in order with other input).
    #[default]
    Turn,
    /// Spoken over an agent that could not be interrupted: not heard.
    Dropped,
    /// Spoken over an agent with ignore terms, for `heard_ms` so far: its words decide.
    Deciding { heard_ms: u64 },
}

/// The user's speech, as the turn settings make of it.
pub(super) struct Hearing {
    terms: Arc<IgnoreTerms>,
    transcribe_held: bool,
    utterance: Utterance,
    recognizer: Recognizer,
    /// Utterances spoken over the agent that are not ignore terms, once recognized.
    interrupting: mpsc::UnboundedSender<Recognized>,
}

impl Hearing {
    pub(super) fn new(
        terms: Arc<IgnoreTerms>, transcribe_held: bool, recognizer: Recognizer,
        interrupting: mpsc::UnboundedSender<Recognized>,
    ) -> Hearing {
        Hearing { terms, transcribe_held, utterance: Utterance::Turn, recognizer, interrupting }
    }

    /// The user started speaking while the agent is `playing`: whether that interrupts it now.
    pub(super) fn started(&mut self, playing: Playing) -> bool {
        let (utterance, interrupts) = match playing {
            Playing::No => (Utterance::Turn, false),
            Playing::Uninterruptible if self.transcribe_held => (Utterance::Turn, false),
            Playing::Uninterruptible => (Utterance::Dropped, false),
            Playing::Interruptible if self.terms.is_empty() => (Utterance::Turn, true),
            Playing::Interruptible => (Utterance::Deciding { heard_ms: 0 }, false),
        };
        self.utterance = utterance;
        interrupts
    }

    /// `ms` more of the user's audio: whether the utterance being decided has grown too long
    /// to be a backchannel, and interrupts now.
    pub(super) fn more(&mut self, ms: u64) -> bool {
        let Utterance::Deciding { heard_ms } = &mut self.utterance else { return false };
        *heard_ms += ms;
        if *heard_ms < BACKCHANNEL_MS {
            return false;
        }
        self.utterance = Utterance::Turn;
        true
    }

    /// The utterance ended: it is returned when it is a turn for the engine task. One being
    /// decided is recognized here, and reported on the interrupting channel unless it is an
    /// ignore term.
    pub(super) fn ended(&mut self, samples: Vec<i16>, outbox: &Outbox) -> Option<Vec<i16>> {
        match std::mem::take(&mut self.utterance) {
            Utterance::Turn => Some(samples),
            Utterance::Dropped => {
                tracing::debug!("speech over an uninterruptible agent dropped");
                None
            }
            Utterance::Deciding { .. } => {
                let (recognizer, terms, outbox) =
                    (self.recognizer.clone(), self.terms.clone(), outbox.clone());
                let interrupting = self.interrupting.clone();
                tokio::spawn(async move {
                    let Some(heard) = recognizer.recognize(&samples, &outbox).await else { return };
                    if terms.matches(&heard.text) {
                        tracing::debug!(text = %heard.text, "an ignore term did not interrupt");
                    } else {
                        let _ = interrupting.send(heard);
                    }
                });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_match_whole_and_case_insensitively() {
        let config =
            serde_json::json!({"turn": {"interruption_ignore_terms": ["Gotcha", "uh-huh"]}});
        let terms = IgnoreTerms::of(&config);
        assert!(terms.matches("gotcha") && terms.matches("Gotcha.") && terms.matches("Uh huh!"));
        assert!(!terms.matches("gotcha, but wait") && !terms.matches("okay"));
        assert!(IgnoreTerms::of(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn spelling_is_single_letters_digits_or_a_number_at_the_end() {
        for spelled in ["my code is 4 7", "It's A, B", "call 555", "K-2-9", "the number is 12."] {
            assert!(spells(spelled), "{spelled}");
        }
        for said in ["hello there", "I am 5 years old today", "a cat", "check my order status", "I"]
        {
            assert!(!spells(said), "{said}");
        }
    }

    #[test]
    fn default_terms_come_only_with_their_flag() {
        let mut config = serde_json::json!({"turn": {
            "interruption_ignore_terms": ["roger"],
            "interruption_ignore_term_languages": ["en-US", "fr"],
        }});
        assert!(!IgnoreTerms::of(&config).matches("got it"));
        config["turn"]["merge_with_default_ignore_terms"] = true.into();
        let terms = IgnoreTerms::of(&config);
        assert!(terms.matches("Got it.") && terms.matches("d'accord") && terms.matches("roger"));
        assert!(!terms.matches("genau"));
    }
}
