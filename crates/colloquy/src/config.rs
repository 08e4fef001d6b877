//! Configuration: built-in defaults, then the optional `colloquy.toml`, then `COLLOQUY_*`
//! environment variables, then command-line flags; each later source wins.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The server's configuration (DESIGN.md §2 lists the contract).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to listen on (`COLLOQUY_LISTEN`).
    pub listen: String,
    /// `sqlite://path` or `postgres://...` (`COLLOQUY_DATABASE_URL`).
    pub database_url: String,
    /// On a database with no keys, this key becomes the admin key of the default workspace
    /// (`COLLOQUY_BOOTSTRAP_API_KEY`).
    pub bootstrap_api_key: Option<String>,
    /// Base URL clients reach the server at, for signed URLs and links (`COLLOQUY_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// Key sealing workspace secrets (`COLLOQUY_SECRET_KEY`), 64 hex chars or base64.
    pub secret_key: Option<String>,
    /// File holding that key (`COLLOQUY_SECRET_KEY_FILE`).
    pub secret_key_file: Option<PathBuf>,
    /// The key before a rotation, still accepted for opening (`COLLOQUY_SECRET_KEY_PREVIOUS`).
    pub secret_key_previous: Option<String>,
    /// `text` or `json` (`COLLOQUY_LOG_FORMAT`); the level comes from `RUST_LOG`.
    pub log_format: LogFormat,
    /// Largest request body accepted (`COLLOQUY_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Connections in the database pool (`COLLOQUY_DB_MAX_CONNECTIONS`).
    pub db_max_connections: u32,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM
    /// (`COLLOQUY_SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace_secs: u64,
    /// Internal destinations webhooks, MCP servers and custom LLMs may reach
    /// (`COLLOQUY_WEBHOOK_ALLOW`: comma-separated CIDRs and host names).
    pub webhook_allow: String,
    /// Test runs this node executes at once (`COLLOQUY_TEST_CONCURRENCY`).
    pub test_concurrency: usize,
    /// Post-call analyses this node works at once (`COLLOQUY_ANALYSIS_CONCURRENCY`): each waits
    /// on an LLM for seconds, so one at a time would fall behind the conversations that end.
    pub analysis_concurrency: usize,
    /// Requests per minute one API key may make on this node (`COLLOQUY_RATE_LIMIT_PER_MINUTE`;
    /// 0 turns the limit off). Over it: 429 with `Retry-After`.
    pub rate_limit_per_minute: u32,
    /// Live conversations one workspace may hold open on this node at once
    /// (`COLLOQUY_MAX_CONVERSATIONS_PER_WORKSPACE`).
    pub max_conversations_per_workspace: usize,
    /// Largest WebSocket message (and frame) a client may send (`COLLOQUY_WS_MAX_MESSAGE_BYTES`).
    pub ws_max_message_bytes: usize,
    /// Seconds between the keep-alive `ping`s of a live conversation (`COLLOQUY_WS_PING_SECS`).
    pub ws_ping_secs: u64,
    /// Most tools one agent may have, workspace tools and built-in ones together
    /// (`COLLOQUY_MAX_TOOLS_PER_AGENT`).
    pub max_tools_per_agent: usize,
    /// Longest system prompt of an agent, in characters (`COLLOQUY_MAX_PROMPT_CHARS`).
    pub max_prompt_chars: usize,
    /// Largest knowledge-base file upload or fetched page, in bytes
    /// (`COLLOQUY_KB_MAX_FILE_BYTES`).
    pub kb_max_file_bytes: usize,
    /// Most bytes of vectors one workspace's embedding indexes may hold
    /// (`COLLOQUY_KB_MAX_INDEX_BYTES`).
    pub kb_max_index_bytes: i64,
    /// Seconds a job's lease lasts (test runs, embedding indexes, crawls;
    /// `COLLOQUY_JOB_LEASE_SECS`). The node working a job renews its lease every second, so
    /// jobs of any length keep it; this is how long a dead node's jobs wait before any node
    /// takes them over.
    pub job_lease_secs: i64,
    /// Largest webhook response read (`COLLOQUY_WEBHOOK_MAX_RESPONSE_BYTES`); larger is a tool
    /// error.
    pub webhook_max_response_bytes: usize,
    /// Webhook calls in flight to one host at once (`COLLOQUY_WEBHOOK_MAX_CONNECTIONS_PER_HOST`);
    /// more wait for a slot within their timeout, so a hanging host cannot take every socket.
    pub webhook_max_connections_per_host: usize,
    /// Tries a post-call webhook delivery gets, the first and its retries
    /// (`COLLOQUY_WEBHOOK_TRIES`); transient failures (5xx, 429, timeouts, refused connections)
    /// are tried again until then.
    pub webhook_tries: i64,
    /// Seconds before a failed delivery's first retry (`COLLOQUY_WEBHOOK_FIRST_RETRY_SECS`);
    /// each later retry waits twice as long as the one before (10 tries span about 85 minutes).
    pub webhook_first_retry_secs: i64,
    /// Check every successful JSON answer against the reference's response model, answering
    /// 500 with what differs (`COLLOQUY_CHECK_RESPONSES`): for tests and development, it costs
    /// a parse and a schema walk per answer.
    pub check_responses: bool,
    /// LLM providers and model routing (`[llm]` in the file; `OPENAI_BASE_URL` and
    /// `OPENAI_API_KEY` configure the `openai` provider).
    pub llm: colloquy_engine::llm::router::LlmConfig,
    /// MCP servers the operator declares (`[mcp.stdio.NAME]` in the file: command, args, env,
    /// cwd, workspaces); MCP server configurations refer to them as `stdio:NAME`.
    pub mcp: colloquy_engine::mcp::McpConfig,
    /// Embedding models for knowledge-base indexes (`[embeddings]` in the file).
    pub embeddings: colloquy_engine::knowledge::embeddings::EmbeddingsConfig,
    /// Speech recognition providers (`[asr]` in the file; `COLLOQUY_ASR_URL` adds one).
    pub asr: colloquy_engine::voice::SpeechConfig,
    /// Speech synthesis providers (`[tts]` in the file; `COLLOQUY_TTS_URL` adds one).
    pub tts: colloquy_engine::voice::SpeechConfig,
    /// A GGUF model file to run in process (`COLLOQUY_LOCAL_MODEL`); without it, the first
    /// model in the models directory.
    pub local_model: Option<PathBuf>,
    /// Where `colloquy models pull` puts model files (`COLLOQUY_MODELS_DIR`); default
    /// `models/` beside the SQLite database, else `colloquy-data/models`.
    pub models_dir: Option<PathBuf>,
}

