//! Online backups of a SQLite database and their restore, through SQLite's backup API.
//!
//! A backup copies every page in one step, inside one read transaction of the source: in WAL
//! mode that transaction sees one committed state and blocks no writer, so the copy is
//! consistent while the server runs, and holds every write acknowledged before it began. (Many
//! small steps would let the server's writes restart the copy, for ever under load.) The copy
//! is written beside its destination and renamed into place only once it checks out, so a
//! failed backup leaves no file that looks like one. PostgreSQL has its own tools
//! (`pg_dump`/`pg_restore`, see the README).

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{Context as _, bail};
use colloquy_store::sqlite_file;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::cli::print_line;
use crate::secret_file::KEY_FILE_NAME;

/// `colloquy backup --to FILE`: the configured SQLite database copied into `FILE`.
pub fn run_backup(database_url: &str, to: &Path) -> anyhow::Result<()> {
    let from = sqlite_database(database_url)?;
    let copied = backup(&from, to)?;
    print_line(&format!(
        "backed up {} ({} pages, {} bytes) to {}",
        from.display(),
        copied.pages,
        copied.bytes,
        to.display()
    ));
    let key = from.parent().unwrap_or(Path::new(".")).join(KEY_FILE_NAME);
    if key.exists() {
        print_line(&format!(
            "secrets in it are sealed with {}: keep a copy of that key with the backup",
            key.display()
        ));
    }
    Ok(())
}

/// `colloquy restore --from FILE`: the configured SQLite database replaced by a backup.
pub fn run_restore(database_url: &str, from: &Path, force: bool) -> anyhow::Result<()> {
    let to = sqlite_database(database_url)?;
    if to.exists() && !force {
        bail!(
            "{} already exists: stop the server, then pass --force to replace it with {}",
            to.display(),
            from.display()
        );
    }
    let copied = restore(from, &to)?;
    print_line(&format!(
        "restored {} ({} pages, {} bytes) into {}",
        from.display(),
        copied.pages,
        copied.bytes,
        to.display()
    ));
    Ok(())
}

fn sqlite_database(database_url: &str) -> anyhow::Result<PathBuf> {
    match sqlite_file(database_url) {
        Some(file) => Ok(file),
        None if database_url.starts_with("sqlite:") => {
            bail!("an in-memory database has nothing to back up or restore")
        }
        None => bail!(
            "colloquy backup and restore work on SQLite databases; back up PostgreSQL with \
             pg_dump and pg_restore (README, Backups)"
        ),
    }
}

/// What a backup or restore copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Pages of the database.
    pub pages: i64,
    /// Bytes of the database.
    pub bytes: i64,
}

/// How long a copy waits for a lock it needs (a checkpoint in progress, a restore's writer)
/// before it gives up.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Copies the database at `from` into the new file `to`, while the server may be writing.
pub fn backup(from: &Path, to: &Path) -> anyhow::Result<Copied> {
    if to.exists() {
        bail!("{} already exists; choose a new file", to.display());
    }
    let source = open(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    create_parent(to)?;
    let partial = partial_path(to);
    let _ = std::fs::remove_file(&partial);
    let result = copy(&source, &partial).and_then(|copied| {
        check(&partial)?;
        std::fs::rename(&partial, to).with_context(|| format!("renaming {}", partial.display()))?;
        Ok(copied)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Replaces the database at `to` with the backup `from`, once the backup checks out. The
/// server must be stopped: its open connections would go on with what they had read.
pub fn restore(from: &Path, to: &Path) -> anyhow::Result<Copied> {
    check(from)?;
    let source = open(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    create_parent(to)?;
    copy(&source, to)
}

fn copy(source: &Connection, to: &Path) -> anyhow::Result<Copied> {
    let mut dest = open(to, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)?;
    let waited = std::time::Instant::now();
    {
        let backup = Backup::new(source, &mut dest)?;
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More | StepResult::Busy | StepResult::Locked
                    if waited.elapsed() < LOCK_WAIT =>
                {
                    sleep(Duration::from_millis(50));
                }
                _ => bail!("the database stayed locked for {LOCK_WAIT:?}; try again"),
            }
        }
    }
    let pages: i64 = dest.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let size: i64 = dest.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(Copied { pages, bytes: pages * size })
}

/// The file is a sound SQLite database that Colloquy has migrated.
fn check(file: &Path) -> anyhow::Result<()> {
    let conn = open(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .with_context(|| format!("{} is not a SQLite database", file.display()))?;
    if verdict != "ok" {
        bail!("{} is damaged: {verdict}", file.display());
    }
    let migrated: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        [],
        |r| r.get(0),
    )?;
    if migrated == 0 {
        bail!("{} is not a Colloquy database", file.display());
    }
    Ok(())
}

fn open(file: &Path, flags: OpenFlags) -> anyhow::Result<Connection> {
    if !flags.contains(OpenFlags::SQLITE_OPEN_CREATE) && !file.exists() {
        bail!("{} does not exist", file.display());
    }
    let conn = Connection::open_with_flags(file, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("cannot open {}", file.display()))?;
    conn.busy_timeout(LOCK_WAIT)?;
    Ok(conn)
}

fn create_parent(file: &Path) -> anyhow::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

fn partial_path(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    to.with_file_name(name)
}
