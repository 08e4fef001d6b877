//! Voice conversations over real WebSockets: the user's audio heard, cut into utterances and
//! recognized by a real OpenAI-compatible speech server on loopback; the agent's answers
//! synthesized by it sentence by sentence, resampled and sent as `audio` with alignment;
//! interruptions; bad audio; providers that fail.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use colloquy_engine::voice::format::AudioFormat;
use serde_json::{Value, json};

use crate::fakes::{
    FakeLlm, FakeSpeech, SpeechRequest, Webhook, call, is_analysis, text, with_llm,
};
use crate::helpers::{Backend, TestApp, dual_db, ended_conversation, poll};
use crate::tools::create_tool;
use crate::ws::{self, Socket, connect, next, next_of, send};

/// A voiced sound standing in for speech: a 180 Hz fundamental with harmonics, its loudness
/// rising and falling four times a second like syllables.
fn speech(ms: u32, rate: u32) -> Vec<i16> {
    (0..rate * ms / 1000)
        .map(|i| {
            let t = f64::from(i) / f64::from(rate);
            let w = |f: f64, a: f64| a * (2.0 * std::f64::consts::PI * f * t).sin();
            let syllables = 0.6 + 0.4 * w(4.0, 1.0);
            (7000.0 * syllables * (w(180.0, 1.0) + w(360.0, 0.5) + w(540.0, 0.25))) as i16
        })
        .collect()
}

/// A quiet line.
fn quiet(ms: u32, rate: u32) -> Vec<i16> {
    (0..rate * ms / 1000).map(|i| ((i * 7919) % 41) as i16 - 20).collect()
}

/// Sends `samples` as `user_audio_chunk`s of 100 ms in `format`.
async fn send_audio(socket: &mut Socket, samples: &[i16], format: AudioFormat) {
    for chunk in samples.chunks(format.rate() as usize / 10) {
        let b64 = STANDARD.encode(format.encode(chunk));
        send(socket, json!({ "user_audio_chunk": b64 })).await;
    }
}

/// Says something: silence, speech, and the silence that ends the turn.
async fn speak(socket: &mut Socket, format: AudioFormat) {
    let rate = format.rate();
    let mut audio = quiet(400, rate);
    audio.extend(speech(1200, rate));
    audio.extend(quiet(1000, rate));
    send_audio(socket, &audio, format).await;
}

/// Events until the audio of turn `event_id` adds up to at least `ms` (in `format`); the
/// events, and the audio's length in ms.
async fn until_audio(
    socket: &mut Socket, event_id: u64, ms: u64, format: AudioFormat,
) -> (Vec<Value>, u64) {
    let (mut events, mut samples) = (Vec::new(), 0usize);
    while format.millis(samples) + 5 < ms {
        let e = next(socket).await;
        assert!(e.get("close").is_none(), "closed while waiting for audio: {e} after {events:?}");
        if e["type"] == "audio" && e["audio_event"]["event_id"] == event_id {
            let bytes =
                STANDARD.decode(e["audio_event"]["audio_base_64"].as_str().unwrap()).unwrap();
            samples += format.decode(&bytes).len();
            check_alignment(&e["audio_event"]["alignment"]);
        }
        events.push(e);
    }
    (events, format.millis(samples))
}

/// An `alignment`: as many times as characters, starting in order.
fn check_alignment(alignment: &Value) {
    let chars = alignment["chars"].as_array().unwrap();
    let starts: Vec<u64> = alignment["char_start_times_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(chars.len(), starts.len(), "{alignment}");
    assert_eq!(chars.len(), alignment["char_durations_ms"].as_array().unwrap().len());
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "alignment out of order: {alignment}");
}

