//! SQLite reads answered on the calling thread.
//!
//! sqlx runs every SQLite connection on a thread of its own: a statement is sent to that
//! thread and each row comes back over a channel, every hand-off a futex wake-up. A lookup by
//! key answers from SQLite's page cache in microseconds, so those hand-offs were most of what
//! a request cost (GET agent served 0.28 of a bare handler's throughput, a 30-agent page 0.10).
//! Here the reads made on every request (the key lookup, agents and tools by id, the paged
//! lists) run synchronously with rusqlite, on connections of their own, where the request is.
//!
//! Blocking a runtime worker is only harmless while it is short, so each statement has a
//! budget of SQLite VM steps, enforced by a progress handler. A statement that exceeds it (a
//! name search over many agents, say), or that finds the database busy, gives up and returns
//! `None`; the caller then runs it on the sqlx pool, whose threads may take as long as it
//! needs. Errors are never reported from here: the pool runs the statement again and reports
//! them the one way the store always has.
//!
//! Starting and ending a read transaction takes and drops WAL read locks (`fcntl` calls under
//! SQLite's mutexes): perf put that at a sixth of a GET agent once the key lookup was cached,
//! more than the lookup itself. So a reader keeps its snapshot (an explicit `BEGIN`) across
//! statements while it is current: until this process commits to the file (every write counts
//! itself in [`Commits`], and idle readers' snapshots end at once), and for at most
//! [`SNAPSHOT_AGE`], which bounds how late a write made by another process (`colloquy keys`)
//! shows. A request therefore always sees every write acknowledged before it, by this process.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use colloquy_core::ids;
use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, ErrorCode, OpenFlags, ToSql};

use crate::query::{Bind, Query};

/// VM steps between two calls of the progress handler: the unit of the budget.
const STEPS_PER_CHECK: u32 = 1000;
/// Connections kept open between reads. Reads never wait inside a statement, so at most one
/// per thread running them is in use at once.
const MAX_IDLE: usize = 8;
/// Longest a reader keeps one snapshot: how late another process's commit may show.
const SNAPSHOT_AGE: Duration = Duration::from_millis(1);
/// Statements each connection keeps prepared: every text the hot paths produce, with room
/// for the page sizes and filter combinations a client actually uses.
const STATEMENT_CACHE: usize = 128;

/// A row type the inline path can read. `COLUMNS` are matched to the statement's result
/// columns by name once per statement, so a query may list them in any order.
pub(crate) trait SqliteRow: Sized {
    /// The result columns read, in the order `from_row` takes them.
    const COLUMNS: &'static [&'static str];
    /// Reads a row; `at[i]` is the result column of `COLUMNS[i]`.
    fn from_row(row: &rusqlite::Row<'_>, at: &[usize]) -> rusqlite::Result<Self>;
}

/// Implements [`SqliteRow`] for a struct whose fields are named after its result columns, as
/// its `sqlx::FromRow` derive already requires. Listing every field is checked by the
/// compiler (the struct literal must be complete).
macro_rules! sqlite_row {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl $crate::inline::SqliteRow for $ty {
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];

            fn from_row(row: &rusqlite::Row<'_>, at: &[usize]) -> rusqlite::Result<Self> {
                let mut at = at.iter().copied();
                Ok($ty {
                    $($field: $crate::inline::Column::read(row, at.next().unwrap_or(usize::MAX))?,)*
                })
            }
        }
    };
}
pub(crate) use sqlite_row;

/// A field type of a [`SqliteRow`]: a value rusqlite reads as is, or an id type, stored as
/// text (the sqlx rows read those with `#[sqlx(try_from = "String")]`).
pub(crate) trait Column: Sized {
    /// Reads result column `at`.
    fn read(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Self>;
}

macro_rules! columns {
    (plain: $($plain:ty),*; ids: $($id:ty),*) => {
        $(impl Column for $plain {
            fn read(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Self> {
                row.get(at)
            }
        })*
        $(impl Column for $id {
            fn read(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Self> {
                row.get::<_, String>(at).map(<$id>::from)
            }
        })*
    };
}

/// Stored names of enums: a name this version does not know is a conversion failure.
macro_rules! stored_enums {
    ($($ty:ty),*) => {
        $(impl Column for $ty {
            fn read(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Self> {
                Self::try_from(row.get::<_, String>(at)?).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Text, e.into())
                })
            }
        })*
    };
}
stored_enums!(
    colloquy_core::tools::ToolKind,
    colloquy_core::test_runs::RunStatus,
    colloquy_core::knowledge::DocType
);
columns!(
    plain: String, Option<String>, i64, Option<i64>, bool, f64, Option<f64>, Vec<u8>;
    ids: ids::WorkspaceId, ids::AgentId, ids::ToolId, ids::ConversationId, ids::TestId, ids::InvocationId,
        ids::DocumentId
);

/// `a` then `b`, for the `COLUMNS` of a row that embeds another; `N` is checked at compile time.
pub(crate) const fn concat_columns<const N: usize>(
    a: &[&'static str], b: &[&'static str],
) -> [&'static str; N] {
    assert!(a.len() + b.len() == N, "N must be the number of columns");
    let mut out = [""; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - a.len()];
        i += 1;
    }
    out
}

