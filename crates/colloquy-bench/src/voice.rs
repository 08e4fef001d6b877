//! The voice scenarios: the platform's own time from the end of the user's speech to the first
//! `audio` event of the answer, at one and at 100 concurrent voice conversations; server CPU per
//! second of user audio; memory per live voice conversation. The speech recognizer, the
//! synthesizer and the LLM are zero-latency fakes on loopback, and their own answer time,
//! measured by direct clients in the same run, is taken off each turn.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::live::{Socket, open};
use crate::load;
use crate::node::{self, Node};
use crate::report::{Goal, Row};
use crate::scenarios::Sizes;

/// The rate of the user's audio.
const RATE: u32 = 16_000;
/// Silence that ends a turn at the agent's default eagerness is 700 ms; this is a little more.
const END_SILENCE_MS: u32 = 800;
/// Speech of each turn.
const SPEECH_MS: u32 = 600;

/// An OpenAI-compatible speech server answering at once: "hello" for every utterance, 200 ms
/// of 24 kHz PCM for every sentence.
async fn fake_speech() -> anyhow::Result<String> {
    let pcm: Vec<u8> =
        (0..24_000 / 5).flat_map(|i| (((i % 55) as i16 - 27) * 300).to_le_bytes()).collect();
    let router = Router::new()
        .route(
            "/v1/audio/transcriptions",
            post(|_: axum::body::Bytes| async { axum::Json(json!({"text": "hello"})) }),
        )
        .route(
            "/v1/audio/speech",
            post(move |_: axum::body::Bytes| {
                let pcm = pcm.clone();
                async move { pcm }
            }),
        );
    Ok(format!("{}/v1", node::serve(router).await?))
}

/// A voiced sound: a 180 Hz tone with harmonics.
fn speech(ms: u32) -> Vec<u8> {
    (0..RATE * ms / 1000)
        .flat_map(|i| {
            let t = f64::from(i) / f64::from(RATE);
            let w = |f: f64| (2.0 * std::f64::consts::PI * f * t).sin();
            ((7000.0 * (w(180.0) + 0.5 * w(360.0))) as i16).to_le_bytes()
        })
        .collect()
}

fn silence(ms: u32) -> Vec<u8> {
    vec![0; (RATE * ms / 1000) as usize * 2]
}

fn chunk(bytes: &[u8]) -> Message {
    Message::text(json!({ "user_audio_chunk": STANDARD.encode(bytes) }).to_string())
}

/// Reads until the first `audio` event; answers pings.
async fn first_audio(socket: &mut Socket) -> anyhow::Result<()> {
    while let Some(message) = socket.next().await {
        let Message::Text(text) = message? else { continue };
        let event: Value = serde_json::from_str(&text)?;
        match event["type"].as_str() {
            Some("audio") => return Ok(()),
            Some("error") => anyhow::bail!("the server answered an error: {event}"),
            Some("ping") => {
                let pong = json!({"type": "pong", "event_id": event["ping_event"]["event_id"]});
                socket.send(Message::text(pong.to_string())).await?;
            }
            _ => {}
        }
    }
    anyhow::bail!("the socket closed before the answer's audio")
}

/// One spoken turn: the speech, then the silence that ends it; the time from sending that
/// silence (when the server detects the end of speech) to the answer's first audio, in µs.
async fn spoken_turn(socket: &mut Socket, speech: &[u8], silence: &[u8]) -> anyhow::Result<u64> {
    for piece in speech.chunks(RATE as usize / 10 * 2) {
        socket.send(chunk(piece)).await?;
    }
    let sent = Instant::now();
    socket.send(chunk(silence)).await?;
    first_audio(socket).await?;
    Ok(sent.elapsed().as_micros() as u64)
}

/// The fakes' own time for one turn: a transcription, an LLM answer, a synthesis, in a row.
async fn fakes_alone(speech_url: &str, llm_url: &str, turns: usize) -> anyhow::Result<Vec<u64>> {
    let client = reqwest::Client::new();
    let mut out = Vec::with_capacity(turns);
    let form = || {
        reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(silence(SPEECH_MS)).file_name("u.wav"))
            .text("model", "whisper-1")
    };
    for _ in 0..turns {
        let sent = Instant::now();
        client
            .post(format!("{speech_url}/audio/transcriptions"))
            .multipart(form())
            .send()
            .await?
            .bytes()
            .await?;
        let chat = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hello"}]});
        client
            .post(format!("{llm_url}/chat/completions"))
            .json(&chat)
            .send()
            .await?
            .bytes()
            .await?;
        let tts =
            json!({"model": "tts-1", "input": "Hello", "voice": "alloy", "response_format": "pcm"});
        client.post(format!("{speech_url}/audio/speech")).json(&tts).send().await?.bytes().await?;
        out.push(sent.elapsed().as_micros() as u64);
    }
    out.sort_unstable();
    Ok(out)
}

