//! The binary as users run it: first start, restart, kill -9, graceful shutdown, the keys CLI.

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::Duration;

use colloquy_core::keys::generate_token;
use serde_json::json;

use crate::helpers::{
    Backend, ChildServer, TestDb, client, colloquy_bin, dual_db, get_json, poll, status_json,
};

fn first_key_from_stdout(server: &mut ChildServer) -> String {
    let stdout = server.child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a line").expect("utf8");
    assert!(first.contains("shown only this once"), "{first}");
    lines.next().expect("key line").expect("utf8").trim().to_owned()
}

async fn create_secret(base: &str, key: &str, name: &str) -> u16 {
    let r = client()
        .post(format!("{base}/v1/convai/secrets"))
        .header("xi-api-key", key)
        .json(&json!({"type": "new", "name": name, "value": "v"}))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

async fn secret_count(base: &str, key: &str) -> usize {
    let r = client()
        .get(format!("{base}/v1/convai/secrets"))
        .header("xi-api-key", key)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!(status, 200, "{body}");
    body["secrets"].as_array().unwrap().len()
}

/// First start prints a generated admin key once; restarts keep data and print nothing.
#[tokio::test]
async fn first_start_restart_and_kill9_keep_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::start(dir.path(), &[]).await;
    let key = first_key_from_stdout(&mut server);
    assert!(key.starts_with("sk_"));
    assert!(dir.path().join("colloquy-data/colloquy.db").exists(), "default database location");
    assert!(dir.path().join("colloquy-data/secret.key").exists(), "secret key generated");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("colloquy-data/secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    for i in 0..20 {
        assert_eq!(create_secret(&server.base, &key, &format!("s{i}")).await, 200);
    }
    server.kill9();

    let mut server = ChildServer::start(dir.path(), &[]).await;
    assert_eq!(
        secret_count(&server.base, &key).await,
        20,
        "every acknowledged write survived kill -9"
    );
    let stdout = server.child.stdout.take().unwrap();
    assert!(server.terminate(), "clean exit on SIGTERM");
    let printed: Vec<String> = BufReader::new(stdout).lines().map_while(Result::ok).collect();
    assert!(printed.iter().all(|l| !l.contains("sk_")), "no new key on restart: {printed:?}");
}

/// SIGTERM lets a request that is still uploading its body finish.
#[tokio::test]
async fn sigterm_finishes_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let key = generate_token();
    let server = ChildServer::start(dir.path(), &[("COLLOQUY_BOOTSTRAP_API_KEY", &key)]).await;
    let base = server.base.clone();
    let slow_body = async_stream_body();
    let request = tokio::spawn({
        let key = key.clone();
        async move {
            client()
                .post(format!("{base}/v1/convai/secrets"))
                .header("xi-api-key", key)
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(slow_body))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.child.id();
    assert!(Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap().success());
    let status = request.await.unwrap().expect("request completed");
    assert_eq!(status, 200, "in-flight request finished during shutdown");
    let exited_ok = server.terminate();
    assert!(exited_ok);
}

fn async_stream_body()
-> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let parts = vec![
        br#"{"type": "new", "#.to_vec(),
        br#""name": "slow", "#.to_vec(),
        br#""value": "v"}"#.to_vec(),
    ];
    futures_util::stream::iter(parts).then(|p| async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok(p)
    })
}

use futures_util::StreamExt as _;

