//! Voice in a live conversation: the user's audio heard ([`Listener`]: decoded, checked, split
//! into utterances by the voice activity detector) and the agent's answers spoken
//! ([`Speaker`]: cut into sentences as the LLM streams, each synthesized, resampled and sent
//! as `audio` events while the next is made).
//!
//! The speaker keeps an estimate of what the client has played: audio is sent faster than
//! real time and the client plays it in order from the first event on, so at any instant the
//! text whose audio lies before "now − first audio" has been heard. When the user starts
//! speaking over the agent, [`Speaker::interrupt`] stops the turn's synthesis at once and
//! returns that heard part, which becomes the corrected answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use colloquy_core::protocol::{AudioEvent, ServerEvent};
use colloquy_engine::voice::format::{AudioFormat, resample};
use colloquy_engine::voice::recording::Recording;
use colloquy_engine::voice::sentences::{Sentences, even_alignment};
use colloquy_engine::voice::vad::{Vad, VadEvent, VadOutput};
use colloquy_engine::voice::{AgentVoice, SpeechError};
use colloquy_engine::{AgentSnapshot, EngineDeps};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::fillers::SoftTimeout;
use super::hearing::{IgnoreTerms, Playing};
use super::outbox::Outbox;

/// Longest `audio` event the agent sends.
const AUDIO_EVENT_MS: u64 = 1000;
/// Longest `user_audio_chunk`, in seconds of audio.
const MAX_CHUNK_SECS: usize = 2;

/// What the conversation's configuration says about its voice, read before it starts.
pub(super) struct VoiceSetup {
    pub(super) voice: AgentVoice,
    pub(super) input: AudioFormat,
    pub(super) output: AudioFormat,
    /// Silence that ends a user turn (from `turn.turn_eagerness`).
    pub(super) end_silence_ms: u32,
    /// `agent.disable_first_message_interruptions`.
    pub(super) first_message_uninterruptible: bool,
    /// Tools during which the user cannot interrupt (`disable_interruptions`).
    pub(super) uninterruptible_tools: Vec<String>,
    /// The recording, unless `platform_settings.privacy.record_voice` is off.
    pub(super) recording: Option<SharedRecording>,
    /// Words that do not interrupt the agent.
    pub(super) ignore_terms: Arc<IgnoreTerms>,
    /// `turn.transcribe_on_disabled_interruptions`.
    pub(super) transcribe_held: bool,
    /// `turn.soft_timeout_config`, when on.
    pub(super) soft_timeout: Option<SoftTimeout>,
    /// `turn.spelling_patience` is not "off".
    pub(super) spelling_patience: bool,
    /// With `turn.retranscribe_on_turn_timeout`, the audio of this long a silence is kept, to
    /// be recognized when the turn timeout passes with no speech detected in it.
    pub(super) keep_silence: Option<Duration>,
}

/// The audio format a conversation configuration names at `pointer`: the one announced in the
/// metadata and the one used, so the two cannot differ (`pcm_16000` when absent or unknown).
pub(super) fn audio_format(config: &Value, pointer: &str) -> AudioFormat {
    config
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(AudioFormat::parse)
        .unwrap_or(AudioFormat::Pcm(16_000))
}

/// A recording both the listener and the speaker add to; taken out when the conversation ends.
pub(super) type SharedRecording = Arc<Mutex<Option<Recording>>>;

/// Adds to a shared recording, if it is still there.
fn record(recording: Option<&SharedRecording>, add: impl FnOnce(&mut Recording)) {
    if let Some(shared) = recording
        && let Some(r) = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_mut()
    {
        add(r);
    }
}

