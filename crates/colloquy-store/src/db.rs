//! Connection pools for both backends and the [`run!`] macro that runs one query text on
//! whichever backend is configured.
//!
//! SQLite allows one writer at a time. Rather than let concurrent writers collide on
//! `SQLITE_BUSY`, all writes go through a pool of exactly one connection (writers queue in the
//! pool, in process), while reads use a separate pool whose connections WAL lets run beside the
//! writer. Write transactions start with `BEGIN IMMEDIATE` so a second process
//! (the `colloquy keys` CLI beside a running server) waits on `busy_timeout` instead of failing.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::inline::{Commits, InlineReads};
use crate::{Store, StoreError, StoreResult};

pub(crate) static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Tuning of the pools.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Largest number of connections (SQLite: readers; PostgreSQL: the whole pool).
    pub max_connections: u32,
    /// How long a statement waits for a locked SQLite database before failing.
    pub busy_timeout: Duration,
    /// SQLite VM steps a read may take on the calling thread before it moves to the pool
    /// (see [`crate::inline`]); 0 runs every read on the pool.
    pub inline_read_budget: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: 8,
            busy_timeout: Duration::from_secs(10),
            // About half a millisecond: a page or a lookup by key uses a few thousand.
            inline_read_budget: 100_000,
        }
    }
}

pub(crate) enum Db {
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
        /// Off for an in-memory database, which only its one connection can see.
        inline: Option<InlineReads>,
        /// This process's commits to the file (none for an in-memory database).
        commits: Option<Arc<Commits>>,
    },
    Postgres(PgPool),
}

impl Db {
    /// What a job queue's pick of its next job adds so that nodes taking jobs at once take
    /// different ones: PostgreSQL skips the rows other transactions are taking; SQLite has one
    /// writer, so its picks cannot race.
    pub(crate) fn skip_locked(&self) -> &'static str {
        match self {
            Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Db::Sqlite { .. } => "",
        }
    }

    /// Called after every commit made through the write pool, so inline readers drop the
    /// snapshots it made stale (see [`crate::inline`]).
    pub(crate) fn committed(&self) {
        if let Db::Sqlite { commits: Some(commits), inline, .. } = self {
            commits.add();
            if let Some(inline) = inline {
                inline.end_idle_snapshots();
            }
        }
    }
}

