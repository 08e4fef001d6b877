//! Speech recognition: one utterance (a 16-bit mono WAV file) in, its text out.

use reqwest::multipart::{Form, Part};
use serde_json::Value;

use super::{ProviderKind, SpeechError, SpeechProvider, send};

/// Transcribes `wav` with `provider`, asking for `model`.
pub(crate) async fn transcribe(
    http: &reqwest::Client, provider: &SpeechProvider, model: &str, language: Option<&str>,
    wav: Vec<u8>,
) -> Result<String, SpeechError> {
    let form = || -> Result<Form, SpeechError> {
        let file = Part::bytes(wav.clone())
            .file_name("utterance.wav")
            .mime_str("audio/wav")
            .map_err(|e| SpeechError::Transport(e.to_string()))?;
        let mut form = Form::new().part("file", file);
        form = match provider.kind {
            ProviderKind::Openai => {
                form.text("model", model.to_owned()).text("response_format", "json")
            }
            ProviderKind::Elevenlabs => form.text("model_id", model.to_owned()),
            ProviderKind::Espeak => return Err(SpeechError::CannotTranscribe),
        };
        if let Some(lang) = language.filter(|l| !l.is_empty()) {
            let field =
                if provider.kind == ProviderKind::Openai { "language" } else { "language_code" };
            form = form.text(field, lang.to_owned());
        }
        Ok(form)
    };
    let url = match provider.kind {
        ProviderKind::Openai => format!("{}/audio/transcriptions", provider.base()),
        ProviderKind::Elevenlabs => format!("{}/v1/speech-to-text", provider.base()),
        ProviderKind::Espeak => return Err(SpeechError::CannotTranscribe),
    };
    let body =
        send(provider, || Ok(provider.authorize(http.post(&url)).multipart(form()?))).await?;
    let answer: Value = serde_json::from_slice(&body)
        .map_err(|e| SpeechError::Answer(format!("the transcription is not JSON: {e}")))?;
    answer
        .get("text")
        .and_then(Value::as_str)
        .map(|t| t.trim().to_owned())
        .ok_or_else(|| SpeechError::Answer("the transcription has no text".into()))
}
