//! The embedded provider: a quantized GGUF chat model run in process on the CPU, so a server
//! with no LLM account still answers. The model file brings its tokenizer and chat template;
//! generations run on blocking threads, a bounded number at a time (the rest wait in line,
//! counted in `/metrics`), each stopping when its caller goes away.

pub mod calls;
pub mod catalog;
pub mod download;
pub mod model;
pub mod template;
#[cfg(any(test, feature = "test-model"))]
pub mod tiny;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use async_trait::async_trait;
use candle_core::Tensor;
use candle_core::quantized::gguf_file;
use tokenizers::Tokenizer;
use tokio::sync::{OnceCell, Semaphore};

use super::{ChatRequest, ChatResponse, Deltas, LlmError, LlmProvider};
use model::{Cache, Weights};
use template::ChatTemplate;

/// Longest prompt plus answer a generation may hold: the key/value cache of a 1.5 B model
/// at this length is about 230 MB.
pub const CONTEXT_TOKENS: usize = 8192;
/// Tokens an answer may have when the request does not say.
const DEFAULT_MAX_TOKENS: u64 = 512;
/// Tries at a forced call (a judge's verdict, an analysis) before giving up.
const FORCED_TRIES: u32 = 3;

/// Generations running and waiting, for `/metrics`.
#[derive(Debug, Default)]
pub struct EmbeddedStats {
    /// Generations running now.
    pub running: AtomicI64,
    /// Generations waiting for a slot.
    pub waiting: AtomicI64,
}

/// Key/value caches kept from earlier generations, for the next turn of their conversations
/// (a 1.5 B model's cache is about 57 KB a token: 114 MB for a conversation of 2,000).
const KEPT_CACHES: usize = 2;

/// A loaded model: weights, tokenizer, template and the tokens that end an answer.
pub struct Loaded {
    weights: Weights,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    stops: Vec<u32>,
    /// The caches of the latest generations with the tokens they hold, newest last. A turn's
    /// prompt is the previous turn's prompt and answer plus what came since, so the longest
    /// shared start is read from here instead of again.
    kept: std::sync::Mutex<Vec<(Vec<u32>, Cache)>>,
}

impl Loaded {
    /// Reads a GGUF file.
    pub fn open(path: &Path) -> Result<Loaded, String> {
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let mut file = std::io::BufReader::new(std::fs::File::open(path).map_err(|e| fail(&e))?);
        let content = gguf_file::Content::read(&mut file).map_err(|e| fail(&e))?;
        let tokenizer =
            <Tokenizer as candle_core::quantized::tokenizer::TokenizerFromGguf>::from_gguf(
                &content,
            )
            .map_err(|e| fail(&e))?;
        let weights = Weights::read(&content, &mut file, CONTEXT_TOKENS).map_err(|e| fail(&e))?;
        let text = |key: &str| content.metadata.get(key).and_then(|v| v.to_string().ok()).cloned();
        let token = |key: &str| {
            let id = content.metadata.get(key).and_then(|v| v.to_u32().ok())?;
            tokenizer.id_to_token(id)
        };
        let eos = token("tokenizer.ggml.eos_token_id").unwrap_or_default();
        let template = ChatTemplate::new(
            text("tokenizer.chat_template").as_deref(),
            &token("tokenizer.ggml.bos_token_id").unwrap_or_default(),
            &eos,
        )
        .map_err(|e| fail(&e))?;
        let mut stops: Vec<u32> = ["<|im_end|>", "<|endoftext|>", eos.as_str()]
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        stops.dedup();
        if stops.is_empty() {
            return Err(fail(&"the model names no end-of-answer token"));
        }
        Ok(Loaded { weights, tokenizer, template, stops, kept: std::sync::Mutex::default() })
    }