/// Runs `$body` with `$pool` bound to the read or write pool of the configured backend. The
/// body is compiled once per backend, so the same query text serves both.
macro_rules! run {
    ($store:expr, read, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::db::Db::Sqlite { read: $pool, .. } => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
    ($store:expr, write, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::db::Db::Sqlite { write: $pool, .. } => {
                let out = $body;
                $store.db.committed();
                out
            }
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use run;

/// Runs `$body`, a [`crate::StoreResult`], in a write transaction `$tx` on either backend and
/// commits it when the body gives `Ok`; an `Err`, a `?` or an early `return` drops the
/// transaction, which rolls it back. SQLite takes the write lock at once (`BEGIN IMMEDIATE`,
/// see the module doc), PostgreSQL a plain `BEGIN`.
macro_rules! transaction {
    ($store:expr, |$tx:ident| $body:expr) => {
        match &$store.db {
            $crate::db::Db::Sqlite { write, .. } => {
                let mut conn = write.acquire().await?;
                #[allow(unused_mut)]
                let mut $tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
                let out: $crate::StoreResult<_> = $body;
                let out = out?;
                if let Err(e) = $tx.commit().await {
                    // A COMMIT that failed (a full disk) leaves SQLite's transaction open and
                    // the driver's count of it with it: that connection must not serve again.
                    conn.close_on_drop();
                    return Err(e.into());
                }
                $store.db.committed();
                Ok::<_, $crate::StoreError>(out)
            }
            $crate::db::Db::Postgres(pool) => {
                #[allow(unused_mut)]
                let mut $tx = pool.begin().await?;
                let out: $crate::StoreResult<_> = $body;
                let out = out?;
                $tx.commit().await?;
                Ok::<_, $crate::StoreError>(out)
            }
        }
    };
}
pub(crate) use transaction;

/// A table linking a row to a set of values: an agent's tags, tools and MCP servers, a tool's
/// or an MCP server's secrets. The links are written with their row, in its transaction, by
/// [`set_links!`].
pub(crate) struct Links {
    /// Removes every link of an owner (`$1`).
    pub(crate) clear: &'static str,
    /// Adds one link: owner `$1`, value `$2`.
    pub(crate) add: &'static str,
}

/// The [`Links`] of `$table`, whose columns are `$owner` and `$value`.
macro_rules! links {
    ($table:literal, $owner:literal, $value:literal) => {
        Links {
            clear: concat!("DELETE FROM ", $table, " WHERE ", $owner, " = $1"),
            add: concat!("INSERT INTO ", $table, " (", $owner, ", ", $value, ") VALUES ($1, $2)"),
        }
    };
}

pub(crate) const AGENT_TAGS: Links = links!("agent_tags", "agent_id", "tag");
pub(crate) const AGENT_TOOLS: Links = links!("agent_tools", "agent_id", "tool_id");
pub(crate) const AGENT_MCP_SERVERS: Links =
    links!("agent_mcp_servers", "agent_id", "mcp_server_id");
pub(crate) const AGENT_DOCUMENTS: Links = links!("agent_documents", "agent_id", "document_id");
pub(crate) const TOOL_SECRETS: Links = links!("tool_secrets", "tool_id", "secret_id");
pub(crate) const MCP_SERVER_SECRETS: Links =
    links!("mcp_server_secrets", "mcp_server_id", "secret_id");

/// Writes the links of `$owner` (text) in `$links` as `$values` (each once), inside the
/// transaction `$tx`: `replace` clears the old ones first, `new` (an owner just inserted, which
/// has none) only adds.
macro_rules! set_links {
    ($tx:ident, replace, $links:expr, $owner:expr, $values:expr) => {{
        sqlx::query($links.clear).bind($owner).execute(&mut *$tx).await?;
        $crate::db::set_links!($tx, new, $links, $owner, $values);
    }};
    ($tx:ident, new, $links:expr, $owner:expr, $values:expr) => {{
        let links: &$crate::db::Links = &$links;
        let mut seen = std::collections::BTreeSet::new();
        for value in $values.iter().filter(|v| seen.insert(v.as_str())) {
            sqlx::query(links.add).bind($owner).bind(value.as_str()).execute(&mut *$tx).await?;
        }
    }};
}
pub(crate) use set_links;

/// Whether the caller's row `$id` of `$table` exists, asked inside the transaction `$tx`.
macro_rules! exists {
    ($tx:ident, $table:literal, $workspace_id:expr, $id:expr) => {{
        let found: i64 = sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM ",
            $table,
            " WHERE workspace_id = $1 AND id = $2"
        ))
        .bind($workspace_id)
        .bind($id)
        .fetch_one(&mut *$tx)
        .await?;
        found > 0
    }};
}
pub(crate) use exists;

/// Runs the versioned `UPDATE` `$sql` (`$1` the workspace, `$2` the id, then `$binds`; its
/// condition names the version the caller read) inside `$tx`. When it changes no row, returns
/// from the enclosing function: [`StoreError::NotFound`] when `$table` has no such row, else
/// [`StoreError::Conflict`] with `$why` (someone else updated it meanwhile).
macro_rules! update_versioned {
    ($tx:ident, $table:literal, $sql:literal, $workspace_id:expr, $id:expr, [$($bind:expr),* $(,)?], $why:literal) => {{
        let done = sqlx::query($sql)
            .bind($workspace_id)
            .bind($id)
            $(.bind($bind))*
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        if done == 0 {
            return Err(if !$crate::db::exists!($tx, $table, $workspace_id, $id) {
                $crate::StoreError::NotFound
            } else {
                $crate::StoreError::Conflict($why.into())
            });
        }
    }};
}
pub(crate) use update_versioned;

/// Runs one statement `$sql` with `$binds` on the write pool: the rows it changed.
macro_rules! execute {
    ($store:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        $crate::db::run!($store, write, |pool| {
            sqlx::query($sql)$(.bind($bind))*.execute(pool).await.map(|r| r.rows_affected())
        })
    };
}
pub(crate) use execute;

/// Runs `$sql` on the write pool with the workspace as `$1`, a row's id as `$2`, then
/// `$binds`: the one row of the caller's it changes, or [`StoreError::NotFound`].
macro_rules! change_one {
    ($store:expr, $sql:expr, $workspace_id:expr, $id:expr $(, $bind:expr)* $(,)?) => {{
        let done = $crate::db::execute!($store, $sql, $workspace_id.as_str(), $id $(, $bind)*)?;
        $crate::db::changed_one(done)
    }};
}
pub(crate) use change_one;

/// Deletes the caller's row `$id` of `$table` inside `$tx`, unless it does not exist
/// ([`StoreError::NotFound`]) or `$users_sql` (`$1` the id) counts something that uses it
/// ([`StoreError::Conflict`] with `$in_use(count)`).
macro_rules! delete_unused {
    ($tx:ident, $table:literal, $users_sql:literal, $workspace_id:expr, $id:expr, $in_use:expr) => {{
        let users: i64 = sqlx::query_scalar($users_sql).bind($id).fetch_one(&mut *$tx).await?;
        if !$crate::db::exists!($tx, $table, $workspace_id, $id) {
            return Err($crate::StoreError::NotFound);
        }
        if users > 0 {
            return Err($crate::StoreError::Conflict($in_use(users)));
        }
        sqlx::query(concat!("DELETE FROM ", $table, " WHERE workspace_id = $1 AND id = $2"))
            .bind($workspace_id)
            .bind($id)
            .execute(&mut *$tx)
            .await?;
    }};
}
pub(crate) use delete_unused;

/// The result of a statement that changes one row of the caller's by id: none changed means
/// there is no such row (in the caller's workspace).
pub(crate) fn changed_one(rows_affected: u64) -> StoreResult<()> {
    if rows_affected == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// How long a request waits for a PostgreSQL connection: long enough for a busy pool, short
/// enough that while the database is down requests fail (503) instead of hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The store: one implementation of [`Store`] for both backends.
pub struct SqlStore {
    pub(crate) db: Db,
}

/// The file a `sqlite:` URL points at, if it is one (`None` for PostgreSQL and in-memory).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    if !url.starts_with("sqlite:") {
        return None;
    }
    let opts = SqliteConnectOptions::from_str(url).ok()?;
    let file = opts.get_filename();
    (file.as_os_str() != ":memory:").then(|| file.to_path_buf())
}

