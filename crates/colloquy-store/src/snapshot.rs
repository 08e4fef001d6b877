//! A fresh SQLite database's schema, written whole instead of replayed migration by migration.
//!
//! Replaying every migration on a new file was most of a first start (about 20 of 45 ms: each
//! migration its own transaction and record, and each `ALTER TABLE … ADD COLUMN` checking the
//! whole schema again). `schema/sqlite.sql` is what that replay leaves: every table, index, view
//! and trigger in the order the migrations made them, and sqlx's record of each migration with
//! its checksum. Loading even that text costs about 9 ms of CPU (SQLite parses and plans every
//! statement), a third of what was left of a first start, so `schema/sqlite.db.gz` holds the
//! database file it makes, and a file that does not exist yet is written from that image
//! ([`lay_down_if_missing`]) before SQLite first opens it. A database with no schema at all
//! (an empty file another program made) is still given the text in one transaction
//! ([`load_if_fresh`]). Either way sqlx's migrator then finds those migrations applied (their
//! checksums match) and applies only newer ones, so a migration added without writing the
//! files again still runs. Both files are written, and checked to be current, by this
//! module's tests from a real replay:
//! `COLLOQUY_WRITE_SCHEMA=1 cargo test -p colloquy-store --lib snapshot` writes them again.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use sqlx::{Connection as _, SqliteConnection};

use crate::StoreResult;

const SNAPSHOT: &str = include_str!("../schema/sqlite.sql");

/// The database file [`SNAPSHOT`] makes, gzipped (some 17 KB for 850 KB of mostly empty pages).
const IMAGE: &[u8] = include_bytes!("../schema/sqlite.db.gz");

