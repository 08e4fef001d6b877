//! The pictures: a conversation's tool-call timeline and a tool's latency histogram over time,
//! drawn on the server as SVG so they show without JavaScript. Colours come from classes in the
//! stylesheet (the CSP allows no inline style).

use maud::{Markup, html};

use crate::format::duration_secs;

const WIDTH: f64 = 800.0;
const LABEL: f64 = 170.0;
const ROW: f64 = 26.0;
const AXIS: f64 = 24.0;

/// One tool call on the timeline.
#[derive(Debug, Clone)]
pub struct Span {
    pub label: String,
    /// Start, in milliseconds from the first call's start.
    pub start_ms: f64,
    pub duration_ms: f64,
    pub failed: bool,
}

/// Evenly spaced, round tick values covering `0..=max`.
fn ticks(max: f64) -> Vec<f64> {
    if max <= 0.0 {
        return vec![0.0];
    }
    let raw = max / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(raw);
    (0..).map(|i| i as f64 * step).take_while(|t| *t <= max + step * 1e-9).collect()
}

/// One turn of the conversation on the timeline.
#[derive(Debug, Clone)]
pub struct Turn {
    /// When it was said, in milliseconds from the conversation's start.
    pub at_ms: f64,
    /// The agent's (else the user's).
    pub agent: bool,
    /// What was said, for its tooltip.
    pub text: String,
}

/// Counted nouns: "1 tool call", "3 turns".
fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

/// A conversation on one time axis: its turns (the user's as dots, the agent's as a bar from
/// the user's turn it answers, so a slow reply shows as a long bar) above its tool calls (a
/// bar each, where it started and how long it took, red when it failed).
pub fn timeline(spans: &[Span], turns: &[Turn]) -> Markup {
    let end = spans
        .iter()
        .map(|s| s.start_ms + s.duration_ms)
        .chain(turns.iter().map(|t| t.at_ms))
        .fold(0.0, f64::max)
        .max(1.0);
    let plot = WIDTH - LABEL - 10.0;
    let x = |ms: f64| LABEL + ms / end * plot;
    let turn_rows = if turns.is_empty() { 0 } else { 2 };
    let height = AXIS + ROW * (turn_rows + spans.len()) as f64 + 4.0;
    let failed = spans.iter().filter(|s| s.failed).count();
    let mut parts = Vec::new();
    if !turns.is_empty() {
        parts.push(count(turns.len(), "turn", "turns"));
    }
    parts.push(count(spans.len(), "tool call", "tool calls"));
    let summary = format!(
        "Timeline of {} over {}, {failed} failed",
        parts.join(" and "),
        duration_secs(end / 1000.0)
    );
    html! {
        svg.chart.timeline xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (height) }
            role="img" aria-label=(summary) {
            title { (summary) }
            @for t in ticks(end) {
                line.grid x1=(x(t)) x2=(x(t)) y1=(AXIS - 6.0) y2=(height) {}
                // A tick at the right edge is right-aligned, so its text is not cut off.
                text.tick x=(x(t)) y=(AXIS - 10.0)
                    text-anchor=(if x(t) > WIDTH - 40.0 { "end" } else { "middle" }) { (duration_secs(t / 1000.0)) }
            }
            @if !turns.is_empty() { (turn_rows_svg(turns, &x)) }
            @for (i, span) in spans.iter().enumerate() {
                @let y = AXIS + ROW * (turn_rows + i) as f64;
                @let width = (span.duration_ms / end * plot).max(2.0);
                text.label x=(LABEL - 8.0) y=(y + ROW * 0.62) text-anchor="end" { (span.label) }
                rect class=(if span.failed { "bar failed" } else { "bar ok" })
                    x=(x(span.start_ms)) y=(y + 4.0) width=(width) height=(ROW - 8.0) rx="3" {
                    title {
                        (span.label) ": " (if span.failed { "failed" } else { "ok" }) ", "
                        (duration_secs(span.duration_ms / 1000.0)) " at +" (duration_secs(span.start_ms / 1000.0))
                    }
                }
                // The duration after its bar; inside it, right-aligned, when the bar reaches
                // the right edge; before it only when there is room between the bar and the
                // label column (never over the tool's name).
                @let (value_x, anchor, class) = value_place(x(span.start_ms), width);
                text class=(class) x=(value_x) y=(y + ROW * 0.62) text-anchor=(anchor) {
                    (duration_secs(span.duration_ms / 1000.0))
                }
            }
        }
    }
}

