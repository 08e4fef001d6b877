//! Voice: the audio formats of the conversation protocol ([`format`], [`wav`]), voice activity
//! detection ([`vad`]), the agent's text cut into sentences to speak ([`sentences`]), and the
//! speech providers that recognize ([`asr`]) and synthesize ([`tts`]) speech.
//!
//! Providers are configured like LLM providers, in `colloquy.toml`:
//!
//! ```toml
//! [asr]
//! default_provider = "whisper"
//! [asr.providers.whisper]
//! kind = "openai"                      # any /v1/audio/transcriptions server, or "elevenlabs"
//! base_url = "http://127.0.0.1:8000/v1"
//! model = "Systran/faster-whisper-small"
//! [[asr.routes]]
//! asr_provider = "scribe_realtime"     # the agent's `asr.provider` (`*` wildcards)
//! provider = "whisper"
//!
//! [tts]
//! default_provider = "kokoro"          # "espeak" is built in: the system's espeak-ng program
//! [tts.providers.kokoro]
//! kind = "openai"                      # any /v1/audio/speech server, or "elevenlabs", "espeak"
//! base_url = "http://127.0.0.1:8880/v1"
//! model = "kokoro"
//! voice = "af_sky"
//! [[tts.routes]]
//! voice_id = "cjVigY5qzO86Huf0OWal"    # the agent's `tts.voice_id` and/or `tts.model_id`
//! provider = "kokoro"
//! voice = "am_adam"
//! ```
//!
//! `COLLOQUY_ASR_URL` and `COLLOQUY_TTS_URL` (an OpenAI-compatible base URL ending in `/v1`)
//! add a provider named `env` and make it the default. With no configured TTS provider, the
//! built-in `espeak` speaks when the system has the program; with no ASR provider, audio from
//! the user is refused with `asr_transcription_error`. Providers are the operator's, so they
//! are called directly (like LLM providers), not through the egress guard that agents' own URLs
//! go through.

pub mod asr;
pub mod clip;
pub mod format;
pub mod recording;
pub mod sentences;
pub mod tts;
pub mod vad;
pub mod wav;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::llm::router::glob;
pub use tts::Speech;

/// Provider protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI-compatible `/audio/transcriptions` and `/audio/speech`.
    Openai,
    /// The ElevenLabs speech-to-text and text-to-speech APIs.
    Elevenlabs,
    /// The system's `espeak-ng` program (synthesis only; `base_url` may name another program).
    Espeak,
}

/// One speech server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpeechProvider {
    /// Protocol.
    pub kind: ProviderKind,
    /// Base URL (`.../v1` for OpenAI-compatible servers; the API root for ElevenLabs).
    pub base_url: Option<String>,
    /// API key, inline.
    pub api_key: Option<String>,
    /// Environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// The model asked for when no route names one.
    pub model: Option<String>,
    /// The voice asked for when no route names one (synthesis).
    pub voice: Option<String>,
    /// Ask for the streamed transcription (OpenAI-compatible recognizers that support
    /// `stream=true`), so the user sees `tentative_user_transcript` while it is recognized.
    #[serde(default)]
    pub stream: bool,
    #[serde(skip)]
    policy: Policy,
}

#[derive(Debug, Clone, Copy, Default)]
struct Policy {
    timeout: Duration,
    retries: u32,
}

impl SpeechProvider {
    fn base(&self) -> String {
        let default = match self.kind {
            ProviderKind::Openai => "https://api.openai.com/v1",
            ProviderKind::Elevenlabs => "https://api.elevenlabs.io",
            ProviderKind::Espeak => "",
        };
        self.base_url.as_deref().unwrap_or(default).trim_end_matches('/').to_owned()
    }

    fn key(&self) -> Option<String> {
        self.api_key.clone().or_else(|| {
            self.api_key_env
                .as_deref()
                .and_then(|n| std::env::var(n).ok())
                .filter(|k| !k.is_empty())
        })
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let request = request.timeout(self.timeout());
        match (self.key(), self.kind) {
            (Some(key), ProviderKind::Elevenlabs) => request.header("xi-api-key", key),
            (Some(key), _) => request.bearer_auth(key),
            (None, _) => request,
        }
    }

    fn timeout(&self) -> Duration {
        if self.policy.timeout.is_zero() { Duration::from_secs(30) } else { self.policy.timeout }
    }

