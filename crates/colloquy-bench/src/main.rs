//! `colloquy-bench all [--quick]`: runs every benchmark scenario against a release build of
//! `colloquy` and writes `BENCHMARKS.md` and `bench.json`. Every figure that has a baseline is
//! measured beside it in the same run, on the same machine, and judged on the ratio, because
//! machines here are shared and noisy. `scripts/bench` builds what it needs and runs it.

mod backend;
mod behaviour;
mod durability;
mod failover;
mod live;
mod load;
mod local_llm;
mod node;
mod post_call;
mod report;
mod retrieval;
mod scenarios;
mod search;
mod soak;
mod versions;
mod voice;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::backend::Backend;
use crate::scenarios::Sizes;

/// Benchmarks of Colloquy against baselines measured in the same run.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every scenario.
    All {
        /// Small sizes and short windows (under two minutes).
        #[arg(long)]
        quick: bool,
        /// Tiny sizes, for the smoke test that keeps the benchmarks from rotting.
        #[arg(long, hide = true)]
        tiny: bool,
        /// The `colloquy` binary to measure.
        #[arg(long, default_value = "target/release/colloquy")]
        colloquy: PathBuf,
        /// Where to write BENCHMARKS.md and bench.json.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Run only these scenarios (startup, agents, executions, ingest, kill, turns, cpu, idle,
        /// test_runs, retrieval, search, voice, versions, post_call, otlp, behaviour, local_llm,
        /// and postgres: agents, executions, ingest, turns, test runs and two nodes on the
        /// PostgreSQL of `COLLOQUY_TEST_DATABASE_URL`), to iterate on one; the report then holds
        /// only them.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Hold a mixed load for a while (one node on SQLite, then two on the PostgreSQL of
    /// `COLLOQUY_TEST_DATABASE_URL` when set) and report what grows; fails when memory grows
    /// more than 10 % after the warm-up, descriptors grow, or a request fails.
    Soak {
        /// How long each phase runs.
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// The `colloquy` binary to run.
        #[arg(long, default_value = "target/release/colloquy")]
        colloquy: PathBuf,
    },
    /// The child of the kill -9 scenario: ingests audit records into `db` until killed,
    /// printing each acknowledged record's id.
    #[command(hide = true)]
    IngestChild {
        #[arg(long)]
        db: PathBuf,
    },
    /// The baseline of the idle-memory scenario: a bare axum WebSocket server with Colloquy's
    /// buffer settings, printing its address.
    #[command(hide = true)]
    BareWebsocket,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (quick, tiny, colloquy, out, only) = match Cli::parse().command {
        Command::All { quick, tiny, colloquy, out, only } => (quick, tiny, colloquy, out, only),
        Command::IngestChild { db } => return durability::child(&db).await,
        Command::BareWebsocket => return live::bare_websocket().await,
        Command::Soak { minutes, colloquy } => {
            anyhow::ensure!(
                colloquy.exists(),
                "{} does not exist; build it first",
                colloquy.display()
            );
            let held = soak::soak(&colloquy.canonicalize()?, minutes).await?;
            anyhow::ensure!(held, "the soak missed a goal (see above)");
            return Ok(());
        }
    };
    let (sizes, mode) = match (tiny, quick) {
        (true, _) => (Sizes::TINY, "tiny"),
        (false, true) => (Sizes::QUICK, "quick"),
        (false, false) => (Sizes::FULL, "full"),
    };
    anyhow::ensure!(
        colloquy.exists(),
        "{} does not exist; build it first (scripts/bench does)",
        colloquy.display()
    );
    let colloquy = colloquy.canonicalize()?;
    std::fs::create_dir_all(&out)?;
    let rows = scenarios_run(&colloquy, sizes, &only).await?;
    let mut notes = Vec::new();
    notes.extend(notes_of_the_method());
    let mut postgres_failed = None;
    let postgres = match Backend::postgres_from_env() {
        Some(backend) if only.is_empty() || only.iter().any(|o| o == "postgres") => {
            let mut rows = Vec::new();
            let outcome = postgres_run(&colloquy, sizes, &backend, &mut rows).await;
            backend.clean_up().await;
            // The SQLite figures are kept when a PostgreSQL scenario fails; the failure is
            // reported, and fails the run.
            if let Err(e) = &outcome {
                notes.push(format!("The PostgreSQL section stopped: {e:#}"));
            }
            postgres_failed = outcome.err();
            rows
        }
        Some(_) => Vec::new(),
        None => {
            notes.push(
                "The PostgreSQL section was skipped: set COLLOQUY_TEST_DATABASE_URL to a server                  the benchmark may make schemas on."
                    .into(),
            );
            Vec::new()
        }
    };
    if local_llm::model_file().is_none()
        && (only.is_empty() || only.iter().any(|o| o == "local_llm"))
    {
        notes.push(
            "The local model's scenario was skipped: no model file. Set COLLOQUY_BENCH_MODEL to a \
             GGUF file, or run `colloquy models pull` from this directory."
                .into(),
        );
    }
    report::write(&out, &rows, &postgres, mode, &notes)?;
    let judged = || rows.iter().chain(&postgres).filter_map(report::Row::pass);
    let failed = judged().filter(|pass| !pass).count();
    let passed = judged().filter(|pass| *pass).count();
    #[allow(clippy::print_stdout)]
    {
        println!("{}", std::fs::read_to_string(out.join("BENCHMARKS.md"))?);
        println!("goals: {passed} met, {failed} missed");
    }
    postgres_failed.map_or(Ok(()), Err)
}

