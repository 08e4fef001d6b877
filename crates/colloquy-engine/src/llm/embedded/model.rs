//! The transformer of the Qwen2 and Qwen3 families (what the model list offers: instruction
//! tuned, with tool calling), read from a quantized GGUF file and run on the CPU with candle.
//!
//! The weights are shared by every generation; each generation has its own [`Cache`] of keys
//! and values, so concurrent generations need no copy of the model. Matrices stay quantized
//! (the embedding table too: rows are looked up in place, which keeps a 1.5 B model's RSS
//! near its file size instead of adding a gigabyte of dequantized floats).

use std::io::{Read, Seek};

use candle_core::quantized::{QMatMul, QTensor, gguf_file};
use candle_core::{D, DType, Device, Module, Result, Tensor};

/// What the GGUF metadata says about the architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// `general.architecture`: `qwen2` or `qwen3`.
    pub architecture: String,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Layers.
    pub layers: usize,
    /// Longest context the model was trained for.
    pub context_length: usize,
    /// RMS norm epsilon.
    pub eps: f64,
    /// Rotary embedding base.
    pub rope_base: f32,
}

impl Shape {
    /// Reads the shape from the file's metadata.
    pub fn read(content: &gguf_file::Content) -> Result<Shape> {
        let get = |key: &str| {
            content
                .metadata
                .get(key)
                .ok_or_else(|| candle_core::Error::Msg(format!("the GGUF file has no {key}")))
        };
        let architecture = get("general.architecture")?.to_string()?.clone();
        if !matches!(architecture.as_str(), "qwen2" | "qwen3") {
            candle_core::bail!(
                "the GGUF file holds a {architecture} model; the embedded provider runs qwen2 and qwen3 models"
            );
        }
        let key = |name: &str| format!("{architecture}.{name}");
        let number = |name: &str| -> Result<usize> { Ok(get(&key(name))?.to_u32()? as usize) };
        let heads = number("attention.head_count")?;
        let width = number("embedding_length")?;
        let head_dim = match get(&key("attention.key_length")) {
            Ok(v) => v.to_u32()? as usize,
            Err(_) => width / heads.max(1),
        };
        Ok(Shape {
            heads,
            kv_heads: number("attention.head_count_kv")?,
            head_dim,
            layers: number("block_count")?,
            context_length: number("context_length")?,
            eps: f64::from(get(&key("attention.layer_norm_rms_epsilon"))?.to_f32()?),
            rope_base: get(&key("rope.freq_base")).and_then(|v| v.to_f32()).unwrap_or(10_000.0),
            architecture,
        })
    }
}

/// One transformer block.
struct Layer {
    attn_norm: Tensor,
    q: QMatMul,
    k: QMatMul,
    v: QMatMul,
    /// Qwen2's query/key/value biases (Qwen3 has none).
    bias: Option<[Tensor; 3]>,
    /// Qwen3's per-head norms of queries and keys (Qwen2 has none).
    qk_norm: Option<[Tensor; 2]>,
    out: QMatMul,
    ffn_norm: Tensor,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
}

/// The model's weights, shared by all generations.
pub struct Weights {
    shape: Shape,
    embedding: QMatMul,
    layers: Vec<Layer>,
    norm: Tensor,
    output: QMatMul,
    cos: Tensor,
    sin: Tensor,
}

/// The keys and values one generation has computed so far.
#[derive(Clone)]
pub struct Cache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    /// Positions already in the cache.
    pub len: usize,
}

impl Cache {
    /// Keeps the first `len` positions (what a new prompt shares with the one that made them).
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len >= self.len {
            return Ok(());
        }
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.narrow(2, 0, len)?;
            *v = v.narrow(2, 0, len)?;
        }
        self.len = len;
        Ok(())
    }
}

impl Weights {
    /// Reads the weights; `context` caps the positions the rotary tables cover.
    pub fn read<R: Read + Seek>(
        content: &gguf_file::Content, reader: &mut R, context: usize,
    ) -> Result<Weights> {
        let shape = Shape::read(content)?;
        let device = Device::Cpu;
        let mut tensor = |name: &str| content.tensor(reader, name, &device);
        let dense = |t: QTensor| t.dequantize(&device);
        let embedding = tensor("token_embd.weight")?;
        let output = match tensor("output.weight") {
            Ok(t) => QMatMul::from_qtensor(t)?,
            // Small models tie the output projection to the embedding table.
            Err(_) => QMatMul::from_qtensor(tensor("token_embd.weight")?)?,
        };
        let norm = dense(tensor("output_norm.weight")?)?;
        let mut layers = Vec::with_capacity(shape.layers);
        for i in 0..shape.layers {
            let mut named = |part: &str| tensor(&format!("blk.{i}.{part}"));
            let bias = match named("attn_q.bias") {
                Ok(q) => {
                    Some([dense(q)?, dense(named("attn_k.bias")?)?, dense(named("attn_v.bias")?)?])
                }
                Err(_) => None,
            };
            let qk_norm = match named("attn_q_norm.weight") {
                Ok(q) => Some([dense(q)?, dense(named("attn_k_norm.weight")?)?]),
                Err(_) => None,
            };
            layers.push(Layer {
                attn_norm: dense(named("attn_norm.weight")?)?,
                q: QMatMul::from_qtensor(named("attn_q.weight")?)?,
                k: QMatMul::from_qtensor(named("attn_k.weight")?)?,
                v: QMatMul::from_qtensor(named("attn_v.weight")?)?,
                bias,
                qk_norm,
                out: QMatMul::from_qtensor(named("attn_output.weight")?)?,
                ffn_norm: dense(named("ffn_norm.weight")?)?,
                gate: QMatMul::from_qtensor(named("ffn_gate.weight")?)?,
                up: QMatMul::from_qtensor(named("ffn_up.weight")?)?,
                down: QMatMul::from_qtensor(named("ffn_down.weight")?)?,
            });
        }
        let (cos, sin) = rotary_tables(&shape, context.min(shape.context_length), &device)?;
        Ok(Weights {
            shape,
            embedding: QMatMul::from_qtensor(embedding)?,
            layers,
            norm,
            output,
            cos,
            sin,
        })
    }