    /// A provider of `kind` at `base_url`, with no key and the kind's default model and voice.
    pub fn new(kind: ProviderKind, base_url: Option<String>) -> SpeechProvider {
        SpeechProvider {
            kind,
            base_url,
            api_key: None,
            api_key_env: None,
            model: None,
            voice: None,
            stream: false,
            policy: Policy::default(),
        }
    }
}

/// Which provider serves an agent's setting.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SpeechRoute {
    /// The agent's `asr.provider` this route takes (`*` wildcards).
    pub asr_provider: Option<String>,
    /// The agent's `tts.model_id` this route takes.
    pub model_id: Option<String>,
    /// The agent's `tts.voice_id` this route takes.
    pub voice_id: Option<String>,
    /// Provider name.
    pub provider: String,
    /// The model the provider knows (else the provider's own default).
    pub model: Option<String>,
    /// The voice the provider knows (else the provider's own default).
    pub voice: Option<String>,
}

impl SpeechRoute {
    fn takes(&self, asr_provider: &str, model_id: &str, voice_id: &str) -> bool {
        [(&self.asr_provider, asr_provider), (&self.model_id, model_id), (&self.voice_id, voice_id)]
            .iter()
            .all(|(pattern, value)| pattern.as_deref().is_none_or(|p| glob(p, value)))
    }
}

/// The `[asr]` or `[tts]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SpeechConfig {
    /// The provider of agents no route matches.
    pub default_provider: Option<String>,
    /// Longest wait for one provider call.
    pub timeout_secs: u64,
    /// Retries after a 429, a 5xx or a transport failure.
    pub retries: u32,
    /// Named providers.
    pub providers: HashMap<String, SpeechProvider>,
    /// Routes, first match wins.
    pub routes: Vec<SpeechRoute>,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        SpeechConfig {
            default_provider: None,
            timeout_secs: 30,
            retries: 2,
            providers: HashMap::new(),
            routes: Vec::new(),
        }
    }
}

/// Why speech could not be recognized or synthesized.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpeechError {
    /// No provider serves the agent.
    #[error("no {0} provider is configured")]
    NoProvider(&'static str),
    /// The provider kind cannot recognize speech.
    #[error("espeak synthesizes speech; it cannot transcribe it")]
    CannotTranscribe,
    /// The provider answered with an error status.
    #[error("the speech provider answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// The provider's answer could not be used.
    #[error("the speech provider's answer could not be used: {0}")]
    Answer(String),
    /// The provider could not be reached.
    #[error("the speech provider could not be reached: {0}")]
    Transport(String),
    /// The provider took too long.
    #[error("the speech provider did not answer in time")]
    Timeout,
}

impl SpeechError {
    fn retryable(&self) -> bool {
        match self {
            SpeechError::Status { status, .. } => *status == 429 || *status >= 500,
            SpeechError::Transport(_) | SpeechError::Timeout => true,
            _ => false,
        }
    }
}

/// Sends a request built by `build` until it succeeds, fails for good, or the retries are used
/// up; the answer's body.
async fn send<F>(provider: &SpeechProvider, build: F) -> Result<Vec<u8>, SpeechError>
where
    F: Fn() -> Result<reqwest::RequestBuilder, SpeechError>,
{
    retrying(provider, || async {
        let body = open(build()?).await?.bytes().await;
        Ok(body.map_err(|e| SpeechError::Transport(e.to_string()))?.to_vec())
    })
    .await
}

/// Sends `request`: its response once the status says it succeeded.
async fn open(request: reqwest::RequestBuilder) -> Result<reqwest::Response, SpeechError> {
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() { SpeechError::Timeout } else { SpeechError::Transport(e.to_string()) }
    })?;
    let status = response.status().as_u16();
    if status >= 300 {
        let body = response.text().await.unwrap_or_default();
        return Err(SpeechError::Status { status, body: crate::llm::snippet(&body) });
    }
    Ok(response)
}