/// A single unnamed value, such as a `COUNT(*)`: the first result column.
impl SqliteRow for (i64,) {
    const COLUMNS: &'static [&'static str] = &[];

    fn from_row(row: &rusqlite::Row<'_>, _: &[usize]) -> rusqlite::Result<Self> {
        Ok((row.get(0)?,))
    }
}

/// A single text value, such as the workspace of a row: the first result column.
impl SqliteRow for (String,) {
    const COLUMNS: &'static [&'static str] = &[];

    fn from_row(row: &rusqlite::Row<'_>, _: &[usize]) -> rusqlite::Result<Self> {
        Ok((row.get(0)?,))
    }
}

/// Two text values, such as a row's workspace and owner: the first two result columns.
impl SqliteRow for (String, String) {
    const COLUMNS: &'static [&'static str] = &[];

    fn from_row(row: &rusqlite::Row<'_>, _: &[usize]) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?))
    }
}

/// A key and a count, such as a `GROUP BY` tally: the first two result columns.
impl SqliteRow for (String, i64) {
    const COLUMNS: &'static [&'static str] = &[];

    fn from_row(row: &rusqlite::Row<'_>, _: &[usize]) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?))
    }
}

impl ToSql for Bind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Bind::Text(s) => s.to_sql(),
            Bind::Int(n) => n.to_sql(),
            Bind::Bool(b) => b.to_sql(),
        }
    }
}

/// Commits this process made to one database file. Every store of the process open on the
/// file shares the count (tests write through a second store, then read through the server).
#[derive(Debug, Default)]
pub(crate) struct Commits(AtomicU64);

impl Commits {
    /// The count for the file at `path`.
    pub(crate) fn of(path: &Path) -> Arc<Commits> {
        static FILES: LazyLock<Mutex<HashMap<PathBuf, Weak<Commits>>>> =
            LazyLock::new(Mutex::default);
        let mut files = FILES.lock().unwrap_or_else(|p| p.into_inner());
        files.retain(|_, commits| commits.strong_count() > 0);
        if let Some(commits) = files.get(path).and_then(Weak::upgrade) {
            return commits;
        }
        let commits = Arc::new(Commits::default());
        files.insert(path.to_owned(), Arc::downgrade(&commits));
        commits
    }

    /// Counts a commit, once it is done (so a snapshot begun after sees it).
    pub(crate) fn add(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }

