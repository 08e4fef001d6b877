//! Real HTTP servers on loopback standing in for what lies outside the project: an
//! OpenAI-compatible LLM and an Anthropic one (deterministic, scripted per test, streaming over
//! SSE), and webhook targets that record what they receive.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use colloquy::config::Config;
use colloquy_engine::llm::router::{ProviderConfig, ProviderKind};
use serde_json::{Value, json};

/// What the fake LLM answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Streams this text.
    Text(String),
    /// Asks for these calls: (name, arguments).
    Calls(Vec<(String, Value)>),
    /// Streams this text, then asks for these calls, in one answer.
    TextThenCalls(String, Vec<(String, Value)>),
    /// Answers this HTTP status.
    Status(u16),
    /// Waits, then answers.
    After(Duration, Box<Reply>),
    /// Sends these server-sent events as they are: a stream cut short, malformed JSON.
    Raw(Vec<String>),
}

pub fn text(s: &str) -> Reply {
    Reply::Text(s.to_owned())
}

/// Whether a request to the fake LLM is a post-call analysis (a forced `record_analysis`
/// call) rather than a conversation's turn or a judge's verdict.
pub fn is_analysis(req: &Value) -> bool {
    req["tool_choice"]["function"]["name"] == "record_analysis"
}

pub fn call(name: &str, args: Value) -> Reply {
    Reply::Calls(vec![(name.to_owned(), args)])
}

type Script = dyn Fn(&Value) -> Reply + Send + Sync;

#[derive(Clone)]
struct LlmState {
    script: Arc<Script>,
    /// Writes a reply in the provider's streaming format.
    stream: fn(Reply) -> Vec<String>,
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

/// A scripted LLM server.
pub struct FakeLlm {
    pub base: String,
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

impl FakeLlm {
    /// OpenAI-compatible, answering each request with `script(request body)`.
    pub async fn openai(script: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> FakeLlm {
        Self::serve("/v1/chat/completions", openai_events, script).await
    }

    /// OpenAI-compatible: calls tool `name` with `args`, and says `answer` once the result is in.
    pub async fn call_then(name: &str, args: Value, answer: &str) -> FakeLlm {
        let (name, answer) = (name.to_owned(), answer.to_owned());
        FakeLlm::openai(move |req: &Value| {
            if req["messages"].as_array().unwrap().last().unwrap()["role"] == "tool" {
                text(&answer)
            } else {
                call(&name, args.clone())
            }
        })
        .await
    }

    /// OpenAI-compatible, answering with `replies` in order (the last one repeats).
    pub async fn openai_seq(replies: Vec<Reply>) -> FakeLlm {
        let replies = Arc::new(replies);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        FakeLlm::openai(move |_| {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            replies[i.min(replies.len() - 1)].clone()
        })
        .await
    }

    /// Anthropic Messages API.
    pub async fn anthropic(script: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> FakeLlm {
        Self::serve("/v1/messages", anthropic_events, script).await
    }

    async fn serve(
        path: &str, stream: fn(Reply) -> Vec<String>,
        script: impl Fn(&Value) -> Reply + Send + Sync + 'static,
    ) -> FakeLlm {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = LlmState { script: Arc::new(script), stream, requests: requests.clone() };
        let router = Router::new().route(path, post(llm_handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router.with_state(state)).await;
        });
        FakeLlm { base, requests }
    }

    /// Bodies of the requests received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().iter().map(|(_, b)| b.clone()).collect()
    }