/// The rows of every scenario `only` names (all of them when it names none), in order.
async fn scenarios_run(
    colloquy: &std::path::Path, sizes: Sizes, only: &[String],
) -> anyhow::Result<Vec<report::Row>> {
    let colloquy = colloquy.to_path_buf();
    let mut rows = Vec::new();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if wanted("startup") {
        rows.extend(scenarios::startup(&colloquy).await?);
    }
    let sqlite = &Backend::Sqlite;
    if wanted("agents") {
        rows.extend(scenarios::agents(&colloquy, sizes, sqlite).await?);
    }
    if wanted("executions") {
        rows.extend(scenarios::executions(&colloquy, sizes, sqlite).await?);
    }
    if wanted("ingest") {
        rows.extend(scenarios::ingest(sizes, sqlite).await?);
    }
    if wanted("kill") {
        rows.extend(durability::kill_during_ingest(sizes).await?);
    }
    if wanted("turns") {
        rows.extend(live::turns(&colloquy, sizes, sqlite).await?);
    }
    if wanted("cpu") {
        rows.extend(live::cpu_per_turn(&colloquy, sizes).await?);
    }
    if wanted("idle") {
        rows.extend(live::idle_memory(&colloquy, sizes).await?);
    }
    if wanted("test_runs") {
        rows.extend(scenarios::test_runs(&colloquy, sizes, sqlite).await?);
    }
    if wanted("retrieval") {
        rows.extend(retrieval::retrieval(&colloquy, sizes).await?);
    }
    if wanted("search") {
        rows.extend(search::transcripts(sizes).await?);
    }
    if wanted("voice") {
        rows.extend(voice::voice(&colloquy, sizes).await?);
    }
    if wanted("versions") {
        rows.extend(versions::versions(&colloquy, sizes).await?);
    }
    if wanted("post_call") {
        rows.extend(post_call::post_call(&colloquy, sizes).await?);
    }
    if wanted("otlp") {
        rows.extend(post_call::otlp(&colloquy, sizes).await?);
    }
    if wanted("behaviour") {
        rows.extend(behaviour::behaviour(&colloquy, sizes).await?);
    }
    if wanted("local_llm")
        && let Some(model) = local_llm::model_file()
    {
        rows.extend(local_llm::local_llm(&model, sizes).await?);
    }
    Ok(rows)
}

/// The scenarios that have a PostgreSQL side, on `backend`: the same goals, each baseline the
/// raw queries on the same PostgreSQL; then two nodes sharing it, one killed halfway.
async fn postgres_run(
    colloquy: &std::path::Path, sizes: Sizes, backend: &Backend, rows: &mut Vec<report::Row>,
) -> anyhow::Result<()> {
    rows.extend(scenarios::agents(colloquy, sizes, backend).await?);
    rows.extend(scenarios::executions(colloquy, sizes, backend).await?);
    rows.extend(scenarios::ingest(sizes, backend).await?);
    rows.extend(live::turns(colloquy, sizes, backend).await?);
    rows.extend(scenarios::test_runs(colloquy, sizes, backend).await?);
    rows.extend(failover::two_nodes(colloquy, sizes, backend).await?);
    Ok(())
}

/// What every report says about how its figures were measured.
fn notes_of_the_method() -> Vec<String> {
    let mut out = Vec::new();
    out.push(format!(
        "{} cores; the load generator, the server and the baselines share them.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    out.push(
        "A throughput row's baseline is the load generator's own ceiling: the same generator \
         (raw HTTP/1.1 on kept connections, as many as the row says) against a bare axum handler \
         answering the same bytes. Where it is at least twice the server's figure, the ratio is \
         the server's; nearer, the generator shares the blame."
            .into(),
    );
    out.push(
        "Per-turn overhead is the WebSocket turn (user_message to agent_response) minus the \
         zero-latency fake LLM's own answer time, measured by direct clients on the same \
         schedule in the same run: 1,000 turns/s offered, spread over the conversations. \
         Capacity is the same conversations without pauses."
            .into(),
    );
    out.push(
        "The executions page's \"raw SQL\" baseline runs the page's query through sqlx's pool \
         from the measuring process, as an application reading the database would. Beside it, \
         the same query on a prepared rusqlite connection in the measuring process (the query \
         alone) and a bare HTTP handler answering the page's bytes (an HTTP round trip alone) \
         show where the time goes; the goal is judged against the first."
            .into(),
    );
    out.push(
        "Knowledge-base search times the store's search of the whole workspace (what a turn's \
         retrieval runs, the agent's documents aside) against the same FTS5 query prepared on a \
         connection of the measuring process; the corpus is synthetic text whose word \
         frequencies fall off as a natural language's, 150 words a chunk, and each query five \
         of its words."
            .into(),
    );
    out.push(
        "Transcript search times the store's text search of every message of the workspace (what \
         `GET /v1/convai/conversations/messages/text-search` runs) against the same FTS5 query \
         prepared on a connection of the measuring process; ten messages of twelve words a \
         conversation, from the same synthetic language, and each query two of its words that \
         are not stopwords (what people search for)."
            .into(),
    );
    out
}
