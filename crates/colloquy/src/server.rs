//! Start-up and shutdown of the HTTP server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use colloquy_api::ApiSettings;
use colloquy_engine::conversation::{ProgressWriter, SharedConfigs};
use colloquy_engine::egress::EgressGuard;
use colloquy_engine::knowledge::embeddings::Embeddings;
use colloquy_engine::llm::router::LlmRouter;
use colloquy_engine::voice::VoiceRouter;
use colloquy_engine::{EngineDeps, EngineLimits};
use colloquy_store::{AuditWriter, ConnectOptions, DynStore, KeyStore, SqlStore};
use tokio::net::TcpListener;

use crate::config::{Config, redact_url};
use crate::secret_file;

/// Installs rustls' ring provider for outbound TLS (database, webhooks, LLMs). Must run before
/// any TLS client is built; repeated calls are harmless.
pub fn install_crypto_provider() {
    colloquy_engine::install_crypto_provider();
}

/// Reads the local model in the background, so that a file that cannot run shows at start
/// (and the first turn does not wait for the read).
fn warm_up_local_model(engine: &Arc<EngineDeps>) {
    let Some((name, model)) = engine.llm.local() else { return };
    tracing::info!(model = name, path = %model.path().display(), "local model: reading");
    let engine = engine.clone();
    tokio::spawn(async move {
        let Some((name, model)) = engine.llm.local() else { return };
        match model.loaded().await {
            Ok(_) => tracing::info!(model = name, "local model: ready"),
            Err(e) => tracing::error!(model = name, error = %e, "local model: cannot run"),
        }
    });
}

/// The engine's dependencies: LLM routing, the egress-guarded HTTP client, the audit writer
/// (with the task that drains it).
pub fn engine(
    config: &Config, store: &DynStore, keyring: &colloquy_core::secret_key::Keyring,
) -> anyhow::Result<(Arc<EngineDeps>, tokio::task::JoinHandle<()>)> {
    let egress = Arc::new(
        EgressGuard::parse(&config.webhook_allow)
            .map_err(|e| anyhow::anyhow!("COLLOQUY_WEBHOOK_ALLOW: {e}"))?,
    );
    let guarded = egress.client(Duration::from_secs(config.llm.timeout_secs.max(1)));
    let trusted = reqwest::Client::builder()
        .tls_backend_preconfigured(colloquy_engine::tls::client_config())
        .build()
        .context("building the HTTP client")?;
    let llm = LlmRouter::new(&config.llm, trusted.clone(), guarded.clone(), config.local_model())
        .map_err(|e| anyhow::anyhow!("[llm] configuration: {e}"))?;
    let voice = VoiceRouter::new(&config.asr, &config.tts, trusted.clone())
        .map_err(|e| anyhow::anyhow!("[asr]/[tts] configuration: {e}"))?;
    let embeddings = Embeddings::new(&config.embeddings, trusted)
        .map_err(|e| anyhow::anyhow!("[embeddings] configuration: {e}"))?;
    let (audit, audit_task) = AuditWriter::spawn(store.clone());
    let deps = EngineDeps {
        node_id: colloquy_core::ids::new_id(colloquy_core::ids::prefix::WORKER),
        store: store.clone(),
        audit,
        progress: ProgressWriter::spawn(store.clone()),
        configs: SharedConfigs::default(),
        llm,
        http: guarded,
        webhook_hosts: colloquy_engine::host_limits::HostLimits::new(
            config.webhook_max_connections_per_host,
        ),
        egress,
        keyring: keyring.clone(),
        limits: EngineLimits {
            webhook_max_response_bytes: config.webhook_max_response_bytes,
            kb_max_index_bytes: config.kb_max_index_bytes,
            job_lease_secs: config.job_lease_secs,
            webhook_tries: config.webhook_tries,
            webhook_first_retry_secs: config.webhook_first_retry_secs,
            ..EngineLimits::default()
        },
        mcp: config.mcp.clone(),
        voice,
        embeddings,
        knowledge_queued: tokio::sync::Notify::new(),
        runs_queued: tokio::sync::Notify::new(),
        webhooks_queued: tokio::sync::Notify::new(),
        analyses_queued: tokio::sync::Notify::new(),
    };
    Ok((Arc::new(deps), audit_task))
}

/// Connects to the configured database and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<SqlStore> {
    let options =
        ConnectOptions { max_connections: config.db_max_connections, ..Default::default() };
    let store = SqlStore::connect(&config.database_url, &options)
        .await
        .with_context(|| format!("connecting to {}", redact_url(&config.database_url)))?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// A server bound to its address, ready to run.