    /// Headers of the requests received so far.
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.requests.lock().unwrap().iter().map(|(h, _)| h.clone()).collect()
    }
}

async fn resolve(reply: Reply) -> Result<Reply, u16> {
    let mut reply = reply;
    loop {
        match reply {
            Reply::After(d, next) => {
                tokio::time::sleep(d).await;
                reply = *next;
            }
            Reply::Status(s) => return Err(s),
            other => return Ok(other),
        }
    }
}

fn sse(events: Vec<String>) -> Response {
    let body = events.into_iter().map(|e| format!("{e}\n\n")).collect::<String>();
    ([("content-type", "text/event-stream")], body).into_response()
}

/// Records the request and answers it with the script's reply, streamed, or with the
/// scripted failure status.
async fn llm_handler(
    State(state): State<LlmState>, headers: HeaderMap, body: axum::Json<Value>,
) -> Response {
    let reply = (state.script)(&body.0);
    state.requests.lock().unwrap().push((headers, body.0));
    match resolve(reply).await {
        Ok(Reply::Raw(events)) => sse(events),
        Ok(reply) => sse((state.stream)(reply)),
        Err(status) => (StatusCode::from_u16(status).unwrap(), "scripted failure").into_response(),
    }
}

fn openai_events(reply: Reply) -> Vec<String> {
    let chunk = |delta: Value| {
        format!(
            "data: {}",
            json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
        )
    };
    let mut events = vec![chunk(json!({"role": "assistant"}))];
    if let Reply::TextThenCalls(text, calls) = reply {
        let mut first = openai_events(Reply::Text(text));
        let mut then = openai_events(Reply::Calls(calls));
        first.pop();
        then.remove(0);
        first.extend(then);
        return first;
    }
    match reply {
        Reply::Text(t) => {
            let words: Vec<&str> = t.split_inclusive(' ').collect();
            for w in words {
                events.push(chunk(json!({"content": w})));
            }
        }
        Reply::Calls(calls) => {
            for (i, (name, args)) in calls.iter().enumerate() {
                let text = args.to_string();
                let (a, b) = text.split_at(text.len() / 2);
                events.push(chunk(json!({"tool_calls": [{"index": i, "id": format!("call_{i}_{}", colloquy_core::ids::new_uuid()), "type": "function", "function": {"name": name, "arguments": a}}]})));
                events.push(chunk(
                    json!({"tool_calls": [{"index": i, "function": {"arguments": b}}]}),
                ));
            }
        }
        _ => {}
    }
    events.push("data: [DONE]".into());
    events
}

fn anthropic_events(reply: Reply) -> Vec<String> {
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}");
    let mut events = vec![ev(
        "message_start",
        json!({"type": "message_start", "message": {"usage": {"input_tokens": 10}}}),
    )];
    match reply {
        Reply::Text(t) => {
            events.push(ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            for w in t.split_inclusive(' ') {
                events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})));
            }
        }
        Reply::Calls(calls) => {
            for (i, (name, args)) in calls.iter().enumerate() {
                events.push(ev("content_block_start", json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": {}}})));
                events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": args.to_string()}})));
            }
        }
        _ => {}
    }
    events.push(ev("message_stop", json!({"type": "message_stop"})));
    events
}

/// One request a webhook received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: String,
}

#[derive(Clone)]
struct HookState {
    status: Arc<std::sync::atomic::AtomicU16>,
    from: Arc<Mutex<Option<(usize, u16)>>>,
    body: String,
    delay: Duration,
    received: Arc<Mutex<Vec<Received>>>,
}

/// A webhook target answering every request the same way.
pub struct Webhook {
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<std::sync::atomic::AtomicU16>,
    from: Arc<Mutex<Option<(usize, u16)>>>,
}

impl Webhook {
    pub async fn start(status: u16, body: &str, delay: Duration) -> Webhook {
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(std::sync::atomic::AtomicU16::new(status));
        let from = Arc::new(Mutex::new(None));
        let state = HookState {
            status: status.clone(),
            from: from.clone(),
            body: body.to_owned(),
            delay,
            received: received.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new().fallback(any(hook)).with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Webhook { base, received, status, from }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Answers every later request with `status`.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, std::sync::atomic::Ordering::SeqCst);
    }

    /// Answers `status` from the `nth` request on (counting from 1): unlike a later
    /// `set_status`, this does not race a retry that comes before the test gets to it.
    pub fn set_status_from(&self, nth: usize, status: u16) {
        *self.from.lock().unwrap() = Some((nth, status));
    }
}

