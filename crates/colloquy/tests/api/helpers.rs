//! The test harness: a real server on a random port over a real database, driven over HTTP.
//!
//! Every test runs on SQLite (a temp file) and, when `COLLOQUY_TEST_DATABASE_URL` is set, on
//! PostgreSQL too, each in a fresh schema dropped afterwards: [`dual_db!`] makes the two runs
//! two tests, `<test>::sqlite` and `<test>::postgres`, so every failure names its backend.
//! Under `CI` the PostgreSQL URL is mandatory, so CI cannot pass with the PostgreSQL half
//! silently skipped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use colloquy::config::Config;
use colloquy::server::Server;
use colloquy_core::keys::generate_token;
use colloquy_core::scope::Scopes;
use colloquy_core::secret_key::SecretKey;
use colloquy_store::{ConnectOptions, KeyStore, NewApiKey, SqlStore};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;

/// The databases tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Whether the PostgreSQL half of the tests runs: when `COLLOQUY_TEST_DATABASE_URL` is set,
/// which CI must do.
pub fn postgres_configured() -> bool {
    match std::env::var("COLLOQUY_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => true,
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but COLLOQUY_TEST_DATABASE_URL is not: the PostgreSQL tests would be skipped"
            );
            false
        }
    }
}

/// Runs the test `async fn $name(backend: Backend)` on each database, as the two tests
/// `$name::sqlite` and `$name::postgres` (which passes without running when PostgreSQL is not
/// configured outside CI).
macro_rules! dual_db {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                if $crate::helpers::postgres_configured() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            }
        }
    };
}
pub(crate) use dual_db;

/// A fresh, empty database: a SQLite file in a temp dir, or a new PostgreSQL schema.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// Temp dir holding the SQLite file (and its generated secret key); kept alive with us.
    pub dir: TempDir,
    schema: Option<String>,
}

static SCHEMA_SEQ: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => TestDb {
                backend,
                url: format!("sqlite://{}", dir.path().join("colloquy.db").display()),
                dir,
                schema: None,
            },
            Backend::Postgres => {
                let base = std::env::var("COLLOQUY_TEST_DATABASE_URL").expect("postgres url");
                let schema = format!(
                    "colloquy_test_{}_{}_{}",
                    std::process::id(),
                    SCHEMA_SEQ.fetch_add(1, Ordering::Relaxed),
                    colloquy_core::time::now_ms() % 1_000_000
                );
                let mut conn = sqlx_connect(&base).await;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .expect("create schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                TestDb {
                    backend,
                    url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                    dir,
                    schema: Some(schema),
                }
            }
        }
    }

    /// The PostgreSQL schema the database is (`None` on SQLite).
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// A store on this database (migrated), for setting up and inspecting state directly.
    pub async fn store(&self) -> SqlStore {
        let store =
            SqlStore::connect(&self.url, &ConnectOptions::default()).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }
}

async fn sqlx_connect(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(url).await.expect("connect to COLLOQUY_TEST_DATABASE_URL")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else {
            return;
        };
        let base = std::env::var("COLLOQUY_TEST_DATABASE_URL").unwrap_or_default();
        // Drop runs inside the test's runtime; clean up on a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut conn = sqlx_connect(&base).await;
                // This thread blocks the test's runtime, so the test's own pools cannot flush a
                // pending rollback: end every session still holding a lock in the schema (they
                // are the dropped test's) rather than wait for them forever.
                let _ = sqlx::query(
                    "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
                     JOIN pg_class c ON c.oid = l.relation \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND l.pid <> pg_backend_pid()",
                )
                .bind(&schema)
                .execute(&mut conn)
                .await;
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&mut conn)
                .await;
            });
        })
        .join();
    }
}

/// The configuration tests start servers with.
pub fn test_config(db: &TestDb, admin_key: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url.clone(),
        bootstrap_api_key: Some(admin_key.to_owned()),
        secret_key: (db.backend == Backend::Postgres).then(|| SecretKey::generate().to_hex()),
        db_max_connections: 4,
        shutdown_grace_secs: 5,
        check_responses: true,
        ..Config::default()
    }
}

/// A server running in this process.
pub struct TestApp {
    pub base: String,
    /// The configuration the server runs with.
    pub config: Config,
    pub admin_key: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn client() -> reqwest::Client {
    colloquy::server::install_crypto_provider();
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::new(backend).await;
        let admin_key = generate_token();
        let mut config = test_config(&db, &admin_key);
        tweak(&mut config);
        TestApp::start(db, config, admin_key).await
    }

    /// Stops the server and starts another (on a new port) over the same database and
    /// configuration: what was stored must survive it.
    pub async fn restart(self) -> TestApp {
        let (config, admin_key) = (self.config.clone(), self.admin_key.clone());
        let db = self.stop().await;
        TestApp::start(db, config, admin_key).await
    }

