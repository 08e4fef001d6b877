//! A fresh SQLite database's schema, loaded whole instead of replayed migration by migration.
//!
//! Replaying every migration on a new file was most of a first start (about 20 of 45 ms: each
//! migration its own transaction and record, and each `ALTER TABLE … ADD COLUMN` checking the
//! whole schema again). `schema/sqlite.sql` is what that replay leaves: every table, index, view
//! and trigger in the order the migrations made them, and sqlx's record of each migration with
//! its checksum. A database with no schema at all gets it in one transaction; sqlx's migrator
//! then finds those migrations applied (their checksums match) and applies only newer ones, so
//! a migration added without writing the file again still runs. The file is written, and
//! checked to be current, by this module's tests from a real replay:
//! `COLLOQUY_WRITE_SCHEMA=1 cargo test -p colloquy-store --lib snapshot` writes it again.

use sqlx::{Connection as _, SqliteConnection};

use crate::StoreResult;

const SNAPSHOT: &str = include_str!("../schema/sqlite.sql");

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
    use std::path::Path;

    use sqlx::sqlite::SqliteConnectOptions;
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
    async fn a_new_database_is_made_from_the_snapshot_and_equals_a_replayed_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("new.db");
        let url = format!("sqlite://{}", file.display());
        let store =
            crate::SqlStore::connect(&url, &crate::ConnectOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        let mut conn = open(&file).await;
        let unreplayed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM _sqlx_migrations WHERE execution_time = 0 AND success",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(unreplayed as usize, crate::db::SQLITE_MIGRATIONS.iter().count());
        assert!(snapshot_of(&mut conn).await == SNAPSHOT, "made from the snapshot, the same again");
        assert!(!load_if_fresh(&mut conn).await.unwrap(), "a database with a schema is left alone");
    }
}
