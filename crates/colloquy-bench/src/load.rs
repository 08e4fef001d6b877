//! A closed-loop load generator: `connections` workers each send one request at a time for a
//! fixed duration; every latency is kept, so percentiles are exact.

use std::time::{Duration, Instant};

/// What a run measured.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Requests per second.
    pub throughput: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Requests that did not answer 200.
    pub failures: usize,
}

/// The `q`-quantile of sorted latencies, in milliseconds.
pub fn quantile(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let at = ((sorted_us.len() as f64 - 1.0) * q).round() as usize;
    sorted_us[at.min(sorted_us.len() - 1)] as f64 / 1000.0
}

/// Summarizes latencies (microseconds) measured over `elapsed`.
pub fn summarize(mut latencies: Vec<u64>, failures: usize, elapsed: Duration) -> Measured {
    latencies.sort_unstable();
    Measured {
        throughput: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: quantile(&latencies, 0.50),
        p99_ms: quantile(&latencies, 0.99),
        failures,
    }
}

/// GETs `url` (with `key` as `xi-api-key` when given) from `connections` workers for `duration`.
pub async fn get(url: &str, key: Option<&str>, connections: usize, duration: Duration) -> Measured {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("HTTP client");
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let workers = (0..connections).map(|_| {
        let client = client.clone();
        let url = url.to_owned();
        let key = key.map(str::to_owned);
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0;
            while Instant::now() < deadline {
                let mut request = client.get(&url);
                if let Some(key) = &key {
                    request = request.header("xi-api-key", key);
                }
                let sent = Instant::now();
                match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(sent.elapsed().as_micros() as u64);
                    }
                    _ => failures += 1,
                }
            }
            (latencies, failures)
        })
    });
    let mut latencies = Vec::new();
    let mut failures = 0;
    for worker in futures_util::future::join_all(workers).await {
        let (l, f) = worker.expect("worker");
        latencies.extend(l);
        failures += f;
    }
    summarize(latencies, failures, started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_right_sample() {
        let sorted: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(quantile(&sorted, 0.5), 51.0);
        assert_eq!(quantile(&sorted, 0.99), 99.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