    fn now(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// One reading connection, the step counter its progress handler reads, and the snapshot it
/// holds open: the commit count when it began, and when.
struct Reader {
    conn: Connection,
    checks: Arc<AtomicU32>,
    snapshot: Option<(u64, Instant)>,
}

impl Reader {
    /// Whether the open snapshot still shows everything (see the module doc).
    fn is_current(&self, commits: u64) -> bool {
        !self.conn.is_autocommit()
            && self
                .snapshot
                .is_some_and(|(at, began)| at == commits && began.elapsed() < SNAPSHOT_AGE)
    }

    /// Ends the open snapshot, if any.
    fn end_snapshot(&mut self) -> rusqlite::Result<()> {
        self.snapshot = None;
        if !self.conn.is_autocommit() {
            self.conn.prepare_cached("COMMIT")?.execute([])?;
        }
        Ok(())
    }

    /// Makes the open snapshot current: ends it if it is not and begins the next one, which
    /// the first statement after takes.
    fn refresh(&mut self, commits: u64) -> rusqlite::Result<()> {
        if self.is_current(commits) {
            return Ok(());
        }
        self.end_snapshot()?;
        self.conn.prepare_cached("BEGIN")?.execute([])?;
        self.snapshot = Some((commits, Instant::now()));
        Ok(())
    }
}

/// The inline readers of one SQLite file.
pub(crate) struct InlineReads {
    path: PathBuf,
    /// Progress-handler calls a statement may use up.
    checks_allowed: u32,
    idle: Mutex<Vec<Reader>>,
    /// This process's commits to the file.
    commits: Arc<Commits>,
    /// Set by [`InlineReads::close`]: every read goes to the (closed) pool, as before.
    closed: AtomicBool,
    /// Reads handed back to the pool (over budget, busy, or failed).
    handed_back: AtomicU64,
}

impl InlineReads {
    /// Readers of the database at `path`, each statement allowed about `budget` VM steps.
    pub(crate) fn new(path: PathBuf, budget: u32, commits: Arc<Commits>) -> InlineReads {
        InlineReads {
            path,
            commits,
            checks_allowed: budget.div_ceil(STEPS_PER_CHECK).max(1),
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            handed_back: AtomicU64::new(0),
        }
    }

    /// Hands every row of `q` to `each` with the result column of each of `columns`, as it is
    /// read; false when the pool must run it (rows given before then included).
    pub(crate) fn each(
        &self, q: &Query, columns: &[&str],
        mut each: impl FnMut(&rusqlite::Row<'_>, &[usize]) -> rusqlite::Result<()>,
    ) -> bool {
        self.query(q, columns, |mut rows, at| {
            while let Some(row) = rows.next()? {
                each(row, at)?;
            }
            Ok(())
        })
        .is_some()
    }

    /// Every row of `q`, or `None` when the pool must run it.
    pub(crate) fn all<T: SqliteRow>(&self, q: &Query) -> Option<Vec<T>> {
        self.query(q, T::COLUMNS, |mut rows, at| {
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(T::from_row(row, at)?);
            }
            Ok(out)
        })
    }

    /// The first row of `q` if there is one, or `None` when the pool must run it.
    pub(crate) fn optional<T: SqliteRow>(&self, q: &Query) -> Option<Option<T>> {
        self.query(q, T::COLUMNS, |mut rows, at| {
            rows.next()?.map(|row| T::from_row(row, at)).transpose()
        })
    }

    /// Runs `q` and hands its rows, with the result column of each of `columns`, to `read`.
    fn query<R>(
        &self, q: &Query, columns: &[&str],
        read: impl FnOnce(rusqlite::Rows<'_>, &[usize]) -> rusqlite::Result<R>,
    ) -> Option<R> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&q.sql)?;
            let at = result_columns(&stmt, columns)?;
            bind(&mut stmt, &q.binds)?;
            read(stmt.raw_query(), &at)
        })
    }

    /// Closes the idle connections; later reads all go to the pool.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn with<R>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Option<R> {
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let out = self.take().and_then(|mut reader| {
            reader.checks.store(0, Ordering::Relaxed);
            let out = reader.refresh(self.commits.now()).and_then(|()| read(&reader.conn));
            self.give_back(reader);
            out
        });
        match out {
            Ok(rows) => Some(rows),
            Err(e) => {
                self.handed_back.fetch_add(1, Ordering::Relaxed);
                if !is_expected(&e) {
                    tracing::warn!(error = %e, "inline read failed; the pool runs it instead");
                }
                None
            }
        }
    }

    fn take(&self) -> rusqlite::Result<Reader> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(r) => Ok(r),
            None => self.open(),
        }
    }

    /// Keeps `reader` for the next read. Its snapshot stays open only while current; the check
    /// is made under the lock [`InlineReads::end_idle_snapshots`] takes, so no idle reader keeps a
    /// snapshot older than the last commit.
    fn give_back(&self, mut reader: Reader) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE
            && (reader.is_current(self.commits.now()) || reader.end_snapshot().is_ok())
        {
            idle.push(reader);
        }
    }

    /// Ends the idle readers' snapshots after a commit (counted first in [`Commits`]): they no
    /// longer show everything, and would keep the WAL from being checkpointed.
    pub(crate) fn end_idle_snapshots(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain_mut(|reader| reader.end_snapshot().is_ok());
    }

    fn open(&self) -> rusqlite::Result<Reader> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "query_only", true)?;
        // Busy means "not now": the pool waits its busy_timeout instead of this thread.
        conn.busy_timeout(Duration::ZERO)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // The schema is read on the first statement; read it now, before the step budget
        // applies: it grows with every migration and is no part of any read's cost.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        let checks = Arc::new(AtomicU32::new(0));
        let (counter, allowed) = (checks.clone(), self.checks_allowed);
        conn.progress_handler(
            STEPS_PER_CHECK as i32,
            Some(move || counter.fetch_add(1, Ordering::Relaxed) + 1 >= allowed),
        )?;
        Ok(Reader { conn, checks, snapshot: None })
    }

    /// Reads handed back to the pool so far.
    #[cfg(test)]
    pub(crate) fn handed_back(&self) -> u64 {
        self.handed_back.load(Ordering::Relaxed)
    }
}