    async fn start(db: TestDb, config: Config, admin_key: String) -> TestApp {
        let server = Server::build(&config).await.expect("server starts");
        let kept = config.clone();
        let addr = server.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            base: format!("http://{addr}"),
            config: kept,
            admin_key,
            client: client(),
            db,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates a key in `workspace` with `scopes` and returns its token.
    pub async fn key(&self, workspace: &str, email: &str, scopes: &str) -> String {
        let store = self.db.store().await;
        let token = generate_token();
        let new = NewApiKey {
            workspace: workspace.into(),
            user_name: email.split('@').next().unwrap_or("user").into(),
            user_email: email.into(),
            name: "test".into(),
            scopes: Scopes::parse(scopes).expect("scopes").to_string(),
        };
        store.create_key(&new, &token).await.expect("create key");
        token
    }

    /// GET with `key`, returning status and JSON (Null for an empty body).
    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let r =
            self.client.get(self.url(path)).header("xi-api-key", key).send().await.expect("send");
        status_json(r).await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, key, body).await
    }

    pub async fn send(
        &self, method: reqwest::Method, path: &str, key: &str, body: &Value,
    ) -> (u16, Value) {
        let r = self
            .client
            .request(method, self.url(path))
            .header("xi-api-key", key)
            .json(body)
            .send()
            .await
            .expect("send");
        status_json(r).await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> TestDb {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("server ran cleanly");
        }
        std::mem::replace(&mut self.db, TestDb::placeholder())
    }
}

impl TestDb {
    fn placeholder() -> TestDb {
        TestDb {
            backend: Backend::Sqlite,
            url: String::new(),
            dir: tempfile::tempdir().expect("temp dir"),
            schema: None,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn status_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let bytes = r.bytes().await.expect("body");
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!("status {status}: body is not JSON: {}", String::from_utf8_lossy(&bytes))
        })
    };
    (status, json)
}

/// The `colloquy` binary run as a child process, for tests that restart or kill the server.
pub struct ChildServer {
    pub child: Child,
    pub base: String,
    pub stderr_log: PathBuf,
}

pub fn colloquy_bin() -> &'static str {
    env!("CARGO_BIN_EXE_colloquy")
}

impl ChildServer {
    /// Starts `colloquy serve` on a free port with `envs`, waiting until it answers /healthz.
    pub async fn start(workdir: &std::path::Path, envs: &[(&str, &str)]) -> ChildServer {
        let stderr_log = workdir.join(format!("server-{}.log", colloquy_core::time::now_ms()));
        let port = free_port();
        let mut cmd = Command::new(colloquy_bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(workdir)
            .env_remove("COLLOQUY_CONFIG")
            .env("RUST_LOG", "info")
            .env("COLLOQUY_CHECK_RESPONSES", "true")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).expect("log file"));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn colloquy");
        let base = format!("http://127.0.0.1:{port}");
        let server = ChildServer { child, base, stderr_log };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let client = client();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "server did not become ready; log:\n{}",
            std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
        );
    }

    /// The errors and warnings the server logged, for a failing assertion's message.
    pub fn logged_errors(&self) -> String {
        let log = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited successfully.
    pub fn terminate(mut self) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Asks `check` every `every` until it gives a value, for at most `within`.
pub async fn poll<T>(
    within: Duration, every: Duration, mut check: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// `GET {base}{path}` with `key`.
/// The conversation `id` once it has ended (done or failed), as the API shows it.
pub async fn ended_conversation(app: &TestApp, id: &str) -> Value {
    let path = format!("/v1/convai/conversations/{id}");
    poll(Duration::from_secs(10), Duration::from_millis(50), async || {
        let (_, c) = app.get(&path, &app.admin_key).await;
        (c["status"] == "done" || c["status"] == "failed").then_some(c)
    })
    .await
    .expect("the conversation ends")
}

pub async fn get_json(base: &str, key: &str, path: &str) -> (u16, Value) {
    let response =
        client().get(format!("{base}{path}")).header("xi-api-key", key).send().await.unwrap();
    status_json(response).await
}

/// The invocation `id` of the server at `base` once none of its runs is pending; the test
/// fails if that takes longer than `within`.
pub async fn invocation_done(base: &str, key: &str, id: &str, within: Duration) -> Value {
    let path = format!("/v1/convai/test-invocations/{id}");
    poll(within, Duration::from_millis(100), async || {
        let (s, inv) = get_json(base, key, &path).await;
        assert_eq!(s, 200, "{inv}");
        let runs = inv["test_runs"].as_array()?;
        runs.iter().all(|r| r["status"] != "pending").then_some(inv)
    })
    .await
    .unwrap_or_else(|| panic!("invocation {id} did not finish within {within:?}"))
}

/// The summary of the invocation `id` in its agent's list (`agent`) once nothing of it is
/// pending, or as it stands when `within` has passed.
pub async fn invocation_summary(
    base: &str, key: &str, agent: &str, id: &str, within: Duration,
) -> Value {
    let path = format!("/v1/convai/test-invocations?agent_id={agent}&page_size=100");
    let mut last = Value::Null;
    poll(within, Duration::from_millis(100), async || {
        let (s, page) = get_json(base, key, &path).await;
        assert_eq!(s, 200, "{page}");
        last = page["results"].as_array()?.iter().find(|r| r["id"] == id).cloned()?;
        (last["pending_count"] == 0).then(|| last.clone())
    })
    .await
    .unwrap_or(last)
}