async fn voice_agent(app: &TestApp, extra: Value) -> String {
    let mut body = json!({"name": "Voice", "conversation_config": {
        "agent": {"first_message": "Hello! How can I help?", "prompt": {"prompt": "p", "llm": "gpt-4o"}},
        "asr": {"user_input_audio_format": "pcm_16000"},
        "tts": {"agent_output_audio_format": "pcm_22050"},
    }});
    merge(&mut body, extra);
    let (s, b) = app.post("/v1/convai/agents/create", &app.admin_key, &body).await;
    assert_eq!(s, 200, "{b}");
    b["agent_id"].as_str().unwrap().to_owned()
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Opens a voice conversation; the metadata and the greeting's `agent_response`.
async fn open(app: &TestApp, agent_id: &str, init: Value) -> (Socket, Value, Value) {
    let (mut socket, _) = connect(&ws::url(&app.base, &format!("agent_id={agent_id}")), &[]).await;
    let mut data = json!({"type": "conversation_initiation_client_data"});
    merge(&mut data, init);
    send(&mut socket, data).await;
    let meta = next(&mut socket).await;
    assert_eq!(meta["type"], "conversation_initiation_metadata", "{meta}");
    let greeting = next_of(&mut socket, "agent_response").await;
    (socket, meta["conversation_initiation_metadata_event"].clone(), greeting)
}

async fn a_spoken_conversation_with_a_tool(backend: Backend) {
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        if last["role"] == "tool" {
            return text("Your order has shipped. It arrives tomorrow.");
        }
        match last["content"].as_str().unwrap_or_default() {
            "check my order status" => call("order_status", json!({"order": "A1"})),
            other => text(&format!("You said: {other}")),
        }
    })
    .await;
    let voice = FakeSpeech::start(&["check my order status"]).await;
    let app = spawn(backend, &llm, &voice).await;
    let key = &app.admin_key;
    let hook = Webhook::start(200, r#"{"status":"shipped"}"#, Duration::ZERO).await;
    let tool = create_tool(&app, key, json!({"tool_config": {"type": "webhook", "name": "order_status", "description": "Order status",
        "api_schema": {"url": format!("{}/orders", hook.base), "method": "POST",
            "request_body_schema": {"type": "object", "properties": {"order": {"type": "string", "description": "Order"}}}}}})).await;
    let agent_id = voice_agent(
        &app,
        json!({"conversation_config": {"agent": {"prompt": {"tool_ids": [tool]}}}}),
    )
    .await;

    let (mut ws, meta, greeting) = open(&app, &agent_id, json!({})).await;
    assert_eq!(meta["user_input_audio_format"], "pcm_16000");
    assert_eq!(meta["agent_output_audio_format"], "pcm_22050");
    let conversation_id = meta["conversation_id"].as_str().unwrap().to_owned();
    let out = AudioFormat::Pcm(22_050);
    // The greeting is spoken: two sentences, 50 ms a character, resampled from 24 kHz.
    let greeting_id = greeting["agent_response_event"]["event_id"].as_u64().unwrap();
    let (_, ms) = until_audio(&mut ws, greeting_id, 21 * FakeSpeech::MS_PER_CHAR, out).await;
    assert!(ms.abs_diff(21 * FakeSpeech::MS_PER_CHAR) <= 30, "greeting of {ms} ms");

    speak(&mut ws, AudioFormat::Pcm(16_000)).await;
    let transcript = next_of(&mut ws, "user_transcript").await;
    assert_eq!(transcript["user_transcription_event"]["user_transcript"], "check my order status");
    let mut events = Vec::new();
    loop {
        let e = next(&mut ws).await;
        assert!(e.get("close").is_none(), "{e}");
        let done = e["type"] == "agent_response";
        events.push(e);
        if done {
            break;
        }
    }
    let request =
        events.iter().find(|e| e["type"] == "agent_tool_request").expect("the tool is called");
    assert_eq!(request["agent_tool_request"]["tool_name"], "order_status");
    let answer = events.last().unwrap();
    assert_eq!(
        answer["agent_response_event"]["agent_response"],
        "Your order has shipped. It arrives tomorrow."
    );
    let turn_id = answer["agent_response_event"]["event_id"].as_u64().unwrap();
    let expected = 43 * FakeSpeech::MS_PER_CHAR;
    let (_, ms) = until_audio(&mut ws, turn_id, expected, out).await;
    assert!(ms.abs_diff(expected) <= 40, "answer of {ms} ms, expected {expected}");

    // The recognizer got one WAV file of the utterance at the input rate, its silence trimmed.
    let requests = voice.requests();
    let Some(SpeechRequest::Transcription { rate, samples, model, .. }) =
        requests.iter().find(|r| matches!(r, SpeechRequest::Transcription { .. }))
    else {
        panic!("no transcription in {requests:?}")
    };
    assert_eq!((*rate, model.as_str()), (16_000, "whisper-1"));
    let secs = *samples as f64 / 16_000.0;
    assert!((1.2..=2.0).contains(&secs), "utterance of {secs} s");
    // Synthesis went sentence by sentence, asking for OpenAI's pcm.
    let inputs: Vec<String> = requests
        .iter()
        .filter_map(|r| match r {
            SpeechRequest::Synthesis(body) => {
                assert_eq!(body["response_format"], "pcm");
                Some(body["input"].as_str().unwrap().to_owned())
            }
            SpeechRequest::Transcription { .. } => None,
        })
        .collect();
    assert_eq!(
        inputs,
        ["Hello!", "How can I help?", "Your order has shipped.", "It arrives tomorrow."]
    );
    // The LLM heard the words, and the tool call is in the audit log.
    assert!(llm.requests().iter().any(|r| r.to_string().contains("check my order status")));
    assert_eq!(hook.received().len(), 1);
    let (_, calls) = app.get(&format!("/api/tool-calls?executionId={conversation_id}"), key).await;
    assert!(calls.as_array().unwrap().iter().any(|c| c["toolName"] == "order_status"), "{calls}");

    drop(ws);
    let done = ended_conversation(&app, &conversation_id).await;
    let turns = done["transcript"].as_array().unwrap();
    let user = turns.iter().find(|t| t["role"] == "user").unwrap();
    assert_eq!(user["source_medium"], "audio", "{user}");
    assert_eq!(user["message"], "check my order status");
    assert!(user["conversation_turn_metrics"]["metrics"]["convai_asr_trailing_service_latency"]["elapsed_time"].is_number(), "{user}");
    let agent = turns.iter().rev().find(|t| t["role"] == "agent").unwrap();
    assert_eq!(agent["source_medium"], "audio", "{agent}");
    let metrics = &agent["conversation_turn_metrics"]["metrics"];
    assert!(metrics["convai_llm_service_ttfb"]["elapsed_time"].is_number(), "{agent}");
    assert!(metrics["convai_tts_service_ttfb"]["elapsed_time"].is_number(), "{agent}");
    assert_eq!(agent["tool_calls"].as_array().unwrap().len(), 1);
    assert_eq!(done["metadata"]["text_only"], false);

    // The recording: both sides in one MP3 file, as long as the conversation.
    let recorded = poll(Duration::from_secs(10), Duration::from_millis(100), async || {
        let (_, c) = app.get(&format!("/v1/convai/conversations/{conversation_id}"), key).await;
        (c["has_audio"] == true).then_some(c)
    })
    .await
    .expect("the recording is kept");
    assert_eq!(recorded["has_user_audio"], true);
    assert_eq!(recorded["has_response_audio"], true);
    let response = crate::helpers::client()
        .get(app.url(&format!("/v1/convai/conversations/{conversation_id}/audio")))
        .header("xi-api-key", key.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    let mp3 = response.bytes().await.unwrap();
    let secs = mp3_seconds(&mp3);
    assert!((2.5..30.0).contains(&secs), "a recording of {secs} s");
    let (s, _) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/convai/conversations/{conversation_id}"),
            key,
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app.get(&format!("/v1/convai/conversations/{conversation_id}/audio"), key).await;
    assert_eq!(s, 404, "deleting the conversation deletes its recording");
}

/// A server using `llm` and the speech server `voice`.
async fn spawn(backend: Backend, llm: &FakeLlm, voice: &FakeSpeech) -> TestApp {
    let (configure_llm, configure_voice) = (with_llm(llm), voice.configure());
    TestApp::spawn_with(backend, |c| {
        configure_llm(c);
        configure_voice(c);
    })
    .await
}

/// The conversation once it has ended.
/// How long an MP3 file plays.
fn mp3_seconds(mp3: &[u8]) -> f64 {
    let mut decoder = rusty_mp3::Mp3Decoder::new();
    decoder.push(mp3);
    decoder.flush();
    let (mut samples, mut rate) = (0usize, 1u32);
    while let Ok(frame) = decoder.next_frame() {
        rate = frame.sample_rate;
        samples += frame.samples.len() / usize::from(frame.channels.max(1));
    }
    samples as f64 / f64::from(rate)
}
dual_db!(a_spoken_conversation_with_a_tool);

#[tokio::test]
async fn speaking_over_the_agent_interrupts_it() {
    let long = "This answer is long enough to be interrupted well before its end, so the user hears only its start.";
    let llm = FakeLlm::openai(move |_| text(long)).await;
    let voice = FakeSpeech::start(&["stop please"]).await;
    let app = spawn(Backend::Sqlite, &llm, &voice).await;
    let agent_id =
        voice_agent(&app, json!({"conversation_config": {"agent": {"first_message": ""}}})).await;
    let (mut ws, _) = connect(&ws::url(&app.base, &format!("agent_id={agent_id}")), &[]).await;
    send(&mut ws, json!({"type": "conversation_initiation_client_data"})).await;
    let meta = next(&mut ws).await;
    let conversation_id = meta["conversation_initiation_metadata_event"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ws::say(&mut ws, "tell me everything").await;
    let answer = next_of(&mut ws, "agent_response").await;
    let turn_id = answer["agent_response_event"]["event_id"].as_u64().unwrap();
    let first = next_of(&mut ws, "audio").await;
    assert_eq!(first["audio_event"]["event_id"], turn_id);
    // The user lets it speak for a while, then talks over it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    send_audio(&mut ws, &speech(300, 16_000), AudioFormat::Pcm(16_000)).await;
    let interruption = next_of(&mut ws, "interruption").await;
    assert_eq!(interruption["interruption_event"]["event_id"], turn_id);
    let correction = next(&mut ws).await;
    assert_eq!(correction["type"], "agent_response_correction", "{correction}");
    let corrected = &correction["agent_response_correction_event"];
    assert_eq!(corrected["original_agent_response"], long);
    assert_eq!(corrected["event_id"], turn_id);
    let heard = corrected["corrected_agent_response"].as_str().unwrap().to_owned();
    assert!(
        !heard.is_empty() && heard.len() < long.len() / 2 && long.starts_with(&heard),
        "heard {heard:?}"
    );

    // The user's words end their turn and the agent answers them.
    send_audio(&mut ws, &quiet(1000, 16_000), AudioFormat::Pcm(16_000)).await;
    let transcript = next_of(&mut ws, "user_transcript").await;
    assert_eq!(transcript["user_transcription_event"]["user_transcript"], "stop please");
    next_of(&mut ws, "agent_response").await;
    drop(ws);
    let done = ended_conversation(&app, &conversation_id).await;
    let interrupted = done["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "agent" && t["interrupted"] == true)
        .unwrap_or_else(|| panic!("no interrupted turn in {}", done["transcript"]));
    assert_eq!(interrupted["message"], heard.as_str());
    assert_eq!(interrupted["original_message"], long);
    // The LLM's history holds what was heard, not what was meant (the analysis of the ended
    // conversation may already have asked too).
    let last = llm.requests().into_iter().rfind(|r| !is_analysis(r)).unwrap().to_string();
    assert!(last.contains(&heard) && !last.contains("so the user hears only its start"), "{last}");
}

#[tokio::test]
async fn bad_audio_text_only_sessions_and_failing_providers() {
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        match last["content"].as_str().unwrap_or_default() {
            "break your voice" => text("FAIL now."),
            other => text(&format!("You said: {other}")),
        }
    })
    .await;
    let voice = FakeSpeech::start(&["hello there"]).await;
    let app = spawn(Backend::Sqlite, &llm, &voice).await;
    let agent_id = voice_agent(&app, json!({"conversation_config": {
        "asr": {"user_input_audio_format": "ulaw_8000"}, "tts": {"agent_output_audio_format": "ulaw_8000"},
        "conversation": {"client_events": ["audio", "user_transcript", "agent_response", "vad_score", "interruption"]}}})).await;
    let (mut ws, meta, _) = open(&app, &agent_id, json!({})).await;
    assert_eq!(meta["user_input_audio_format"], "ulaw_8000");

    // Bad chunks are refused with the contract's error; the conversation goes on.
    for (chunk, says) in [
        (json!("%%% not base64"), "base64"),
        (json!(STANDARD.encode(vec![0u8; 8000 * 3])), "at most"),
        (json!(17), "base64 string"),
    ] {
        send(&mut ws, json!({ "user_audio_chunk": chunk })).await;
        let error = next_of(&mut ws, "error").await;
        assert_eq!(error["error_event"]["error_type"], "invalid_message", "{error}");
        assert!(error["error_event"]["message"].as_str().unwrap().contains(says), "{error}");
    }

    // µ-law speech is heard, scored (asked for in client_events) and recognized.
    speak(&mut ws, AudioFormat::Ulaw8000).await;
    let mut scores = Vec::new();
    let transcript = loop {
        let e = next(&mut ws).await;
        match e["type"].as_str() {
            Some("vad_score") => scores.push(e["vad_score_event"]["vad_score"].as_f64().unwrap()),
            Some("user_transcript") => break e,
            _ => assert!(e.get("close").is_none(), "{e}"),
        }
    };
    assert_eq!(transcript["user_transcription_event"]["user_transcript"], "hello there");
    assert!(scores.iter().any(|s| *s > 0.9) && scores.iter().any(|s| *s < 0.1), "{scores:?}");
    let answer = next_of(&mut ws, "agent_response").await;
    let turn_id = answer["agent_response_event"]["event_id"].as_u64().unwrap();
    let expected = "You said: hello there".chars().count() as u64 * FakeSpeech::MS_PER_CHAR;
    let (_, ms) = until_audio(&mut ws, turn_id, expected, AudioFormat::Ulaw8000).await;
    assert!(ms.abs_diff(expected) <= 30, "{ms} ms of µ-law");

    // A synthesizer that fails: the contract's error, the text still answered, the
    // conversation kept.
    ws::say(&mut ws, "break your voice").await;
    let mut seen = Vec::new();
    while !(seen.contains(&"agent_response".to_owned()) && seen.contains(&"error".to_owned())) {
        let e = next(&mut ws).await;
        assert!(e.get("close").is_none(), "{e}");
        if e["type"] == "error" {
            assert_eq!(e["error_event"]["error_type"], "tts_cascade_error", "{e}");
        }
        seen.push(e["type"].as_str().unwrap_or_default().to_owned());
    }
    let answer = ws::turn(&mut ws, "still there?").await;
    assert_eq!(
        answer.last().unwrap()["agent_response_event"]["agent_response"],
        "You said: still there?"
    );
    drop(ws);

    // A text-only conversation refuses audio and answers text as before.
    let (mut ws, meta, _) = open(
        &app,
        &agent_id,
        json!({"conversation_config_override": {"conversation": {"text_only": true}}}),
    )
    .await;
    let text_only_id = meta["conversation_id"].as_str().unwrap().to_owned();
    send(&mut ws, json!({ "user_audio_chunk": STANDARD.encode([0u8; 160]) })).await;
    let error = next_of(&mut ws, "error").await;
    assert_eq!(error["error_event"]["error_type"], "value_error", "{error}");
    let events = ws::turn(&mut ws, "text please").await;
    assert!(events.iter().all(|e| e["type"] != "audio"), "{events:?}");
    assert_eq!(
        events.last().unwrap()["agent_response_event"]["agent_response"],
        "You said: text please"
    );
    drop(ws);
    let key = &app.admin_key;
    let done = ended_conversation(&app, &text_only_id).await;
    assert_eq!(done["has_audio"], false, "a text-only conversation has no recording");
    assert_eq!(done["metadata"]["text_only"], true);
    let (s, body) = app.get(&format!("/v1/convai/conversations/{text_only_id}/audio"), key).await;
    assert_eq!(s, 404, "{body}");
}

/// With no recognizer configured, speech is an `asr_transcription_error`; with no synthesizer
/// configured, the system's espeak-ng speaks (`.ci/run` installs it).
#[tokio::test]
async fn no_recognizer_is_an_asr_error_and_espeak_speaks_by_default() {
    let llm = FakeLlm::openai(|_| text("Fine, thank you.")).await;
    let app = TestApp::spawn_with(Backend::Sqlite, with_llm(&llm)).await;
    let agent_id = voice_agent(&app, json!({})).await;
    let (mut ws, _, _) = open(&app, &agent_id, json!({})).await;
    speak(&mut ws, AudioFormat::Pcm(16_000)).await;
    let error = next_of(&mut ws, "error").await;
    assert_eq!(error["error_event"]["error_type"], "asr_transcription_error", "{error}");
    assert_eq!(error["error_event"]["code"], 1002);
    let answer = ws::turn(&mut ws, "typed").await;
    let answer = answer.last().unwrap();
    assert_eq!(answer["agent_response_event"]["agent_response"], "Fine, thank you.");
    let turn_id = answer["agent_response_event"]["event_id"].as_u64().unwrap();
    // espeak says it in about a second; the audio arrives resampled to the output format.
    let (_, ms) = until_audio(&mut ws, turn_id, 600, AudioFormat::Pcm(22_050)).await;
    assert!((600..3000).contains(&ms), "{ms} ms of espeak");
}

/// The ElevenLabs kind: speech-to-text and text-to-speech with the operator's key, the voice
/// chosen by a route from the agent's `tts.voice_id`.
#[tokio::test]
async fn elevenlabs_providers_and_routes_by_voice() {
    use colloquy_engine::voice::{ProviderKind, SpeechProvider, SpeechRoute};
    let llm = FakeLlm::openai(|_| text("Certainly.")).await;
    let voice = FakeSpeech::start(&["hello there"]).await;
    let configure_llm = with_llm(&llm);
    let base = voice.base.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        configure_llm(c);
        for side in [&mut c.asr, &mut c.tts] {
            let mut provider = SpeechProvider::new(ProviderKind::Elevenlabs, Some(base.clone()));
            provider.api_key = Some("xi-operator".into());
            side.providers.insert("eleven".into(), provider);
            side.retries = 0;
        }
        c.asr.default_provider = Some("eleven".into());
        c.tts.routes.push(SpeechRoute {
            voice_id: Some("rachel*".into()),
            provider: "eleven".into(),
            voice: Some("21m00Tcm4TlvDq8ikWAM".into()),
            ..Default::default()
        });
    })
    .await;
    let agent_id = voice_agent(
        &app,
        json!({"conversation_config": {"agent": {"first_message": ""}, "tts": {"voice_id": "rachel-warm", "model_id": "eleven_turbo_v2"}}}),
    )
    .await;
    let (mut ws, _) = connect(&ws::url(&app.base, &format!("agent_id={agent_id}")), &[]).await;
    send(&mut ws, json!({"type": "conversation_initiation_client_data"})).await;
    next_of(&mut ws, "conversation_initiation_metadata").await;
    speak(&mut ws, AudioFormat::Pcm(16_000)).await;
    let transcript = next_of(&mut ws, "user_transcript").await;
    assert_eq!(transcript["user_transcription_event"]["user_transcript"], "hello there");
    let answer = next_of(&mut ws, "agent_response").await;
    let turn_id = answer["agent_response_event"]["event_id"].as_u64().unwrap();
    let expected = "Certainly.".len() as u64 * FakeSpeech::MS_PER_CHAR;
    let (_, ms) = until_audio(&mut ws, turn_id, expected, AudioFormat::Pcm(22_050)).await;
    assert!(ms.abs_diff(expected) <= 30, "{ms} ms");
    let requests = voice.requests();
    assert!(
        requests.iter().any(|r| matches!(r, SpeechRequest::Transcription { model, key, .. }
        if model == "scribe_v1" && key.as_deref() == Some("xi-operator"))),
        "{requests:?}"
    );
    let synthesis = requests
        .iter()
        .find_map(|r| match r {
            SpeechRequest::Synthesis(body) => Some(body.clone()),
            SpeechRequest::Transcription { .. } => None,
        })
        .unwrap();
    assert_eq!(synthesis["voice_id"], "21m00Tcm4TlvDq8ikWAM", "the route's voice: {synthesis}");
    assert_eq!(synthesis["model_id"], "eleven_turbo_v2", "the agent's own model: {synthesis}");
    assert_eq!(synthesis["xi-api-key"], "xi-operator");
    assert_eq!(synthesis["text"], "Certainly.");
}

