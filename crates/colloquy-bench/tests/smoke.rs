//! Keeps the benchmarks from rotting: every scenario runs, at tiny sizes, against the debug
//! build, and the report files are written. (Goals are not judged at these sizes.)

use std::path::PathBuf;
use std::process::Command;

#[test]
fn every_scenario_runs_at_tiny_sizes() {
    // `cargo test --workspace` builds the server's binary for its own integration tests.
    let colloquy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/colloquy");
    if !colloquy.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {} is missing: run the workspace's tests (cargo test --workspace)",
            colloquy.display()
        );
        eprintln!("skipped: build the colloquy binary first (cargo test --workspace does)");
        return;
    }
    let out = tempfile::tempdir().expect("temp dir");
    // The PostgreSQL section is left out: run beside the API tests (as CI does), its nodes'
    // migrations, vacuums and checkpoints starved those tests' PostgreSQL pools (two CI runs
    // failed on pool timeouts). `--only postgres` runs it alone.
    let run = Command::new(env!("CARGO_BIN_EXE_colloquy-bench"))
        .env_remove("COLLOQUY_TEST_DATABASE_URL")
        .args(["all", "--tiny", "--colloquy"])
        .arg(&colloquy)
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("the benchmark runs");
    assert!(
        run.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let report = std::fs::read_to_string(out.path().join("BENCHMARKS.md")).expect("BENCHMARKS.md");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("bench.json")).expect("bench.json"),
    )
    .expect("JSON");
    let rows = json["rows"].as_array().expect("rows");
    assert!(rows.len() >= 14, "{report}");
    assert!(report.contains("dashboard tool page"), "{report}");
    for scenario in [
        "start to ready",
        "GET agent",
        "list agents",
        "tool executions page",
        "audit ingest",
        "kill -9 during ingest",
        "per-turn overhead",
        "server CPU per plain turn",
        "server CPU per turn with one webhook tool call",
        "idle WebSocket conversations",
        "test runs",
    ] {
        assert!(report.contains(scenario), "{scenario} missing:\n{report}");
    }
    // Every figure was measured; only a count of missing records or failed requests may be
    // zero, and an overhead (a turn's time less the LLM's alone, two noisy figures at these
    // sizes on a busy machine, clamped at zero).
    assert!(
        rows.iter().all(|r| {
            let scenario = r["scenario"].as_str().unwrap_or_default();
            let may_be_zero =
                ["missing", "overhead", "failed"].iter().any(|w| scenario.contains(w));
            r["ours"]
                .as_f64()
                .is_some_and(|v| v.is_finite() && (v > 0.0 || (may_be_zero && v == 0.0)))
        }),
        "{report}"
    );
}