impl VoiceSetup {
    /// The setup of `agent` (its configuration with the overrides applied), or `None` for a
    /// text-only conversation.
    pub(super) fn of(
        deps: &EngineDeps, agent: &AgentSnapshot, text_only: bool,
    ) -> Option<VoiceSetup> {
        let config = &agent.conversation_config;
        let configured_text_only =
            config.pointer("/conversation/text_only").and_then(Value::as_bool) == Some(true);
        if text_only || configured_text_only {
            return None;
        }

        let end_silence_ms = match config.pointer("/turn/turn_eagerness").and_then(Value::as_str) {
            Some("eager") => 400,
            Some("patient") => 1200,
            _ => 700,
        };
        let (input, output) = (
            audio_format(config, "/asr/user_input_audio_format"),
            audio_format(config, "/tts/agent_output_audio_format"),
        );
        let recording = (agent.platform_settings.pointer("/privacy/record_voice")
            != Some(&Value::Bool(false)))
        .then(|| {
            let max_secs = config
                .pointer("/conversation/max_duration_seconds")
                .and_then(Value::as_u64)
                .filter(|s| *s > 0)
                .unwrap_or(600);
            Arc::new(Mutex::new(Some(Recording::new(input.rate(), output.rate(), max_secs))))
        });
        Some(VoiceSetup {
            voice: deps.voice.for_agent(config),
            input,
            output,
            recording,
            end_silence_ms,
            first_message_uninterruptible: config
                .pointer("/agent/disable_first_message_interruptions")
                .and_then(Value::as_bool)
                == Some(true),
            uninterruptible_tools: agent
                .tools
                .iter()
                .filter(|t| {
                    t.config.get("disable_interruptions").and_then(Value::as_bool) == Some(true)
                })
                .map(|t| t.name.clone())
                .collect(),
            ignore_terms: Arc::new(IgnoreTerms::of(config)),
            transcribe_held: config
                .pointer("/turn/transcribe_on_disabled_interruptions")
                .and_then(Value::as_bool)
                == Some(true),
            soft_timeout: SoftTimeout::of(config),
            spelling_patience: config.pointer("/turn/spelling_patience").and_then(Value::as_str)
                != Some("off"),
            keep_silence: config
                .pointer("/turn/turn_timeout")
                .and_then(Value::as_f64)
                .filter(|secs| *secs > 0.0)
                .filter(|_| {
                    config.pointer("/turn/retranscribe_on_turn_timeout").and_then(Value::as_bool)
                        == Some(true)
                })
                .map(Duration::from_secs_f64),
        })
    }
}

/// The user's audio, heard.
pub(super) struct Listener {
    format: AudioFormat,
    vad: Vad,
    max_chunk_bytes: usize,
    recording: Option<SharedRecording>,
    /// The audio since the agent last finished or the user last started speaking, up to
    /// `keep_max` samples (with `turn.retranscribe_on_turn_timeout`).
    kept: Option<std::collections::VecDeque<i16>>,
    keep_max: usize,
}

impl Listener {
    pub(super) fn new(
        format: AudioFormat, end_silence_ms: u32, recording: Option<SharedRecording>,
    ) -> Listener {
        let bytes_per_sample = if format == AudioFormat::Ulaw8000 { 1 } else { 2 };
        Listener {
            format,
            vad: Vad::new(format.rate(), end_silence_ms),
            max_chunk_bytes: MAX_CHUNK_SECS * format.rate() as usize * bytes_per_sample,
            recording,
            kept: None,
            keep_max: 0,
        }
    }

    /// Keeps the last `keep` of audio in which no speech was detected.
    pub(super) fn keeping(mut self, keep: Option<Duration>) -> Listener {
        if let Some(keep) = keep {
            self.keep_max = (keep.as_secs_f64() * f64::from(self.format.rate())) as usize;
            self.kept = Some(std::collections::VecDeque::new());
        }
        self
    }

    /// Starts keeping afresh (the agent finished a turn).
    pub(super) fn forget(&mut self) {
        if let Some(kept) = self.kept.as_mut() {
            kept.clear();
        }
    }

    /// The audio kept, if any holds samples.
    pub(super) fn take_kept(&mut self) -> Option<Vec<i16>> {
        let kept = self.kept.as_mut().filter(|k| !k.is_empty())?;
        Some(kept.drain(..).collect())
    }

    /// One `user_audio_chunk`: decoded, checked and heard, with its length in ms; or why it
    /// cannot be.
    pub(super) fn hear(&mut self, chunk: &str) -> Result<(VadOutput, u64), String> {
        let bytes = STANDARD
            .decode(chunk.trim())
            .map_err(|e| format!("user_audio_chunk is not valid base64: {e}"))?;
        if bytes.len() > self.max_chunk_bytes {
            return Err(format!(
                "user_audio_chunk holds {} bytes; at most {} ({MAX_CHUNK_SECS} s of {}) are accepted",
                bytes.len(),
                self.max_chunk_bytes,
                self.format.name()
            ));
        }
        if matches!(self.format, AudioFormat::Pcm(_)) && bytes.len() % 2 == 1 {
            return Err(format!(
                "user_audio_chunk is not {}: 16-bit PCM has an even number of bytes",
                self.format.name()
            ));
        }
        let samples = self.format.decode(&bytes);
        record(self.recording.as_ref(), |r| r.user(&samples));
        let heard = self.vad.push(&samples);
        if let Some(kept) = self.kept.as_mut() {
            if heard.events.iter().any(|e| matches!(e, VadEvent::Started)) {
                kept.clear();
            } else {
                kept.extend(&samples);
                let over = kept.len().saturating_sub(self.keep_max);
                kept.drain(..over);
            }
        }
        Ok((heard, self.format.millis(samples.len())))
    }
}