impl Config {
    /// The models directory.
    pub fn models_dir(&self) -> PathBuf {
        if let Some(dir) = &self.models_dir {
            return dir.clone();
        }
        let data = colloquy_store::sqlite_file(&self.database_url)
            .and_then(|file| file.parent().map(Path::to_owned))
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("colloquy-data"));
        data.join("models")
    }

    /// The model the `local` provider runs, if there is one.
    pub fn local_model(&self) -> Option<colloquy_engine::llm::embedded::catalog::LocalModel> {
        colloquy_engine::llm::embedded::catalog::default_local(
            self.local_model.as_deref(),
            &self.models_dir(),
        )
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8950".into(),
            database_url: "sqlite://colloquy-data/colloquy.db".into(),
            bootstrap_api_key: None,
            public_url: None,
            secret_key: None,
            secret_key_file: None,
            secret_key_previous: None,
            log_format: LogFormat::Text,
            max_body_bytes: 4 * 1024 * 1024,
            db_max_connections: 8,
            shutdown_grace_secs: 30,
            webhook_allow: String::new(),
            rate_limit_per_minute: 6000,
            max_conversations_per_workspace: 1000,
            ws_max_message_bytes: 1024 * 1024,
            ws_ping_secs: 20,
            max_tools_per_agent: 128,
            max_prompt_chars: 200_000,
            kb_max_file_bytes: 20 * 1024 * 1024,
            kb_max_index_bytes: 1 << 30,
            job_lease_secs: 15,
            webhook_max_response_bytes: 1024 * 1024,
            webhook_max_connections_per_host: 32,
            webhook_tries: 10,
            webhook_first_retry_secs: 10,
            test_concurrency: 4,
            analysis_concurrency: 8,
            check_responses: false,
            llm: Default::default(),
            mcp: Default::default(),
            embeddings: Default::default(),
            asr: Default::default(),
            tts: Default::default(),
            local_model: None,
            models_dir: None,
        }
    }
}