pub struct Server {
    listener: TcpListener,
    router: axum::Router,
    store: DynStore,
    grace: Duration,
    /// The audit writer; it drains once the router (holding the last writer) is dropped.
    audit_task: tokio::task::JoinHandle<()>,
    /// Stops the test-run, knowledge-base, webhook and analysis workers (jobs they hold are taken over
    /// when their leases expire).
    stop_workers: tokio::sync::watch::Sender<bool>,
    /// The test-run worker.
    worker: tokio::task::JoinHandle<()>,
    /// The knowledge-base worker (embedding indexes and crawls).
    indexer: tokio::task::JoinHandle<()>,
    /// The webhook worker (post-call deliveries).
    webhooks: tokio::task::JoinHandle<()>,
    /// The analyser (post-call analyses).
    analyser: tokio::task::JoinHandle<()>,
    /// Marks this node's live conversations seen.
    live: tokio::task::JoinHandle<()>,
    /// The admin key created on an empty database when no bootstrap key was configured; the
    /// caller shows it once.
    pub generated_key: Option<String>,
    /// What to do before any turn can be answered, when no LLM is configured.
    llm_guidance: Option<String>,
}

impl Server {
    /// Opens the database, migrates, makes sure a first key exists, and binds the listener.
    pub async fn build(config: &Config) -> anyhow::Result<Server> {
        install_crypto_provider();
        let store = open_store(config).await?;
        let keyring = secret_file::load_keyring(config)?;
        let generated_key = match &config.bootstrap_api_key {
            Some(key) => {
                if store.bootstrap_key(key).await? {
                    tracing::info!(
                        "installed COLLOQUY_BOOTSTRAP_API_KEY as the admin key of the default workspace"
                    );
                }
                None
            }
            None => {
                let token = colloquy_core::keys::generate_token();
                store.bootstrap_key(&token).await?.then_some(token)
            }
        };
        let store: DynStore = Arc::new(store);
        let (engine, audit_task) = engine(config, &store, &keyring)?;
        let llm_guidance = engine.llm.guidance();
        warm_up_local_model(&engine);
        let settings = ApiSettings {
            public_url: config.public_url.clone(),
            max_body_bytes: config.max_body_bytes,
            limits: colloquy_api::Limits {
                rate_limit_per_minute: config.rate_limit_per_minute,
                max_conversations_per_workspace: config.max_conversations_per_workspace,
                ws_max_message_bytes: config.ws_max_message_bytes,
                ws_ping_every: std::time::Duration::from_secs(config.ws_ping_secs.max(1)),
                max_tools_per_agent: config.max_tools_per_agent,
                max_prompt_chars: config.max_prompt_chars,
                kb_max_file_bytes: config.kb_max_file_bytes,
            },
            check_responses: config.check_responses,
        };
        let api = colloquy_api::router(store.clone(), keyring.clone(), engine.clone(), settings)?;
        // The dashboard renders from the API itself, so it gets its own handle on it.
        let router =
            colloquy_dashboard::router(api.clone(), keyring, llm_guidance.as_deref()).merge(api);
        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        // The workers start once the listener is bound: a start that fails to bind leaves none
        // running, and their first polls of the database stay out of the start's way.
        let (stop_workers, stop) = tokio::sync::watch::channel(false);
        let worker_id = engine.node_id.clone();
        let live = tokio::spawn(colloquy_engine::live::heartbeat(engine.clone(), stop.clone()));
        let indexer = tokio::spawn(colloquy_engine::knowledge::worker::worker(
            engine.clone(),
            worker_id.clone(),
            stop.clone(),
        ));
        let webhooks =
            tokio::spawn(colloquy_engine::webhooks::worker::worker(engine.clone(), stop.clone()));
        let analyser = tokio::spawn(colloquy_engine::analysis::worker::worker(
            engine.clone(),
            worker_id.clone(),
            config.analysis_concurrency,
            stop.clone(),
        ));
        let worker = tokio::spawn(colloquy_engine::testing::worker(
            engine.clone(),
            worker_id,
            config.test_concurrency,
            stop,
        ));
        Ok(Server {
            listener,
            router,
            store,
            grace: Duration::from_secs(config.shutdown_grace_secs),
            generated_key,
            llm_guidance,
            audit_task,
            stop_workers,
            worker,
            indexer,
            webhooks,
            analyser,
            live,
        })
    }

    /// What to do before any turn can be answered, when no LLM is configured and no local
    /// model is present.
    pub fn llm_guidance(&self) -> Option<&str> {
        self.llm_guidance.as_deref()
    }

    /// The bound address (the real port when configured with port 0).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (up to the grace
    /// period) and closes the database.
    pub async fn run_until(
        self, shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        // Responses go out as soon as they are written: without TCP_NODELAY a small answer
        // written in two parts waits on the client's delayed ACK.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let serve = axum::serve(listener, self.router).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stopping_tx.send(());
        });
        let grace = self.grace;
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = serve => result.context("serving")?,
            () = deadline => tracing::warn!(?grace, "grace period over; dropping unfinished requests"),
        }
        let _ = self.stop_workers.send(true);
        let _ = self.worker.await;
        let _ = self.indexer.await;
        let _ = self.webhooks.await;
        let _ = self.analyser.await;
        let _ = self.live.await;
        // The router held the last handle on the audit writer; give queued records time to land.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.audit_task).await;
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
