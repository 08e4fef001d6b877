//! The results: one row per figure, written as `BENCHMARKS.md` (a table) and `bench.json`.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

/// How a figure is judged against its goal.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Goal {
    /// ours / baseline at least this.
    RatioAtLeast(f64),
    /// ours / baseline at most this.
    RatioAtMost(f64),
    /// ours at most this (absolute, in the row's unit).
    AtMost(f64),
    /// ours at least this.
    AtLeast(f64),
    /// Reported only, to show how cost grows.
    None,
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub scenario: String,
    /// Unit of `ours` and `baseline`.
    pub unit: String,
    /// Our figure.
    pub ours: f64,
    /// The baseline's, measured in the same run (when there is one).
    pub baseline: Option<f64>,
    /// The goal.
    pub goal: Goal,
}

impl Row {
    /// ours / baseline.
    pub fn ratio(&self) -> Option<f64> {
        self.baseline.filter(|b| *b > 0.0).map(|b| self.ours / b)
    }

    /// Whether the goal is met (`None` when there is none).
    pub fn pass(&self) -> Option<bool> {
        match self.goal {
            Goal::RatioAtLeast(g) => self.ratio().map(|r| r >= g),
            Goal::RatioAtMost(g) => self.ratio().map(|r| r <= g),
            Goal::AtMost(g) => Some(self.ours <= g),
            Goal::AtLeast(g) => Some(self.ours >= g),
            Goal::None => None,
        }
    }

    fn goal_text(&self) -> String {
        match self.goal {
            Goal::RatioAtLeast(g) => format!("ratio ≥ {g}"),
            Goal::RatioAtMost(g) => format!("ratio ≤ {g}"),
            Goal::AtMost(g) => format!("≤ {g} {}", self.unit),
            Goal::AtLeast(g) => format!("≥ {g} {}", self.unit),
            Goal::None => "—".into(),
        }
    }
}

fn number(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Writes `BENCHMARKS.md` and `bench.json` into `dir`: the rows on SQLite, then those on
/// PostgreSQL in their own section.
pub fn write(
    dir: &Path, rows: &[Row], postgres: &[Row], mode: &str, notes: &[String],
) -> anyhow::Result<()> {
    let mut md = String::new();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Written by `scripts/bench{}` ({mode} run). Every figure with a baseline is measured beside it \
         in the same run on the same machine, and judged on the ratio; absolute figures are beside it.\n",
        if mode == "quick" { " --quick" } else { "" }
    )?;
    table(&mut md, rows)?;
    if !postgres.is_empty() {
        writeln!(
            md,
            "\n## On PostgreSQL\n\nThe same scenarios with each node on a fresh schema of the same \
             PostgreSQL server; the raw-SQL baselines run on it too.\n"
        )?;
        table(&mut md, postgres)?;
    }
    if !notes.is_empty() {
        writeln!(md, "\n## Notes\n")?;
        for n in notes {
            writeln!(md, "- {n}")?;
        }
    }
    writeln!(md, "\n{}", include_str!("../FINDINGS.md").trim_end())?;
    std::fs::write(dir.join("BENCHMARKS.md"), md)?;
    std::fs::write(
        dir.join("bench.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "mode": mode, "rows": rows, "postgres_rows": postgres, "notes": notes
        }))?,
    )?;
    Ok(())
}

fn table(md: &mut String, rows: &[Row]) -> std::fmt::Result {
    writeln!(md, "| scenario | ours | baseline | ratio | goal | result |")?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    for r in rows {
        let baseline = r.baseline.map_or("—".into(), |b| format!("{} {}", number(b), r.unit));
        let ratio = r.ratio().map_or("—".into(), |x| format!("{x:.2}"));
        let result = match r.pass() {
            Some(true) => "pass",
            Some(false) => "FAIL",
            None => "—",
        };
        writeln!(
            md,
            "| {} | {} {} | {baseline} | {ratio} | {} | {result} |",
            r.scenario,
            number(r.ours),
            r.unit,
            r.goal_text()
        )?;
    }
    Ok(())
}
