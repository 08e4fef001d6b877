//! Keeping secrets out of the audit log: what a tool call sent is recorded with every header
//! that carried a secret replaced, and every secret value scrubbed from the recorded text.

use serde_json::{Map, Value};

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Headers as recorded: those named in `secret_headers` (case-insensitive) are redacted.
pub fn headers(sent: &Map<String, Value>, secret_headers: &[String]) -> Map<String, Value> {
    sent.iter()
        .map(|(name, value)| {
            let secret = secret_headers.iter().any(|s| s.eq_ignore_ascii_case(name));
            (name.clone(), if secret { Value::String(REDACTED.into()) } else { value.clone() })
        })
        .collect()
}

/// `text` with every occurrence of any of `secrets` replaced. Empty secrets are ignored (they
/// would match everywhere); longer secrets are replaced first so a secret containing another
/// is fully hidden.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for secret in sorted {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_headers_and_values_are_hidden() {
        let sent = json!({"Authorization": "Bearer s3cr3t", "X-Trace": "abc"});
        let got = headers(sent.as_object().unwrap(), &["authorization".into()]);
        assert_eq!(Value::Object(got), json!({"Authorization": REDACTED, "X-Trace": "abc"}));
        let secrets = vec!["s3cr3t".to_owned(), "s3cr3t-long".to_owned(), String::new()];
        assert_eq!(scrub("a s3cr3t-long b s3cr3t c", &secrets), "a [REDACTED] b [REDACTED] c");
        assert_eq!(scrub("nothing here", &secrets), "nothing here");
    }
}