    /// Generates the answer to `prompt`: text until an end token, `max_tokens`, the end of a
    /// forced call's JSON, or `cancel`. `on_text` gets the text as it is decoded.
    fn generate(
        &self, prompt: &str, options: &Generation, cancel: &AtomicBool,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generated, String> {
        let prompt_tokens =
            self.tokenizer.encode(prompt, false).map_err(|e| e.to_string())?.get_ids().to_vec();
        let rows = self.weights.context();
        if prompt_tokens.len() >= rows {
            return Err(format!(
                "the conversation is {} tokens long; the embedded model takes {rows}",
                prompt_tokens.len()
            ));
        }
        let (mut cache, shared) = self.reusable(&prompt_tokens)?;
        let mut sampler = Sampler::new(options.temperature, options.seed);
        let mut logits = self.forward(&prompt_tokens[shared..], &mut cache)?;
        let mut fed = prompt_tokens.clone();
        let mut answer: Vec<u32> = Vec::new();
        let mut text = String::new();
        let mut finish = "length";
        let budget = (options.max_tokens as usize).min(rows - prompt_tokens.len());
        while answer.len() < budget {
            if cancel.load(Ordering::Relaxed) {
                finish = "cancelled";
                break;
            }
            let next = sampler.next(&logits)?;
            if self.stops.contains(&next) {
                finish = "stop";
                break;
            }
            answer.push(next);
            let decoded = self.tokenizer.decode(&answer, false).map_err(|e| e.to_string())?;
            // A character split across tokens shows once its last byte is in.
            if decoded.len() > text.len() && !decoded.ends_with('\u{FFFD}') {
                if let Some(new) = decoded.get(text.len()..) {
                    on_text(new);
                }
                text = decoded;
            }
            // Arguments are an object: anything else is a failed try, known at its first
            // character.
            if options.json_object
                && (calls::object_end(&text).is_some()
                    || text.trim_start().chars().next().is_some_and(|c| c != '{'))
            {
                finish = "stop";
                break;
            }
            logits = self.forward(&[next], &mut cache)?;
            fed.push(next);
        }
        self.keep(fed, cache);
        if let Ok(decoded) = self.tokenizer.decode(&answer, false) {
            text = decoded;
        }
        Ok(Generated {
            text,
            input_tokens: prompt_tokens.len(),
            output_tokens: answer.len(),
            finish,
        })
    }

    /// The kept cache sharing the longest start with `prompt`, cut to that start (leaving at
    /// least one token to read, whose logits the answer starts from), and its length.
    fn reusable(&self, prompt: &[u32]) -> Result<(Cache, usize), String> {
        let mut kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let shared = |tokens: &[u32]| tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        let best = kept.iter().enumerate().max_by_key(|(_, (tokens, _))| shared(tokens));
        let Some((at, (tokens, _))) = best.filter(|(_, (tokens, _))| shared(tokens) > 0) else {
            return Ok((self.weights.cache(), 0));
        };
        let length = shared(tokens).min(prompt.len() - 1);
        let (_, mut cache) = kept.remove(at);
        cache.truncate(length).map_err(|e| e.to_string())?;
        Ok((cache, length))
    }

    /// Keeps a finished generation's cache (the tokens it holds: the prompt and the answer
    /// but its last token) for the conversation's next turn.
    fn keep(&self, tokens: Vec<u32>, cache: Cache) {
        let mut kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() >= KEPT_CACHES {
            kept.remove(0);
        }
        kept.push((tokens, cache));
    }

    fn forward(&self, tokens: &[u32], cache: &mut Cache) -> Result<Tensor, String> {
        self.weights.forward(tokens, cache).map_err(|e| e.to_string())
    }
}

/// How to generate.
#[derive(Debug, Clone)]
struct Generation {
    temperature: f64,
    max_tokens: u64,
    /// Stop once the text is one whole JSON object (a forced call's arguments).
    json_object: bool,
    seed: u64,
}

/// What a generation produced.
struct Generated {
    text: String,
    input_tokens: usize,
    output_tokens: usize,
    finish: &'static str,
}

/// Picks tokens: the likeliest at temperature 0 (deterministic), else a draw from the 40
/// likeliest at the given temperature.
struct Sampler {
    temperature: f64,
    state: u64,
}

impl Sampler {
    fn new(temperature: f64, seed: u64) -> Sampler {
        Sampler { temperature, state: seed | 1 }
    }

    fn next(&mut self, logits: &Tensor) -> Result<u32, String> {
        if self.temperature <= 0.0 {
            return model::argmax(logits).map_err(|e| e.to_string());
        }
        let logits: Vec<f32> = logits.to_vec1().map_err(|e| e.to_string())?;
        let mut top: Vec<(usize, f32)> = logits.into_iter().enumerate().collect();
        let k = top.len().min(40);
        top.select_nth_unstable_by(k.saturating_sub(1), |a, b| b.1.total_cmp(&a.1));
        top.truncate(k);
        let max = top.iter().map(|t| t.1).fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f64> =
            top.iter().map(|t| (f64::from(t.1 - max) / self.temperature).exp()).collect();
        let mut draw = self.uniform() * weights.iter().sum::<f64>();
        for ((index, _), weight) in top.iter().zip(&weights) {
            draw -= weight;
            if draw <= 0.0 {
                return Ok(*index as u32);
            }
        }
        Ok(top[0].0 as u32)
    }