/// What the user heard of an answer they interrupted.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Interrupted {
    /// The interrupted turn's event id.
    pub(super) event_id: u64,
    /// The answer as meant (so far).
    pub(super) original: String,
    /// The part heard.
    pub(super) heard: String,
}

/// How a turn's speech went.
#[derive(Debug, Default)]
pub(super) struct SpeechReport {
    /// From the start of the turn to its first audio sent.
    pub(super) first_audio: Option<Duration>,
    /// Why synthesis failed.
    pub(super) error: Option<SpeechError>,
}

enum Say {
    Begin(u64),
    Text(u64, String),
    /// A soft timeout's filler, spoken at once.
    Filler(u64, String),
    End(u64, oneshot::Sender<SpeechReport>),
    /// The conversation switched language: speak in it from now on.
    Language(String),
}

/// One stretch of sent audio and the text it speaks.
struct Piece {
    offset_ms: u64,
    duration_ms: u64,
    text: String,
    /// It starts a sentence (the text between sentences, a space, is in no piece).
    starts_sentence: bool,
    /// A filler, not part of the answer.
    filler: bool,
}

/// What the client is estimated to be playing.
#[derive(Default)]
struct Playback {
    event_id: u64,
    /// When the turn's first audio was sent.
    started: Option<Instant>,
    /// The end of the audio sent so far, in ms after `started`.
    queued_ms: u64,
    pieces: Vec<Piece>,
    /// The turn's text so far.
    text: String,
    /// Synthesis of the turn is still going on.
    active: bool,
    interruptible: bool,
    /// Uninterruptible tools running.
    held: u32,
}

impl Playback {
    /// Schedules `duration_ms` of audio speaking `text`; its offset from the turn's start.
    fn queue(
        &mut self, duration_ms: u64, text: String, starts_sentence: bool, filler: bool,
    ) -> u64 {
        let started = *self.started.get_or_insert_with(Instant::now);
        let offset_ms = self.queued_ms.max(started.elapsed().as_millis() as u64);
        self.queued_ms = offset_ms + duration_ms;
        self.pieces.push(Piece { offset_ms, duration_ms, text, starts_sentence, filler });
        offset_ms
    }

    /// Whether the audio sent is (estimated to be) still playing, and may be interrupted.
    fn playing(&self) -> Playing {
        let Some(started) = self.started else { return Playing::No };
        if !self.active && started.elapsed().as_millis() as u64 >= self.queued_ms {
            Playing::No
        } else if self.interruptible && self.held == 0 {
            Playing::Interruptible
        } else {
            Playing::Uninterruptible
        }
    }

    /// The answer's text played before `elapsed_ms` (fillers left out).
    fn heard(&self, elapsed_ms: u64) -> String {
        let mut heard = String::new();
        for piece in &self.pieces {
            if piece.offset_ms >= elapsed_ms {
                break;
            }
            if piece.filler {
                continue;
            }
            let played = (elapsed_ms - piece.offset_ms).min(piece.duration_ms);
            let chars = piece.text.chars().count() as u64;
            let take = (chars * played).div_ceil(piece.duration_ms.max(1)) as usize;
            if piece.starts_sentence && !heard.is_empty() {
                heard.push(' ');
            }
            heard.extend(piece.text.chars().take(take));
        }
        heard.trim().to_owned()
    }
}

struct Shared {
    playback: Mutex<Playback>,
    recording: Option<SharedRecording>,
    /// The latest interrupted turn: its remaining text is not spoken.
    cancelled: AtomicU64,
}

impl Shared {
    fn playback(&self) -> std::sync::MutexGuard<'_, Playback> {
        // The lock guards plain data updated in a few lines; a panic there leaves it usable.
        self.playback.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cancelled(&self, event_id: u64) -> bool {
        self.cancelled.load(Ordering::Relaxed) >= event_id
    }
}

