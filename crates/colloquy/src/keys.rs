//! `colloquy keys`: API keys are managed on the server's machine, not over the API, so
//! nobody can mint a key from a leaked one.

use clap::Subcommand;
use colloquy_core::keys::generate_token;
use colloquy_core::scope::Scopes;
use colloquy_store::{ChangeRow, ChangeStore, KeyStore, NewApiKey, SqlStore};

use crate::cli::print_line;

/// Keys subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; the token is printed once on stdout.
    Create {
        /// Workspace (created if missing).
        #[arg(long, default_value = "default")]
        workspace: String,
        /// The user's name.
        #[arg(long)]
        user_name: String,
        /// The user's email; a user is identified by it within the workspace.
        #[arg(long)]
        user_email: String,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Comma-separated scopes: admin, editor, viewer, or <family>:read|write with family
        /// agents, tools, tests, conversations, secrets, mcp_servers.
        #[arg(long)]
        scopes: String,
    },
    /// List keys (never their tokens).
    List {
        /// Only this workspace's keys.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Revoke a key by its id (`key_...`); requests with it get 401 from then on.
    Revoke {
        /// The key's id, as `keys list` shows it.
        key_id: String,
    },
}

impl KeysCommand {
    /// Runs the subcommand against `store`.
    pub async fn run(self, store: &SqlStore) -> anyhow::Result<()> {
        match self {
            KeysCommand::Create { workspace, user_name, user_email, name, scopes } => {
                let scopes = Scopes::parse(&scopes)?;
                let token = generate_token();
                let new = NewApiKey {
                    workspace,
                    user_name,
                    user_email,
                    name,
                    scopes: scopes.to_string(),
                };
                let record = store.create_key(&new, &token).await?;
                if let Some(key) = store.find_key(&colloquy_core::keys::hash_token(&token)).await? {
                    let paths = ["name", "scopes", "user_email", "user_name"];
                    log_change(store, key.workspace_id.as_str(), &record.id, "create", &paths)
                        .await?;
                }
                eprintln!(
                    "created key {} for {} in workspace \"{}\" with scopes {}; the token below is shown only once",
                    record.id, record.user_email, record.workspace, record.scopes
                );
                print_line(&token);
            }
            KeysCommand::List { workspace } => {
                print_line("ID\tWORKSPACE\tUSER\tNAME\tTOKEN\tSCOPES\tCREATED\tSTATUS");
                let mut after = None;
                loop {
                    let page = store.list_keys(workspace.as_deref(), after.clone(), 100).await?;
                    for k in &page {
                        let status = if k.revoked_at.is_some() { "revoked" } else { "active" };
                        print_line(&format!(
                            "{}\t{}\t{}\t{}\t{}…\t{}\t{}\t{status}",
                            k.id,
                            k.workspace,
                            k.user_email,
                            k.name,
                            k.token_hint,
                            k.scopes,
                            k.created_at
                        ));
                    }
                    match page.last() {
                        Some(last) if page.len() == 100 => {
                            after = Some((last.created_at, last.id.clone()))
                        }
                        _ => break,
                    }
                }
            }
            KeysCommand::Revoke { key_id } => {
                let workspace = store.revoke_key(&key_id).await.map_err(|e| match e {
                    colloquy_store::StoreError::NotFound => {
                        anyhow::anyhow!("no key with id {key_id}")
                    }
                    other => other.into(),
                })?;
                log_change(store, &workspace, &key_id, "delete", &["revoked_at"]).await?;
                eprintln!("revoked {key_id}");
            }
        }
        Ok(())
    }
}

/// Keys are changed on the server's machine, by its operator: the change log names the
/// command line as the actor.
async fn log_change(
    store: &SqlStore, workspace_id: &str, key_id: &str, operation: &str, paths: &[&str],
) -> anyhow::Result<()> {
    let change = ChangeRow {
        id: colloquy_core::ids::new_id(colloquy_core::ids::prefix::CHANGE),
        workspace_id: workspace_id.to_owned(),
        at_ms: colloquy_core::time::now_ms(),
        actor_key_id: CLI_ACTOR.to_owned(),
        actor_user_id: CLI_ACTOR.to_owned(),
        resource_type: "api_key".to_owned(),
        resource_id: key_id.to_owned(),
        operation: operation.to_owned(),
        paths: serde_json::to_string(paths)?,
    };
    Ok(store.record_change(&change).await?)
}

/// The actor of changes made with `colloquy` commands.
const CLI_ACTOR: &str = "cli";
