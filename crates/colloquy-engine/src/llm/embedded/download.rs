//! Downloading a model file: into `<file>.part`, resumed with a range request after a cut
//! connection (in the same run, or in the next one), checked against its pinned size and
//! SHA-256, and only then renamed into place; a file that fails the check is removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

/// Connections a download opens before giving up (each resumes where the last one stopped).
const CONNECTIONS: u32 = 6;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The server could not be reached, or the connection kept failing.
    #[error("downloading {url} failed: {reason}")]
    Transport {
        /// The address.
        url: String,
        /// The last failure.
        reason: String,
    },
    /// The server answered with an error.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The address.
        url: String,
        /// The status.
        status: u16,
    },
    /// The file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not the one pinned; it was removed.
    #[error(
        "the downloaded file is not the expected one ({what}: expected {expected}, got {got}); it was removed"
    )]
    Mismatch {
        /// `size` or `SHA-256`.
        what: &'static str,
        /// The pinned value.
        expected: String,
        /// What arrived.
        got: String,
    },
}

/// What a download must produce.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: &'a str,
}

/// Downloads `url` into `dest`; `progress` gets (bytes so far, total) as they arrive.
pub async fn download(
    client: &reqwest::Client, url: &str, expected: &Expected<'_>, dest: &Path,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<(), DownloadError> {
    let part = part_path(dest);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DownloadError::Io { path, source }
    };
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
    }
    let mut failure = String::new();
    for connection in 0..CONNECTIONS {
        let have = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
        if have >= expected.size {
            break;
        }
        if connection > 0 {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(connection))).await;
        }
        match fetch(client, url, have, expected.size, &part, progress).await {
            Ok(()) => break,
            Err(Fetch::Fatal(e)) => return Err(e),
            Err(Fetch::Retry(reason)) => failure = reason,
        }
    }
    let have = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
    if have < expected.size && !failure.is_empty() {
        return Err(DownloadError::Transport { url: url.to_owned(), reason: failure });
    }
    verify(&part, expected).await?;
    tokio::fs::rename(&part, dest).await.map_err(io(dest))
}

/// Where a download in progress is kept.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

enum Fetch {
    Fatal(DownloadError),
    Retry(String),
}

/// One connection: asks for what is missing and appends it.
async fn fetch(
    client: &reqwest::Client, url: &str, have: u64, total: u64, part: &Path,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<(), Fetch> {
    let mut request = client.get(url);
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let response = request.send().await.map_err(|e| Fetch::Retry(e.to_string()))?;
    let status = response.status();
    let resumed = status == reqwest::StatusCode::PARTIAL_CONTENT;
    if !status.is_success() {
        let error = DownloadError::Status { url: url.to_owned(), status: status.as_u16() };
        return Err(if status.is_server_error() {
            Fetch::Retry(error.to_string())
        } else {
            Fetch::Fatal(error)
        });
    }
    let fatal = |source| Fetch::Fatal(DownloadError::Io { path: part.to_owned(), source });
    // A server that ignores the range sends the whole file again.
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(part)
        .await
        .map_err(fatal)?;
    let mut done = if resumed { have } else { 0 };
    progress(done, total);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Fetch::Retry(e.to_string()))?;
        if done + chunk.len() as u64 > total {
            remove(part);
            return Err(Fetch::Fatal(DownloadError::Mismatch {
                what: "size",
                expected: total.to_string(),
                got: format!("more than {total}"),
            }));
        }
        file.write_all(&chunk).await.map_err(fatal)?;
        done += chunk.len() as u64;
        progress(done, total);
    }
    file.flush().await.map_err(fatal)?;
    if done < total {
        return Err(Fetch::Retry(format!("the connection closed after {done} of {total} bytes")));
    }
    Ok(())
}

fn remove(part: &Path) {
    let _ = std::fs::remove_file(part);
}

/// Checks the finished file, removing it when it is not the pinned one.
async fn verify(part: &Path, expected: &Expected<'_>) -> Result<(), DownloadError> {
    let path = part.to_owned();
    let hashed = tokio::task::spawn_blocking(move || sha256_file(&path)).await;
    let (size, digest) = match hashed {
        Ok(Ok(found)) => found,
        Ok(Err(source)) => return Err(DownloadError::Io { path: part.to_owned(), source }),
        Err(e) => {
            return Err(DownloadError::Io {
                path: part.to_owned(),
                source: std::io::Error::other(e),
            });
        }
    };
    let mismatch = if size != expected.size {
        Some(("size", expected.size.to_string(), size.to_string()))
    } else if !digest.eq_ignore_ascii_case(expected.sha256) {
        Some(("SHA-256", expected.sha256.to_owned(), digest))
    } else {
        None
    };
    match mismatch {
        Some((what, expected, got)) => {
            remove(part);
            Err(DownloadError::Mismatch { what, expected, got })
        }
        None => Ok(()),
    }
}

