//! Which provider serves a model. Configured in `colloquy.toml` under `[llm]`:
//!
//! ```toml
//! [llm]
//! default_provider = "openai"          # used for models no route matches
//! [llm.providers.claude]
//! kind = "anthropic"                   # or "openai" (any OpenAI-compatible server)
//! base_url = "https://api.anthropic.com"
//! api_key_env = "ANTHROPIC_API_KEY"    # or api_key = "..."
//! [[llm.routes]]
//! pattern = "claude-*"                 # `*` matches any run of characters
//! provider = "claude"
//! model = "claude-sonnet-4-5"          # optional rewrite of the model name
//! ```
//!
//! A provider named `openai` always exists: `OPENAI_BASE_URL` / `OPENAI_API_KEY` configure it
//! (the environment wins over the file), so an agent with the reference's default model works
//! against any OpenAI-compatible server. Operator-configured providers are trusted; an agent's
//! own `custom_llm` goes through the egress guard.
//!
//! When none of that is configured, a local model (`colloquy models pull`, or
//! `COLLOQUY_LOCAL_MODEL`) is the default provider, named `local-model`, and every model name goes
//! to it; when a provider is configured, the local model still answers to its own name. With
//! neither, turns fail with what to do. A provider of kind `embedded` runs a given GGUF file:
//!
//! ```toml
//! [llm.providers.small]
//! kind = "embedded"
//! model_path = "/models/qwen2.5-1.5b-instruct-q4_k_m.gguf"
//! concurrency = 1                      # generations at a time; the rest wait in line
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::anthropic::Anthropic;
use super::embedded::Embedded;
use super::embedded::catalog::LocalModel;
use super::openai::OpenAi;
use super::{CallPolicy, LlmError, LlmProvider};

/// Provider protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI-compatible chat completions.
    Openai,
    /// Anthropic Messages API.
    Anthropic,
    /// A GGUF model run in process.
    Embedded,
}

/// One configured provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// Protocol.
    pub kind: ProviderKind,
    /// Base URL (`.../v1` for OpenAI-compatible servers).
    pub base_url: Option<String>,
    /// API key, inline.
    pub api_key: Option<String>,
    /// Environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// The GGUF file of an `embedded` provider.
    pub model_path: Option<String>,
    /// Generations an `embedded` provider runs at a time (default 1: one generation already
    /// keeps every core busy).
    pub concurrency: Option<usize>,
}

impl ProviderConfig {
    /// A provider reached over HTTP at `base_url` (the kind's public URL when `None`).
    pub fn http(kind: ProviderKind, base_url: Option<String>, api_key: Option<String>) -> Self {
        ProviderConfig {
            kind,
            base_url,
            api_key,
            api_key_env: None,
            model_path: None,
            concurrency: None,
        }
    }
}

/// A model-name route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteConfig {
    /// Model names this route takes (`*` wildcards).
    pub pattern: String,
    /// Provider name.
    pub provider: String,
    /// Model name to send instead, if any.
    pub model: Option<String>,
}

/// The `[llm]` section of the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LlmConfig {
    /// Named providers.
    pub providers: HashMap<String, ProviderConfig>,
    /// Routes, tried in order.
    pub routes: Vec<RouteConfig>,
    /// Provider for models no route matches.
    pub default_provider: String,
    /// Seconds to wait for an answer to start, and between streamed chunks.
    pub timeout_secs: u64,
    /// Retries on 429, 5xx and connection failures.
    pub retries: u32,
    /// The models an agent whose `backup_llm_config` is `default` falls back to, in order
    /// (`backup_models = ["gpt-4o-mini"]`); none unless set.
    pub backup_models: Vec<String>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            providers: HashMap::new(),
            routes: Vec::new(),
            default_provider: "openai".into(),
            timeout_secs: 60,
            retries: 2,
            backup_models: Vec::new(),
        }
    }
}

/// The provider name the local model is served under (unless the configuration already uses
/// it for a provider of its own, which then keeps it).
pub const LOCAL_PROVIDER: &str = "local-model";

