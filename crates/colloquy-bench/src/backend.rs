//! Where a scenario's nodes keep their data: a fresh SQLite file in each node's directory, or a
//! fresh schema on the PostgreSQL of `COLLOQUY_TEST_DATABASE_URL` (as the test harness does);
//! and the pool the raw-SQL baselines read the same database through.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::node::Node;

/// The database a scenario runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Each node makes its own file.
    Sqlite,
    /// Each node gets a schema of its own on this server.
    Postgres { base: String },
}

/// Numbers the schemas this run makes (`colloquy_bench_<pid>_<n>`).
static SCHEMAS: AtomicUsize = AtomicUsize::new(0);

impl Backend {
    /// PostgreSQL, when `COLLOQUY_TEST_DATABASE_URL` names a server.
    pub fn postgres_from_env() -> Option<Backend> {
        std::env::var("COLLOQUY_TEST_DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty())
            .map(|base| Backend::Postgres { base })
    }

    /// Starts `binary` with `envs` on a database of its own.
    pub async fn start(&self, binary: &Path, envs: &[(&str, String)]) -> anyhow::Result<Node> {
        let mut envs = envs.to_vec();
        if let Some(url) = self.fresh_database().await? {
            envs.push(("COLLOQUY_DATABASE_URL", url));
            // A node on PostgreSQL is given the key it seals secrets with (nodes share it).
            let secret = colloquy_core::secret_key::SecretKey::generate().to_hex();
            envs.push(("COLLOQUY_SECRET_KEY", secret));
        }
        Node::start(binary, &envs).await
    }

    /// A new, empty database's URL: none for SQLite, where a node makes its own file; a new
    /// schema on PostgreSQL, which [`Backend::clean_up`] drops.
    pub async fn fresh_database(&self) -> anyhow::Result<Option<String>> {
        match self {
            Backend::Sqlite => Ok(None),
            Backend::Postgres { base } => {
                let n = SCHEMAS.fetch_add(1, Ordering::Relaxed);
                Ok(Some(with_schema(base, &format!("{}{n}", schema_prefix())).await?))
            }
        }
    }

    /// Drops every schema this run has made so far; the nodes on them must be gone.
    pub async fn clean_up(&self) {
        let Backend::Postgres { base } = self else { return };
        let Ok(mut conn) = pg(base).await else { return };
        let schemas: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)",
        )
        .bind(schema_prefix())
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
        for schema in schemas {
            drop_schema(base, &schema).await;
        }
    }
}

fn schema_prefix() -> String {
    format!("colloquy_bench_{}_", std::process::id())
}

/// A pool on a node's database, for the raw-SQL baselines.
pub enum RawPool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl RawPool {
    /// A pool on the database `url` names (`sqlite://` or `postgres://`).
    pub async fn connect(url: &str) -> anyhow::Result<RawPool> {
        Ok(if url.starts_with("sqlite:") {
            RawPool::Sqlite(sqlx::SqlitePool::connect(url).await?)
        } else {
            RawPool::Postgres(sqlx::PgPool::connect(url).await?)
        })
    }
}

/// Evaluates `$body` with `$pool` bound to the driver's pool inside `$raw`: the baselines'
/// SQL is the same text on both databases, only its types differ.
macro_rules! with_pool {
    ($raw:expr, |$pool:ident| $body:expr) => {
        match $raw {
            $crate::backend::RawPool::Sqlite($pool) => $body,
            $crate::backend::RawPool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

async fn pg(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    use sqlx::Connection as _;
    Ok(sqlx::PgConnection::connect(url).await?)
}

/// A fresh schema on `base`, and the URL that uses it.
pub(crate) async fn with_schema(base: &str, schema: &str) -> anyhow::Result<String> {
    let mut conn = pg(base).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
        .execute(&mut conn)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut conn).await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

pub(crate) async fn drop_schema(base: &str, schema: &str) {
    if let Ok(mut conn) = pg(base).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
            .execute(&mut conn)
            .await;
    }
}

/// The bytes the tables of `schema` take on `base`.
pub(crate) async fn schema_bytes(base: &str, schema: &str) -> u64 {
    let Ok(mut conn) = pg(base).await else { return 0 };
    sqlx::query_scalar::<_, i64>(
        "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'r'",
    )
    .bind(schema)
    .fetch_one(&mut conn)
    .await
    .map_or(0, |b| b.max(0) as u64)
}