/// Secrets stay out of logs and panic messages.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |set: bool| if set { "<redacted>" } else { "<unset>" };
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("bootstrap_api_key", &redacted(self.bootstrap_api_key.is_some()))
            .field("public_url", &self.public_url)
            .field("secret_key", &redacted(self.secret_key.is_some()))
            .field("secret_key_file", &self.secret_key_file)
            .field("secret_key_previous", &redacted(self.secret_key_previous.is_some()))
            .field("log_format", &self.log_format)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("db_max_connections", &self.db_max_connections)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("webhook_allow", &self.webhook_allow)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("max_conversations_per_workspace", &self.max_conversations_per_workspace)
            .field("ws_max_message_bytes", &self.ws_max_message_bytes)
            .field("ws_ping_secs", &self.ws_ping_secs)
            .field("max_tools_per_agent", &self.max_tools_per_agent)
            .field("max_prompt_chars", &self.max_prompt_chars)
            .field("kb_max_file_bytes", &self.kb_max_file_bytes)
            .field("kb_max_index_bytes", &self.kb_max_index_bytes)
            .field("job_lease_secs", &self.job_lease_secs)
            .field("webhook_max_response_bytes", &self.webhook_max_response_bytes)
            .field("webhook_max_connections_per_host", &self.webhook_max_connections_per_host)
            .field("webhook_tries", &self.webhook_tries)
            .field("webhook_first_retry_secs", &self.webhook_first_retry_secs)
            .field("test_concurrency", &self.test_concurrency)
            .field("analysis_concurrency", &self.analysis_concurrency)
            .field("check_responses", &self.check_responses)
            .field("mcp_stdio_servers", &self.mcp.stdio.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The URL with any password replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:<redacted>{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Command-line values that override every other source.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    /// `--listen`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `--database-url`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

impl Config {
    /// Loads the configuration. `file` is the explicit `--config`/`COLLOQUY_CONFIG`; without
    /// one, `./colloquy.toml` is read if it exists.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    anyhow::bail!("configuration file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("colloquy.toml")),
        }
        let config: Config = figment
            .merge(Env::prefixed("COLLOQUY_").ignore(&["CONFIG", "TEST_DATABASE_URL"]))
            .merge(Serialized::defaults(overrides))
            .extract()?;
        if config.job_lease_secs < 1 {
            anyhow::bail!("COLLOQUY_JOB_LEASE_SECS must be at least 1 second");
        }
        if !(1..=30).contains(&config.webhook_tries) {
            anyhow::bail!("COLLOQUY_WEBHOOK_TRIES must be between 1 and 30");
        }
        if !(1..=3600).contains(&config.webhook_first_retry_secs) {
            anyhow::bail!("COLLOQUY_WEBHOOK_FIRST_RETRY_SECS must be between 1 and 3600");
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_and_secrets() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:<redacted>@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        let c = Config { secret_key: Some("abc".into()), ..Config::default() };
        assert!(!format!("{c:?}").contains("abc"));
    }
}
