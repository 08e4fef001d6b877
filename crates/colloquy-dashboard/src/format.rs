//! Small text helpers the pages share: query strings, times and durations.

use serde_json::Value;

/// Percent-encodes one query-string value.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `path?k=v&...` from the pairs that have a non-empty value.
pub fn with_query(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            query.append_pair(key, value);
        }
    }
    let query = query.finish();
    if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") }
}

/// Unix seconds as `2026-12-01 22:56:36` (UTC).
pub fn unix_time(secs: &Value) -> String {
    match secs.as_f64() {
        Some(s) => {
            let text = colloquy_core::time::rfc3339_ms((s * 1000.0) as i64);
            text.get(..19).unwrap_or(&text).replacen('T', " ", 1)
        }
        None => "—".to_owned(),
    }
}

/// A duration in seconds, readably: `840 µs`, `12.3 ms`, `1.42 s`, `3 min 5 s`.
pub fn duration_secs(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "—".to_owned();
    }
    if secs == 0.0 {
        "0 s".to_owned()
    } else if secs < 0.001 {
        format!("{:.0} µs", secs * 1_000_000.0)
    } else if secs < 1.0 {
        format!("{:.1} ms", secs * 1000.0)
    } else if secs < 60.0 {
        format!("{secs:.2} s")
    } else {
        format!("{} min {} s", (secs / 60.0).floor(), (secs % 60.0).round())
    }
}

/// A JSON value pretty-printed for a `<pre>` or an editor.
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// A payload that may be JSON text: pretty-printed if it parses, as it is otherwise.
pub fn payload(text: &Value) -> String {
    match text {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) => pretty(&v),
            Err(_) => s.clone(),
        },
        Value::Null => String::new(),
        other => pretty(other),
    }
}

/// A string field, or empty.
pub fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn durations_read_well_at_every_scale() {
        assert_eq!(duration_secs(0.000_84), "840 µs");
        assert_eq!(duration_secs(0.0123), "12.3 ms");
        assert_eq!(duration_secs(1.4234), "1.42 s");
        assert_eq!(duration_secs(185.0), "3 min 5 s");
        assert_eq!(duration_secs(f64::NAN), "—");
        assert_eq!(duration_secs(0.0), "0 s");
    }

    #[test]
    fn queries_skip_empty_values_and_encode_the_rest() {
        assert_eq!(
            with_query("/agents", &[("search", Some("a b&c")), ("cursor", None), ("x", Some(""))]),
            "/agents?search=a+b%26c"
        );
        assert_eq!(with_query("/agents", &[]), "/agents");
        assert_eq!(unix_time(&json!(1_764_629_796)), "2025-12-01 22:56:36");
    }
}
