//! Moving a whole database to another one (`colloquy migrate --from ... --to ...`), typically
//! from the embedded SQLite to PostgreSQL when one node is not enough: every table, in an order
//! that satisfies its foreign keys, copied in one transaction of the target, then verified by
//! row counts and checksums computed the same way on both sides.
//!
//! Rows are copied as stored, so sealed secrets stay sealed: the target's nodes need the secret
//! key the source used.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt;
use sqlx::Row;

use crate::db::{Db, run};
use crate::query::values_placeholders;
use crate::{SqlStore, StoreError, StoreResult};

/// Rows inserted per statement.
const BATCH: usize = 500;

/// Tables the database's own triggers keep from other tables (`conversation_days`, from
/// `conversations`): copying the other tables has the target's triggers fill them already, so
/// they are copied last, over what the triggers wrote, and end as the source has them.
const KEPT_BY_TRIGGERS: [&str; 1] = ["conversation_days"];

/// A table's size and content fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    /// The table.
    pub table: String,
    /// Its rows.
    pub rows: u64,
    /// Order-independent checksum of its rows (hex).
    pub checksum: String,
}

/// What a column holds: the four types the schemas use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Bool,
    Bytes,
}

#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
}

impl Cell {
    fn canonical(&self, out: &mut String) {
        match self {
            Cell::Text(Some(s)) => {
                out.push('T');
                out.push_str(&s.len().to_string());
                out.push(':');
                out.push_str(s);
            }
            Cell::Int(Some(n)) => {
                out.push('I');
                out.push_str(&n.to_string());
            }
            Cell::Bool(Some(b)) => out.push(if *b { 'Y' } else { 'N' }),
            Cell::Bytes(Some(bytes)) => {
                out.push('B');
                out.push_str(&bytes.len().to_string());
                out.push(':');
                for b in bytes {
                    out.push_str(&format!("{b:02x}"));
                }
            }
            Cell::Text(None) | Cell::Int(None) | Cell::Bool(None) | Cell::Bytes(None) => {
                out.push('0');
            }
        }
        out.push('\u{1f}');
    }
}

struct Table {
    name: String,
    columns: Vec<(String, Kind)>,
}

fn kind_of(declared: &str) -> Kind {
    let t = declared.to_ascii_lowercase();
    if t.contains("bool") {
        Kind::Bool
    } else if t.contains("blob") || t.contains("bytea") {
        Kind::Bytes
    } else if t.contains("int") {
        Kind::Int
    } else {
        Kind::Text
    }
}

/// The tables of a store (migration bookkeeping excluded), parents before children.
async fn tables(store: &SqlStore) -> StoreResult<Vec<Table>> {
    let (names, edges): (Vec<String>, Vec<(String, String)>) = match &store.db {
        Db::Sqlite { read, .. } => {
            let names: Vec<String> = sqlx::query_scalar(
                // Full-text indexes (virtual tables and their shadow tables) are rebuilt from
                // their content tables by the target's own triggers or generated columns.
                "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
            )
            .fetch_all(read)
            .await?;
            let mut edges = Vec::new();
            for name in &names {
                let parents: Vec<String> =
                    sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_list($1)")
                        .bind(name)
                        .fetch_all(read)
                        .await?;
                edges.extend(parents.into_iter().map(|p| (p, name.clone())));
            }
            (names, edges)
        }
        Db::Postgres(pool) => {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 AND table_name <> '_sqlx_migrations' ORDER BY table_name",
            )
            .fetch_all(pool)
            .await?;
            let edges: Vec<(String, String)> = sqlx::query_as(
                "SELECT ccu.table_name::text, tc.table_name::text \
                 FROM information_schema.table_constraints tc \
                 JOIN information_schema.constraint_column_usage ccu \
                   ON ccu.constraint_name = tc.constraint_name AND ccu.table_schema = tc.table_schema \
                 WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()",
            )
            .fetch_all(pool)
            .await?;
            (names, edges)
        }
    };
    let mut out = Vec::with_capacity(names.len());
    for name in ordered(&names, &edges)? {
        let columns: Vec<(String, String)> = match &store.db {
            Db::Sqlite { read, .. } => {
                sqlx::query_as("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
                    .bind(&name)
                    .fetch_all(read)
                    .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 \
                     AND is_generated = 'NEVER' ORDER BY ordinal_position",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?
            }
        };
        out.push(Table {
            name,
            columns: columns.into_iter().map(|(c, t)| (c, kind_of(&t))).collect(),
        });
    }
    Ok(out)
}