/// `colloquy keys create/list/revoke` against the database of a running server.
async fn keys_cli_creates_lists_and_revokes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = generate_token();
    let secret_key = colloquy_core::secret_key::SecretKey::generate().to_hex();
    let envs = [
        ("COLLOQUY_DATABASE_URL", db.url.as_str()),
        ("COLLOQUY_BOOTSTRAP_API_KEY", admin.as_str()),
        ("COLLOQUY_SECRET_KEY", secret_key.as_str()),
    ];
    let server = ChildServer::start(dir.path(), &envs).await;
    let cli = |args: &[&str]| {
        let out = Command::new(colloquy_bin())
            .args(args)
            .env("COLLOQUY_DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let token = cli(&[
        "keys",
        "create",
        "--workspace",
        "acme",
        "--user-name",
        "Ada",
        "--user-email",
        "ada@acme.test",
        "--scopes",
        "secrets:read",
    ]);
    let token = token.trim();
    assert!(token.starts_with("sk_"));
    assert_eq!(secret_count(&server.base, token).await, 0);
    assert_eq!(create_secret(&server.base, token, "x").await, 403, "read-only key");

    let listing = cli(&["keys", "list", "--workspace", "acme"]);
    let line = listing.lines().find(|l| l.contains("ada@acme.test")).expect("listed");
    assert!(!listing.contains(token), "tokens are never listed");
    let key_id = line.split('\t').next().unwrap();
    cli(&["keys", "revoke", key_id]);
    assert!(cli(&["keys", "list"]).contains("revoked"));
    // The server trusts a key it read for half a second, so the revocation reaches it within one.
    let refused = poll(Duration::from_secs(1), Duration::from_millis(50), async || {
        let r = client()
            .get(format!("{}/v1/convai/secrets", server.base))
            .header("xi-api-key", token)
            .send()
            .await
            .unwrap();
        (r.status() == 401).then_some(())
    })
    .await;
    assert!(refused.is_some(), "the revoked key still works a second later");

    // Both are in acme's change log, made by the command line.
    let admin = cli(&[
        "keys",
        "create",
        "--workspace",
        "acme",
        "--user-name",
        "Root",
        "--user-email",
        "root@acme.test",
        "--scopes",
        "admin",
    ]);
    let (s, log) =
        get_json(&server.base, admin.trim(), &format!("/api/changes?resource={key_id}")).await;
    assert_eq!(s, 200, "{log}");
    let ops: Vec<(&str, &str)> = log["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["operation"].as_str().unwrap(), c["actor"]["key_id"].as_str().unwrap()))
        .collect();
    assert_eq!(ops, [("delete", "cli"), ("create", "cli")], "{log}");

    let bad = Command::new(colloquy_bin())
        .args(["keys", "create", "--user-name", "x", "--user-email", "x@y", "--scopes", "root"])
        .env("COLLOQUY_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope"));
    assert!(server.terminate());
}
dual_db!(keys_cli_creates_lists_and_revokes);

/// On PostgreSQL the server refuses to start without a secret key; `colloquy migrate` works
/// on both backends.
async fn migrate_command_and_postgres_needs_a_secret_key(backend: Backend) {
    let db = TestDb::new(backend).await;
    let out = Command::new(colloquy_bin())
        .args(["migrate", "--database-url", &db.url])
        .current_dir(db.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if backend == Backend::Postgres {
        let out = Command::new(colloquy_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db.url])
            .env_remove("COLLOQUY_SECRET_KEY")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("COLLOQUY_SECRET_KEY"));
    }
}
dual_db!(migrate_command_and_postgres_needs_a_secret_key);