/// The size and SHA-256 (hex) of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        context.update(&buffer[..n]);
        size += n as u64;
    }
    let digest = context.finish();
    Ok((size, digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// How the test server answers.
    #[derive(Clone, Copy)]
    enum Serve {
        /// The first answer stops halfway through (the connection is cut); range requests
        /// are honoured.
        CutOnce,
        /// Ranges are ignored: every answer is the whole file.
        IgnoreRanges,
    }

    /// A loopback server of `file`; returns its URL and the `Range` header of each request.
    async fn server(file: Arc<Vec<u8>>, serve: Serve) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/model.gguf", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let log = ranges.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                let range = request
                    .lines()
                    .find_map(|l| l.strip_prefix("range: bytes="))
                    .map(|r| r.trim_end_matches('-').trim().to_owned());
                let first = log.lock().unwrap().is_empty();
                log.lock().unwrap().push(range.clone());
                let start = match (serve, range) {
                    (Serve::CutOnce, Some(from)) => from.parse::<usize>().unwrap(),
                    _ => 0,
                };
                let rest = &file[start..];
                let status = if start > 0 { "206 Partial Content" } else { "200 OK" };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    rest.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let sent = if matches!(serve, Serve::CutOnce) && first {
                    rest.len() / 2
                } else {
                    rest.len()
                };
                let _ = socket.write_all(&rest[..sent]).await;
                let _ = socket.shutdown().await;
            }
        });
        (url, ranges)
    }

    fn blob() -> (Arc<Vec<u8>>, String) {
        let file: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, &file).unwrap();
        let (_, digest) = sha256_file(&path).unwrap();
        (Arc::new(file), digest)
    }

    #[tokio::test]
    async fn a_cut_connection_resumes_where_it_stopped() {
        crate::install_crypto_provider();
        let (file, digest) = blob();
        let (url, ranges) = server(file.clone(), Serve::CutOnce).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("models").join("model.gguf");
        let mut seen = Vec::new();
        let expected = Expected { size: file.len() as u64, sha256: &digest };
        download(&reqwest::Client::new(), &url, &expected, &dest, &mut |done, total| {
            seen.push((done, total))
        })
        .await
        .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), *file);
        assert!(!part_path(&dest).exists());
        let ranges = ranges.lock().unwrap().clone();
        assert_eq!(ranges, [None, Some((file.len() / 2).to_string())]);
        assert_eq!(seen.last(), Some(&(file.len() as u64, file.len() as u64)));
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    }

    #[tokio::test]
    async fn a_partial_file_from_an_earlier_run_is_continued() {
        crate::install_crypto_provider();
        let (file, digest) = blob();
        let (url, ranges) = server(file.clone(), Serve::CutOnce).await;
        // The server's first answer is cut; this one asks for a range, so it is not.
        ranges.lock().unwrap().push(Some("earlier run".into()));
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model.gguf");
        std::fs::write(part_path(&dest), &file[..1000]).unwrap();
        let expected = Expected { size: file.len() as u64, sha256: &digest };
        download(&reqwest::Client::new(), &url, &expected, &dest, &mut |_, _| {}).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), *file);
        assert_eq!(ranges.lock().unwrap()[1], Some("1000".into()));
    }

    #[tokio::test]
    async fn a_server_that_ignores_ranges_sends_the_whole_file_again() {
        crate::install_crypto_provider();
        let (file, digest) = blob();
        let (url, _) = server(file.clone(), Serve::IgnoreRanges).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model.gguf");
        std::fs::write(part_path(&dest), vec![9u8; 5000]).unwrap();
        let expected = Expected { size: file.len() as u64, sha256: &digest };
        download(&reqwest::Client::new(), &url, &expected, &dest, &mut |_, _| {}).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), *file);
    }

    #[tokio::test]
    async fn a_wrong_checksum_is_refused_and_the_partial_file_removed() {
        crate::install_crypto_provider();
        let (file, _) = blob();
        let (url, _) = server(file.clone(), Serve::IgnoreRanges).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model.gguf");
        let wrong = "0".repeat(64);
        let expected = Expected { size: file.len() as u64, sha256: &wrong };
        let error = download(&reqwest::Client::new(), &url, &expected, &dest, &mut |_, _| {})
            .await
            .unwrap_err();
        assert!(matches!(error, DownloadError::Mismatch { what: "SHA-256", .. }), "{error}");
        assert!(error.to_string().contains("it was removed"), "{error}");
        assert!(!dest.exists() && !part_path(&dest).exists());

        let short = Expected { size: 10, sha256: &wrong };
        let error = download(&reqwest::Client::new(), &url, &short, &dest, &mut |_, _| {})
            .await
            .unwrap_err();
        assert!(matches!(error, DownloadError::Mismatch { what: "size", .. }), "{error}");
        assert!(!part_path(&dest).exists());
    }

    #[tokio::test]
    async fn an_error_status_is_reported() {
        crate::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/missing.gguf", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let expected = Expected { size: 10, sha256: "00" };
        let error = download(
            &reqwest::Client::new(),
            &url,
            &expected,
            &dir.path().join("m.gguf"),
            &mut |_, _| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(error, DownloadError::Status { status: 404, .. }), "{error}");
    }
}
