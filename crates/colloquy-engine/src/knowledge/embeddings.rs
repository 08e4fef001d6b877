//! Embedding models for vector retrieval. The reference names two models
//! (`e5_mistral_7b_instruct`, `multilingual_e5_large_instruct`); the operator says which
//! server computes each, in `colloquy.toml`:
//!
//! ```toml
//! [embeddings.providers.local]
//! kind = "openai"                       # any OpenAI-compatible /v1/embeddings server
//! base_url = "http://127.0.0.1:11434/v1"
//! api_key_env = "EMBEDDINGS_API_KEY"    # or api_key = "...", or neither
//! [[embeddings.routes]]
//! model = "e5_mistral_7b_instruct"      # the reference's name
//! provider = "local"
//! provider_model = "nomic-embed-text"   # the name the server knows
//! ```
//!
//! With no route for a model, indexing with it is refused and retrieval stays lexical.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Provider protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingKind {
    /// OpenAI-compatible `POST {base_url}/embeddings`.
    Openai,
}

/// One embeddings server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingProvider {
    /// Protocol.
    pub kind: EmbeddingKind,
    /// Base URL (`.../v1`).
    pub base_url: String,
    /// API key, inline.
    pub api_key: Option<String>,
    /// Environment variable holding the API key.
    pub api_key_env: Option<String>,
}

/// Which provider computes one of the reference's models.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingRoute {
    /// The reference's model name.
    pub model: String,
    /// Provider name.
    pub provider: String,
    /// The model name the provider knows.
    pub provider_model: String,
}

/// The `[embeddings]` section of the configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EmbeddingsConfig {
    /// Named providers.
    pub providers: HashMap<String, EmbeddingProvider>,
    /// One route per model.
    pub routes: Vec<EmbeddingRoute>,
}

/// Why embeddings could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddingsError {
    /// A route names a provider that is not configured.
    #[error("[[embeddings.routes]] for {model:?} names the unknown provider {provider:?}")]
    UnknownProvider {
        /// The route's model.
        model: String,
        /// The provider it names.
        provider: String,
    },
    /// No route serves the model.
    #[error(
        "no embedding provider is configured for {0:?}: add an [[embeddings.routes]] entry for it in colloquy.toml"
    )]
    NotConfigured(String),
    /// The provider failed or answered something else than vectors.
    #[error("the embedding provider failed: {0}")]
    Provider(String),
}

#[derive(Debug, Clone)]
struct Route {
    url: String,
    key: Option<String>,
    model: String,
}

/// The configured embedding models.
#[derive(Debug, Clone)]
pub struct Embeddings {
    routes: HashMap<String, Route>,
    http: reqwest::Client,
}

/// How long one batch may take.
const TIMEOUT: Duration = Duration::from_secs(60);

impl Embeddings {
    /// The routes of `config`, called with `http` (operator-configured servers are trusted,
    /// as LLM providers are).
    pub fn new(config: &EmbeddingsConfig, http: reqwest::Client) -> Result<Self, EmbeddingsError> {
        let mut routes = HashMap::new();
        for route in &config.routes {
            let provider = config.providers.get(&route.provider).ok_or_else(|| {
                EmbeddingsError::UnknownProvider {
                    model: route.model.clone(),
                    provider: route.provider.clone(),
                }
            })?;
            let key = provider.api_key.clone().or_else(|| {
                let name = provider.api_key_env.as_deref()?;
                std::env::var(name).ok().filter(|v| !v.is_empty())
            });
            let url = format!("{}/embeddings", provider.base_url.trim_end_matches('/'));
            routes.insert(
                route.model.clone(),
                Route { url, key, model: route.provider_model.clone() },
            );
        }
        Ok(Embeddings { routes, http })
    }

    /// Whether `model` can be computed here.
    pub fn has(&self, model: &str) -> bool {
        self.routes.contains_key(model)
    }

    /// The vector of one text under `model`.
    pub async fn embed_one(&self, model: &str, text: &str) -> Result<Vec<f32>, EmbeddingsError> {
        let mut vectors = self.embed(model, &[text.to_owned()]).await?;
        vectors.pop().ok_or_else(|| EmbeddingsError::Provider("no vector for the text".into()))
    }

    /// The vectors of `texts` under `model`, in order.
    pub async fn embed(
        &self, model: &str, texts: &[String],
    ) -> Result<Vec<Vec<f32>>, EmbeddingsError> {
        let route =
            self.routes.get(model).ok_or_else(|| EmbeddingsError::NotConfigured(model.into()))?;
        let mut request = self
            .http
            .post(&route.url)
            .timeout(TIMEOUT)
            .json(&json!({"model": route.model, "input": texts}));
        if let Some(key) = &route.key {
            request = request.bearer_auth(key);
        }
        let failed = |e: &dyn std::fmt::Display| EmbeddingsError::Provider(e.to_string());
        let response = request.send().await.map_err(|e| failed(&e))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| failed(&e))?;
        if !status.is_success() {
            return Err(EmbeddingsError::Provider(format!("{status}: {body}")));
        }
        let mut items: Vec<(usize, Vec<f32>)> = Vec::with_capacity(texts.len());
        for (i, item) in body["data"].as_array().into_iter().flatten().enumerate() {
            let index = item["index"].as_u64().map_or(i, |n| usize::try_from(n).unwrap_or(i));
            let vector: Option<Vec<f32>> = item["embedding"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_f64).map(|x| x as f32).collect());
            items.push((
                index,
                vector
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| failed(&"an item has no embedding"))?,
            ));
        }
        if items.len() != texts.len() {
            return Err(failed(&format!("{} vectors for {} texts", items.len(), texts.len())));
        }
        items.sort_by_key(|(i, _)| *i);
        Ok(items.into_iter().map(|(_, v)| v).collect())
    }
}

/// `vectors` by cosine distance to `query` (normalised here), nearest first.
pub fn rank(
    query: &[f32], vectors: Vec<colloquy_store::VectorRow>,
) -> Vec<(colloquy_store::VectorRow, f32)> {
    let query = from_bytes(&to_bytes(query));
    let mut ranked: Vec<_> = vectors
        .into_iter()
        .map(|v| {
            let d = distance(&query, &v.vector);
            (v, d)
        })
        .collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    ranked
}

/// A vector as stored: little-endian `f32`s, normalised to unit length so a dot product is
/// the cosine similarity.
pub fn to_bytes(vector: &[f32]) -> Vec<u8> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    vector.iter().flat_map(|x| (x / norm).to_le_bytes()).collect()
}

/// A stored vector read back.
pub fn from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Cosine distance (1 − similarity) between a unit query and a stored unit vector; 2 when
/// their dimensions differ (another model's vector never matches).
pub fn distance(query: &[f32], stored: &[u8]) -> f32 {
    if stored.len() != query.len() * 4 {
        return 2.0;
    }
    let dot: f32 = stored
        .chunks_exact(4)
        .zip(query)
        .map(|(b, q)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * q)
        .sum();
    1.0 - dot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_vectors_are_unit_and_distances_cosine() {
        let stored = to_bytes(&[3.0, 4.0]);
        let back = from_bytes(&stored);
        assert!((back[0] - 0.6).abs() < 1e-6 && (back[1] - 0.8).abs() < 1e-6);
        let query = from_bytes(&to_bytes(&[3.0, 4.0]));
        assert!(distance(&query, &stored).abs() < 1e-6);
        let orthogonal = from_bytes(&to_bytes(&[-4.0, 3.0]));
        assert!((distance(&orthogonal, &stored) - 1.0).abs() < 1e-6);
        assert_eq!(distance(&[1.0], &stored), 2.0);
    }
}
