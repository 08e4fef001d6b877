//! Web pages for URL documents, fetched through the egress guard: a private or metadata
//! address is refused before anything is stored, and so is a redirect to one.

use std::time::Duration;

use futures_util::StreamExt;

use crate::EngineDeps;

/// How long a page may take to arrive.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an http(s) URL.
    #[error("{0:?} is not a valid http or https URL")]
    BadUrl(String),
    /// The egress guard refused the address.
    #[error("{0}")]
    Refused(String),
    /// The site did not answer, or answered with an error.
    #[error("the page could not be fetched: {0}")]
    Failed(String),
    /// The site says the page is not there (404 or 410).
    #[error("the page is gone: the site answered {0}")]
    Gone(u16),
    /// The page is larger than the server reads.
    #[error("the page is larger than {0} bytes (COLLOQUY_KB_MAX_FILE_BYTES)")]
    TooLarge(usize),
}

/// The page at `url`, at most `max_bytes` long.
pub async fn page(deps: &EngineDeps, url: &str, max_bytes: usize) -> Result<Vec<u8>, FetchError> {
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        _ => return Err(FetchError::BadUrl(url.to_owned())),
    };
    deps.egress.check_url(&parsed).map_err(|r| FetchError::Refused(r.to_string()))?;
    let exchange = async {
        let response = deps.http.get(parsed).send().await?;
        let status = response.status();
        if matches!(status.as_u16(), 404 | 410) {
            return Ok(Err(FetchError::Gone(status.as_u16())));
        }
        if !status.is_success() {
            return Ok(Err(FetchError::Failed(format!("the site answered {status}"))));
        }
        let mut stream = response.bytes_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if bytes.len() + chunk.len() > max_bytes {
                return Ok(Err(FetchError::TooLarge(max_bytes)));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok::<_, reqwest::Error>(Ok(bytes))
    };
    match tokio::time::timeout(TIMEOUT, exchange).await {
        Err(_) => Err(FetchError::Failed(format!("no answer within {TIMEOUT:?}"))),
        Ok(Err(e)) => Err(match crate::egress::refusal(&e) {
            Some(why) => FetchError::Refused(why),
            None => FetchError::Failed(crate::egress::explain(&e)),
        }),
        Ok(Ok(result)) => result,
    }
}