/// The provider `config` describes; `key` is its API key, from the file or the environment.
fn provider(
    name: &str, config: &ProviderConfig, key: Option<String>, trusted: &reqwest::Client,
    policy: &CallPolicy,
) -> Result<Arc<dyn LlmProvider>, RouterError> {
    Ok(match config.kind {
        ProviderKind::Openai => Arc::new(OpenAi::new(
            trusted.clone(),
            config.base_url.as_deref().unwrap_or("https://api.openai.com/v1"),
            key,
            policy.clone(),
        )),
        ProviderKind::Anthropic => Arc::new(Anthropic::new(
            trusted.clone(),
            config.base_url.as_deref().unwrap_or("https://api.anthropic.com"),
            key.ok_or_else(|| RouterError::MissingKey(name.to_owned()))?,
            policy.clone(),
        )),
        ProviderKind::Embedded => Arc::new(Embedded::new(
            config
                .model_path
                .clone()
                .ok_or_else(|| RouterError::MissingModel(name.to_owned()))?
                .into(),
            config.concurrency.unwrap_or(1),
        )),
    })
}

/// Picks the provider and model name for each call.
pub struct LlmRouter {
    providers: HashMap<String, Arc<dyn LlmProvider>>,
    routes: Vec<RouteConfig>,
    default_provider: String,
    backup_models: Vec<String>,
    guarded: reqwest::Client,
    policy: CallPolicy,
    /// The local model, under [`LOCAL_PROVIDER`], with its name.
    local: Option<(String, Arc<Embedded>)>,
    /// Nothing is configured and no local model is present.
    unconfigured: bool,
    /// The providers' own model lists, as last asked, and when: asking takes up to three
    /// seconds a provider, and the dashboard's model picker asks on every page.
    listed: tokio::sync::Mutex<Option<(std::time::Instant, Vec<Vec<String>>)>>,
}

/// How long the providers' model lists are kept.
const LISTS_KEPT: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first)
        || !name[first.len()..].ends_with(last)
        || name.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// An LLM configuration the router cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// An Anthropic provider has no key.
    #[error("LLM provider {0:?} (anthropic) has no api_key or api_key_env")]
    MissingKey(String),
    /// A route names a provider that is not configured.
    #[error("LLM route {route:?} names the unknown provider {provider:?}")]
    UnknownProvider {
        /// The route's model pattern.
        route: String,
        /// The provider it names.
        provider: String,
    },
    /// The default provider is not configured.
    #[error("the default LLM provider {0:?} is not configured")]
    NoDefault(String),
    /// An embedded provider names no model file.
    #[error("LLM provider {0:?} (embedded) has no model_path")]
    MissingModel(String),
}