/// `language_detection` switches the conversation's language, and its speech to the agent's
/// supported voice for that language, from the same answer on.
#[tokio::test]
async fn a_language_switch_speaks_in_the_supported_voice() {
    use colloquy_engine::voice::{ProviderKind, SpeechProvider};
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        if last["role"] == "tool" {
            text("Bonjour.")
        } else {
            call("language_detection", json!({"language": "fr"}))
        }
    })
    .await;
    let voice = FakeSpeech::start(&["bonjour"]).await;
    let configure_llm = with_llm(&llm);
    let base = voice.base.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        configure_llm(c);
        for side in [&mut c.asr, &mut c.tts] {
            side.providers.insert(
                "eleven".into(),
                SpeechProvider::new(ProviderKind::Elevenlabs, Some(base.clone())),
            );
            side.default_provider = Some("eleven".into());
            side.retries = 0;
        }
    })
    .await;
    let agent_id = voice_agent(
        &app,
        json!({"conversation_config": {
            "agent": {"first_message": "", "prompt": {"built_in_tools": {"language_detection": {"name": "language_detection", "description": "Switch language", "params": {"system_tool_type": "language_detection"}}}}},
            "tts": {"voice_id": "en-voice", "supported_voices": [{"label": "French", "voice_id": "fr-voice", "language": "fr", "description": "French voice"}]}}}),
    )
    .await;
    let (mut ws, _) = connect(&ws::url(&app.base, &format!("agent_id={agent_id}")), &[]).await;
    send(&mut ws, json!({"type": "conversation_initiation_client_data"})).await;
    next_of(&mut ws, "conversation_initiation_metadata").await;
    speak(&mut ws, AudioFormat::Pcm(16_000)).await;
    let answer = next_of(&mut ws, "agent_response").await;
    assert_eq!(answer["agent_response_event"]["agent_response"], "Bonjour.");
    let turn_id = answer["agent_response_event"]["event_id"].as_u64().unwrap();
    let expected = "Bonjour.".len() as u64 * FakeSpeech::MS_PER_CHAR;
    until_audio(&mut ws, turn_id, expected, AudioFormat::Pcm(22_050)).await;
    let voices: Vec<Value> = voice
        .requests()
        .into_iter()
        .filter_map(|r| match r {
            SpeechRequest::Synthesis(body) => Some(body["voice_id"].clone()),
            SpeechRequest::Transcription { .. } => None,
        })
        .collect();
    assert_eq!(voices, [json!("fr-voice")], "spoken in the French voice");
}