/// Orders tables so that every table comes after the tables it refers to.
fn ordered(names: &[String], edges: &[(String, String)]) -> StoreResult<Vec<String>> {
    let mut parents: BTreeMap<&str, BTreeSet<&str>> =
        names.iter().map(|n| (n.as_str(), BTreeSet::new())).collect();
    for (parent, child) in edges {
        if parent != child
            && let Some(set) = parents.get_mut(child.as_str())
        {
            set.insert(parent.as_str());
        }
    }
    let mut done: Vec<String> = Vec::with_capacity(names.len());
    while done.len() < names.len() {
        let ready: Vec<&str> = parents
            .iter()
            .filter(|(name, deps)| {
                !done.iter().any(|d| d == *name) && deps.iter().all(|d| done.iter().any(|x| x == d))
            })
            .map(|(name, _)| *name)
            .collect();
        if ready.is_empty() {
            return Err(StoreError::Config(
                "the tables' foreign keys form a cycle; cannot order the copy".into(),
            ));
        }
        done.extend(ready.into_iter().map(str::to_owned));
    }
    Ok(done)
}

fn select_sql(table: &Table) -> String {
    let columns: Vec<String> = table.columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    format!("SELECT {} FROM \"{}\"", columns.join(", "), table.name)
}

macro_rules! decode {
    ($row:expr, $columns:expr) => {{
        let mut cells = Vec::with_capacity($columns.len());
        for (i, (_, kind)) in $columns.iter().enumerate() {
            cells.push(match kind {
                Kind::Text => Cell::Text($row.try_get::<Option<String>, _>(i)?),
                Kind::Int => Cell::Int($row.try_get::<Option<i64>, _>(i)?),
                Kind::Bool => Cell::Bool($row.try_get::<Option<bool>, _>(i)?),
                Kind::Bytes => Cell::Bytes($row.try_get::<Option<Vec<u8>>, _>(i)?),
            });
        }
        cells
    }};
}

/// Folds one row into a table's running checksum: the sum of the rows' SHA-256 prefixes, so
/// the order rows are read in does not matter.
fn fold(sum: &mut u128, cells: &[Cell]) {
    let mut text = String::new();
    for cell in cells {
        cell.canonical(&mut text);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut prefix = [0u8; 16];
    prefix.copy_from_slice(&digest.as_ref()[..16]);
    *sum = sum.wrapping_add(u128::from_be_bytes(prefix));
}

/// Row counts and checksums of every table of `store`.
pub async fn summarize(store: &SqlStore) -> StoreResult<Vec<TableSummary>> {
    let mut out = Vec::new();
    for table in tables(store).await? {
        let sql = select_sql(&table);
        let (rows, sum) = run!(store, read, |pool| {
            let mut stream = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).fetch(pool);
            let mut rows = 0u64;
            let mut sum = 0u128;
            while let Some(row) = stream.try_next().await? {
                let cells = decode!(row, table.columns);
                fold(&mut sum, &cells);
                rows += 1;
            }
            Ok::<_, sqlx::Error>((rows, sum))
        })?;
        out.push(TableSummary { table: table.name, rows, checksum: format!("{sum:032x}") });
    }
    Ok(out)
}

fn insert_sql(table: &Table, rows: usize, numbered: bool) -> String {
    let columns: Vec<String> = table.columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    format!(
        "INSERT INTO \"{}\" ({}) VALUES {}",
        table.name,
        columns.join(", "),
        values_placeholders(rows, table.columns.len(), numbered)
    )
}

macro_rules! insert_batch {
    ($tx:expr, $table:expr, $batch:expr, $numbered:expr) => {{
        let sql = insert_sql($table, $batch.len(), $numbered);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in $batch.iter() {
            for cell in row {
                q = match cell {
                    Cell::Text(v) => q.bind(v.clone()),
                    Cell::Int(v) => q.bind(*v),
                    Cell::Bool(v) => q.bind(*v),
                    Cell::Bytes(v) => q.bind(v.clone()),
                };
            }
        }
        q.execute(&mut *$tx).await?;
    }};
}

/// Reads every row of `table` from `from`, sending them on in batches of `batch` rows.
async fn stream_rows(
    from: &SqlStore, table: &Table, batch: usize, out: tokio::sync::mpsc::Sender<Vec<Vec<Cell>>>,
) -> StoreResult<()> {
    let sql = select_sql(table);
    Ok(run!(from, read, |pool| {
        let mut stream = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).fetch(pool);
        let mut rows = Vec::with_capacity(batch);
        while let Some(row) = stream.try_next().await? {
            rows.push(decode!(row, table.columns));
            if rows.len() == batch && out.send(std::mem::take(&mut rows)).await.is_err() {
                break;
            }
        }
        if !rows.is_empty() {
            let _ = out.send(rows).await;
        }
        Ok::<_, sqlx::Error>(())
    })?)
}