/// The two rows of turns: the user's dots, then the agent's replies, each a bar from the
/// user's turn before it (a reply with no user turn before it is a dot).
fn turn_rows_svg(turns: &[Turn], x: &dyn Fn(f64) -> f64) -> Markup {
    let excerpt = |t: &Turn| {
        let mut text: String = t.text.chars().take(80).collect();
        if t.text.chars().count() > 80 {
            text.push('…');
        }
        format!("+{}: {text}", duration_secs(t.at_ms / 1000.0))
    };
    let (user_y, agent_y) = (AXIS, AXIS + ROW);
    // Each reply with where its bar starts: the user's turn it answers, if one came before.
    let mut asked: Option<f64> = None;
    let mut replies = Vec::new();
    for t in turns {
        if t.agent {
            replies.push((asked.take().filter(|a| *a <= t.at_ms).unwrap_or(t.at_ms), t));
        } else {
            asked = Some(t.at_ms);
        }
    }
    html! {
        text.label x=(LABEL - 8.0) y=(user_y + ROW * 0.62) text-anchor="end" { "User turns" }
        text.label x=(LABEL - 8.0) y=(agent_y + ROW * 0.62) text-anchor="end" { "Agent replies" }
        @for t in turns.iter().filter(|t| !t.agent) {
            circle.turn.user cx=(x(t.at_ms)) cy=(user_y + ROW / 2.0) r="5" {
                title { "User " (excerpt(t)) }
            }
        }
        @for (from, t) in replies {
            rect.turn.agent x=(x(from)) y=(agent_y + 7.0) width=((x(t.at_ms) - x(from)).max(3.0)) height=(ROW - 14.0) rx="2" {
                title { "Agent " (excerpt(t)) @if from < t.at_ms { " (replied in " (duration_secs((t.at_ms - from) / 1000.0)) ")" } }
            }
        }
    }
}

/// Where a bar's duration goes: its x, anchor and class.
fn value_place(start: f64, width: f64) -> (f64, &'static str, &'static str) {
    const ROOM: f64 = 70.0;
    let after = start + width + 4.0;
    if after < WIDTH - ROOM {
        (after, "start", "value")
    } else if width >= ROOM {
        (start + width - 4.0, "end", "value inside")
    } else if start - LABEL >= ROOM {
        (start - 4.0, "end", "value")
    } else {
        (start + width - 4.0, "end", "value inside")
    }
}

/// One day's conversations for the home page's chart.
#[derive(Debug, Clone)]
pub struct Day {
    /// `2026-12-03`.
    pub date: String,
    pub started: i64,
    pub successes: i64,
    pub failures: i64,
}

/// Conversations per day as stacked bars (failures, successes, the rest not judged yet or
/// unknown), with a round y axis and as many date labels as fit without touching.
pub fn daily_bars(days: &[Day]) -> Markup {
    const LEFT: f64 = 48.0;
    const TOP: f64 = 12.0;
    const PLOT_H: f64 = 160.0;
    const LABEL_W: f64 = 44.0;
    let most = days.iter().map(|d| d.started).max().unwrap_or(0).max(1) as f64;
    let y_ticks = ticks(most);
    let top_tick = y_ticks.last().copied().unwrap_or(most).max(most);
    let plot_w = WIDTH - LEFT - 10.0;
    let slot = plot_w / days.len().max(1) as f64;
    let y = |v: f64| TOP + PLOT_H - v / top_tick * PLOT_H;
    let every = ((LABEL_W / slot).ceil() as usize).max(1);
    let total: i64 = days.iter().map(|d| d.started).sum();
    let summary = format!(
        "Conversations per day, {} to {}: {total} in all",
        days.first().map_or("", |d| d.date.as_str()),
        days.last().map_or("", |d| d.date.as_str())
    );
    html! {
        svg.chart.daily xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (TOP + PLOT_H + 28.0) }
            role="img" aria-label=(summary) {
            title { (summary) }
            @for t in &y_ticks {
                line.grid x1=(LEFT) x2=(WIDTH - 10.0) y1=(y(*t)) y2=(y(*t)) {}
                text.tick x=(LEFT - 6.0) y=(y(*t) + 4.0) text-anchor="end" { (t) }
            }
            @for (i, d) in days.iter().enumerate() {
                @let x = LEFT + slot * i as f64 + slot * 0.15;
                @let w = (slot * 0.7).max(1.0);
                @for (class, from, to) in stack(d) {
                    rect class={ "bar " (class) } x=(x) y=(y(to)) width=(w) height=(y(from) - y(to)) {
                        title { (d.date) ": " (d.started) " started, " (d.successes) " succeeded, " (d.failures) " failed" }
                    }
                }
                @if i % every == 0 {
                    text.tick x=(x + w / 2.0) y=(TOP + PLOT_H + 18.0) text-anchor="middle" { (d.date.get(5..).unwrap_or(&d.date)) }
                }
            }
        }
    }
}