async fn hook(
    State(state): State<HookState>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes,
) -> Response {
    let nth = {
        let mut received = state.received.lock().unwrap();
        received.push(Received {
            method: method.to_string(),
            uri: uri.to_string(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        received.len()
    };
    let status = match *state.from.lock().unwrap() {
        Some((from, status)) if nth >= from => status,
        _ => state.status.load(std::sync::atomic::Ordering::SeqCst),
    };
    tokio::time::sleep(state.delay).await;
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        state.body.clone(),
    )
        .into_response()
}

/// Configures a server to use `llm` as its OpenAI-compatible provider (with short timeouts)
/// and to allow webhooks on loopback.
pub fn with_llm(llm: &FakeLlm) -> impl FnOnce(&mut Config) + use<> {
    let base = format!("{}/v1", llm.base);
    move |c: &mut Config| {
        c.llm
            .providers
            .insert("openai".into(), ProviderConfig::http(ProviderKind::Openai, Some(base), None));
        c.llm.timeout_secs = 5;
        c.webhook_allow = "127.0.0.1".into();
    }
}

/// Dimensions of the fake embeddings.
const EMBEDDING_DIMS: usize = 64;

/// An OpenAI-compatible `/v1/embeddings` server with deterministic vectors: a bag of words,
/// each word (lower-cased, a trailing `s` dropped) counted in the dimension its name hashes
/// to, after a small synonym table (`automobile` and `vehicle` are `car`, `parking` is
/// `garage`), so a test can craft texts that only vectors relate. Each request may wait
/// `delay` first, so a test can catch an index while it is computed.
pub struct FakeEmbeddings {
    pub base: String,
    requests: Arc<Mutex<usize>>,
}

#[derive(Clone)]
struct EmbeddingState {
    delay: Duration,
    requests: Arc<Mutex<usize>>,
}

impl FakeEmbeddings {
    pub async fn start(delay: Duration) -> FakeEmbeddings {
        let requests = Arc::new(Mutex::new(0));
        let state = EmbeddingState { delay, requests: requests.clone() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new().route("/v1/embeddings", post(embed)).with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeEmbeddings { base, requests }
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        *self.requests.lock().unwrap()
    }

    /// Configures a server to compute `e5_mistral_7b_instruct` with this server.
    pub fn configure(&self) -> impl FnOnce(&mut Config) + use<> {
        use colloquy_engine::knowledge::embeddings::{
            EmbeddingKind, EmbeddingProvider, EmbeddingRoute,
        };
        let base = format!("{}/v1", self.base);
        move |c: &mut Config| {
            c.embeddings.providers.insert(
                "fake".into(),
                EmbeddingProvider {
                    kind: EmbeddingKind::Openai,
                    base_url: base,
                    api_key: None,
                    api_key_env: None,
                },
            );
            c.embeddings.routes.push(EmbeddingRoute {
                model: "e5_mistral_7b_instruct".into(),
                provider: "fake".into(),
                provider_model: "bag-of-words-64".into(),
            });
        }
    }
}

/// The fake vector of `text`.
pub fn bag_of_words(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; EMBEDDING_DIMS];
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_lowercase();
        let word = word.strip_suffix('s').filter(|w| w.len() > 2).unwrap_or(&word);
        let word = match word {
            "automobile" | "vehicle" => "car",
            "parking" => "garage",
            w => w,
        };
        let hash =
            word.bytes().fold(2166136261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16777619));
        v[hash as usize % EMBEDDING_DIMS] += 1.0;
    }
    v
}

async fn embed(State(state): State<EmbeddingState>, body: axum::Json<Value>) -> Response {
    tokio::time::sleep(state.delay).await;
    *state.requests.lock().unwrap() += 1;
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect(),
        _ => return (StatusCode::BAD_REQUEST, "input must be text").into_response(),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": bag_of_words(t)}))
        .collect();
    axum::Json(json!({"object": "list", "data": data, "model": body["model"]})).into_response()
}

/// What the fake speech server was asked.
#[derive(Debug, Clone)]
pub enum SpeechRequest {
    /// A transcription: the WAV file's rate and length in samples, the form's model
    /// (`model`, or ElevenLabs' `model_id`), and the ElevenLabs key it came with.
    Transcription { rate: u32, samples: usize, model: String, key: Option<String> },
    /// A synthesis: the request's JSON (for ElevenLabs' API, with the path's `voice_id` and
    /// the `xi-api-key` added).
    Synthesis(Value),
}

/// An OpenAI-compatible speech server: `/v1/audio/transcriptions` answers the test's phrases
/// in order (after checking it was sent a WAV file), and `/v1/audio/speech` answers 24 kHz
/// 16-bit PCM (what OpenAI's `pcm` is), a 300 Hz tone lasting [`FakeSpeech::MS_PER_CHAR`] per
/// character of the input; an input containing `FAIL` is a 500. It speaks the ElevenLabs API
/// too: `/v1/speech-to-text` and `/v1/text-to-speech/{voice_id}?output_format=pcm_16000`.
pub struct FakeSpeech {
    pub base: String,
    state: SpeechState,
}

#[derive(Clone)]
struct SpeechState {
    phrases: Arc<Mutex<std::collections::VecDeque<String>>>,
    requests: Arc<Mutex<Vec<SpeechRequest>>>,
}

impl FakeSpeech {
    /// Milliseconds of speech per character synthesized.
    pub const MS_PER_CHAR: u64 = 50;