/// Copies every table of `from` into `to` (migrated and empty) in one transaction, then checks
/// that both have the same rows. Returns the verified summary.
pub async fn copy_all(from: &SqlStore, to: &SqlStore) -> StoreResult<Vec<TableSummary>> {
    let source = tables(from).await?;
    let target: BTreeMap<String, Vec<(String, Kind)>> =
        tables(to).await?.into_iter().map(|t| (t.name, t.columns)).collect();
    for table in &source {
        let Some(columns) = target.get(&table.name) else {
            return Err(StoreError::Config(format!(
                "the target has no table {}: are both databases at the same migration?",
                table.name
            )));
        };
        let names: BTreeSet<&String> = columns.iter().map(|(c, _)| c).collect();
        if let Some((missing, _)) = table.columns.iter().find(|(c, _)| !names.contains(c)) {
            return Err(StoreError::Config(format!(
                "the target's table {} has no column {missing}",
                table.name
            )));
        }
    }
    if let Some(busy) = summarize(to).await?.into_iter().find(|t| t.rows > 0) {
        return Err(StoreError::Conflict(format!(
            "the target is not empty ({} has {} rows); copy only into a new database",
            busy.table, busy.rows
        )));
    }
    let numbered = matches!(to.db, Db::Postgres(_));
    let (derived, mut source): (Vec<Table>, Vec<Table>) =
        source.into_iter().partition(|t| KEPT_BY_TRIGGERS.contains(&t.name.as_str()));
    let first_derived = source.len();
    source.extend(derived);
    crate::db::transaction!(to, |tx| {
        for (i, table) in source.iter().enumerate() {
            if i >= first_derived {
                let clear = format!("DELETE FROM {}", table.name);
                sqlx::query(sqlx::AssertSqlSafe(clear)).execute(&mut *tx).await?;
            }
            let per_statement = (BATCH * 8 / table.columns.len().max(1)).clamp(1, BATCH);
            let (sender, mut batches) = tokio::sync::mpsc::channel::<Vec<Vec<Cell>>>(4);
            let reader = stream_rows(from, table, per_statement, sender);
            let writer = async {
                while let Some(batch) = batches.recv().await {
                    insert_batch!(tx, table, batch, numbered);
                }
                Ok::<_, StoreError>(())
            };
            let (read, written) = tokio::join!(reader, writer);
            read?;
            written?;
        }
        Ok::<_, StoreError>(())
    })?;
    // PostgreSQL plans from statistics, which autovacuum gathers some time after enough rows
    // changed; until then a freshly filled table is planned as an empty one (the list page on
    // 1,000 agents just written ran at a fifth of its speed in the bench). A copy is exactly
    // that moment, so the copied tables are analysed before anyone reads them.
    if let Db::Postgres(pool) = &to.db {
        let names: Vec<String> = source.iter().map(|t| format!("\"{}\"", t.name)).collect();
        let analyse = format!("ANALYZE {}", names.join(", "));
        sqlx::query(sqlx::AssertSqlSafe(analyse)).execute(pool).await?;
    }
    let before = summarize(from).await?;
    let after = summarize(to).await?;
    for expected in &before {
        let got = after.iter().find(|t| t.table == expected.table);
        if got != Some(expected) {
            return Err(StoreError::Config(format!(
                "verification failed for {}: source {} rows / {}, target {:?}",
                expected.table, expected.rows, expected.checksum, got
            )));
        }
    }
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_their_foreign_keys() {
        let names: Vec<String> = ["c", "b", "a", "d"].iter().map(|s| s.to_string()).collect();
        let edges = vec![
            ("a".to_string(), "b".to_string()),
            ("b".to_string(), "c".to_string()),
            ("a".to_string(), "c".to_string()),
        ];
        let order = ordered(&names, &edges).unwrap();
        let at = |n: &str| order.iter().position(|x| x == n).unwrap();
        assert!(at("a") < at("b") && at("b") < at("c"));
        assert_eq!(order.len(), 4);
        let cycle = vec![("a".into(), "b".into()), ("b".into(), "a".into())];
        assert!(ordered(&names, &cycle).is_err());
    }

    #[test]
    fn checksums_ignore_row_order_but_not_content() {
        let r1 = vec![Cell::Text(Some("a".into())), Cell::Int(Some(1))];
        let r2 = vec![Cell::Text(None), Cell::Bool(Some(true))];
        let (mut x, mut y) = (0u128, 0u128);
        fold(&mut x, &r1);
        fold(&mut x, &r2);
        fold(&mut y, &r2);
        fold(&mut y, &r1);
        assert_eq!(x, y);
        let mut z = 0u128;
        fold(&mut z, &r1);
        fold(&mut z, &[Cell::Text(Some(String::new())), Cell::Bool(Some(true))]);
        assert_ne!(x, z, "null and empty differ");
    }
}