/// Writes the schema's database file at `file` when neither it nor a write-ahead log of that
/// name exists (a log left without its database would be replayed onto the image). The image
/// goes to a file of this process's own, is synced, then linked in place, which fails instead
/// of replacing when another process made `file` meanwhile: a database in use is never
/// overwritten and a half-written image is never seen. Anything that goes wrong leaves no file,
/// and SQLite makes an empty one that [`load_if_fresh`] gives the schema.
pub(crate) fn lay_down_if_missing(file: &Path) {
    if file.symlink_metadata().is_ok() || beside(file, "-wal").symlink_metadata().is_ok() {
        return;
    }
    let fresh = beside(file, &format!(".new-{}", std::process::id()));
    let laid = write_image(&fresh).and_then(|()| std::fs::hard_link(&fresh, file));
    // The link, or its failure, leaves nothing the temporary name is still needed for.
    let _ = std::fs::remove_file(&fresh);
    match laid {
        Ok(()) => {
            // The name's durability; without it a power cut may only lose the empty schema.
            let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => tracing::debug!(file = %file.display(), error = %e, "schema image not written"),
    }
}

/// `file`'s name with `suffix` appended, as SQLite names its log (kept as an `OsString`, so a
/// name that is not UTF-8 stays the same name).
fn beside(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn write_image(path: &Path) -> io::Result<()> {
    let mut out = OpenOptions::new().write(true).create_new(true).open(path)?;
    io::copy(&mut flate2::read::GzDecoder::new(IMAGE), &mut out)?;
    out.sync_all()
}

/// Loads the snapshot when the database has no schema at all; whether it did. The check and
/// the load share one write transaction, so of two processes opening a new file together one
/// loads and the other then finds the schema there.
pub(crate) async fn load_if_fresh(conn: &mut SqliteConnection) -> StoreResult<bool> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let objects: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master").fetch_one(&mut *tx).await?;
    if objects > 0 {
        return Ok(false);
    }
    sqlx::raw_sql(SNAPSHOT).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::io::{Read as _, Write as _};
    use std::path::Path;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::{ConnectOptions as _, Row as _};

    use super::*;

    /// The snapshot file's first lines.
    const HEADER: &str = "\
-- The schema the SQLite migrations leave on a fresh database, with their records: a new
-- database is made from this file in one transaction instead of replaying each migration
-- (crates/colloquy-store/src/snapshot.rs). Written by a replay, not by hand:
--   COLLOQUY_WRITE_SCHEMA=1 cargo test -p colloquy-store --lib snapshot
";

    async fn open(file: &Path) -> SqliteConnection {
        SqliteConnectOptions::new().filename(file).create_if_missing(true).connect().await.unwrap()
    }

    /// The snapshot text of a database: its objects (tables, then indexes, views and triggers,
    /// each kind in the order it was made; SQLite's own and the full-text indexes' shadow
    /// tables left out, since creating their owners makes them) and its migration records.
    async fn snapshot_of(conn: &mut SqliteConnection) -> String {
        let shadow: Vec<String> = sqlx::query("PRAGMA table_list")
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .iter()
            .filter(|row| row.get::<String, _>("type") == "shadow")
            .map(|row| row.get("name"))
            .collect();
        let objects: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT type, name, sql FROM sqlite_master \
             WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' \
             ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END, rowid",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let mut text = HEADER.to_owned();
        for (kind, name, sql) in objects.iter().filter(|(_, name, _)| !shadow.contains(name)) {
            if kind == "table" && name != "_sqlx_migrations" && !sql.starts_with("CREATE VIRTUAL") {
                let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT count(*) FROM \"{name}\""
                )))
                .fetch_one(&mut *conn)
                .await
                .unwrap();
                assert_eq!(rows, 0, "a migration fills {name}: the snapshot would need its rows");
            }
            write!(text, "\n{sql};\n").unwrap();
        }
        text.push('\n');
        let records: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
            "SELECT version, description, checksum FROM _sqlx_migrations ORDER BY version",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        for (version, description, checksum) in records {
            let hex: String = checksum.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(
                text,
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES ({version}, '{}', TRUE, X'{hex}', 0);",
                description.replace('\'', "''")
            )
            .unwrap();
        }
        text
    }

    /// The database file [`SNAPSHOT`] makes on a new file, its log checkpointed into it.
    async fn image_of_snapshot() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("image.db");
        let mut conn = SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
            .unwrap();
        assert!(load_if_fresh(&mut conn).await.unwrap());
        conn.close().await.unwrap();
        assert!(!dir.path().join("image.db-wal").exists(), "the last close checkpoints the log");
        std::fs::read(file).unwrap()
    }

    /// `image` with every migration record's `installed_on` (the time the image was made) set
    /// to one time, so two images of one schema compare equal byte for byte.
    async fn installed_at_one_time(image: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("image.db");
        std::fs::write(&file, image).unwrap();
        let mut conn = open(&file).await;
        sqlx::query("UPDATE _sqlx_migrations SET installed_on = '2026-01-01 00:00:00'")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        std::fs::read(file).unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    #[tokio::test]
    async fn the_image_is_the_file_the_snapshot_makes() {
        let made = image_of_snapshot().await;
        if std::env::var_os("COLLOQUY_WRITE_SCHEMA").is_some() {
            let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/sqlite.db.gz");
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(&made).unwrap();
            std::fs::write(file, gz.finish().unwrap()).unwrap();
            return;
        }
        assert!(
            installed_at_one_time(&gunzip(IMAGE)).await == installed_at_one_time(&made).await,
            "schema/sqlite.db.gz is not the file schema/sqlite.sql makes; write it again: \
             COLLOQUY_WRITE_SCHEMA=1 cargo test -p colloquy-store --lib snapshot"
        );
    }

    #[tokio::test]
    async fn a_file_in_place_or_a_log_without_its_database_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        lay_down_if_missing(&empty);
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
        let orphan = dir.path().join("orphan.db");
        std::fs::write(dir.path().join("orphan.db-wal"), b"log").unwrap();
        lay_down_if_missing(&orphan);
        assert!(!orphan.exists());
        let new = dir.path().join("new.db");
        lay_down_if_missing(&new);
        assert!(std::fs::read(&new).unwrap() == gunzip(IMAGE));
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 3, "no temporary file is left: {names:?}");
    }

    #[tokio::test]
    async fn an_empty_file_is_given_the_snapshot_and_equals_a_replayed_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.db");
        std::fs::write(&file, b"").unwrap();
        let url = format!("sqlite://{}", file.display());
        let store =
            crate::SqlStore::connect(&url, &crate::ConnectOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let mut conn = open(&file).await;
        assert!(snapshot_of(&mut conn).await == SNAPSHOT, "made from the text, the same again");
    }

    #[tokio::test]
    async fn the_snapshot_is_what_replaying_the_migrations_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("replayed.db")).await;
        crate::db::SQLITE_MIGRATIONS.run(&mut conn).await.unwrap();
        let replayed = snapshot_of(&mut conn).await;
        if std::env::var_os("COLLOQUY_WRITE_SCHEMA").is_some() {
            let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/sqlite.sql");
            std::fs::write(file, &replayed).unwrap();
            return;
        }
        let differs = replayed.lines().zip(SNAPSHOT.lines()).find(|(a, b)| a != b);
        assert!(
            replayed == SNAPSHOT,
            "schema/sqlite.sql is not what the migrations leave (first difference: {differs:?}); \
             write it again: COLLOQUY_WRITE_SCHEMA=1 cargo test -p colloquy-store --lib snapshot"
        );
    }

    #[tokio::test]
    async fn a_new_database_is_made_from_the_image_and_equals_a_replayed_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("new.db");
        let url = format!("sqlite://{}", file.display());
        let store =
            crate::SqlStore::connect(&url, &crate::ConnectOptions::default()).await.unwrap();
        let mut conn = open(&file).await;
        let objects: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(objects > 0, "the image is in place before any migration runs");
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        let unreplayed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM _sqlx_migrations WHERE execution_time = 0 AND success",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(unreplayed as usize, crate::db::SQLITE_MIGRATIONS.iter().count());
        assert!(snapshot_of(&mut conn).await == SNAPSHOT, "made from the image, the same again");
        assert!(!load_if_fresh(&mut conn).await.unwrap(), "a database with a schema is left alone");
    }
}