impl LlmRouter {
    /// Builds the router. `trusted` serves operator-configured providers; `guarded` (behind
    /// the egress guard) serves agents' `custom_llm`; `local` is the model file found for
    /// the `local` provider, if any.
    pub fn new(
        config: &LlmConfig, trusted: reqwest::Client, guarded: reqwest::Client,
        local: Option<LocalModel>,
    ) -> Result<LlmRouter, RouterError> {
        let policy = CallPolicy {
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            retries: config.retries,
            ..Default::default()
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let configured = env("OPENAI_BASE_URL").is_some()
            || env("OPENAI_API_KEY").is_some()
            || config.providers.contains_key("openai")
            || config.default_provider != "openai";
        let mut providers: HashMap<String, Arc<dyn LlmProvider>> = HashMap::new();
        let mut configs = config.providers.clone();
        let openai = configs.entry("openai".into()).or_insert(ProviderConfig::http(
            ProviderKind::Openai,
            None,
            None,
        ));
        if let Some(url) = env("OPENAI_BASE_URL") {
            openai.base_url = Some(url);
        }
        if let Some(key) = env("OPENAI_API_KEY") {
            openai.api_key = Some(key);
        }
        for (name, p) in &configs {
            let key = p.api_key.clone().or_else(|| p.api_key_env.as_deref().and_then(env));
            providers.insert(name.clone(), provider(name, p, key, &trusted, &policy)?);
        }
        let local = local
            .filter(|_| !providers.contains_key(LOCAL_PROVIDER))
            .map(|m| (m.name, Arc::new(Embedded::new(m.path, 1))));
        let mut default_provider = config.default_provider.clone();
        if let Some((_, model)) = &local {
            providers.insert(LOCAL_PROVIDER.into(), model.clone());
            if !configured {
                default_provider = LOCAL_PROVIDER.into();
            }
        }
        for route in &config.routes {
            if !providers.contains_key(&route.provider) {
                return Err(RouterError::UnknownProvider {
                    route: route.pattern.clone(),
                    provider: route.provider.clone(),
                });
            }
        }
        if !providers.contains_key(&default_provider) {
            return Err(RouterError::NoDefault(default_provider));
        }
        Ok(LlmRouter {
            providers,
            routes: config.routes.clone(),
            default_provider,
            backup_models: config.backup_models.clone(),
            guarded,
            policy,
            unconfigured: !configured && local.is_none() && config.routes.is_empty(),
            local,
            listed: tokio::sync::Mutex::new(None),
        })
    }

    /// The provider and the model name to send for `model`.
    pub fn route(&self, model: &str) -> Result<(Arc<dyn LlmProvider>, String), LlmError> {
        let (provider, rewrite) = match self.routes.iter().find(|r| glob(&r.pattern, model)) {
            Some(r) => (r.provider.as_str(), r.model.clone()),
            None if self.local.as_ref().is_some_and(|(name, _)| name == model) => {
                (LOCAL_PROVIDER, None)
            }
            None if self.unconfigured => return Err(LlmError::Unconfigured),
            None => (self.default_provider.as_str(), None),
        };
        let p =
            self.providers.get(provider).ok_or_else(|| LlmError::NoProvider(model.to_owned()))?;
        Ok((p.clone(), rewrite.unwrap_or_else(|| model.to_owned())))
    }

    /// The local model (its name and provider), when one was found.
    pub fn local(&self) -> Option<(&str, &Arc<Embedded>)> {
        self.local.as_ref().map(|(name, model)| (name.as_str(), model))
    }

    /// What an operator must do before any turn can be answered, when nothing is configured.
    pub fn guidance(&self) -> Option<String> {
        self.unconfigured.then(|| LlmError::Unconfigured.to_string())
    }

    /// The model names this server can use: the local model, the names routes spell out,
    /// and what each configured provider's own list says (for the default provider, those
    /// are every name no route takes).
    pub async fn available(&self) -> Vec<(String, Option<Arc<Embedded>>)> {
        let mut names: Vec<(String, Option<Arc<Embedded>>)> = Vec::new();
        if let Some((name, model)) = &self.local {
            names.push((name.clone(), Some(model.clone())));
        }
        for route in &self.routes {
            if !route.pattern.contains('*') {
                names.push((route.pattern.clone(), None));
            }
        }
        let mut providers: Vec<(&String, &Arc<dyn LlmProvider>)> = self
            .providers
            .iter()
            .filter(|(name, _)| {
                name.as_str() != LOCAL_PROVIDER && !(self.unconfigured && name.as_str() == "openai")
            })
            .collect();
        providers.sort_by_key(|(name, _)| name.as_str());
        let lists = {
            // One caller asks; those arriving meanwhile wait for its answer.
            let mut listed = self.listed.lock().await;
            match listed.as_ref() {
                Some((at, lists)) if at.elapsed() < LISTS_KEPT => lists.clone(),
                _ => {
                    let asked = providers.iter().map(|(_, p)| p.models());
                    let lists = futures_util::future::join_all(asked).await;
                    *listed = Some((std::time::Instant::now(), lists.clone()));
                    lists
                }
            }
        };
        for ((provider, _), ids) in providers.iter().zip(lists) {
            // A name reaches a provider through a route, or as the default when none takes it.
            let reachable = |id: &String| match self.routes.iter().find(|r| glob(&r.pattern, id)) {
                Some(route) => &route.provider == *provider,
                None => provider.as_str() == self.default_provider,
            };
            names.extend(ids.into_iter().filter(reachable).map(|id| (id, None)));
        }
        let mut seen = std::collections::HashSet::new();
        names.retain(|(name, _)| seen.insert(name.clone()));
        names
    }

    /// The backups of agents that keep the default `backup_llm_config`.
    pub fn backup_models(&self) -> &[String] {
        &self.backup_models
    }

    /// Whether a route names `model` (the operator said where it goes).
    pub fn has_route(&self, model: &str) -> bool {
        self.routes.iter().any(|r| glob(&r.pattern, model))
    }

    /// An agent's own OpenAI-compatible endpoint (its `custom_llm`: `url`, `model_id`), reached
    /// through the egress guard, with the model name to send; `api_key` is its opened secret.
    pub fn custom(
        &self, custom: &serde_json::Value, api_key: Option<String>,
    ) -> (Arc<dyn LlmProvider>, String) {
        let field = |name: &str| custom.get(name).and_then(serde_json::Value::as_str);
        let url = field("url").unwrap_or_default();
        let model = field("model_id").unwrap_or("custom-llm").to_owned();
        (Arc::new(OpenAi::new(self.guarded.clone(), url, api_key, self.policy.clone())), model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(config: &LlmConfig, local: Option<&str>) -> LlmRouter {
        crate::install_crypto_provider();
        let local = local.map(|name| LocalModel {
            name: name.into(),
            path: format!("/models/{name}.gguf").into(),
            size: 1,
        });
        LlmRouter::new(config, reqwest::Client::new(), reqwest::Client::new(), local).unwrap()
    }

    /// Which provider `model` goes to: the local model's, or another (by its model name).
    fn goes_to(router: &LlmRouter, model: &str) -> Result<&'static str, LlmError> {
        let (provider, _) = router.route(model)?;
        let local = router
            .local()
            .is_some_and(|(_, m)| std::ptr::addr_eq(Arc::as_ptr(&provider), Arc::as_ptr(m)));
        Ok(if local { "local" } else { "other" })
    }

    #[test]
    fn the_local_model_is_the_default_only_when_nothing_is_configured() {
        if std::env::var_os("OPENAI_BASE_URL").is_some()
            || std::env::var_os("OPENAI_API_KEY").is_some()
        {
            return; // The environment configures the openai provider: nothing to tell apart.
        }
        let nothing = LlmConfig::default();
        let bare = router(&nothing, None);
        assert!(matches!(bare.route("gpt-4o"), Err(LlmError::Unconfigured)));
        assert!(bare.guidance().is_some_and(|g| g.contains("colloquy models pull")));

        let with_model = router(&nothing, Some("qwen"));
        assert_eq!(goes_to(&with_model, "gpt-4o").unwrap(), "local");
        assert_eq!(with_model.guidance(), None);

        let mut configured = LlmConfig::default();
        configured.providers.insert(
            "openai".into(),
            ProviderConfig::http(ProviderKind::Openai, Some("http://127.0.0.1:9/v1".into()), None),
        );
        let both = router(&configured, Some("qwen"));
        assert_eq!(goes_to(&both, "gpt-4o").unwrap(), "other");
        assert_eq!(goes_to(&both, "qwen").unwrap(), "local", "the local model keeps its name");

        // A provider of the operator's under the local model's provider name stays theirs.
        configured.providers.insert(LOCAL_PROVIDER.into(), configured.providers["openai"].clone());
        let taken = router(&configured, Some("qwen"));
        assert!(taken.local().is_none());
    }

    #[tokio::test]
    async fn providers_model_lists_are_asked_once_a_minute() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        let app = axum::Router::new().route(
            "/v1/models",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { axum::Json(serde_json::json!({"data": [{"id": "gpt-4o"}]})) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut config = LlmConfig::default();
        config
            .providers
            .insert("openai".into(), ProviderConfig::http(ProviderKind::Openai, Some(base), None));
        let router = router(&config, None);
        let (first, second) = tokio::join!(router.available(), router.available());
        let third = router.available().await;
        for names in [first, second, third] {
            assert!(names.iter().any(|(n, _)| n == "gpt-4o"), "{:?}", names.len());
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1, "one question for three lists");
    }

    #[test]
    fn globs() {
        for (p, n, want) in [
            ("claude-*", "claude-sonnet-4", true),
            ("claude-*", "gpt-4o", false),
            ("*", "anything", true),
            ("gpt-4o", "gpt-4o", true),
            ("gpt-4o", "gpt-4o-mini", false),
            ("*-mini", "gpt-4o-mini", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(glob(p, n), want, "{p} {n}");
        }
    }
}
