//! The agent's hold audio (`platform_settings.queueing_config.hold_audio`, uploaded through
//! `POST /agents/{id}/hold-audio`) in a voice conversation: once a tool has kept the caller
//! waiting for [`AFTER`], the clip plays on a loop, paced in real time, until every tool of the
//! turn has answered (or the turn ends), as `audio` events without alignment.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use colloquy_core::protocol::{AudioEvent, ServerEvent};
use colloquy_engine::voice::clip;
use colloquy_engine::voice::format::{AudioFormat, resample};
use colloquy_engine::{AgentSnapshot, EngineDeps};
use tokio::sync::oneshot;

use super::outbox::Outbox;

/// How long a tool may run before the caller hears the hold audio.
const AFTER: Duration = Duration::from_secs(1);
/// The length of each audio event of the clip.
const CHUNK_MS: u64 = 250;

/// A conversation's hold audio player.
#[derive(Clone)]
pub(super) struct HoldAudio {
    /// The clip at the conversation's output rate, once read.
    clip: Arc<OnceLock<Arc<[i16]>>>,
    waiting: Arc<Mutex<Waiting>>,
    output: AudioFormat,
    outbox: Outbox,
}

/// The tools running and the clip playing.
#[derive(Default)]
struct Waiting {
    tools: u32,
    stop: Option<oneshot::Sender<()>>,
}

impl HoldAudio {
    /// The player of `agent`'s hold audio, when it has one: the clip is read and decoded in
    /// the background, so the conversation does not wait for it.
    pub(super) fn of(
        deps: &Arc<EngineDeps>, agent: &AgentSnapshot, output: AudioFormat, outbox: &Outbox,
    ) -> Option<HoldAudio> {
        let set = agent.platform_settings.pointer("/queueing_config/hold_audio");
        if set.is_none_or(serde_json::Value::is_null) {
            return None;
        }
        let clip = Arc::new(OnceLock::new());
        let (deps, loaded) = (deps.clone(), clip.clone());
        let (workspace_id, agent_id) = (agent.workspace_id.clone(), agent.agent_id.clone());
        tokio::spawn(async move {
            let media = deps.store.agent_media(&workspace_id, &agent_id, "hold_audio").await;
            let Ok(Some(media)) = media else { return };
            let decoded = tokio::task::spawn_blocking(move || clip::decode(&media.content)).await;
            match decoded {
                Ok(Ok((samples, rate))) if !samples.is_empty() => {
                    let _ = loaded.set(resample(&samples, rate, output.rate()).into());
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "the agent's hold audio cannot be played"),
                _ => {}
            }
        });
        Some(HoldAudio { clip, waiting: Arc::default(), output, outbox: outbox.clone() })
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A tool of the answer `event_id` starts (`true`) or answers.
    pub(super) fn tool(&self, event_id: u64, starts: bool) {
        let mut waiting = self.waiting();
        if starts {
            waiting.tools += 1;
            if waiting.tools == 1 {
                let (stop, stopped) = oneshot::channel();
                waiting.stop = Some(stop);
                tokio::spawn(self.clone().play(event_id, stopped));
            }
        } else {
            waiting.tools = waiting.tools.saturating_sub(1);
            if waiting.tools == 0 {
                waiting.stop.take();
            }
        }
    }

    /// The turn ended: whatever still runs, the clip stops.
    pub(super) fn turn_ended(&self) {
        let mut waiting = self.waiting();
        waiting.tools = 0;
        waiting.stop.take();
    }

    /// Plays the clip on a loop after [`AFTER`], until `stopped` (its sender dropped).
    async fn play(self, event_id: u64, mut stopped: oneshot::Receiver<()>) {
        tokio::select! {
            () = tokio::time::sleep(AFTER) => {}
            _ = &mut stopped => return,
        }
        let Some(clip) = self.clip.get().cloned() else { return };
        let per_chunk = (u64::from(self.output.rate()) * CHUNK_MS / 1000).max(1) as usize;
        for chunk in clip.chunks(per_chunk).cycle() {
            let audio = ServerEvent::Audio {
                audio_event: AudioEvent {
                    audio_base_64: STANDARD.encode(self.output.encode(chunk)),
                    event_id,
                    alignment: None,
                },
            };
            self.outbox.send(audio).await;
            let pause = Duration::from_millis(self.output.millis(chunk.len()).max(1));
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = &mut stopped => return,
            }
        }
    }
}