/// The agent's voice: a handle to the task that synthesizes and sends its speech.
#[derive(Clone)]
pub(super) struct Speaker {
    tx: mpsc::UnboundedSender<Say>,
    shared: Arc<Shared>,
}

impl Speaker {
    /// Starts the speaking task.
    pub(super) fn start(deps: Arc<EngineDeps>, setup: &VoiceSetup, outbox: Outbox) -> Speaker {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            playback: Mutex::new(Playback::default()),
            recording: setup.recording.clone(),
            cancelled: AtomicU64::new(0),
        });
        let task = Task {
            deps,
            voice: setup.voice.clone(),
            output: setup.output,
            outbox,
            shared: shared.clone(),
        };
        tokio::spawn(task.run(rx));
        Speaker { tx, shared }
    }

    /// A new answer, `event_id`, starts.
    pub(super) fn begin(&self, event_id: u64, interruptible: bool) {
        {
            let mut playback = self.shared.playback();
            *playback = Playback { event_id, active: true, interruptible, ..Playback::default() };
        }
        let _ = self.tx.send(Say::Begin(event_id));
    }

    /// More of the answer's text.
    pub(super) fn text(&self, event_id: u64, text: &str) {
        self.shared.playback().text.push_str(text);
        let _ = self.tx.send(Say::Text(event_id, text.to_owned()));
    }

    /// The conversation switched to `language`: the rest is spoken in it (in its supported
    /// voice, when the agent has one).
    pub(super) fn language(&self, language: &str) {
        let _ = self.tx.send(Say::Language(language.to_owned()));
    }

    /// A filler for the answer `event_id`, while its text is late.
    pub(super) fn filler(&self, event_id: u64, text: &str) {
        let _ = self.tx.send(Say::Filler(event_id, text.to_owned()));
    }

    /// Whether the agent's speech is (estimated to be) playing, and whether it may be
    /// interrupted now.
    pub(super) fn playing(&self) -> Playing {
        self.shared.playback().playing()
    }

    /// An uninterruptible tool starts (`true`) or ends.
    pub(super) fn hold(&self, holding: bool) {
        let mut playback = self.shared.playback();
        playback.held = if holding { playback.held + 1 } else { playback.held.saturating_sub(1) };
    }

    /// The answer's text is complete; resolves once all of it is synthesized and sent.
    pub(super) async fn end(&self, event_id: u64) -> SpeechReport {
        let (reply, report) = oneshot::channel();
        if self.tx.send(Say::End(event_id, reply)).is_err() {
            return SpeechReport::default();
        }
        let report = report.await.unwrap_or_default();
        self.shared.playback().active = false;
        report
    }

    /// The user started speaking: if the agent is speaking and may be interrupted, its speech
    /// stops and what the user heard of it is returned.
    pub(super) fn interrupt(&self) -> Option<Interrupted> {
        let mut playback = self.shared.playback();
        if playback.playing() != Playing::Interruptible {
            return None;
        }
        let elapsed = playback.started?.elapsed().as_millis() as u64;
        self.shared.cancelled.fetch_max(playback.event_id, Ordering::Relaxed);
        record(self.shared.recording.as_ref(), Recording::cut_agent);
        playback.started = None;
        playback.active = false;
        Some(Interrupted {
            event_id: playback.event_id,
            original: playback.text.trim().to_owned(),
            heard: playback.heard(elapsed),
        })
    }
}

/// The speaking task.
struct Task {
    deps: Arc<EngineDeps>,
    voice: AgentVoice,
    output: AudioFormat,
    outbox: Outbox,
    shared: Arc<Shared>,
}

