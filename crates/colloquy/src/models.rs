//! `colloquy models`: the local models a server runs when no LLM provider is configured.

use std::io::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use clap::Subcommand;
use colloquy_engine::llm::embedded::catalog::{self, DEFAULT_MODEL, MODELS};
use colloquy_engine::llm::embedded::download::{self, Expected};

use crate::cli::print_line;
use crate::config::Config;

/// `colloquy models ...`
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Show the models that can be pulled and the ones in the models directory.
    List,
    /// Download a model into the models directory (resumes an interrupted download, checks
    /// the pinned size and SHA-256).
    Pull {
        /// Which model (default: the small default model).
        #[arg(default_value = DEFAULT_MODEL)]
        name: String,
        /// Download from this address instead (a mirror); the size and SHA-256 are still
        /// checked.
        #[arg(long)]
        url: Option<String>,
    },
}

impl ModelsCommand {
    /// Runs the command.
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        match self {
            ModelsCommand::List => {
                list(config);
                Ok(())
            }
            ModelsCommand::Pull { name, url } => pull(config, &name, url.as_deref()).await,
        }
    }
}

fn list(config: &Config) {
    let dir = config.models_dir();
    let local = catalog::local_models(&dir);
    let in_use = config.local_model();
    print_line(&format!("Models directory: {}", dir.display()));
    for known in MODELS {
        let here = local.iter().find(|m| m.name == known.name);
        let state = if here.is_some() { "downloaded" } else { "not downloaded" };
        let default = if known.name == DEFAULT_MODEL { " (default)" } else { "" };
        print_line(&format!("  {}{default}: {state}, {}", known.name, known.description));
    }
    for other in local.iter().filter(|m| catalog::find(&m.name).is_none()) {
        print_line(&format!(
            "  {}: {} ({} MB)",
            other.name,
            other.path.display(),
            other.size >> 20
        ));
    }
    match in_use {
        Some(model) => print_line(&format!(
            "With no LLM provider configured, `serve` runs {} ({}).",
            model.name,
            model.path.display()
        )),
        None => print_line(&format!(
            "No local model: `colloquy models pull` downloads {DEFAULT_MODEL}."
        )),
    }
}

async fn pull(config: &Config, name: &str, url: Option<&str>) -> anyhow::Result<()> {
    let Some(model) = catalog::find(name) else {
        let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
        anyhow::bail!("no known model is called {name:?}; known: {}", names.join(", "));
    };
    let dest = config.models_dir().join(model.file);
    if dest.exists() {
        print_line(&format!("{name} is already downloaded: {}", dest.display()));
        return Ok(());
    }
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let url = url.unwrap_or(model.url);
    print_line(&format!("Downloading {name} from {url}"));
    let mut bar = ProgressBar::new();
    let expected = Expected { size: model.size, sha256: model.sha256 };
    download::download(&client, url, &expected, &dest, &mut |done, total| bar.show(done, total))
        .await?;
    bar.finish();
    print_line(&format!("{name} is ready: {}", dest.display()));
    Ok(())
}

/// A one-line progress bar on stderr, redrawn at most ten times a second.
struct ProgressBar {
    started: Instant,
    last: Option<Instant>,
    first_byte: Option<u64>,
}

impl ProgressBar {
    fn new() -> ProgressBar {
        ProgressBar { started: Instant::now(), last: None, first_byte: None }
    }

    fn show(&mut self, done: u64, total: u64) {
        let first = *self.first_byte.get_or_insert(done);
        let now = Instant::now();
        if self.last.is_some_and(|last| now - last < std::time::Duration::from_millis(100))
            && done < total
        {
            return;
        }
        self.last = Some(now);
        let fraction = if total == 0 { 1.0 } else { done as f64 / total as f64 };
        let filled = (fraction * 30.0) as usize;
        let rate =
            (done - first) as f64 / now.duration_since(self.started).as_secs_f64().max(0.001);
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r[{}{}] {:5.1}%  {} / {} MB  {:.1} MB/s ",
            "#".repeat(filled),
            " ".repeat(30 - filled.min(30)),
            fraction * 100.0,
            done >> 20,
            total >> 20,
            rate / f64::from(1 << 20),
        );
        let _ = err.flush();
    }

    fn finish(&self) {
        let _ = writeln!(std::io::stderr());
    }
}
