//! `colloquy migrate --from SRC --to DST`: copies a whole database into a new one (the way from
//! one SQLite node to PostgreSQL) and prints what was verified.

use anyhow::Context as _;
use colloquy_store::{ConnectOptions, SqlStore, Store, sqlite_file};

use crate::cli::print_line;
use crate::config::redact_url;

async fn open(url: &str) -> anyhow::Result<SqlStore> {
    let store = SqlStore::connect(url, &ConnectOptions::default())
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))?;
    store.migrate().await.with_context(|| format!("applying migrations to {}", redact_url(url)))?;
    Ok(store)
}

/// Copies `from` into `to` and reports each table's rows and checksum.
pub async fn run(from: &str, to: &str) -> anyhow::Result<()> {
    if sqlite_file(from).is_some_and(|f| !f.exists()) {
        anyhow::bail!("{} does not exist", redact_url(from));
    }
    let source = open(from).await?;
    let target = open(to).await?;
    let summary = colloquy_store::transfer::copy_all(&source, &target).await.context("copying")?;
    let mut total = 0;
    for table in &summary {
        total += table.rows;
        print_line(&format!(
            "{:<24} {:>10} rows  checksum {}",
            table.table, table.rows, table.checksum
        ));
    }
    print_line(&format!(
        "copied and verified {total} rows in {} tables from {} to {}",
        summary.len(),
        redact_url(from),
        redact_url(to)
    ));
    if let Some(key) = sqlite_file(from).and_then(|f| f.parent().map(|d| d.join("secret.key")))
        && key.exists()
    {
        print_line(&format!(
            "secrets are still sealed with {}: start the new nodes with COLLOQUY_SECRET_KEY_FILE={} (or its value in COLLOQUY_SECRET_KEY)",
            key.display(),
            key.display()
        ));
    }
    source.close().await;
    target.close().await;
    Ok(())
}
