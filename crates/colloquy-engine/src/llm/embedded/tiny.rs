//! A tiny model for tests: the Qwen2 architecture at toy sizes (2 layers, width 256, 4 heads
//! over 2 key/value heads), weights from a fixed seed, quantized as real files are (Q4_K), a
//! byte-level BPE tokenizer with a few merges and the ChatML special tokens, and a chat
//! template; written as a GGUF file. Greedy decoding of it is deterministic, so tests can pin
//! what it says. Only printable ASCII can be produced: the embedding rows of every other token
//! (the specials included) are zero, and the output projection is tied to them.

use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};

const WIDTH: usize = 256;
const FFN: usize = 512;
const HEADS: u32 = 4;
const KV_HEADS: u32 = 2;
const LAYERS: usize = 2;

/// Pairs merged into one token, in rank order (GPT-2's byte alphabet: `Ġ` is a space).
const MERGES: [(&str, &str); 8] = [
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("i", "n"),
    ("Ġ", "a"),
    ("e", "r"),
    ("o", "n"),
    ("Ġ", "w"),
];

/// The special tokens, after the bytes and the merges.
pub const SPECIALS: [&str; 7] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<think>",
    "</think>",
];

/// The template the file carries (ChatML, without tools).
pub const TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// GPT-2's map from bytes to printable characters.
fn byte_chars() -> Vec<char> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut shifted = 0;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap_or('?')
            } else {
                shifted += 1;
                char::from_u32(255 + shifted).unwrap_or('?')
            }
        })
        .collect()
}

/// Deterministic values in [-scale, scale].
struct Noise(u64);

impl Noise {
    fn take(&mut self, count: usize, scale: f32) -> Vec<f32> {
        (0..count)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }
}

fn tensor(values: Vec<f32>, shape: &[usize], dtype: GgmlDType) -> candle_core::Result<QTensor> {
    QTensor::quantize(&Tensor::from_vec(values, shape, &Device::Cpu)?, dtype)
}

/// Writes the tiny model to `path`.
pub fn write(path: &Path) -> candle_core::Result<()> {
    let bytes = byte_chars();
    let mut tokens: Vec<String> = bytes.iter().map(char::to_string).collect();
    tokens.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    let normal = tokens.len();
    tokens.extend(SPECIALS.iter().map(|s| (*s).to_owned()));
    let id = |token: &str| tokens.iter().position(|t| t == token).unwrap_or(0) as u32;
    let mut noise = Noise(0x00C0_FFEE);
    let mut embedding = noise.take(tokens.len() * WIDTH, 0.5);
    // Rows 0..256 are the bytes in order; then the merges (all ASCII), then the specials.
    for row in (0..tokens.len()).filter(|&r| r >= normal || (r < 256 && !(32..127).contains(&r))) {
        embedding[row * WIDTH..(row + 1) * WIDTH].fill(0.0);
    }
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), tensor(embedding, &[tokens.len(), WIDTH], GgmlDType::Q4K)?),
        ("output_norm.weight".into(), tensor(vec![1.0; WIDTH], &[WIDTH], GgmlDType::F32)?),
    ];
    let kv = WIDTH / HEADS as usize * KV_HEADS as usize;
    for layer in 0..LAYERS {
        let mut add =
            |part: &str, shape: &[usize], values: Vec<f32>, dtype| -> candle_core::Result<()> {
                tensors.push((format!("blk.{layer}.{part}"), tensor(values, shape, dtype)?));
                Ok(())
            };
        for norm in ["attn_norm.weight", "ffn_norm.weight"] {
            add(norm, &[WIDTH], vec![1.0; WIDTH], GgmlDType::F32)?;
        }
        for (part, rows, cols) in [
            ("attn_q.weight", WIDTH, WIDTH),
            ("attn_k.weight", kv, WIDTH),
            ("attn_v.weight", kv, WIDTH),
            ("attn_output.weight", WIDTH, WIDTH),
            ("ffn_gate.weight", FFN, WIDTH),
            ("ffn_up.weight", FFN, WIDTH),
            ("ffn_down.weight", WIDTH, FFN),
        ] {
            add(part, &[rows, cols], noise.take(rows * cols, 0.4), GgmlDType::Q4K)?;
        }
        for (part, rows) in [("attn_q.bias", WIDTH), ("attn_k.bias", kv), ("attn_v.bias", kv)] {
            add(part, &[rows], noise.take(rows, 0.05), GgmlDType::F32)?;
        }
    }
    let strings = |items: Vec<String>| Value::Array(items.into_iter().map(Value::String).collect());
    let types = (0..tokens.len()).map(|i| Value::I32(if i < normal { 1 } else { 3 })).collect();
    let metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("qwen2".into())),
        ("general.name", Value::String("tiny".into())),
        ("qwen2.attention.head_count", Value::U32(HEADS)),
        ("qwen2.attention.head_count_kv", Value::U32(KV_HEADS)),
        ("qwen2.embedding_length", Value::U32(WIDTH as u32)),
        ("qwen2.feed_forward_length", Value::U32(FFN as u32)),
        ("qwen2.block_count", Value::U32(LAYERS as u32)),
        ("qwen2.context_length", Value::U32(1024)),
        ("qwen2.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("qwen2.rope.freq_base", Value::F32(10_000.0)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("qwen2".into())),
        ("tokenizer.ggml.tokens", strings(tokens.clone())),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        (
            "tokenizer.ggml.merges",
            strings(MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect()),
        ),
        ("tokenizer.ggml.eos_token_id", Value::U32(id("<|im_end|>"))),
        ("tokenizer.ggml.bos_token_id", Value::U32(id("<|endoftext|>"))),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
        ("tokenizer.chat_template", Value::String(TEMPLATE.into())),
    ];
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    gguf_file::write(&mut file, &metadata, &tensors)?;
    std::io::Write::flush(&mut file)?;
    Ok(())
}
