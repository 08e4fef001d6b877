//! Backups as an operator takes them: `colloquy backup` of a SQLite database while the server
//! is under load, `colloquy restore`, and `pg_dump`/`pg_restore` of a PostgreSQL schema.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use colloquy_core::keys::generate_token;
use colloquy_core::secret_key::SecretKey;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, ChildServer, TestDb, client, colloquy_bin, get_json, postgres_configured,
};

/// Runs the binary with `args`; its exit status and what it printed.
fn cli(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(colloquy_bin())
        .args(args)
        .env_remove("COLLOQUY_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .current_dir(dir)
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn create_agent(base: &str, key: &str, name: &str) -> Option<String> {
    let r = client()
        .post(format!("{base}/v1/convai/agents/create"))
        .header("xi-api-key", key)
        .json(&json!({"name": name, "conversation_config": {}}))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let body: Value = r.json().await.ok()?;
    body["agent_id"].as_str().map(str::to_owned)
}

/// Acknowledged agents, with when each answer arrived.
type Acked = Arc<Mutex<Vec<(Instant, String)>>>;

/// Two writers creating agents until `stop` turns true.
fn load(
    base: &str, key: &str, stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Acked, Vec<tokio::task::JoinHandle<()>>) {
    let acked: Acked = Arc::default();
    let writers = (0..2)
        .map(|w| {
            let (base, key, stop, acked) =
                (base.to_owned(), key.to_owned(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Some(id) = create_agent(&base, &key, &format!("w{w}-{i}")).await {
                        acked.lock().unwrap().push((Instant::now(), id));
                    }
                    i += 1;
                }
            })
        })
        .collect();
    (acked, writers)
}

/// A backup taken while two clients write holds every write acknowledged before it began;
/// restored into a new file, a server on it serves them all.
#[tokio::test]
async fn a_backup_taken_under_load_restores_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("live.db").display());
    let key = generate_token();
    let secret = SecretKey::generate().to_hex();
    let envs = [
        ("COLLOQUY_DATABASE_URL", db_url.as_str()),
        ("COLLOQUY_BOOTSTRAP_API_KEY", key.as_str()),
        ("COLLOQUY_SECRET_KEY", secret.as_str()),
        ("COLLOQUY_RATE_LIMIT_PER_MINUTE", "0"),
    ];
    let server = ChildServer::start(dir.path(), &envs).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (acked, writers) = load(&server.base, &key, stop.clone());
    while acked.lock().unwrap().len() < 50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let began = Instant::now();
    let backup_dir = dir.path().to_owned();
    let live = format!("sqlite://{}", dir.path().join("live.db").display());
    let (ok, said) = tokio::task::spawn_blocking(move || {
        cli(&backup_dir, &["backup", "--database-url", &live, "--to", "backups/b.db"])
    })
    .await
    .unwrap();
    assert!(ok, "{said}");
    let after_backup = acked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let before: Vec<String> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _)| *at < began)
        .map(|(_, id)| id.clone())
        .collect();
    assert!(before.len() >= 50);
    assert!(
        acked.lock().unwrap().len() > after_backup,
        "the load went on during and after the backup"
    );
    assert!(server.terminate());

    // A second backup to the same file is refused; restore refuses what is not a backup and an
    // existing database without --force, and changes nothing when it refuses.
    let live = format!("sqlite://{}", dir.path().join("live.db").display());
    let (ok, said) = cli(dir.path(), &["backup", "--database-url", &live, "--to", "backups/b.db"]);
    assert!(!ok && said.contains("already exists"), "{said}");
    std::fs::write(dir.path().join("notes.txt"), "not a database").unwrap();
    let restored = format!("sqlite://{}", dir.path().join("restored.db").display());
    let (ok, said) =
        cli(dir.path(), &["restore", "--from", "notes.txt", "--database-url", &restored]);
    assert!(!ok, "{said}");
    assert!(!dir.path().join("restored.db").exists(), "a refused restore creates nothing");
    let (ok, said) =
        cli(dir.path(), &["restore", "--from", "backups/b.db", "--database-url", &live]);
    assert!(!ok && said.contains("--force"), "{said}");

    let (ok, said) =
        cli(dir.path(), &["restore", "--from", "backups/b.db", "--database-url", &restored]);
    assert!(ok, "{said}");
    let envs =
        [("COLLOQUY_DATABASE_URL", restored.as_str()), ("COLLOQUY_SECRET_KEY", secret.as_str())];
    let server = ChildServer::start(dir.path(), &envs).await;
    for id in &before {
        let (s, got) = get_json(&server.base, &key, &format!("/v1/convai/agents/{id}")).await;
        assert_eq!(s, 200, "{id} was acknowledged before the backup began: {got}");
    }
    assert!(server.terminate());
}

/// PostgreSQL is backed up with its own tools: `pg_dump` of the schema, the schema lost,
/// `pg_restore`, and the server serves every agent and secret again.
#[tokio::test]
async fn postgresql_comes_back_from_pg_dump_and_pg_restore() {
    if !postgres_configured() {
        eprintln!("skipped: set COLLOQUY_TEST_DATABASE_URL to run the PostgreSQL backup test");
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let base = std::env::var("COLLOQUY_TEST_DATABASE_URL").unwrap();
    let schema = db.schema().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let key = generate_token();
    let secret = SecretKey::generate().to_hex();
    let envs = [
        ("COLLOQUY_DATABASE_URL", db.url.as_str()),
        ("COLLOQUY_BOOTSTRAP_API_KEY", key.as_str()),
        ("COLLOQUY_SECRET_KEY", secret.as_str()),
    ];
    let server = ChildServer::start(dir.path(), &envs).await;
    let mut agents = Vec::new();
    for i in 0..10 {
        agents.push(create_agent(&server.base, &key, &format!("a{i}")).await.unwrap());
    }
    let r = client()
        .post(format!("{}/v1/convai/secrets", server.base))
        .header("xi-api-key", &key)
        .json(&json!({"type": "new", "name": "token", "value": "v"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (ok, said) = cli(dir.path(), &["backup", "--database-url", &db.url, "--to", "x.db"]);
    assert!(!ok && said.contains("pg_dump"), "SQLite only, pointing at pg_dump: {said}");

    let dump = dir.path().join("colloquy.dump");
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program).args(args).output().unwrap();
        assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(
        "pg_dump",
        &["--format=custom", "--schema", &schema, "--file", dump.to_str().unwrap(), &base],
    );
    assert!(server.terminate());
    let mut conn = {
        use sqlx::Connection as _;
        sqlx::PgConnection::connect(&base).await.unwrap()
    };
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut conn)
        .await
        .unwrap();
    run("pg_restore", &["--dbname", &base, dump.to_str().unwrap()]);

    let server = ChildServer::start(dir.path(), &envs).await;
    for id in &agents {
        let (s, got) = get_json(&server.base, &key, &format!("/v1/convai/agents/{id}")).await;
        assert_eq!(s, 200, "{got}");
    }
    let (s, secrets) = get_json(&server.base, &key, "/v1/convai/secrets").await;
    assert_eq!(s, 200, "{secrets}");
    assert_eq!(secrets["secrets"][0]["name"], "token");
    assert!(server.terminate());
}
