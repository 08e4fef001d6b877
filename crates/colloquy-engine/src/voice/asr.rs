//! Speech recognition: one utterance (a 16-bit mono WAV file) in, its text out. A provider
//! configured with `stream = true` is asked for its streamed answer (OpenAI's `stream=true`:
//! server-sent `transcript.text.delta` events, then `transcript.text.done`), and the text so
//! far is passed on as it grows, for `tentative_user_transcript`.

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{ProviderKind, SpeechError, SpeechProvider, open, retrying, send};

/// Transcribes `wav` with `provider`, asking for `model`; `partials` receives the text
/// recognized so far when the provider streams.
pub(crate) async fn transcribe(
    http: &reqwest::Client, provider: &SpeechProvider, model: &str, language: Option<&str>,
    wav: Vec<u8>, partials: Option<&mpsc::UnboundedSender<String>>,
) -> Result<String, SpeechError> {
    let streams = provider.stream && provider.kind == ProviderKind::Openai;
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
        if streams {
            form = form.text("stream", "true");
        }
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
    let build = || Ok(provider.authorize(http.post(&url)).multipart(form()?));
    if streams {
        let response = retrying(provider, || async { open(build()?).await }).await?;
        if crate::llm::sse::is_event_stream(&response) {
            return streamed(response, partials).await;
        }
        let body = response.bytes().await.map_err(|e| SpeechError::Transport(e.to_string()))?;
        return text_of(&body);
    }
    text_of(&send(provider, build).await?)
}

/// The `text` of a JSON transcription.
fn text_of(body: &[u8]) -> Result<String, SpeechError> {
    let answer: Value = serde_json::from_slice(body)
        .map_err(|e| SpeechError::Answer(format!("the transcription is not JSON: {e}")))?;
    answer
        .get("text")
        .and_then(Value::as_str)
        .map(|t| t.trim().to_owned())
        .ok_or_else(|| SpeechError::Answer("the transcription has no text".into()))
}

/// Reads a streamed transcription: its deltas, passed on as the text grows, and its final
/// text (the deltas' sum when the stream ends without a `done` event).
async fn streamed(
    response: reqwest::Response, partials: Option<&mpsc::UnboundedSender<String>>,
) -> Result<String, SpeechError> {
    let mut events = response.bytes_stream().eventsource();
    let mut text = String::new();
    while let Some(event) = events.next().await {
        let event =
            event.map_err(|e| SpeechError::Transport(format!("stream interrupted: {e}")))?;
        if event.data.trim() == "[DONE]" {
            break;
        }
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| SpeechError::Answer(format!("a streamed event is not JSON: {e}")))?;
        match data.get("type").and_then(Value::as_str) {
            Some("transcript.text.delta") => {
                text.push_str(data.get("delta").and_then(Value::as_str).unwrap_or_default());
                if let Some(partials) = partials
                    && !text.trim().is_empty()
                {
                    let _ = partials.send(text.trim().to_owned());
                }
            }
            Some("transcript.text.done") => {
                return Ok(data.get("text").and_then(Value::as_str).unwrap_or(&text).trim().into());
            }
            _ => {}
        }
    }
    Ok(text.trim().to_owned())
}