/// Result column of each of `columns`. Queries list them in order, which is checked first
/// (a name lookup compares against every column, and was a twentieth of a GET agent).
fn result_columns(
    stmt: &rusqlite::Statement<'_>, columns: &[&str],
) -> rusqlite::Result<Vec<usize>> {
    let mut at = Vec::with_capacity(columns.len());
    for (i, name) in columns.iter().enumerate() {
        at.push(match stmt.column_name(i) {
            Ok(found) if found == *name => i,
            _ => stmt.column_index(name)?,
        });
    }
    Ok(at)
}

/// Text column `i` of `row`, borrowed from the statement until it steps to the next row.
pub(crate) fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    })
}

/// Binds `$1`, `$2`, ... by name: a [`Query`] may use one parameter twice, which SQLite numbers
/// by first appearance.
fn bind(stmt: &mut rusqlite::Statement<'_>, binds: &[Bind]) -> rusqlite::Result<()> {
    let mut name = String::with_capacity(8);
    for (i, value) in binds.iter().enumerate() {
        name.clear();
        // Written in place: `to_string` allocated for every parameter of every read.
        write!(name, "${}", i + 1).expect("writing to a String cannot fail");
        stmt.raw_bind_parameter(name.as_str(), value)?;
    }
    Ok(())
}