/// Runs `attempt` until it succeeds, fails for good, or the provider's retries are used up,
/// waiting longer before each retry.
async fn retrying<T, F, Fut>(provider: &SpeechProvider, attempt: F) -> Result<T, SpeechError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, SpeechError>>,
{
    let mut delay = Duration::from_millis(200);
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(e) if e.retryable() && tries < provider.policy.retries => {
                tracing::warn!(error = %e, retry_in = ?delay, "speech provider call failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// One configured side (recognition or synthesis).
#[derive(Debug, Default)]
struct Side {
    default_provider: Option<String>,
    providers: HashMap<String, Arc<SpeechProvider>>,
    routes: Vec<SpeechRoute>,
}

impl Side {
    fn new(config: &SpeechConfig, env_url: Option<String>, side: &str) -> Result<Side, String> {
        let policy = Policy {
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            retries: config.retries,
        };
        let mut providers: HashMap<String, Arc<SpeechProvider>> = HashMap::new();
        let mut configured = config.providers.clone();
        if side == "tts" {
            configured
                .entry("espeak".into())
                .or_insert_with(|| SpeechProvider::new(ProviderKind::Espeak, None));
        }
        let mut default_provider = config.default_provider.clone();
        if let Some(url) = env_url {
            configured.insert("env".into(), SpeechProvider::new(ProviderKind::Openai, Some(url)));
            default_provider = Some("env".into());
        }
        for (name, mut p) in configured {
            if side == "asr" && p.kind == ProviderKind::Espeak {
                return Err(format!("[asr.providers.{name}]: espeak cannot transcribe speech"));
            }
            p.policy = policy;
            providers.insert(name, Arc::new(p));
        }
        for name in config.routes.iter().map(|r| &r.provider).chain(default_provider.iter()) {
            if !providers.contains_key(name) {
                return Err(format!("[{side}] names the unknown provider {name:?}"));
            }
        }
        if side == "tts" && default_provider.is_none() && espeak_installed() {
            default_provider = Some("espeak".into());
        }
        Ok(Side { default_provider, providers, routes: config.routes.clone() })
    }

    fn pick(&self, asr_provider: &str, model_id: &str, voice_id: &str) -> Option<Choice> {
        let (name, route) =
            match self.routes.iter().find(|r| r.takes(asr_provider, model_id, voice_id)) {
                Some(r) => (r.provider.as_str(), Some(r)),
                None => (self.default_provider.as_deref()?, None),
            };
        let provider = self.providers.get(name)?.clone();
        let model = route.and_then(|r| r.model.clone()).or_else(|| provider.model.clone());
        let voice = route.and_then(|r| r.voice.clone()).or_else(|| provider.voice.clone());
        Some(Choice { provider, model, voice })
    }
}

/// Whether the system has the espeak-ng program, found on `PATH` without running it (running
/// `espeak-ng --version` cost every start a process).
fn espeak_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|path| on_path(&path, "espeak-ng"))
}

/// Whether a directory of `path` (a `PATH` value) holds an executable file named `program`.
fn on_path(path: &std::ffi::OsStr, program: &str) -> bool {
    std::env::split_paths(path).any(|dir| {
        let Ok(meta) = std::fs::metadata(dir.join(program)) else { return false };
        #[cfg(unix)]
        let runnable = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0;
        #[cfg(not(unix))]
        let runnable = true;
        meta.is_file() && runnable
    })
}

/// A provider with the model and voice to ask it for.
#[derive(Debug, Clone)]
struct Choice {
    provider: Arc<SpeechProvider>,
    model: Option<String>,
    voice: Option<String>,
}

/// The speech providers, built once at start.
#[derive(Debug, Default)]
pub struct VoiceRouter {
    asr: Side,
    tts: Side,
    http: reqwest::Client,
}

/// What an agent's configuration asks of speech: read from its `asr` and `tts` settings once,
/// at the start of a conversation.
#[derive(Debug, Clone, Default)]
pub struct AgentVoice {
    asr: Option<Choice>,
    tts: Option<Choice>,
    /// The agent's own `tts.model_id` and `tts.voice_id`: ElevenLabs names, which an
    /// `elevenlabs` provider takes as they are.
    model_id: String,
    voice_id: String,
    language: Option<String>,
    speed: Option<f64>,
    /// `tts.supported_voices` as (language, voice id): the voice for each language the
    /// conversation may switch to (`language_detection`).
    supported_voices: Vec<(String, String)>,
}

impl AgentVoice {
    /// Whether the agent can hear.
    pub fn can_listen(&self) -> bool {
        self.asr.is_some()
    }

    /// Whether the agent can speak.
    pub fn can_speak(&self) -> bool {
        self.tts.is_some()
    }
}

impl VoiceRouter {
    /// The providers of `[asr]` and `[tts]`, and those `COLLOQUY_ASR_URL` / `COLLOQUY_TTS_URL`
    /// name.
    pub fn new(
        asr: &SpeechConfig, tts: &SpeechConfig, http: reqwest::Client,
    ) -> Result<VoiceRouter, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Ok(VoiceRouter {
            asr: Side::new(asr, env("COLLOQUY_ASR_URL"), "asr")?,
            tts: Side::new(tts, env("COLLOQUY_TTS_URL"), "tts")?,
            http,
        })
    }

    /// The providers serving an agent with `conversation_config`.
    pub fn for_agent(&self, conversation_config: &Value) -> AgentVoice {
        let text =
            |p: &str| conversation_config.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let asr_provider = text("/asr/provider");
        let (model_id, voice_id) = (text("/tts/model_id"), text("/tts/voice_id"));
        AgentVoice {
            asr: self.asr.pick(asr_provider, "", ""),
            tts: self.tts.pick("", model_id, voice_id),
            model_id: model_id.to_owned(),
            voice_id: voice_id.to_owned(),
            language: Some(text("/agent/language")).filter(|l| !l.is_empty()).map(str::to_owned),
            speed: conversation_config
                .pointer("/tts/speed")
                .and_then(Value::as_f64)
                .filter(|s| (*s - 1.0).abs() > f64::EPSILON),
            supported_voices: conversation_config
                .pointer("/tts/supported_voices")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| {
                    let field =
                        |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
                    Some((field("language")?.to_owned(), field("voice_id")?.to_owned()))
                })
                .collect(),
        }
    }

    /// `voice` once the conversation switched to `language`: recognized and spoken in it, with
    /// the agent's supported voice for it when it has one (and the provider that voice routes
    /// to).
    pub fn in_language(&self, voice: &AgentVoice, language: &str) -> AgentVoice {
        let mut switched = voice.clone();
        switched.language = Some(language.to_owned());
        if let Some((_, voice_id)) = voice.supported_voices.iter().find(|(l, _)| l == language) {
            switched.voice_id.clone_from(voice_id);
            switched.tts = self.tts.pick("", &voice.model_id, voice_id);
        }
        switched
    }

    /// The text of one utterance: `samples` at `rate` Hz; a streaming provider's text so far
    /// goes to `partials` as it grows.
    pub async fn transcribe(
        &self, voice: &AgentVoice, samples: &[i16], rate: u32,
        partials: Option<&tokio::sync::mpsc::UnboundedSender<String>>,
    ) -> Result<String, SpeechError> {
        let choice = voice.asr.as_ref().ok_or(SpeechError::NoProvider("speech recognition"))?;
        let model = choice.model.as_deref().unwrap_or(match choice.provider.kind {
            ProviderKind::Elevenlabs => "scribe_v1",
            _ => "whisper-1",
        });
        let audio = wav::encode(samples, rate);
        let language = voice.language.as_deref();
        asr::transcribe(&self.http, &choice.provider, model, language, audio, partials).await
    }

    /// The agent's speech for `text`.
    pub async fn synthesize(&self, voice: &AgentVoice, text: &str) -> Result<Speech, SpeechError> {
        let choice = voice.tts.as_ref().ok_or(SpeechError::NoProvider("speech synthesis"))?;
        let (model, default_voice) = match choice.provider.kind {
            ProviderKind::Openai => ("tts-1", "alloy"),
            ProviderKind::Elevenlabs => (
                Some(voice.model_id.as_str())
                    .filter(|m| !m.is_empty())
                    .unwrap_or("eleven_flash_v2"),
                Some(voice.voice_id.as_str())
                    .filter(|v| !v.is_empty())
                    .unwrap_or("cjVigY5qzO86Huf0OWal"),
            ),
            ProviderKind::Espeak => ("", ""),
        };
        let espeak_voice =
            voice.language.clone().filter(|_| choice.provider.kind == ProviderKind::Espeak);
        let choice_now = tts::VoiceChoice {
            model: choice.model.clone().unwrap_or_else(|| model.to_owned()),
            voice: choice
                .voice
                .clone()
                .or(espeak_voice)
                .unwrap_or_else(|| default_voice.to_owned()),
            speed: voice.speed,
        };
        tts::synthesize(&self.http, &choice.provider, &choice_now, text).await
    }
}

#[cfg(test)]
mod tests {
    use super::on_path;

    #[test]
    fn a_program_is_found_on_path_only_as_an_executable_file() {
        let (empty, holder) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let path = std::env::join_paths([empty.path(), holder.path()]).unwrap();
        assert!(!on_path(&path, "espeak-ng"), "nothing there");

        std::fs::create_dir(holder.path().join("espeak-ng")).unwrap();
        assert!(!on_path(&path, "espeak-ng"), "a directory is not a program");
        std::fs::remove_dir(holder.path().join("espeak-ng")).unwrap();

        let program = holder.path().join("espeak-ng");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(!on_path(&path, "espeak-ng"), "a file nobody may run");
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert!(on_path(&path, "espeak-ng"));
    }
}
