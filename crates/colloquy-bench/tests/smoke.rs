//! Keeps the benchmarks from rotting: every scenario runs, at tiny sizes, against the debug
//! build, and the report files are written. (Goals are not judged at these sizes.)

use std::path::PathBuf;
use std::process::Command;

#[test]
fn every_scenario_runs_at_tiny_sizes() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--quiet", "-p", "colloquy"])
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(built.success(), "the colloquy binary builds");
    let out = tempfile::tempdir().expect("temp dir");
    let run = Command::new(env!("CARGO_BIN_EXE_colloquy-bench"))
        .args(["all", "--tiny", "--colloquy"])
        .arg(root.join("target/debug/colloquy"))
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
    for scenario in [
        "start to ready",
        "GET agent",
        "list agents",
        "tool executions page",
        "audit ingest",
        "test runs",
    ] {
        assert!(report.contains(scenario), "{scenario} missing:\n{report}");
    }
    assert!(
        rows.iter()
            .all(|r| r["ours"].as_f64().is_some_and(|v| v > 0.0)),
        "{report}"
    );
}
