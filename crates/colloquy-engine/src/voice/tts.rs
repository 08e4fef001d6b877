//! Speech synthesis: one sentence in, its audio (16-bit mono samples and their rate) out.

use std::process::Stdio;

use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::{ProviderKind, SpeechError, SpeechProvider, send, wav};

/// What OpenAI's `pcm` response format is: 24 kHz, 16-bit, mono.
const OPENAI_PCM_RATE: u32 = 24_000;
/// What Colloquy asks the ElevenLabs API for.
const ELEVENLABS_PCM_RATE: u32 = 16_000;

/// Synthesized speech.
#[derive(Debug, Clone, PartialEq)]
pub struct Speech {
    /// 16-bit mono samples.
    pub samples: Vec<i16>,
    /// Their rate.
    pub rate: u32,
}

/// The voice to speak with.
#[derive(Debug, Clone, Default)]
pub(crate) struct VoiceChoice {
    /// The model name the provider knows.
    pub model: String,
    /// The voice name the provider knows.
    pub voice: String,
    /// Speaking rate, 1 being normal.
    pub speed: Option<f64>,
}

/// Synthesizes `text` with `provider`.
pub(crate) async fn synthesize(
    http: &reqwest::Client, provider: &SpeechProvider, choice: &VoiceChoice, text: &str,
) -> Result<Speech, SpeechError> {
    match provider.kind {
        ProviderKind::Openai => {
            let url = format!("{}/audio/speech", provider.base());
            let mut body = json!({
                "model": choice.model, "input": text, "voice": choice.voice, "response_format": "pcm",
            });
            if let Some(speed) = choice.speed {
                body["speed"] = json!(speed);
            }
            let bytes =
                send(provider, || Ok(provider.authorize(http.post(&url)).json(&body))).await?;
            pcm_or_wav(&bytes, OPENAI_PCM_RATE)
        }
        ProviderKind::Elevenlabs => {
            let url = format!(
                "{}/v1/text-to-speech/{}?output_format=pcm_{ELEVENLABS_PCM_RATE}",
                provider.base(),
                choice.voice
            );
            let mut body = json!({"text": text, "model_id": choice.model});
            if let Some(speed) = choice.speed {
                body["voice_settings"] = json!({"speed": speed});
            }
            let bytes =
                send(provider, || Ok(provider.authorize(http.post(&url)).json(&body))).await?;
            pcm_or_wav(&bytes, ELEVENLABS_PCM_RATE)
        }
        ProviderKind::Espeak => espeak(provider, choice, text).await,
    }
}

/// Raw 16-bit little-endian PCM at `rate`, unless the server sent a WAV file after all.
fn pcm_or_wav(bytes: &[u8], rate: u32) -> Result<Speech, SpeechError> {
    if bytes.starts_with(b"RIFF") {
        let (samples, rate) = wav::decode(bytes).map_err(|e| SpeechError::Answer(e.to_string()))?;
        return Ok(Speech { samples, rate });
    }
    let samples = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    Ok(Speech { samples, rate })
}

/// The system's `espeak-ng` (or `espeak`) program, run with the text on its standard input so
/// that no text is ever read as an option.
async fn espeak(
    provider: &SpeechProvider, choice: &VoiceChoice, text: &str,
) -> Result<Speech, SpeechError> {
    let program = provider.base_url.as_deref().unwrap_or("espeak-ng");
    let voice = if choice.voice.is_empty() { "en-us" } else { choice.voice.as_str() };
    // espeak's default is 175 words a minute.
    let wpm = (175.0 * choice.speed.unwrap_or(1.0)).round().clamp(80.0, 450.0) as u32;
    let mut child = tokio::process::Command::new(program)
        .args(["--stdout", "-v", voice, "-s", &wpm.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SpeechError::Transport(format!("could not run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| SpeechError::Transport(format!("{program}: {e}")))?;
    }
    let out = tokio::time::timeout(provider.timeout(), child.wait_with_output())
        .await
        .map_err(|_| SpeechError::Timeout)?
        .map_err(|e| SpeechError::Transport(format!("{program}: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(SpeechError::Answer(format!("{program} failed: {}", stderr.trim())));
    }
    let (samples, rate) =
        wav::decode(&out.stdout).map_err(|e| SpeechError::Answer(e.to_string()))?;
    Ok(Speech { samples, rate })
}