impl SqlStore {
    /// Connects to `url` (`sqlite://path` or `postgres://...`). For SQLite the file and its
    /// directory are created if missing.
    pub async fn connect(url: &str, opts: &ConnectOptions) -> StoreResult<SqlStore> {
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, opts).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pg =
                PgConnectOptions::from_str(url).map_err(|e| StoreError::Config(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(pg)
                .await?;
            Ok(SqlStore { db: Db::Postgres(pool) })
        } else {
            Err(StoreError::Config(
                "the database URL must start with sqlite:// or postgres://".into(),
            ))
        }
    }

    async fn connect_sqlite(url: &str, opts: &ConnectOptions) -> StoreResult<SqlStore> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before it is acknowledged, so a kill -9 or power loss
            // loses nothing a client was told about (DESIGN.md §4.1).
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(opts.busy_timeout);
        let file = sqlite_file(url);
        if let Some(file) = &file {
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Config(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            crate::snapshot::lay_down_if_missing(file);
        } else {
            // An in-memory database exists per connection: one connection serves everything.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(base)
                .await?;
            return Ok(SqlStore {
                db: Db::Sqlite { read: pool.clone(), write: pool, inline: None, commits: None },
            });
        }
        let write = SqlitePoolOptions::new().max_connections(1).connect_with(base.clone()).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .connect_with(base)
            .await?;
        let commits = file.as_deref().map(Commits::of);
        let inline = file
            .zip(commits.clone())
            .filter(|_| opts.inline_read_budget > 0)
            .map(|(f, commits)| InlineReads::new(f, opts.inline_read_budget, commits));
        Ok(SqlStore { db: Db::Sqlite { read, write, inline, commits } })
    }

    /// The inline readers, where reads may run on the calling thread (SQLite on a file; see
    /// [`crate::inline`]).
    pub(crate) fn inline(&self) -> Option<&InlineReads> {
        match &self.db {
            Db::Sqlite { inline, .. } => inline.as_ref(),
            Db::Postgres(_) => None,
        }
    }

    /// Applies pending migrations. On PostgreSQL sqlx holds an advisory lock meanwhile, so
    /// nodes starting together migrate one at a time. A new SQLite file was written whole by
    /// [`SqlStore::connect`], or, if it was empty, is first given the schema the migrations
    /// leave, in one transaction ([`crate::snapshot`]).
    ///
    /// On SQLite each migration commits with `synchronous = NORMAL`: in WAL mode that skips
    /// the fsync per commit (two per migration, 58 of a fresh start's 68) yet keeps the file
    /// consistent, and a migration lost to a power cut is applied again at the next start, its
    /// record being in the same transaction. The first commit after, back at FULL, syncs the
    /// write-ahead log with every migration in it before anything is acknowledged; a
    /// connection that could not be set back to FULL is closed, not returned to the pool.
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.db {
            Db::Sqlite { write, .. } => {
                let mut conn = write.acquire().await?;
                sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                let migrated = match crate::snapshot::load_if_fresh(&mut conn).await {
                    Ok(_) => SQLITE_MIGRATIONS.run(&mut *conn).await.map_err(StoreError::from),
                    Err(e) => Err(e),
                };
                let restored = sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await;
                if restored.is_err() {
                    conn.detach();
                }
                migrated?;
                restored?;
            }
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        run!(self, read, |pool| sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    async fn close(&self) {
        match &self.db {
            Db::Sqlite { read, write, inline, .. } => {
                if let Some(reads) = inline {
                    reads.close();
                }
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}
