//! `colloquy secrets`: maintenance of the sealed workspace secrets and webhook signing secrets.

use anyhow::Context as _;
use clap::Subcommand;
use colloquy_core::secret_key::{Keyring, secret_context};
use colloquy_store::{SecretStore, SqlStore, WebhookStore};

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
    let mut count = Count::default();
    let mut after = String::new();
    loop {
        let page = store.all_secrets(&after, 200).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        for secret in &page {
            let context = secret_context(&secret.workspace_id, &secret.id);
            if let Some(sealed) =
                reseal(keyring, &secret.sealed_value, &context, &secret.id, &mut count)?
            {
                store.reseal_secret(&secret.id, &sealed).await?;
            }
        }
    }
    after.clear();
    loop {
        let page = store.all_webhooks(&after, 200).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        for hook in &page {
            let context = secret_context(&hook.workspace_id, &hook.id);
            if let Some(sealed) =
                reseal(keyring, &hook.sealed_secret, &context, &hook.id, &mut count)?
            {
                store.reseal_webhook(&hook.id, &sealed).await?;
            }
        }
    }
    print_line(&format!(
        "re-sealed {} secret(s) under key {}; {} already used it",
        count.resealed,
        keyring.current().id(),
        count.current
    ));
    Ok(())
}

/// Secrets re-sealed, and those already under the current key.
#[derive(Default)]
struct Count {
    resealed: usize,
    current: usize,
}

/// `sealed` under the current key, or `None` when it already is.
fn reseal(
    keyring: &Keyring, sealed: &str, context: &[u8], id: &str, count: &mut Count,
) -> anyhow::Result<Option<String>> {
    if keyring.is_current(sealed) {
        count.current += 1;
        return Ok(None);
    }
    let plain = keyring
        .open(sealed, context)
        .with_context(|| format!("secret {id} does not open with the configured keys"))?;
    count.resealed += 1;
    Ok(Some(keyring.seal(&plain, context)))
}