    /// xorshift64*: fast, and deterministic for a seed.
    fn uniform(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The embedded provider.
pub struct Embedded {
    path: PathBuf,
    model: OnceCell<Arc<Loaded>>,
    slots: Semaphore,
    stats: Arc<EmbeddedStats>,
}

impl Embedded {
    /// A provider for the model at `path` (read on first use), running at most `concurrency`
    /// generations at a time.
    pub fn new(path: PathBuf, concurrency: usize) -> Embedded {
        Embedded {
            path,
            model: OnceCell::new(),
            slots: Semaphore::new(concurrency.max(1)),
            stats: Arc::default(),
        }
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Generations running and waiting.
    pub fn stats(&self) -> Arc<EmbeddedStats> {
        self.stats.clone()
    }

    /// The model, read from its file the first time.
    pub async fn loaded(&self) -> Result<Arc<Loaded>, LlmError> {
        self.model
            .get_or_try_init(|| async {
                let path = self.path.clone();
                tokio::task::spawn_blocking(move || Loaded::open(&path).map(Arc::new))
                    .await
                    .map_err(|e| LlmError::Embedded(format!("reading the model failed: {e}")))?
                    .map_err(LlmError::Embedded)
            })
            .await
            .cloned()
    }

    /// The prompt text `request` becomes (for comparing with other runtimes on the same
    /// text).
    pub async fn prompt(&self, request: &ChatRequest) -> Result<String, LlmError> {
        self.loaded().await?.template.render(request).map_err(LlmError::Embedded)
    }

    /// One generation in a slot, on a blocking thread; text goes to `deltas` through a filter
    /// that holds back tool calls.
    async fn run(
        &self, model: Arc<Loaded>, prompt: String, options: Generation, deltas: Option<Deltas>,
    ) -> Result<Generated, LlmError> {
        self.stats.waiting.fetch_add(1, Ordering::Relaxed);
        let slot = self.slots.acquire().await;
        self.stats.waiting.fetch_sub(1, Ordering::Relaxed);
        let _slot = slot.map_err(|_| LlmError::Embedded("the model is shutting down".into()))?;
        let _running = Running::start(&self.stats);
        let cancel = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(cancel.clone());
        let task = tokio::task::spawn_blocking(move || {
            let mut filter = calls::TextFilter::default();
            let mut on_text = |piece: &str| {
                let Some(deltas) = &deltas else { return };
                let shown = filter.push(piece);
                if (!shown.is_empty() && deltas.send(shown).is_err()) || deltas.is_closed() {
                    cancel.store(true, Ordering::Relaxed);
                }
            };
            model.generate(&prompt, &options, &cancel, &mut on_text)
        });
        task.await
            .map_err(|e| LlmError::Embedded(format!("the generation failed: {e}")))?
            .map_err(LlmError::Embedded)
    }
}

/// Counts a running generation while it lives.
struct Running(Arc<EmbeddedStats>);

impl Running {
    fn start(stats: &Arc<EmbeddedStats>) -> Running {
        stats.running.fetch_add(1, Ordering::Relaxed);
        Running(stats.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Stops the generation when the caller's future is dropped (the turn was cancelled).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[async_trait]
impl LlmProvider for Embedded {
    async fn chat(
        &self, request: &ChatRequest, deltas: Option<&Deltas>,
    ) -> Result<ChatResponse, LlmError> {
        let model = self.loaded().await?;
        let mut prompt = model.template.render(request).map_err(LlmError::Embedded)?;
        let mut options = Generation {
            temperature: request.temperature.unwrap_or(0.0).max(0.0),
            max_tokens: request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).max(1),
            json_object: false,
            seed: u64::try_from(colloquy_core::time::now_ms()).unwrap_or(1),
        };
        let Some(forced) = &request.force_tool else {
            let generated = self.run(model, prompt, options, deltas.cloned()).await?;
            let parsed = calls::parse(&generated.text);
            let finish = if parsed.calls.is_empty() { generated.finish } else { "tool_calls" };
            return Ok(response(parsed, &generated, finish));
        };
        // A forced call: the answer starts as the call, and only its arguments are generated.
        let head =
            format!("{{\"name\": {}, \"arguments\": ", serde_json::Value::from(forced.as_str()));
        prompt.push_str("<tool_call>\n");
        prompt.push_str(&head);
        options.json_object = true;
        let mut last = String::new();
        for attempt in 0..FORCED_TRIES {
            if attempt > 0 {
                // The likeliest answer failed; a draw may not.
                options.temperature = options.temperature.max(0.7);
                options.seed = options.seed.wrapping_add(u64::from(attempt));
            }
            let generated = self.run(model.clone(), prompt.clone(), options.clone(), None).await?;
            let end = calls::object_end(&generated.text).unwrap_or(generated.text.len());
            let arguments = &generated.text[..end];
            if serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(arguments).is_ok()
            {
                let call = super::ToolCall {
                    id: colloquy_core::ids::new_id("call_"),
                    name: forced.clone(),
                    arguments: arguments.to_owned(),
                };
                let parsed = calls::Parsed { text: String::new(), calls: vec![call] };
                return Ok(response(parsed, &generated, "tool_calls"));
            }
            last = generated.text;
        }
        Err(LlmError::Protocol(format!(
            "the embedded model did not write valid JSON arguments for {forced} in {FORCED_TRIES} tries; its last try: {}",
            super::snippet(&last)
        )))
    }
}

fn response(parsed: calls::Parsed, generated: &Generated, finish: &str) -> ChatResponse {
    ChatResponse {
        text: parsed.text,
        tool_calls: parsed.calls,
        input_tokens: Some(generated.input_tokens as u64),
        output_tokens: Some(generated.output_tokens as u64),
        finish_reason: Some(finish.to_owned()),
    }
}

#[cfg(test)]
mod tests;