/// While a tool with `disable_interruptions` runs, the user's speech does not stop the agent's
/// speech; with `transcribe_on_disabled_interruptions`, what they said is answered after the
/// turn.
#[tokio::test]
async fn an_uninterruptible_tool_holds_interruptions_while_it_runs() {
    use crate::fakes::Reply;
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        if last["role"] == "tool" {
            return text("Found it.");
        }
        match last["content"].as_str().unwrap_or_default() {
            "look it up" => Reply::TextThenCalls(
                "Let me check that for you, it takes a moment. ".into(),
                vec![("slow_lookup".into(), json!({"q": "order"}))],
            ),
            other => text(&format!("You said: {other}")),
        }
    })
    .await;
    let voice = FakeSpeech::start(&["hello there"]).await;
    let app = spawn(Backend::Sqlite, &llm, &voice).await;
    let key = &app.admin_key;
    let hook = Webhook::start(200, r#"{"found":true}"#, Duration::from_millis(1500)).await;
    let tool = create_tool(&app, key, json!({"tool_config": {"type": "webhook", "name": "slow_lookup", "description": "Slow",
        "disable_interruptions": true,
        "api_schema": {"url": format!("{}/slow", hook.base), "method": "POST",
            "request_body_schema": {"type": "object", "properties": {"q": {"type": "string", "description": "q"}}}}}})).await;
    let agent_id = voice_agent(&app, json!({"conversation_config": {"agent": {"first_message": "", "prompt": {"tool_ids": [tool]}},
        "turn": {"transcribe_on_disabled_interruptions": true}}})).await;
    let (mut ws, _) = connect(&ws::url(&app.base, &format!("agent_id={agent_id}")), &[]).await;
    send(&mut ws, json!({"type": "conversation_initiation_client_data"})).await;
    next_of(&mut ws, "conversation_initiation_metadata").await;
    ws::say(&mut ws, "look it up").await;
    // The first sentence is spoken while the tool runs; the user talks over it.
    next_of(&mut ws, "agent_tool_request").await;
    let first = next_of(&mut ws, "audio").await;
    assert!(first.get("close").is_none(), "{first}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut audio = speech(400, 16_000);
    audio.extend(quiet(1000, 16_000));
    send_audio(&mut ws, &audio, AudioFormat::Pcm(16_000)).await;
    let mut seen = Vec::new();
    loop {
        let e = next(&mut ws).await;
        assert!(e.get("close").is_none(), "{e}");
        let kind = e["type"].as_str().unwrap_or_default().to_owned();
        if kind == "agent_response" {
            assert_eq!(
                e["agent_response_event"]["agent_response"],
                "Let me check that for you, it takes a moment. Found it."
            );
            break;
        }
        seen.push(kind);
    }
    assert!(!seen.iter().any(|k| k == "interruption"), "interrupted during the tool: {seen:?}");
    // What the user said is heard after the turn.
    let transcript = next_of(&mut ws, "user_transcript").await;
    assert_eq!(transcript["user_transcription_event"]["user_transcript"], "hello there");
}

/// Opens a voice conversation with an agent that has no first message; its id.
async fn open_silent(app: &TestApp, agent_id: &str) -> (Socket, String) {
    let (mut ws, _) = connect(&ws::url(&app.base, &format!("agent_id={agent_id}")), &[]).await;
    send(&mut ws, json!({"type": "conversation_initiation_client_data", "dynamic_variables": {"name": "Ada"}})).await;
    let meta = next_of(&mut ws, "conversation_initiation_metadata").await;
    let id = meta["conversation_initiation_metadata_event"]["conversation_id"].as_str().unwrap();
    (ws, id.to_owned())
}

/// Speech of `ms`, then the silence that ends it.
async fn utter(ws: &mut Socket, ms: u32) {
    let mut audio = speech(ms, 16_000);
    audio.extend(quiet(1000, 16_000));
    send_audio(ws, &audio, AudioFormat::Pcm(16_000)).await;
}

/// Event types until one of `kind`, which is returned last.
async fn types_until(ws: &mut Socket, kind: &str) -> (Vec<String>, Value) {
    let mut seen = Vec::new();
    loop {
        let e = next(ws).await;
        assert!(e.get("close").is_none(), "closed: {e} after {seen:?}");
        if e["type"] == kind {
            return (seen, e);
        }
        seen.push(e["type"].as_str().unwrap_or_default().to_owned());
    }
}

/// `turn.interruption_ignore_terms`: a backchannel the agent talks through ("gotcha") does not
/// interrupt it and is not a turn; other words over it interrupt it once recognized; speech too
/// long to be a backchannel interrupts before its words are known.
#[tokio::test]
async fn ignore_terms_do_not_interrupt_the_agent() {
    let long = "This answer is long enough to be talked over twice and still go on speaking for several more seconds after that.";
    let llm = FakeLlm::openai(move |_| text(long)).await;
    let voice = FakeSpeech::start(&["Gotcha.", "wait a moment", "and another thing"]).await;
    let app = spawn(Backend::Sqlite, &llm, &voice).await;
    let agent_id = voice_agent(
        &app,
        json!({"conversation_config": {"agent": {"first_message": ""},
        "turn": {"interruption_ignore_terms": ["gotcha", "uh-huh"]}}}),
    )
    .await;
    let (mut ws, conversation_id) = open_silent(&app, &agent_id).await;
    ws::say(&mut ws, "tell me everything").await;
    let turn_id =
        next_of(&mut ws, "agent_response").await["agent_response_event"]["event_id"].clone();
    next_of(&mut ws, "audio").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    utter(&mut ws, 300).await;
    // "Gotcha." is recognized, and the agent goes on: more audio, no interruption.
    let transcriptions = || {
        voice.requests().iter().filter(|r| matches!(r, SpeechRequest::Transcription { .. })).count()
    };
    poll(Duration::from_secs(5), Duration::from_millis(20), async || {
        (transcriptions() == 1).then_some(())
    })
    .await
    .expect("recognized");
    tokio::time::sleep(Duration::from_millis(200)).await;
    utter(&mut ws, 300).await;
    let (seen, interruption) = types_until(&mut ws, "interruption").await;
    assert_eq!(interruption["interruption_event"]["event_id"], turn_id);
    assert!(!seen.iter().any(|k| k == "user_transcript"), "{seen:?}");
    let correction = next_of(&mut ws, "agent_response_correction").await;
    let heard = correction["agent_response_correction_event"]["corrected_agent_response"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(long.starts_with(&heard) && heard.len() < long.len(), "{heard}");
    let transcript = next_of(&mut ws, "user_transcript").await;
    assert_eq!(transcript["user_transcription_event"]["user_transcript"], "wait a moment");
    let second =
        next_of(&mut ws, "agent_response").await["agent_response_event"]["event_id"].clone();
    next_of(&mut ws, "audio").await;
    // Two seconds of speech over the agent interrupt it before the speech ends.
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_audio(&mut ws, &speech(2000, 16_000), AudioFormat::Pcm(16_000)).await;
    let interruption = next_of(&mut ws, "interruption").await;
    assert_eq!(interruption["interruption_event"]["event_id"], second);
    assert_eq!(transcriptions(), 2, "interrupted before the words were recognized");
    send_audio(&mut ws, &quiet(1000, 16_000), AudioFormat::Pcm(16_000)).await;
    let transcript = next_of(&mut ws, "user_transcript").await;
    assert_eq!(transcript["user_transcription_event"]["user_transcript"], "and another thing");
    next_of(&mut ws, "agent_response").await;
    drop(ws);
    let done = ended_conversation(&app, &conversation_id).await;
    let said: Vec<&str> = done["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["role"] == "user")
        .map(|t| t["message"].as_str().unwrap())
        .collect();
    assert_eq!(said, ["tell me everything", "wait a moment", "and another thing"]);
}

/// Speech over a first message that may not be interrupted is not heard (the default of
/// `transcribe_on_disabled_interruptions`); speech after it is.
#[tokio::test]
async fn speech_over_an_uninterruptible_greeting_is_dropped() {
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        text(&format!("You said: {}", last["content"].as_str().unwrap_or_default()))
    })
    .await;
    let voice = FakeSpeech::start(&["hello there"]).await;
    let app = spawn(Backend::Sqlite, &llm, &voice).await;
    let greeting =
        "Welcome. This greeting takes a few seconds to say, and nobody may cut it short.";
    let agent_id = voice_agent(
        &app,
        json!({"conversation_config": {"agent": {"first_message": greeting,
        "disable_first_message_interruptions": true}}}),
    )
    .await;
    let (mut ws, _, _) = open(&app, &agent_id, json!({})).await;
    next_of(&mut ws, "audio").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    utter(&mut ws, 400).await;
    // The greeting plays to its end (80 characters, 50 ms each); then the user speaks.
    tokio::time::sleep(Duration::from_millis(80 * 50)).await;
    assert!(
        voice.requests().iter().all(|r| !matches!(r, SpeechRequest::Transcription { .. })),
        "the speech over the greeting was sent to the recognizer"
    );
    utter(&mut ws, 400).await;
    let (seen, transcript) = types_until(&mut ws, "user_transcript").await;
    assert!(!seen.iter().any(|k| k == "interruption"), "{seen:?}");
    assert_eq!(transcript["user_transcription_event"]["user_transcript"], "hello there");
    let answer = next_of(&mut ws, "agent_response").await;
    assert_eq!(answer["agent_response_event"]["agent_response"], "You said: hello there");
}

/// A recognizer that streams (`stream = true`) is asked for its streamed answer, and the text
/// so far reaches the client as `tentative_user_transcript`, under the final transcript's id.
#[tokio::test]
async fn a_streaming_recognizer_sends_tentative_transcripts() {
    let llm = FakeLlm::openai(|_| text("Let me look.")).await;
    let voice = FakeSpeech::start(&["check my order status"]).await;
    let (configure_llm, configure_voice) = (with_llm(&llm), voice.configure());
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        configure_llm(c);
        configure_voice(c);
        c.asr.providers.get_mut("fake").unwrap().stream = true;
    })
    .await;
    let agent_id =
        voice_agent(&app, json!({"conversation_config": {"agent": {"first_message": ""}}})).await;
    let (mut ws, _) = open_silent(&app, &agent_id).await;
    speak(&mut ws, AudioFormat::Pcm(16_000)).await;
    let mut tentative = Vec::new();
    let transcript = loop {
        let e = next(&mut ws).await;
        match e["type"].as_str().unwrap() {
            "tentative_user_transcript" => {
                tentative.push(e["tentative_user_transcription_event"].clone())
            }
            "user_transcript" => break e["user_transcription_event"].clone(),
            _ => {}
        }
    };
    let texts: Vec<&str> =
        tentative.iter().map(|t| t["user_transcript"].as_str().unwrap()).collect();
    assert_eq!(texts, ["check", "check my", "check my order", "check my order status"]);
    assert_eq!(transcript["user_transcript"], "check my order status");
    assert!(
        tentative.iter().all(|t| t["event_id"] == transcript["event_id"]),
        "{tentative:?} {transcript}"
    );
    let answer = next_of(&mut ws, "agent_response").await;
    assert_eq!(answer["agent_response_event"]["agent_response"], "Let me look.");
}