/// A day's bar as segments `(class, from, to)` in conversations, bottom up: failures,
/// successes, then the rest (not judged yet, or unknown).
fn stack(d: &Day) -> Vec<(&'static str, f64, f64)> {
    let other = (d.started - d.successes - d.failures).max(0);
    let mut base = 0.0;
    let mut out = Vec::new();
    for (class, n) in [("failed", d.failures), ("ok", d.successes), ("other", other)] {
        if n > 0 {
            out.push((class, base, base + n as f64));
            base += n as f64;
        }
    }
    out
}

/// One call for the histogram.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at_ms: i64,
    pub latency_secs: f64,
    pub failed: bool,
}

/// Upper bounds of the latency rows, in seconds; the last row is everything slower.
const LATENCY_EDGES: [f64; 7] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
const COLUMNS: usize = 24;

fn latency_row(secs: f64) -> usize {
    LATENCY_EDGES.iter().position(|edge| secs <= *edge).unwrap_or(LATENCY_EDGES.len())
}

fn row_label(row: usize) -> String {
    match row {
        0 => format!("≤ {}", duration_secs(LATENCY_EDGES[0])),
        r if r < LATENCY_EDGES.len() => format!("≤ {}", duration_secs(LATENCY_EDGES[r])),
        _ => format!("> {}", duration_secs(LATENCY_EDGES[LATENCY_EDGES.len() - 1])),
    }
}

