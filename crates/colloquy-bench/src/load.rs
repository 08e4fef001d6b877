//! A closed-loop load generator: `connections` workers each send one request at a time for a
//! fixed duration, over plain HTTP/1.1 keep-alive connections; every latency is kept, so
//! percentiles are exact.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
///
/// Each worker keeps one HTTP/1.1 connection and writes the same request bytes on it, reading
/// just the status line, the length and the body: a general HTTP client spent more CPU per
/// request than the bare baseline server does, so on two shared cores it, not the server,
/// set the ratios (54,000 req/s at most, against 127,000 for oha on the same bare handler).
pub async fn get(url: &str, key: Option<&str>, connections: usize, duration: Duration) -> Measured {
    let target = Target::parse(url, key).expect("an http:// URL");
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let workers = (0..connections).map(|_| {
        let target = target.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0;
            let mut connection = None;
            let mut buf = Vec::with_capacity(64 * 1024);
            while Instant::now() < deadline {
                let sent = Instant::now();
                match target.exchange(&mut connection, &mut buf).await {
                    Ok(status) if (200..300).contains(&status) => {
                        latencies.push(sent.elapsed().as_micros() as u64);
                    }
                    Ok(_) => failures += 1,
                    Err(_) => {
                        connection = None;
                        failures += 1;
                    }
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

/// Where requests go and the bytes of the one request sent again and again.
#[derive(Debug, Clone)]
struct Target {
    address: String,
    request: std::sync::Arc<[u8]>,
}

impl Target {
    fn parse(url: &str, key: Option<&str>) -> Option<Target> {
        let rest = url.strip_prefix("http://")?;
        let (address, path) =
            rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n");
        if let Some(key) = key {
            request.push_str(&format!("xi-api-key: {key}\r\n"));
        }
        request.push_str("\r\n");
        Some(Target { address: address.to_owned(), request: request.into_bytes().into() })
    }

    /// Sends the request on `connection` (opened first when there is none) and reads the whole
    /// answer; its status.
    async fn exchange(
        &self, connection: &mut Option<TcpStream>, buf: &mut Vec<u8>,
    ) -> std::io::Result<u16> {
        if connection.is_none() {
            let stream = TcpStream::connect(&self.address).await?;
            stream.set_nodelay(true)?;
            *connection = Some(stream);
        }
        let Some(stream) = connection.as_mut() else { unreachable!("opened above") };
        stream.write_all(&self.request).await?;
        buf.clear();
        let head_end = loop {
            if let Some(at) = find(buf, b"\r\n\r\n") {
                break at + 4;
            }
            read_more(stream, buf).await?;
        };
        let head = std::str::from_utf8(&buf[..head_end]).map_err(std::io::Error::other)?;
        let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let length = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        });
        match length {
            Some(length) => {
                while buf.len() < head_end + length {
                    read_more(stream, buf).await?;
                }
            }
            // A chunked body ends with the empty chunk.
            None => {
                while find(&buf[head_end..], b"0\r\n\r\n").is_none() {
                    read_more(stream, buf).await?;
                }
            }
        }
        Ok(status)
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_generator_reads_whole_answers_on_kept_connections() {
        let bare = crate::node::bare_server(vec![b'x'; 100_000]).await.unwrap();
        let measured =
            get(&format!("{bare}/some/path?q=1"), Some("k"), 2, Duration::from_millis(300)).await;
        assert_eq!(measured.failures, 0);
        assert!(measured.throughput > 10.0, "{measured:?}");
    }

    #[test]
    fn quantiles_pick_the_right_sample() {
        let sorted: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(quantile(&sorted, 0.5), 51.0);
        assert_eq!(quantile(&sorted, 0.99), 99.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
