//! Finding the secret key that seals workspace secrets (DESIGN.md §2): `COLLOQUY_SECRET_KEY`,
//! else `COLLOQUY_SECRET_KEY_FILE`, else on SQLite a `secret.key` beside the database, created
//! (mode 0600) on first start. PostgreSQL nodes share one database, so each must be given the
//! same key explicitly; the server refuses to start without it.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use colloquy_core::secret_key::{Keyring, SecretKey};

use crate::config::Config;

/// Name of the generated key file in the SQLite data directory.
pub const KEY_FILE_NAME: &str = "secret.key";

/// The keyring the configuration asks for.
pub fn load_keyring(config: &Config) -> anyhow::Result<Keyring> {
    let current = if let Some(text) = &config.secret_key {
        SecretKey::parse(text).context("COLLOQUY_SECRET_KEY")?
    } else if let Some(path) = &config.secret_key_file {
        read_key(path)?
    } else if let Some(db_file) = colloquy_store::sqlite_file(&config.database_url) {
        let dir = db_file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(KEY_FILE_NAME);
        if path.exists() { read_key(&path)? } else { create_key_file(&path)? }
    } else if config.database_url.starts_with("sqlite:") {
        tracing::warn!(
            "in-memory database: secrets are sealed with a key that dies with the process"
        );
        SecretKey::generate()
    } else {
        anyhow::bail!(
            "COLLOQUY_SECRET_KEY (or COLLOQUY_SECRET_KEY_FILE) is required with PostgreSQL: every \
             node must seal secrets with the same key. Generate one with `openssl rand -hex 32`."
        );
    };
    let previous = config
        .secret_key_previous
        .as_deref()
        .map(SecretKey::parse)
        .transpose()
        .context("COLLOQUY_SECRET_KEY_PREVIOUS")?;
    Ok(Keyring::new(current, previous))
}

fn read_key(path: &Path) -> anyhow::Result<SecretKey> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SecretKey::parse(&text).with_context(|| format!("secret key in {}", path.display()))
}

fn create_key_file(path: &Path) -> anyhow::Result<SecretKey> {
    let key = SecretKey::generate();
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{}", key.to_hex())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), key_id = key.id(), "created a new secret key; back it up with the database");
    Ok(key)
}