/// `turn.soft_timeout_config`: while the LLM is slow to start its answer, the fillers are spoken
/// (dynamic variables filled) every `timeout_seconds`, at most `max_soft_timeouts_per_generation`
/// times, before the answer's own speech; they are not part of the answer.
#[tokio::test]
async fn slow_answers_get_the_soft_timeout_fillers() {
    use crate::fakes::Reply;
    let llm = FakeLlm::openai(|_| {
        Reply::After(Duration::from_millis(1500), Box::new(text("Here it is.")))
    })
    .await;
    let voice = FakeSpeech::start(&[]).await;
    let app = spawn(Backend::Sqlite, &llm, &voice).await;
    let agent_id = voice_agent(&app, json!({"conversation_config": {"agent": {"first_message": ""},
        "turn": {"soft_timeout_config": {"timeout_seconds": 0.3, "message": "Hmm, {{name}}.",
            "additional_soft_timeout_messages": ["Still looking."], "max_soft_timeouts_per_generation": 3}}}})).await;
    let (mut ws, conversation_id) = open_silent(&app, &agent_id).await;
    ws::say(&mut ws, "find it").await;
    let (seen, answer) = types_until(&mut ws, "agent_response").await;
    assert_eq!(answer["agent_response_event"]["agent_response"], "Here it is.");
    assert!(seen.iter().any(|k| k == "audio"), "fillers are spoken before the answer: {seen:?}");
    next_of(&mut ws, "audio").await;
    let inputs = synthesized(&voice);
    assert_eq!(inputs, ["Hmm, Ada.", "Still looking.", "Still looking.", "Here it is."]);
    drop(ws);
    let done = ended_conversation(&app, &conversation_id).await;
    let agent = done["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|t| t["role"] == "agent")
        .unwrap()
        .clone();
    assert_eq!(agent["message"], "Here it is.");
}

/// `turn.spelling_patience`: an utterance that ends mid-spelling waits for the rest, which joins
/// it in one turn; with "off", each utterance is a turn.
#[tokio::test]
async fn spelled_utterances_wait_for_the_rest() {
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        text(&format!("You said: {}", last["content"].as_str().unwrap_or_default()))
    })
    .await;
    let voice = FakeSpeech::start(&["my code is 4 7", "1 9", "my code is 4 7", "1 9"]).await;
    let app = spawn(Backend::Sqlite, &llm, &voice).await;
    for (patience, first_turn) in [("auto", "my code is 4 7 1 9"), ("off", "my code is 4 7")] {
        let agent_id = voice_agent(
            &app,
            json!({"conversation_config": {"agent": {"first_message": ""},
            "turn": {"spelling_patience": patience}}}),
        )
        .await;
        let (mut ws, _) = open_silent(&app, &agent_id).await;
        utter(&mut ws, 600).await;
        utter(&mut ws, 600).await;
        let (seen, transcript) = types_until(&mut ws, "user_transcript").await;
        assert_eq!(
            transcript["user_transcription_event"]["user_transcript"], first_turn,
            "{patience}"
        );
        assert_eq!(
            seen.contains(&"tentative_user_transcript".to_owned()),
            patience == "auto",
            "{seen:?}"
        );
        let answer = next_of(&mut ws, "agent_response").await;
        assert_eq!(
            answer["agent_response_event"]["agent_response"],
            format!("You said: {first_turn}")
        );
    }
}

