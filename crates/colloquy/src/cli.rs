//! The command line: `serve`, `migrate` (and copying a database), `backup` and `restore`,
//! `keys`, `secrets`, `models`, `version`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Overrides};
use crate::keys::KeysCommand;
use crate::models::ModelsCommand;
use crate::secrets::SecretsCommand;
use crate::server::{self, Server};
use crate::telemetry;

/// Colloquy: a self-hosted, ElevenLabs-compatible platform for conversational AI agents.
#[derive(Debug, Parser)]
#[command(name = "colloquy", version, about)]
pub struct Cli {
    /// Configuration file (TOML); defaults to ./colloquy.toml when it exists.
    #[arg(long, global = true, env = "COLLOQUY_CONFIG")]
    pub config: Option<PathBuf>,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by the commands that open the database.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// `sqlite://path` or `postgres://...` (default sqlite://colloquy-data/colloquy.db).
    #[arg(long)]
    pub database_url: Option<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (applies pending migrations first).
    Serve {
        /// Address to listen on (default 127.0.0.1:8950).
        #[arg(long)]
        listen: Option<String>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Apply pending database migrations and exit; with --from and --to, copy a whole
    /// database into a new one (e.g. SQLite to PostgreSQL) and verify the copy.
    Migrate {
        #[command(flatten)]
        db: DatabaseArgs,
        /// Database to copy from (`sqlite://...` or `postgres://...`).
        #[arg(long, requires = "to", conflicts_with = "database_url")]
        from: Option<String>,
        /// Empty database to copy into; migrated first.
        #[arg(long, requires = "from")]
        to: Option<String>,
    },
    /// Copy the SQLite database into a new file while the server runs: one consistent
    /// snapshot through SQLite's backup API (PostgreSQL: use pg_dump).
    Backup {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The new file to write.
        #[arg(long)]
        to: PathBuf,
    },
    /// Replace the SQLite database with a backup (stop the server first).
    Restore {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The backup to restore.
        #[arg(long)]
        from: PathBuf,
        /// Replace a database that already exists.
        #[arg(long)]
        force: bool,
    },
    /// Create, list and revoke API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Maintain workspace secrets (re-seal under a new secret key).
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Download and list the local models the server can run with no LLM account.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Print the version.
    Version,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (overrides, command) = match cli.command {
        Command::Secrets { command, db } => {
            let overrides = Overrides { database_url: db.database_url, ..Default::default() };
            let config = Config::load(cli.config.as_deref(), &overrides)?;
            telemetry::init(config.log_format);
            server::install_crypto_provider();
            let store = server::open_store(&config).await?;
            let keyring = crate::secret_file::load_keyring(&config)?;
            return command.run(&store, &keyring).await;
        }
        Command::Backup { db, to } => {
            let config = Config::load(cli.config.as_deref(), &database(db))?;
            telemetry::init(config.log_format);
            return crate::backup::run_backup(&config.database_url, &to);
        }
        Command::Restore { db, from, force } => {
            let config = Config::load(cli.config.as_deref(), &database(db))?;
            telemetry::init(config.log_format);
            return crate::backup::run_restore(&config.database_url, &from, force);
        }
        Command::Models { command } => {
            let config = Config::load(cli.config.as_deref(), &Overrides::default())?;
            telemetry::init(config.log_format);
            server::install_crypto_provider();
            return command.run(&config).await;
        }
        Command::Version => {
            print_line(&format!("colloquy {}", env!("CARGO_PKG_VERSION")));
            return Ok(());
        }
        Command::Serve { listen, db } => {
            (Overrides { listen, database_url: db.database_url }, None)
        }
        Command::Migrate { from: Some(from), to: Some(to), .. } => {
            let config = Config::load(cli.config.as_deref(), &Overrides::default())?;
            telemetry::init(config.log_format);
            server::install_crypto_provider();
            return crate::transfer::run(&from, &to).await;
        }
        Command::Migrate { db, .. } => {
            (Overrides { database_url: db.database_url, ..Default::default() }, Some(None))
        }
        Command::Keys { command, db } => {
            (Overrides { database_url: db.database_url, ..Default::default() }, Some(Some(command)))
        }
    };
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    telemetry::init(config.log_format);
    match command {
        None => serve(&config).await,
        Some(None) => {
            server::install_crypto_provider();
            server::open_store(&config).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Some(Some(keys)) => {
            server::install_crypto_provider();
            let store = server::open_store(&config).await?;
            keys.run(&store).await
        }
    }
}

fn database(db: DatabaseArgs) -> Overrides {
    Overrides { database_url: db.database_url, ..Default::default() }
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    tracing::debug!(?config, "configuration");
    let server = Server::build(config).await?;
    if let Some(key) = &server.generated_key {
        print_line(&format!(
            "Created the first API key (admin of workspace \"default\"); it is shown only this once:\n{key}"
        ));
    }
    if let Some(guidance) = server.llm_guidance() {
        tracing::warn!("{guidance}");
        print_line(&format!("No LLM: {guidance}."));
    }
    tracing::info!(address = %server.local_addr()?, "listening");
    let served = server.run_until(server::shutdown_signal()).await;
    // The last spans are exported before the process ends (a blocking flush, off the runtime).
    let _ = tokio::task::spawn_blocking(telemetry::flush).await;
    served
}

/// Writes one line of command output to stdout.
#[allow(clippy::print_stdout)]
pub fn print_line(line: &str) {
    println!("{line}");
}