/// Every voice scenario on one node.
pub async fn voice(binary: &std::path::Path, sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let llm = node::fake_llm(Duration::ZERO).await?;
    let speech_url = fake_speech().await?;
    let node = Node::start(
        binary,
        &[
            ("OPENAI_BASE_URL", llm.clone()),
            ("OPENAI_API_KEY", "sk-bench".into()),
            ("COLLOQUY_ASR_URL", speech_url.clone()),
            ("COLLOQUY_TTS_URL", speech_url.clone()),
            ("COLLOQUY_MAX_CONVERSATIONS_PER_WORKSPACE", "10000".into()),
        ],
    )
    .await?;
    let created = node
        .post(
            &reqwest::Client::new(),
            "/v1/convai/agents/create",
            &json!({"name": "bench voice", "conversation_config": {
                "agent": {"first_message": "", "prompt": {"prompt": "Be brief.", "llm": "gpt-4o-mini"}},
                "asr": {"user_input_audio_format": "pcm_16000"},
                "tts": {"agent_output_audio_format": "pcm_16000"}}}),
        )
        .await?;
    let agent_id = created["agent_id"].as_str().unwrap_or_default().to_owned();
    // Memory first, on the fresh node: later scenarios leave freed memory the allocator reuses.
    let mut rows = vec![memory_per_session(&node, &agent_id, sizes).await?];
    for &sessions in &[1usize, 100] {
        rows.extend(latency(&node, &agent_id, &speech_url, &llm, sessions, sizes).await?);
    }
    rows.push(cpu_per_audio_second(&node, &agent_id, sizes).await?);
    Ok(rows)
}

/// End of speech → first audio at `sessions` concurrent conversations, each taking a turn a
/// second (staggered), minus the fakes' own time.
async fn latency(
    node: &Node, agent_id: &str, speech_url: &str, llm: &str, sessions: usize, sizes: Sizes,
) -> anyhow::Result<Vec<Row>> {
    let turns = (sizes.samples / sessions).clamp(3, 50);
    let mut sockets = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        sockets.push(open(node, agent_id).await?);
    }
    let start = Instant::now() + Duration::from_millis(200);
    let workers = sockets.into_iter().enumerate().map(|(i, mut socket)| {
        let offset = Duration::from_secs(1).mul_f64(i as f64 / sessions as f64);
        tokio::spawn(async move {
            let (speech, silence) = (speech(SPEECH_MS), silence(END_SILENCE_MS));
            let mut out = Vec::with_capacity(turns);
            for k in 0..turns {
                let at = start + offset + Duration::from_millis(1500) * k as u32;
                tokio::time::sleep_until(at.into()).await;
                out.push(spoken_turn(&mut socket, &speech, &silence).await?);
            }
            let _ = socket.close(None).await;
            anyhow::Ok(out)
        })
    });
    let mut all = Vec::new();
    for worker in futures_util::future::join_all(workers).await {
        all.extend(worker??);
    }
    all.sort_unstable();
    let direct = fakes_alone(speech_url, llm, all.len().min(300)).await?;
    let label = format!("voice: end of speech to first audio, {sessions} concurrent conversations");
    let mut rows = Vec::new();
    // The fakes' own time is near constant; their median comes off both quantiles, so one slow
    // direct request does not hide the platform's tail.
    let own = load::quantile(&direct, 0.5);
    for (name, q, goal) in [("p50", 0.5, 5.0), ("p99", 0.99, 20.0)] {
        let turn = load::quantile(&all, q);
        rows.push(Row {
            scenario: format!(
                "{label}: {name} (turn {turn:.2} ms − ASR, LLM and TTS fakes' median {own:.2} ms)"
            ),
            unit: "ms".into(),
            ours: (turn - own).max(0.0),
            baseline: None,
            goal: Goal::AtMost(goal),
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(rows)
}

/// Server CPU per second of user audio: one conversation streams up to a minute of speech and
/// silence (a turn every four seconds) as fast as the server takes it.
async fn cpu_per_audio_second(node: &Node, agent_id: &str, sizes: Sizes) -> anyhow::Result<Row> {
    let mut socket = open(node, agent_id).await?;
    let (speech, silence) = (speech(1000), silence(3000));
    let before = node.cpu_time();
    let seconds = (sizes.samples as u32 / 5).clamp(8, 60) / 4 * 4;
    for _ in 0..seconds / 4 {
        for piece in speech
            .iter()
            .chain(&silence)
            .copied()
            .collect::<Vec<u8>>()
            .chunks(RATE as usize / 10 * 2)
        {
            socket.send(chunk(piece)).await?;
        }
        first_audio(&mut socket).await?;
    }
    let used = node.cpu_time().saturating_sub(before);
    let _ = socket.close(None).await;
    Ok(Row {
        scenario: format!(
            "voice: server CPU per second of user audio ({seconds} s streamed, a turn every 4 s)"
        ),
        unit: "ms".into(),
        ours: used.as_secs_f64() * 1000.0 / f64::from(seconds),
        baseline: None,
        goal: Goal::None,
    })
}

/// Memory of live voice conversations, each having sent a second of audio; the goal allows
/// 256 KB beyond the audio each holds (the recording's second and the detector's pre-roll).
async fn memory_per_session(node: &Node, agent_id: &str, sizes: Sizes) -> anyhow::Result<Row> {
    let count = (sizes.idle_conversations / 5).max(100);
    let before = node.rss_bytes();
    let mut sockets = Vec::with_capacity(count);
    let second = silence(1000);
    for _ in 0..count {
        let mut socket = open(node, agent_id).await?;
        for piece in second.chunks(RATE as usize / 10 * 2) {
            socket.send(chunk(piece)).await?;
        }
        sockets.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_session = node.rss_bytes().saturating_sub(before) as f64 / count as f64;
    // A second of 16-bit audio in the recording, 300 ms of pre-roll in the detector.
    let audio = f64::from(RATE) * 2.0 * 1.3;
    drop(sockets);
    Ok(Row {
        scenario: format!(
            "voice: RSS per live voice conversation ({count} conversations; goal 256 KB beyond its {:.0} KB of audio)",
            audio / 1024.0
        ),
        unit: "KB".into(),
        ours: per_session / 1024.0,
        baseline: None,
        goal: Goal::AtMost(256.0 + audio / 1024.0),
    })
}