/// `turn.retranscribe_on_turn_timeout`: when the turn timeout passes with no speech detected,
/// the audio of the silence is recognized, and words found in it are the user's turn.
#[tokio::test]
async fn quiet_words_are_found_at_the_turn_timeout() {
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        text(&format!("You said: {}", last["content"].as_str().unwrap_or_default()))
    })
    .await;
    let voice = FakeSpeech::start(&["are you there"]).await;
    let app = spawn(Backend::Sqlite, &llm, &voice).await;
    let agent_id = voice_agent(&app, json!({"conversation_config": {"agent": {"first_message": ""},
        "turn": {"turn_timeout": 1, "initial_wait_time": 1, "retranscribe_on_turn_timeout": true}}})).await;
    let (mut ws, _) = open_silent(&app, &agent_id).await;
    send_audio(&mut ws, &quiet(800, 16_000), AudioFormat::Pcm(16_000)).await;
    let transcript = next_of(&mut ws, "user_transcript").await;
    assert_eq!(transcript["user_transcription_event"]["user_transcript"], "are you there");
    let answer = next_of(&mut ws, "agent_response").await;
    assert_eq!(answer["agent_response_event"]["agent_response"], "You said: are you there");
    let Some(SpeechRequest::Transcription { samples, .. }) = voice.requests().into_iter().next()
    else {
        panic!("no transcription")
    };
    assert_eq!(samples, 800 * 16, "the silence's audio was recognized");
}

