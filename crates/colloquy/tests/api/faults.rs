//! Faults of what Colloquy depends on: PostgreSQL restarted under load. A private PostgreSQL
//! cluster is started for the test (initdb in a temp dir, its own port), so restarting it
//! disturbs no other test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use colloquy_core::keys::generate_token;
use colloquy_core::secret_key::SecretKey;
use serde_json::json;

use crate::helpers::{ChildServer, client, free_port, get_json};

/// A PostgreSQL cluster of the test's own, stopped and removed when dropped.
struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl PrivatePostgres {
    /// Starts one, or `None` when this machine has no PostgreSQL server binaries.
    fn start() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").exists())?;
        let dir = std::env::temp_dir().join(format!(
            "colloquy-pg-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pg = PrivatePostgres { dir, port: free_port(), bin };
        pg.own_by_postgres();
        let data = pg.dir.join("data");
        pg.run(
            "initdb",
            &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        pg.ctl("start");
        Some(pg)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// PostgreSQL refuses to run as root: the cluster belongs to the `postgres` user then.
    fn own_by_postgres(&self) {
        if is_root() {
            let ok =
                Command::new("chown").args(["-R", "postgres:postgres"]).arg(&self.dir).status();
            assert!(ok.unwrap().success(), "chown the cluster's directory to postgres");
        }
    }

    fn ctl(&self, action: &str) {
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let mut args = vec!["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-w"];
        if action == "stop" {
            args.extend(["-m", "fast"]);
        } else {
            args.extend(["-o", &options]);
        }
        args.push(action);
        self.run("pg_ctl", &args);
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.command(program).args(args).output().unwrap();
        assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// One of the cluster's programs, run as the user that owns it.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        cmd.current_dir(&self.dir);
        cmd
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let stop = ["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "stop"];
        let _ = self.command("pg_ctl").args(stop).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// PostgreSQL stopped and started again while clients write: requests during the outage
/// fail fast with 503 (never 500, never a hang), `/healthz` says not ready, everything comes
/// back without restarting Colloquy, and every write acknowledged is there.
#[tokio::test]
async fn a_postgresql_restart_under_load_is_503_then_business_as_usual() {
    let Some(pg) = PrivatePostgres::start() else {
        eprintln!("skipped: no PostgreSQL server binaries under /usr/lib/postgresql");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = generate_token();
    let secret = SecretKey::generate().to_hex();
    let url = pg.url();
    let envs = [
        ("COLLOQUY_DATABASE_URL", url.as_str()),
        ("COLLOQUY_BOOTSTRAP_API_KEY", key.as_str()),
        ("COLLOQUY_SECRET_KEY", secret.as_str()),
        ("COLLOQUY_RATE_LIMIT_PER_MINUTE", "0"),
    ];
    let server = ChildServer::start(dir.path(), &envs).await;

    // Two writers create agents all along; each answer is kept with how long it took.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let answers: Arc<Mutex<Vec<(u16, Duration)>>> = Arc::default();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (base, key) = (server.base.clone(), key.clone());
            let (stop, acked, answers) = (stop.clone(), acked.clone(), answers.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let r = client()
                        .post(format!("{base}/v1/convai/agents/create"))
                        .header("xi-api-key", &key)
                        .json(&json!({"name": format!("w{w}-{i}"), "conversation_config": {}}))
                        .send()
                        .await
                        .unwrap();
                    let status = r.status().as_u16();
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    answers.lock().unwrap().push((status, started.elapsed()));
                    if status == 200 {
                        acked.lock().unwrap().push(body["agent_id"].as_str().unwrap().to_owned());
                    } else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    i += 1;
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    pg.ctl("stop");
    let (s, health) = get_json(&server.base, &key, "/healthz").await;
    assert_eq!(s, 503, "not ready while the database is down: {health}");
    let started = Instant::now();
    let (s, refused) = get_json(&server.base, &key, "/v1/convai/agents").await;
    assert_eq!(s, 503, "{refused}");
    assert_eq!(refused["detail"]["status"], "service_unavailable");
    assert!(started.elapsed() < Duration::from_secs(8), "failed fast: {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;

    pg.ctl("start");
    let back = Instant::now();
    loop {
        if get_json(&server.base, &key, "/healthz").await.0 == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(30), "ready again without a restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let count = acked.lock().unwrap().len();
    while acked.lock().unwrap().len() < count + 20 && back.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    let answers = answers.lock().unwrap().clone();
    assert!(answers.iter().any(|(s, _)| *s == 503), "some writes met the outage");
    for (status, took) in &answers {
        assert!(matches!(status, 200 | 503), "only successes and 503s: {status}");
        assert!(*took < Duration::from_secs(8), "no request hung: {took:?}");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= count + 20, "writes succeed again after the restart");
    for id in &acked {
        let (s, got) = get_json(&server.base, &key, &format!("/v1/convai/agents/{id}")).await;
        assert_eq!(s, 200, "acknowledged {id} is kept: {got}");
    }
    assert!(server.terminate());
}

/// A size-limited file system mounted for the test (tmpfs), unmounted when dropped; `None`
/// where this machine does not let the test mount one.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(SmallDisk { dir })
    }

    fn resize(&self, megabytes: u32) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={megabytes}m")])
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).output();
    }
}

/// SQLite on a disk that fills up: writes answer 507 (never 500) and change nothing, reads go
/// on, and once there is space again writes succeed and every acknowledged one is there.
#[tokio::test]
async fn a_full_disk_is_507_and_the_database_survives_it() {
    let Some(disk) = SmallDisk::mount(3) else {
        eprintln!("skipped: this machine does not let the test mount a tmpfs");
        return;
    };
    let key = generate_token();
    let url = format!("sqlite://{}", disk.dir.path().join("colloquy.db").display());
    let envs = [
        ("COLLOQUY_DATABASE_URL", url.as_str()),
        ("COLLOQUY_BOOTSTRAP_API_KEY", key.as_str()),
        ("COLLOQUY_RATE_LIMIT_PER_MINUTE", "0"),
    ];
    let logs = tempfile::tempdir().unwrap();
    let server = ChildServer::start(logs.path(), &envs).await;
    let prompt = "x".repeat(20_000);
    let create = |i: usize| {
        let body = json!({"name": format!("a{i}"), "conversation_config": {"agent": {"prompt": {"prompt": prompt}}}});
        let (base, key) = (server.base.clone(), key.clone());
        async move {
            let r = client()
                .post(format!("{base}/v1/convai/agents/create"))
                .header("xi-api-key", &key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (status, body)
        }
    };
    let mut acked = Vec::new();
    let mut full = None;
    for i in 0..2000 {
        let (status, body) = create(i).await;
        match status {
            200 => acked.push(body["agent_id"].as_str().unwrap().to_owned()),
            507 => {
                full = Some(body);
                break;
            }
            other => panic!("a write on a filling disk answered {other}: {body}"),
        }
    }
    let full = full.expect("the disk filled up");
    assert_eq!(full["detail"]["status"], "insufficient_storage", "{full}");
    assert!(!acked.is_empty());
    let (s, first) = get_json(&server.base, &key, &format!("/v1/convai/agents/{}", acked[0])).await;
    assert_eq!(s, 200, "reads go on while the disk is full: {first}");

    disk.resize(64);
    let (status, body) = create(9999).await;
    assert_eq!(
        status,
        200,
        "writes succeed once there is space: {body} {}",
        server.logged_errors()
    );
    acked.push(body["agent_id"].as_str().unwrap().to_owned());
    for id in &acked {
        let (s, got) = get_json(&server.base, &key, &format!("/v1/convai/agents/{id}")).await;
        assert_eq!(s, 200, "acknowledged {id} is kept: {got}");
    }
    assert!(server.terminate());
    let mut conn = {
        use sqlx::Connection as _;
        sqlx::SqliteConnection::connect(&url).await.unwrap()
    };
    let verdict: String =
        sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut conn).await.unwrap();
    assert_eq!(verdict, "ok", "the database is intact");
}
