//! The local model ([N]): time to the first token and tokens per second of the embedded
//! provider, against llama.cpp (through `llama-cpp-python`) on the same GGUF file and the same
//! prompt text in the same run, both greedy on the machine's cores; and the resident memory the
//! loaded model adds. Needs a real model file (`COLLOQUY_BENCH_MODEL`, else the default model
//! in `colloquy-data/models`): without one the scenario is skipped with a note.

use std::path::{Path, PathBuf};
use std::time::Instant;

use colloquy_engine::llm::embedded::Embedded;
use colloquy_engine::llm::embedded::catalog::{self, DEFAULT_MODEL};
use colloquy_engine::llm::{ChatMessage, ChatRequest, LlmProvider as _, Role};

use crate::report::{Goal, Row};
use crate::scenarios::Sizes;

/// Where the baseline's Python environment is made (llama-cpp-python builds llama.cpp).
const VENV: &str = "target/bench-llama";
/// The baseline's version (llama.cpp inside it is pinned by it).
const LLAMA_CPP_PYTHON: &str = "llama-cpp-python==0.3.36";

/// The model file to measure, if there is one.
pub fn model_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("COLLOQUY_BENCH_MODEL") {
        return Some(PathBuf::from(path));
    }
    let known = catalog::find(DEFAULT_MODEL)?;
    let path = Path::new("colloquy-data/models").join(known.file);
    path.exists().then_some(path)
}

/// Measures the model at `path`; `tokens` per answer (fewer at tiny sizes).
pub async fn local_llm(path: &Path, sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let tokens: u64 = if sizes.samples < 100 { 16 } else { 128 };
    let runs = if sizes.samples < 100 { 1 } else { 3 };
    let rss_before = rss_kib();
    let provider = Embedded::new(path.to_owned(), 1);
    provider.loaded().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let request = request(tokens);
    let prompt = provider.prompt(&request).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut ours = Vec::new();
    for _ in 0..runs {
        ours.push(generate(&provider, &request).await?);
    }
    let loaded_mb = (rss_kib().saturating_sub(rss_before)) as f64 / 1024.0;
    let theirs = llama_cpp(path, &prompt, tokens, runs)?;
    let (ours, theirs) = (median(ours), median(theirs));
    Ok(vec![
        Row {
            scenario: format!(
                "local model: tokens per second, greedy, {tokens} tokens, vs llama.cpp"
            ),
            unit: "tokens/s".into(),
            ours: ours.1,
            baseline: Some(theirs.1),
            goal: Goal::RatioAtLeast(0.7),
        },
        Row {
            scenario: "local model: time to the first token (prompt read), vs llama.cpp".into(),
            unit: "ms".into(),
            ours: ours.0,
            baseline: Some(theirs.0),
            goal: Goal::None,
        },
        Row {
            scenario: "local model: resident memory the loaded model adds".into(),
            unit: "MB".into(),
            ours: loaded_mb,
            baseline: Some(std::fs::metadata(path)?.len() as f64 / 1_048_576.0),
            goal: Goal::None,
        },
    ])
}

fn request(tokens: u64) -> ChatRequest {
    ChatRequest {
        model: "bench".into(),
        messages: vec![
            ChatMessage::text(Role::System, "You are a helpful assistant for a bicycle shop."),
            ChatMessage::text(
                Role::User,
                "Tell me, in detail, how to fix a flat tyre on a road bike, step by step.",
            ),
        ],
        temperature: Some(0.0),
        max_tokens: Some(tokens),
        ..Default::default()
    }
}

/// One greedy answer: (ms to the first text, tokens per second after it).
async fn generate(provider: &Embedded, request: &ChatRequest) -> anyhow::Result<(f64, f64)> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let answer = {
        let first = async {
            rx.recv().await;
            started.elapsed()
        };
        let (answer, first) = tokio::join!(provider.chat(request, Some(&tx)), first);
        (answer.map_err(|e| anyhow::anyhow!("{e}"))?, first)
    };
    let total = started.elapsed();
    let (answer, first) = answer;
    let after = answer.output_tokens.unwrap_or(0).saturating_sub(1) as f64;
    Ok((first.as_secs_f64() * 1000.0, after / (total - first).as_secs_f64().max(1e-9)))
}

/// The same prompt text through llama.cpp: (ms to the first token, tokens per second after).
fn llama_cpp(
    path: &Path, prompt: &str, tokens: u64, runs: usize,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let python = baseline_python()?;
    let script = r#"
import json, sys, time
from llama_cpp import Llama
path, prompt, tokens, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import os
llm = Llama(model_path=path, n_ctx=4096, n_threads=os.cpu_count(), verbose=False)
out = []
for _ in range(runs):
    started = time.perf_counter()
    first, count = None, 0
    for _chunk in llm.create_completion(prompt, max_tokens=tokens, temperature=0.0, stream=True):
        if first is None:
            first = time.perf_counter()
        count += 1
    ended = time.perf_counter()
    out.append([(first - started) * 1000.0, (count - 1) / max(ended - first, 1e-9)])
print(json.dumps(out))
"#;
    let run = std::process::Command::new(python)
        .args(["-c", script])
        .arg(path)
        .arg(prompt)
        .arg(tokens.to_string())
        .arg(runs.to_string())
        .output()?;
    anyhow::ensure!(
        run.status.success(),
        "llama-cpp-python: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    Ok(serde_json::from_slice(&run.stdout)?)
}

/// A Python with `llama_cpp`: `COLLOQUY_BENCH_LLAMA_PYTHON`, else a virtual environment made
/// in `target/` (pip builds llama.cpp from source: minutes, once).
fn baseline_python() -> anyhow::Result<PathBuf> {
    if let Some(python) = std::env::var_os("COLLOQUY_BENCH_LLAMA_PYTHON") {
        return Ok(PathBuf::from(python));
    }
    let python = Path::new(VENV).join("bin/python");
    let has = |p: &Path| {
        std::process::Command::new(p)
            .args(["-c", "import llama_cpp"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if python.exists() && has(&python) {
        return Ok(python);
    }
    eprintln!("local model: installing {LLAMA_CPP_PYTHON} into {VENV} (builds llama.cpp; minutes)");
    let ok = |c: &mut std::process::Command| c.status().is_ok_and(|s| s.success());
    anyhow::ensure!(
        ok(std::process::Command::new("python3").args(["-m", "venv", VENV])),
        "python3 -m venv failed"
    );
    anyhow::ensure!(
        ok(std::process::Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            LLAMA_CPP_PYTHON
        ])),
        "installing {LLAMA_CPP_PYTHON} failed"
    );
    Ok(python)
}

fn median(mut runs: Vec<(f64, f64)>) -> (f64, f64) {
    runs.sort_by(|a, b| a.1.total_cmp(&b.1));
    runs.get(runs.len() / 2).copied().unwrap_or((0.0, 0.0))
}

/// This process's resident memory, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}