/// With `use_llm_generated_message`, the agent's LLM writes the filler from the conversation,
/// following `llm_generated_message_prompt_override` (dynamic variables filled).
#[tokio::test]
async fn generated_fillers_are_written_by_the_agents_llm() {
    use crate::fakes::Reply;
    let llm = FakeLlm::openai(|req: &Value| {
        let system = req["messages"][0]["content"].as_str().unwrap_or_default().to_owned();
        if system.starts_with("Write a filler") {
            return text("One moment while I check your order.");
        }
        Reply::After(Duration::from_millis(1200), Box::new(text("Here it is.")))
    })
    .await;
    let voice = FakeSpeech::start(&[]).await;
    let app = spawn(Backend::Sqlite, &llm, &voice).await;
    let agent_id = voice_agent(
        &app,
        json!({"conversation_config": {"agent": {"first_message": ""},
        "turn": {"soft_timeout_config": {"timeout_seconds": 0.3, "use_llm_generated_message": true,
            "llm_generated_message_prompt_override": "Write a filler for {{name}}."}}}}),
    )
    .await;
    let (mut ws, _) = open_silent(&app, &agent_id).await;
    ws::say(&mut ws, "where is my order").await;
    let (seen, _) = types_until(&mut ws, "agent_response").await;
    assert!(seen.iter().any(|k| k == "audio"), "{seen:?}");
    next_of(&mut ws, "audio").await;
    let inputs = synthesized(&voice);
    assert_eq!(inputs, ["One moment while I check your order.", "Here it is."]);
    let asked =
        llm.requests().into_iter().find(|r| r.to_string().contains("Write a filler")).unwrap();
    assert_eq!(asked["messages"][0]["content"], "Write a filler for Ada.");
    assert!(
        asked["messages"][1]["content"].as_str().unwrap().contains("user: where is my order"),
        "{asked}"
    );
}