/// The turn being spoken.
struct Turn {
    event_id: u64,
    began: Instant,
    sentences: Sentences,
    report: SpeechReport,
    /// The answer's own text has begun: fillers come too late.
    answering: bool,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Say>) {
        let mut turn = Turn {
            event_id: 0,
            began: Instant::now(),
            sentences: Sentences::default(),
            report: SpeechReport::default(),
            answering: false,
        };
        while let Some(say) = rx.recv().await {
            match say {
                Say::Begin(event_id) => {
                    turn = Turn {
                        event_id,
                        began: Instant::now(),
                        sentences: Sentences::default(),
                        report: SpeechReport::default(),
                        answering: false,
                    };
                }
                Say::Text(event_id, text) if event_id == turn.event_id => {
                    turn.answering = true;
                    for sentence in turn.sentences.push(&text) {
                        self.say(&mut turn, &sentence, false).await;
                    }
                }
                Say::Filler(event_id, text) if event_id == turn.event_id && !turn.answering => {
                    self.say(&mut turn, &text, true).await;
                }
                Say::Text(..) | Say::Filler(..) => {}
                Say::Language(language) => {
                    self.voice = self.deps.voice.in_language(&self.voice, &language);
                }
                Say::End(event_id, reply) => {
                    if event_id == turn.event_id
                        && let Some(rest) = turn.sentences.finish()
                    {
                        self.say(&mut turn, &rest, false).await;
                    }
                    let _ = reply.send(std::mem::take(&mut turn.report));
                }
            }
        }
    }

    /// Synthesizes one sentence (or a filler) and sends it, unless the turn was interrupted
    /// or its speech already failed.
    async fn say(&self, turn: &mut Turn, sentence: &str, filler: bool) {
        if self.shared.cancelled(turn.event_id) || turn.report.error.is_some() {
            return;
        }
        let speech = match self.deps.voice.synthesize(&self.voice, sentence).await {
            Ok(speech) => speech,
            Err(e) => {
                tracing::warn!(error = %e, "speech synthesis failed");
                turn.report.error = Some(e);
                return;
            }
        };
        let samples = resample(&speech.samples, speech.rate, self.output.rate());
        let total_ms = self.output.millis(samples.len()).max(1);
        let alignment = even_alignment(sentence, 0, total_ms);
        let per_event = (self.output.rate() as u64 * AUDIO_EVENT_MS / 1000).max(1) as usize;
        for (i, chunk) in samples.chunks(per_event).enumerate() {
            let from_ms = i as u64 * AUDIO_EVENT_MS;
            let chunk_ms = self.output.millis(chunk.len());
            let mut part = colloquy_core::protocol::Alignment::default();
            for (c, (start, duration)) in alignment
                .chars
                .iter()
                .zip(alignment.char_start_times_ms.iter().zip(&alignment.char_durations_ms))
                .filter(|(_, (start, _))| (from_ms..from_ms + chunk_ms.max(1)).contains(*start))
            {
                part.chars.push(c.clone());
                part.char_start_times_ms.push(start - from_ms);
                part.char_durations_ms.push(*duration);
            }
            {
                let mut playback = self.shared.playback();
                if self.shared.cancelled(turn.event_id) || playback.event_id != turn.event_id {
                    return;
                }
                playback.queue(chunk_ms, part.chars.concat(), i == 0, filler);
            }
            record(self.shared.recording.as_ref(), |r| r.agent(chunk));
            turn.report.first_audio.get_or_insert_with(|| turn.began.elapsed());
            self.outbox
                .send(ServerEvent::Audio {
                    audio_event: AudioEvent {
                        audio_base_64: STANDARD.encode(self.output.encode(chunk)),
                        event_id: turn.event_id,
                        alignment: Some(part),
                    },
                })
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_heard_is_the_text_played_so_far() {
        let mut p = Playback::default();
        assert_eq!(p.queue(600, "Hello ".into(), true, false), 0);
        p.queue(400, "there.".into(), false, false);
        p.queue(300, "Hmm.".into(), true, true);
        p.queue(1000, "How are you?".into(), true, false);
        assert_eq!(p.heard(0), "");
        assert_eq!(p.heard(300), "Hel");
        assert_eq!(p.heard(800), "Hello the");
        assert_eq!(p.heard(1000), "Hello there.");
        assert_eq!(p.heard(1300), "Hello there.");
        assert_eq!(p.heard(1800), "Hello there. How ar");
        assert_eq!(p.heard(5000), "Hello there. How are you?");
    }

    #[test]
    fn bad_chunks_are_refused_and_good_ones_heard() {
        let mut listener = Listener::new(AudioFormat::Pcm(16_000), 700, None);
        assert!(listener.hear("not base64!").unwrap_err().contains("base64"));
        assert!(listener.hear(&STANDARD.encode([0u8; 3])).unwrap_err().contains("even"));
        let too_long = STANDARD.encode(vec![0u8; 2 * 16_000 * 2 + 2]);
        assert!(listener.hear(&too_long).unwrap_err().contains("at most"));
        assert!(listener.hear(&STANDARD.encode([0u8; 640])).is_ok());
        let mut ulaw = Listener::new(AudioFormat::Ulaw8000, 700, None);
        assert!(ulaw.hear(&STANDARD.encode([0xffu8; 3])).is_ok());
    }
}