/// Over budget or busy: the ordinary reasons to hand a read back.
fn is_expected(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::OperationInterrupted | ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use crate::{
        AgentContent, AgentFilter, AgentPage, AgentStore, AgentSummary, AgentSummaryRow,
        ConnectOptions, NewAgent, SqlStore, SummarySink, WorkspaceStore,
    };

    fn handed_back(store: &SqlStore) -> u64 {
        store.inline().expect("inline reads are on").handed_back()
    }

    /// Collects a page and counts the rows it had when told to start over.
    #[derive(Default)]
    struct Restarts {
        rows: Vec<AgentSummaryRow>,
        given_before_restart: usize,
    }

    impl SummarySink for Restarts {
        fn row(&mut self, row: &AgentSummary<'_>) {
            self.rows.row(row);
        }

        fn restart(&mut self) {
            self.given_before_restart += self.rows.len();
            self.rows.restart();
        }
    }

    async fn list(
        store: &SqlStore, workspace_id: &colloquy_core::ids::WorkspaceId, filter: &AgentFilter,
        page: &AgentPage,
    ) -> Vec<AgentSummaryRow> {
        let mut rows = Vec::new();
        store.list_agents(workspace_id, filter, page, &mut rows).await.unwrap();
        rows
    }

    async fn open(url: &str, inline_read_budget: u32) -> SqlStore {
        let opts = ConnectOptions { inline_read_budget, ..ConnectOptions::default() };
        let store = SqlStore::connect(url, &opts).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    fn agent(ws: &colloquy_core::ids::WorkspaceId, user: &str, id: &str, name: &str) -> NewAgent {
        NewAgent {
            id: id.into(),
            workspace_id: ws.clone(),
            created_by: user.to_owned(),
            created_at: 1_700_000_000,
            main_branch_id: format!("agtbrch_{id}"),
            content: AgentContent {
                name_lower: name.to_lowercase(),
                name: name.to_owned(),
                tags: vec![],
                archived: false,
                voice_id: "v".into(),
                version_id: format!("agtvrsn_{id}"),
                document: "{}".into(),
                tool_ids: vec![],
                document_ids: vec![],
                mcp_server_ids: vec![],
            },
        }
    }

    /// Readers keep a snapshot across statements, yet every read sees each commit this process
    /// made before it (through this store or another on the file), and another process's
    /// commit within [`super::SNAPSHOT_AGE`].
    #[tokio::test]
    async fn kept_snapshots_never_hide_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db.sqlite");
        let url = format!("sqlite://{}", file.display());
        let server = open(&url, 100_000).await;
        let other = open(&url, 0).await;
        let ws = server.ensure_workspace("w").await.unwrap();
        let user = server.ensure_user(&ws.id, "u", "u@x").await.unwrap();
        let id: colloquy_core::ids::AgentId = "agent_1".into();
        for (i, store) in [&server, &other, &server, &other].into_iter().enumerate() {
            // The read before keeps its reader's snapshot open.
            let _ = server.get_agent(&ws.id, &format!("agent_{i}").into()).await;
            store
                .insert_agent(&agent(&ws.id, &user.id, &format!("agent_{}", i + 1), "a"))
                .await
                .unwrap();
            let found = server.get_agent(&ws.id, &format!("agent_{}", i + 1).into()).await;
            assert!(found.is_ok(), "commit {i} hidden: {found:?}");
        }
        let outside = rusqlite::Connection::open(&file).unwrap();
        outside.execute("UPDATE agents SET name = 'renamed' WHERE id = 'agent_1'", []).unwrap();
        std::thread::sleep(super::SNAPSHOT_AGE * 2);
        assert_eq!(server.get_agent(&ws.id, &id).await.unwrap().summary.name, "renamed");
        assert_eq!(handed_back(&server), 0, "every read was inline");
    }

    /// Inline reads give what the pool gives; one over budget moves to the pool and still
    /// answers.
    #[tokio::test]
    #[allow(clippy::too_many_lines)]
    async fn over_budget_reads_move_to_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let pool_only = open(&url, 0).await;
        let ws = pool_only.ensure_workspace("w").await.unwrap();
        let user = pool_only.ensure_user(&ws.id, "u", "u@x").await.unwrap();
        for i in 0..300 {
            let name = format!("agent {i:03}");
            pool_only
                .insert_agent(&NewAgent {
                    id: format!("agent_{i:03}").into(),
                    workspace_id: ws.id.clone(),
                    created_by: user.id.clone(),
                    created_at: 1_700_000_000 + i,
                    main_branch_id: format!("agtbrch_{i:03}"),
                    content: AgentContent {
                        name_lower: name.clone(),
                        name,
                        tags: vec!["t".into()],
                        archived: false,
                        voice_id: "v".into(),
                        version_id: format!("agtvrsn_{i:03}"),
                        document: format!("{{\"n\":{i}}}"),
                        tool_ids: vec![],
                        document_ids: vec![],
                        mcp_server_ids: vec![],
                    },
                })
                .await
                .unwrap();
        }
        let page = AgentPage {
            sort: colloquy_core::agents::AgentSort::CreatedAt,
            descending: true,
            after: None,
            limit: 31,
        };
        let everything = AgentFilter::default();
        // Matches one of the oldest agents: the newest-first scan walks nearly every row.
        let search = AgentFilter { search: Some("agent 002".into()), ..AgentFilter::default() };

        let roomy = open(&url, 100_000).await;
        let listed = list(&roomy, &ws.id, &everything, &page).await;
        assert_eq!(listed.len(), 31);
        assert_eq!(listed, list(&pool_only, &ws.id, &everything, &page).await);
        assert_eq!(
            roomy.get_agent(&ws.id, &"agent_007".into()).await.unwrap(),
            pool_only.get_agent(&ws.id, &"agent_007".into()).await.unwrap()
        );
        assert_eq!(handed_back(&roomy), 0, "a page and a lookup fit the budget");

        let tight = open(&url, 1).await;
        assert_eq!(
            tight.get_agent(&ws.id, &"agent_007".into()).await.unwrap().document,
            "{\"n\":7}"
        );
        assert_eq!(handed_back(&tight), 0, "a lookup by key fits any budget");
        let found = list(&tight, &ws.id, &search, &page).await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "agent_002");
        assert_eq!(handed_back(&tight), 1, "the scan went over budget");
        // Every agent in one page goes over this budget after some rows were given: the
        // sink starts over, so each row comes once.
        let all = AgentPage { limit: 300, ..page.clone() };
        let mut sink = Restarts::default();
        tight.list_agents(&ws.id, &everything, &all, &mut sink).await.unwrap();
        assert!(sink.given_before_restart > 0, "rows came before the hand-off");
        assert_eq!(sink.rows, list(&pool_only, &ws.id, &everything, &all).await);
        assert_eq!(sink.rows.len(), 300);
        assert_eq!(handed_back(&tight), 2, "the page went over budget");
    }
}