/// The texts `voice` was asked to synthesize, in order.
fn synthesized(voice: &FakeSpeech) -> Vec<String> {
    voice
        .requests()
        .iter()
        .filter_map(|r| match r {
            SpeechRequest::Synthesis(body) => Some(body["input"].as_str().unwrap().to_owned()),
            SpeechRequest::Transcription { .. } => None,
        })
        .collect()
}

/// The agent's hold audio plays while a slow tool keeps the caller waiting: after a second,
/// on a loop, as `audio` without alignment, and stops when the tool answers.
#[tokio::test]
async fn hold_audio_plays_while_a_slow_tool_runs() {
    use reqwest::multipart::{Form, Part};
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        if last["role"] == "tool" {
            return text("Found it.");
        }
        match last["content"].as_str().unwrap_or_default() {
            "look it up" => call("slow_lookup", json!({"q": "order"})),
            other => text(&format!("You said: {other}")),
        }
    })
    .await;
    let voice = FakeSpeech::start(&["hello there"]).await;
    let app = spawn(Backend::Sqlite, &llm, &voice).await;
    let key = &app.admin_key;
    let hook = Webhook::start(200, r#"{"found":true}"#, Duration::from_millis(2500)).await;
    let tool = create_tool(&app, key, json!({"tool_config": {"type": "webhook", "name": "slow_lookup", "description": "Slow",
        "api_schema": {"url": format!("{}/slow", hook.base), "method": "POST",
            "request_body_schema": {"type": "object", "properties": {"q": {"type": "string", "description": "q"}}}}}})).await;
    let agent_id = voice_agent(&app, json!({"conversation_config": {"agent": {"first_message": "", "prompt": {"tool_ids": [tool]}},
        "tts": {"agent_output_audio_format": "pcm_16000"}}})).await;
    // Half a second of a 300 Hz tone, at the conversation's output rate.
    let clip: Vec<i16> = (0..8000)
        .map(|i| {
            (6000.0 * (2.0 * std::f64::consts::PI * 300.0 * f64::from(i) / 16_000.0).sin()) as i16
        })
        .collect();
    let wav = colloquy_engine::voice::wav::encode(&clip, 16_000);
    let form = Form::new().part("hold_audio_file", Part::bytes(wav).file_name("hold.wav"));
    let r = app
        .client
        .post(app.url(&format!("/v1/convai/agents/{agent_id}/hold-audio")))
        .header("xi-api-key", key.as_str())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (mut ws, _) = connect(&ws::url(&app.base, &format!("agent_id={agent_id}")), &[]).await;
    send(&mut ws, json!({"type": "conversation_initiation_client_data"})).await;
    next_of(&mut ws, "conversation_initiation_metadata").await;
    ws::say(&mut ws, "look it up").await;
    next_of(&mut ws, "agent_tool_request").await;
    let started = std::time::Instant::now();
    let mut held: Vec<(Duration, Vec<i16>)> = Vec::new();
    loop {
        let e = next(&mut ws).await;
        assert!(e.get("close").is_none(), "{e}");
        match e["type"].as_str().unwrap_or_default() {
            "audio" if e["audio_event"]["alignment"].is_null() => {
                let bytes =
                    STANDARD.decode(e["audio_event"]["audio_base_64"].as_str().unwrap()).unwrap();
                held.push((started.elapsed(), AudioFormat::Pcm(16_000).decode(&bytes)));
            }
            "agent_tool_response" => break,
            _ => {}
        }
    }
    assert!(held.len() >= 3, "the clip played while the tool ran: {} chunks", held.len());
    assert!(held[0].0 >= Duration::from_millis(900), "not before a second: {:?}", held[0].0);
    let played: Vec<i16> = held.iter().flat_map(|(_, s)| s.clone()).collect();
    assert_eq!(&played[..8000], &clip[..], "the clip as uploaded");
    assert_eq!(&played[8000..12_000], &clip[..4000], "then again from its start");
    // The answer after the tool is speech, with alignment; the clip has stopped.
    let mut after = Vec::new();
    while let Ok(e) = tokio::time::timeout(Duration::from_millis(1500), next(&mut ws)).await {
        if e["type"] == "audio" {
            after.push(!e["audio_event"]["alignment"].is_null());
        }
    }
    assert!(after.contains(&true), "the answer was spoken: {after:?}");
    assert!(after.iter().filter(|aligned| !**aligned).count() <= 1, "the clip went on: {after:?}");
}