/// `colloquy.toml` overrides the defaults, and `COLLOQUY_*` variables override the file.
#[tokio::test]
async fn config_file_then_environment() {
    let dir = tempfile::tempdir().unwrap();
    let key = generate_token();
    std::fs::write(
        dir.path().join("colloquy.toml"),
        "database_url = \"sqlite://from-file/db.sqlite\"\nmax_body_bytes = 100\n",
    )
    .unwrap();
    let body = json!({"type": "new", "name": "n", "value": "v".repeat(120)});
    let post = |base: String| {
        let body = body.clone();
        let key = key.clone();
        async move {
            client()
                .post(format!("{base}/v1/convai/secrets"))
                .header("xi-api-key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    let server = ChildServer::start(dir.path(), &[("COLLOQUY_BOOTSTRAP_API_KEY", &key)]).await;
    assert!(dir.path().join("from-file/db.sqlite").exists(), "database_url from the file");
    assert_eq!(post(server.base.clone()).await, 413, "max_body_bytes from the file");
    assert!(server.terminate());

    let server = ChildServer::start(
        dir.path(),
        &[("COLLOQUY_BOOTSTRAP_API_KEY", &key), ("COLLOQUY_MAX_BODY_BYTES", "4096")],
    )
    .await;
    assert_eq!(post(server.base.clone()).await, 200, "the environment wins over the file");
    assert!(server.terminate());
}

/// `colloquy secrets rekey` re-seals under a new key; a planted secret value never reaches the
/// server's log, even at debug level, nor the database file.
#[tokio::test]
async fn rekey_and_secret_values_never_logged() {
    use colloquy_core::secret_key::{Keyring, SecretKey, secret_context};
    use colloquy_store::SecretStore;

    let dir = tempfile::tempdir().unwrap();
    let admin = generate_token();
    let (key_a, key_b) = (SecretKey::generate(), SecretKey::generate());
    let url = format!("sqlite://{}/data/db.sqlite", dir.path().display());
    let planted = "PLANTED-42c0ffee-value";
    let server = ChildServer::start(
        dir.path(),
        &[
            ("COLLOQUY_BOOTSTRAP_API_KEY", &admin),
            ("COLLOQUY_SECRET_KEY", &key_a.to_hex()),
            ("COLLOQUY_DATABASE_URL", &url),
            ("RUST_LOG", "debug"),
        ],
    )
    .await;
    let r = client()
        .post(format!("{}/v1/convai/secrets", server.base))
        .header("xi-api-key", &admin)
        .json(&json!({"type": "new", "name": "planted", "value": planted}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let secret_id =
        r.json::<serde_json::Value>().await.unwrap()["secret_id"].as_str().unwrap().to_owned();
    let log_path = server.stderr_log.clone();
    assert!(server.terminate());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("DEBUG"), "debug logging was on");
    assert!(!log.contains(planted), "the secret value reached the log");

    let rekey = |current: &SecretKey, previous: Option<&SecretKey>| {
        let mut cmd = Command::new(colloquy_bin());
        cmd.args(["secrets", "rekey"])
            .env("COLLOQUY_DATABASE_URL", &url)
            .env("COLLOQUY_SECRET_KEY", current.to_hex());
        match previous {
            Some(p) => cmd.env("COLLOQUY_SECRET_KEY_PREVIOUS", p.to_hex()),
            None => cmd.env_remove("COLLOQUY_SECRET_KEY_PREVIOUS"),
        };
        cmd.output().unwrap()
    };
    let without_previous = rekey(&key_b, None);
    assert!(!without_previous.status.success(), "cannot open old values without the previous key");
    let out = rekey(&key_b, Some(&key_a));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-sealed 1 secret(s)"));
    let again = rekey(&key_b, None);
    assert!(String::from_utf8_lossy(&again.stdout).contains("re-sealed 0 secret(s)"), "idempotent");

    let store = colloquy_store::SqlStore::connect(&url, &Default::default()).await.unwrap();
    let record =
        store.all_secrets("", 10).await.unwrap().into_iter().find(|s| s.id == secret_id).unwrap();
    let opened = Keyring::new(key_b, None)
        .open(&record.sealed_value, &secret_context(&record.workspace_id, &record.id))
        .unwrap();
    assert_eq!(opened, planted.as_bytes());
}

/// `colloquy models list` shows what can be pulled and what is there; `pull` refuses unknown
/// names and reports a failed download; `serve` with no LLM at all says what to do, and with a
/// model in the models directory runs it.
#[tokio::test]
async fn models_cli_and_serve_say_how_to_get_an_llm() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let models_env = models.to_str().unwrap().to_owned();
    let cli = |args: &[&str]| {
        Command::new(colloquy_bin())
            .args(args)
            .env("COLLOQUY_MODELS_DIR", &models_env)
            .env_remove("COLLOQUY_LOCAL_MODEL")
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let listed = String::from_utf8(cli(&["models", "list"]).stdout).unwrap();
    assert!(listed.contains("qwen2.5-1.5b-instruct (default): not downloaded"), "{listed}");
    assert!(listed.contains("No local model: `colloquy models pull`"), "{listed}");

    let unknown = cli(&["models", "pull", "gpt-7"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no known model is called \"gpt-7\"")
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mirror = format!("http://{}/model.gguf", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().flatten() {
            let _ = stream.read(&mut [0u8; 4096]);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    let failed = cli(&["models", "pull", "--url", &mirror]);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("answered HTTP 404"), "{failed:?}");
    assert!(std::fs::read_dir(&models).map_or(0, |d| d.count()) == 0, "nothing is left behind");

    let admin = generate_token();
    let envs = [
        ("COLLOQUY_DATABASE_URL", "sqlite://data/colloquy.db"),
        ("COLLOQUY_BOOTSTRAP_API_KEY", admin.as_str()),
        ("COLLOQUY_MODELS_DIR", models_env.as_str()),
        ("OPENAI_API_KEY", ""),
        ("OPENAI_BASE_URL", ""),
    ];
    let mut server = ChildServer::start(dir.path(), &envs).await;
    let stdout = server.child.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(
        first.starts_with("No LLM: no LLM is configured: run `colloquy models pull`"),
        "{first}"
    );
    assert!(server.terminate());

    std::fs::create_dir_all(&models).unwrap();
    colloquy_engine::llm::embedded::tiny::write(&models.join("tiny.gguf")).unwrap();
    let listed = String::from_utf8(cli(&["models", "list"]).stdout).unwrap();
    assert!(listed.contains("With no LLM provider configured, `serve` runs tiny"), "{listed}");
    let server = ChildServer::start(dir.path(), &envs).await;
    let ready = poll(Duration::from_secs(10), Duration::from_millis(50), async || {
        let log = std::fs::read_to_string(&server.stderr_log).unwrap_or_default();
        log.contains("local model: ready").then_some(())
    })
    .await;
    assert!(ready.is_some(), "{}", std::fs::read_to_string(&server.stderr_log).unwrap_or_default());
    let (s, list) = get_json(&server.base, &admin, "/v1/convai/llm/list").await;
    assert_eq!((s, list["llms"][0]["llm"].clone()), (200, serde_json::json!("tiny")));
    assert!(server.terminate());
}