    /// The architecture.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Positions the rotary tables cover: the longest prompt plus answer.
    pub fn context(&self) -> usize {
        self.cos.dims()[0]
    }

    /// An empty cache for one generation.
    pub fn cache(&self) -> Cache {
        Cache { layers: vec![None; self.layers.len()], len: 0 }
    }

    /// Runs `tokens` (the prompt, or the last token sampled) after what `cache` holds and
    /// returns the logits of the next token.
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let count = tokens.len();
        if cache.len + count > self.context() {
            candle_core::bail!(
                "the conversation needs {} tokens; the embedded model takes {}",
                cache.len + count,
                self.context()
            );
        }
        let ids = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        let mut x = self.embedding.embedding(&ids)?;
        let mask = (count > 1).then(|| causal_mask(count, cache.len)).transpose()?;
        for (layer, kv) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, self.shape.eps as f32)?;
            let attended = self.attention(layer, &h, kv, cache.len, mask.as_ref())?;
            x = (x + attended)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, self.shape.eps as f32)?;
            let gated =
                (candle_nn::ops::silu(&layer.gate.forward(&h)?)? * layer.up.forward(&h)?)?;
            x = (x + layer.down.forward(&gated)?)?;
        }
        cache.len += count;
        let last = x.narrow(1, count - 1, 1)?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, self.shape.eps as f32)?;
        self.output.forward(&last)?.squeeze(0)?.squeeze(0)
    }

    fn attention(
        &self, layer: &Layer, x: &Tensor, kv: &mut Option<(Tensor, Tensor)>, start: usize,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (batch, count, _) = x.dims3()?;
        let Shape { heads, kv_heads, head_dim, eps, .. } = self.shape;
        let (mut q, mut k, mut v) = (layer.q.forward(x)?, layer.k.forward(x)?, layer.v.forward(x)?);
        if let Some([bq, bk, bv]) = &layer.bias {
            q = q.broadcast_add(bq)?;
            k = k.broadcast_add(bk)?;
            v = v.broadcast_add(bv)?;
        }
        let split = |t: Tensor, n: usize| {
            t.reshape((batch, count, n, head_dim))?.transpose(1, 2)?.contiguous()
        };
        let (mut q, mut k, v) = (split(q, heads)?, split(k, kv_heads)?, split(v, kv_heads)?);
        if let Some([qn, kn]) = &layer.qk_norm {
            q = candle_nn::ops::rms_norm(&q, qn, eps as f32)?;
            k = candle_nn::ops::rms_norm(&k, kn, eps as f32)?;
        }
        let cos = self.cos.narrow(0, start, count)?;
        let sin = self.sin.narrow(0, start, count)?;
        let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?;
        let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?;
        let (k, v) = match kv.take() {
            Some((past_k, past_v)) => {
                (Tensor::cat(&[&past_k, &k], 2)?, Tensor::cat(&[&past_v, &v], 2)?)
            }
            None => (k, v),
        };
        *kv = Some((k.clone(), v.clone()));
        let groups = heads / kv_heads.max(1);
        let (k, v) = (repeat_heads(&k, groups)?, repeat_heads(&v, groups)?);
        let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?;
        let scores = match mask {
            Some(mask) => scores.broadcast_add(mask)?,
            None => scores,
        };
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = weights.matmul(&v.contiguous()?)?;
        let y = y.transpose(1, 2)?.reshape((batch, count, heads * head_dim))?;
        layer.out.forward(&y)
    }
}

/// Grouped-query attention: each key/value head serves `groups` query heads.
fn repeat_heads(t: &Tensor, groups: usize) -> Result<Tensor> {
    if groups == 1 {
        return Ok(t.clone());
    }
    let (batch, heads, len, dim) = t.dims4()?;
    t.unsqueeze(2)?.expand((batch, heads, groups, len, dim))?.reshape((
        batch,
        heads * groups,
        len,
        dim,
    ))
}

/// `-inf` where a prompt position would see a later one.
fn causal_mask(count: usize, start: usize) -> Result<Tensor> {
    let width = start + count;
    let mask: Vec<f32> = (0..count)
        .flat_map(|i| (0..width).map(move |j| if j > start + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (count, width), &Device::Cpu)
}

/// The rotary embedding's cosines and sines for every position up to `context`.
fn rotary_tables(shape: &Shape, context: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let dim = shape.head_dim;
    let inverse: Vec<f32> =
        (0..dim).step_by(2).map(|i| 1.0 / shape.rope_base.powf(i as f32 / dim as f32)).collect();
    let inverse = Tensor::from_vec(inverse, (1, dim / 2), device)?;
    let positions = Tensor::arange(0u32, context as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((context, 1))?;
    let angles = positions.matmul(&inverse)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// The index of the largest logit.
pub fn argmax(logits: &Tensor) -> Result<u32> {
    logits.argmax(D::Minus1)?.to_scalar::<u32>()
}