/// Latency histogram over time: columns are equal slices of the samples' time range, rows are
/// latency bands, and a cell's shade is how many calls fell in it; a red dot marks columns
/// with failures.
pub fn latency_histogram(samples: &[Sample]) -> Markup {
    let rows = LATENCY_EDGES.len() + 1;
    let first = samples.iter().map(|s| s.at_ms).min().unwrap_or(0);
    let last = samples.iter().map(|s| s.at_ms).max().unwrap_or(0);
    let span = (last - first).max(1) as f64;
    let column = |at: i64| {
        (((at - first) as f64 / span) * COLUMNS as f64).min(COLUMNS as f64 - 1.0) as usize
    };
    let mut counts = vec![vec![0usize; COLUMNS]; rows];
    let mut failures = [0usize; COLUMNS];
    for s in samples {
        let c = column(s.at_ms);
        counts[latency_row(s.latency_secs)][c] += 1;
        if s.failed {
            failures[c] += 1;
        }
    }
    let most = counts.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let cell_w = (WIDTH - LABEL - 10.0) / COLUMNS as f64;
    let cell_h = 22.0;
    let top = 12.0;
    let height = top + cell_h * rows as f64 + 40.0;
    let mut sorted: Vec<f64> = samples.iter().map(|s| s.latency_secs).collect();
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0)
    };
    let summary = format!(
        "Latency of the last {} calls: p50 {}, p95 {}, max {}; {} failed",
        samples.len(),
        duration_secs(pct(0.5)),
        duration_secs(pct(0.95)),
        duration_secs(pct(1.0)),
        samples.iter().filter(|s| s.failed).count()
    );
    html! {
        figure.histogram {
            svg.chart xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (height) }
                role="img" aria-label=(summary) {
                title { (summary) }
                @for row in 0..rows {
                    // Slow calls at the top, as on a latency chart.
                    @let y = top + cell_h * (rows - 1 - row) as f64;
                    text.label x=(LABEL - 8.0) y=(y + cell_h * 0.68) text-anchor="end" { (row_label(row)) }
                    @for (c, count) in counts[row].iter().enumerate() {
                        @if *count > 0 {
                            rect.cell x=(LABEL + c as f64 * cell_w) y=(y) width=(cell_w - 1.0) height=(cell_h - 1.0)
                                fill-opacity=(format!("{:.2}", 0.15 + 0.85 * *count as f64 / most)) {
                                title { (count) " calls " (row_label(row)) }
                            }
                        } @else {
                            rect.empty x=(LABEL + c as f64 * cell_w) y=(y) width=(cell_w - 1.0) height=(cell_h - 1.0) {}
                        }
                    }
                }
                @for (c, failed) in failures.iter().enumerate() {
                    @if *failed > 0 {
                        circle.failed cx=(LABEL + (c as f64 + 0.5) * cell_w) cy=(top + cell_h * rows as f64 + 8.0) r="4" {
                            title { (failed) " failed" }
                        }
                    }
                }
                text.tick x=(LABEL) y=(height - 6.0) { (crate::format::unix_time(&serde_json::json!(first as f64 / 1000.0))) }
                text.tick x=(WIDTH - 10.0) y=(height - 6.0) text-anchor="end" { (crate::format::unix_time(&serde_json::json!(last as f64 / 1000.0))) }
            }
            figcaption { (summary) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(1000.0), vec![0.0, 250.0, 500.0, 750.0, 1000.0]);
        assert_eq!(ticks(90.0), vec![0.0, 25.0, 50.0, 75.0]);
        assert_eq!(ticks(0.0), vec![0.0]);
    }

    #[test]
    fn the_timeline_draws_one_bar_per_call_coloured_by_outcome() {
        let svg = timeline(
            &[
                Span {
                    label: "get_weather".into(),
                    start_ms: 0.0,
                    duration_ms: 120.0,
                    failed: false,
                },
                Span {
                    label: "book <table>".into(),
                    start_ms: 200.0,
                    duration_ms: 30.0,
                    failed: true,
                },
            ],
            &[],
        )
        .into_string();
        assert_eq!(svg.matches("<rect class=\"bar ok\"").count(), 1);
        assert_eq!(svg.matches("<rect class=\"bar failed\"").count(), 1);
        assert!(svg.contains("book &lt;table&gt;"), "labels are escaped: {svg}");
        assert!(svg.contains("2 tool calls") && svg.contains("1 failed"));
        let one = timeline(
            &[Span { label: "get_weather".into(), start_ms: 0.0, duration_ms: 2.0, failed: false }],
            &[],
        )
        .into_string();
        assert!(one.contains("Timeline of 1 tool call over") && !one.contains("1 tool calls"));
        // A call that spans the whole axis has its duration inside its bar, not over its name,
        // and the last tick is right-aligned so it is not cut off.
        assert!(one.contains("class=\"value inside\""), "{one}");
        let (value_x, _, _) = value_place(LABEL, WIDTH - LABEL - 10.0);
        assert!(value_x > LABEL + 100.0, "the duration sits at {value_x}, on the name");
        assert!(one.contains("text-anchor=\"end\">2.0 ms</text>"), "{one}");
    }

    #[test]
    fn turns_share_the_axis_and_a_slow_reply_is_a_long_bar() {
        let turn = |at_ms: f64, agent: bool, text: &str| Turn { at_ms, agent, text: text.into() };
        let svg = timeline(
            &[Span {
                label: "get_weather".into(),
                start_ms: 1_200.0,
                duration_ms: 300.0,
                failed: false,
            }],
            &[
                turn(0.0, true, "Hi"),
                turn(1_000.0, false, "weather?"),
                turn(9_000.0, true, "Sunny <b>"),
            ],
        )
        .into_string();
        assert!(svg.contains("Timeline of 3 turns and 1 tool call over 9.00 s"), "{svg}");
        assert_eq!(svg.matches("<circle class=\"turn user\"").count(), 1);
        assert_eq!(svg.matches("<rect class=\"turn agent\"").count(), 2);
        // The reply to "weather?" spans 1 s to 9 s: most of the plot.
        let plot = WIDTH - LABEL - 10.0;
        let wide = format!("width=\"{}\"", 8.0 / 9.0 * plot);
        assert!(svg.contains(&wide), "{wide} in {svg}");
        assert!(svg.contains("replied in 8.00 s") && svg.contains("Sunny &lt;b&gt;"), "{svg}");
        // Tool calls sit below the two rows of turns.
        assert!(svg.contains(&format!("y=\"{}\"", AXIS + ROW * 2.0 + 4.0)), "{svg}");
    }

    #[test]
    fn the_histogram_counts_calls_per_latency_band_and_time_slice() {
        let samples: Vec<Sample> = (0..10)
            .map(|i| Sample {
                at_ms: i * 1000,
                latency_secs: if i < 8 { 0.02 } else { 3.0 },
                failed: i == 9,
            })
            .collect();
        let svg = latency_histogram(&samples).into_string();
        assert!(svg.contains("10 calls"), "{svg}");
        assert!(svg.contains("1 failed"));
        assert_eq!(svg.matches("<circle").count(), 1);
        assert_eq!(latency_row(0.02), 1);
        assert_eq!(latency_row(3.0), LATENCY_EDGES.len());
    }
}