    pub async fn start(phrases: &[&str]) -> FakeSpeech {
        let state = SpeechState {
            phrases: Arc::new(Mutex::new(phrases.iter().map(|p| (*p).to_owned()).collect())),
            requests: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new()
            .route("/v1/audio/transcriptions", post(transcribe))
            .route("/v1/audio/speech", post(synthesize))
            .route("/v1/speech-to-text", post(transcribe))
            .route("/v1/text-to-speech/{voice_id}", post(synthesize_elevenlabs))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeSpeech { base, state }
    }

    /// What it was asked so far.
    pub fn requests(&self) -> Vec<SpeechRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Configures a server to recognize and synthesize speech with this server.
    pub fn configure(&self) -> impl FnOnce(&mut Config) + use<> {
        use colloquy_engine::voice::{ProviderKind, SpeechProvider};
        let base = format!("{}/v1", self.base);
        move |c: &mut Config| {
            for side in [&mut c.asr, &mut c.tts] {
                side.providers.insert(
                    "fake".into(),
                    SpeechProvider::new(ProviderKind::Openai, Some(base.clone())),
                );
                side.default_provider = Some("fake".into());
                side.timeout_secs = 5;
                side.retries = 0;
            }
        }
    }
}

async fn transcribe(
    State(state): State<SpeechState>, headers: HeaderMap, mut form: axum::extract::Multipart,
) -> Response {
    let (mut wav, mut model, mut stream) = (None, String::new(), false);
    while let Ok(Some(field)) = form.next_field().await {
        match field.name() {
            Some("file") => wav = field.bytes().await.ok(),
            Some("model" | "model_id") => model = field.text().await.unwrap_or_default(),
            Some("stream") => stream = field.text().await.is_ok_and(|v| v == "true"),
            _ => {}
        }
    }
    let Some(Ok((samples, rate))) = wav.map(|w| colloquy_engine::voice::wav::decode(&w)) else {
        return (StatusCode::BAD_REQUEST, "file must be a WAV file").into_response();
    };
    state.requests.lock().unwrap().push(SpeechRequest::Transcription {
        rate,
        samples: samples.len(),
        model,
        key: headers.get("xi-api-key").and_then(|k| k.to_str().ok()).map(str::to_owned),
    });
    let text = state.phrases.lock().unwrap().pop_front().unwrap_or_default();
    if stream {
        return streamed_transcription(&text);
    }
    axum::Json(json!({ "text": text })).into_response()
}

/// A transcription as OpenAI streams it: a `transcript.text.delta` event per word, then
/// `transcript.text.done` with the whole text.
fn streamed_transcription(text: &str) -> Response {
    let mut body = String::new();
    for (i, word) in text.split(' ').enumerate() {
        let delta = if i == 0 { word.to_owned() } else { format!(" {word}") };
        let event = json!({"type": "transcript.text.delta", "delta": delta});
        body.push_str(&format!("data: {event}\n\n"));
    }
    body.push_str(&format!("data: {}\n\n", json!({"type": "transcript.text.done", "text": text})));
    ([(axum::http::header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

async fn synthesize(
    State(state): State<SpeechState>, axum::Json(body): axum::Json<Value>,
) -> Response {
    state.requests.lock().unwrap().push(SpeechRequest::Synthesis(body.clone()));
    tone_for(body["input"].as_str().unwrap_or_default(), 24_000)
}

async fn synthesize_elevenlabs(
    State(state): State<SpeechState>, axum::extract::Path(voice_id): axum::extract::Path<String>,
    uri: Uri, headers: HeaderMap, axum::Json(mut body): axum::Json<Value>,
) -> Response {
    if uri.query() != Some("output_format=pcm_16000") {
        return (StatusCode::BAD_REQUEST, "output_format=pcm_16000 expected").into_response();
    }
    body["voice_id"] = json!(voice_id);
    body["xi-api-key"] = json!(headers.get("xi-api-key").and_then(|k| k.to_str().ok()));
    state.requests.lock().unwrap().push(SpeechRequest::Synthesis(body.clone()));
    tone_for(body["text"].as_str().unwrap_or_default(), 16_000)
}

/// 16-bit PCM at `rate`: a 300 Hz tone of [`FakeSpeech::MS_PER_CHAR`] per character of `text`,
/// or a 500 for a text containing `FAIL`.
fn tone_for(text: &str, rate: u32) -> Response {
    if text.contains("FAIL") {
        return (StatusCode::INTERNAL_SERVER_ERROR, "synthesis failed").into_response();
    }
    let samples = rate as usize / 1000 * FakeSpeech::MS_PER_CHAR as usize * text.chars().count();
    let pcm: Vec<u8> = (0..samples)
        .flat_map(|i| {
            let t = i as f64 / f64::from(rate);
            ((8000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16).to_le_bytes()
        })
        .collect();
    pcm.into_response()
}
