//! `colloquy secrets`: maintenance of the sealed workspace secrets.

use anyhow::Context as _;
use clap::Subcommand;
use colloquy_core::secret_key::{Keyring, secret_context};
use colloquy_store::{SecretStore, SqlStore};

use crate::cli::print_line;

/// Secrets subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Re-seal every secret under the current secret key. Run it after setting the new key as
    /// COLLOQUY_SECRET_KEY and the old one as COLLOQUY_SECRET_KEY_PREVIOUS; afterwards the
    /// previous key is no longer needed.
    Rekey,
}

impl SecretsCommand {
    /// Runs the subcommand.
    pub async fn run(self, store: &SqlStore, keyring: &Keyring) -> anyhow::Result<()> {
        match self {
            SecretsCommand::Rekey => rekey(store, keyring).await,
        }
    }
}

async fn rekey(store: &SqlStore, keyring: &Keyring) -> anyhow::Result<()> {
    let (mut resealed, mut current) = (0usize, 0usize);
    let mut after = String::new();
    loop {
        let page = store.all_secrets(&after, 200).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        for secret in &page {
            if keyring.is_current(&secret.sealed_value) {
                current += 1;
                continue;
            }
            let context = secret_context(&secret.workspace_id, &secret.id);
            let plain = keyring.open(&secret.sealed_value, &context).with_context(|| {
                format!("secret {} does not open with the configured keys", secret.id)
            })?;
            store.reseal_secret(&secret.id, &keyring.seal(&plain, &context)).await?;
            resealed += 1;
        }
    }
    print_line(&format!(
        "re-sealed {resealed} secret(s) under key {}; {current} already used it",
        keyring.current().id()
    ));
    Ok(())
}
