//! Keyset pagination: opaque cursors and page sizes, shared by every list endpoint.
//!
//! A cursor is base64url of a small versioned JSON record: the sort key and direction it was
//! made for, the sort value and id of the last item returned, and a fingerprint of the list's
//! filters. A cursor that does not decode, or that was made for another sort or other filters,
//! is rejected (422) instead of silently returning a wrong page. Lists are always scoped to the
//! caller's workspace by the query itself, so cursors need no signature: forging one can only
//! move within what the caller may already read.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use serde::{Deserialize, Serialize};

use crate::validation::Violation;

/// Version of the cursor record; bumped when its meaning changes so old cursors are refused.
const VERSION: u8 = 1;

/// Longest cursor accepted, well above any real one; bounds the work spent on garbage.
const MAX_LEN: usize = 2048;

/// Sort direction of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Smallest first.
    Asc,
    /// Largest first (the reference's default).
    #[default]
    Desc,
}

/// Where a page ended: decoded from, or encoded into, the opaque cursor string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "v")]
    version: u8,
    /// Sort key the list was ordered by.
    #[serde(rename = "s")]
    pub sort: String,
    /// Direction of that order.
    #[serde(rename = "d")]
    pub direction: Direction,
    /// Sort value of the last item returned (a number or a string).
    #[serde(rename = "lv")]
    pub last_value: serde_json::Value,
    /// Id of the last item returned; breaks ties between equal sort values.
    #[serde(rename = "li")]
    pub last_id: String,
    /// Fingerprint of the filters the list was made with.
    #[serde(rename = "f")]
    pub filter: String,
}

/// What a list expects of the cursor it is given.
#[derive(Debug, Clone)]
pub struct CursorSpec {
    /// Sort key of this request.
    pub sort: String,
    /// Direction of this request.
    pub direction: Direction,
    /// [`fingerprint`] of this request's filters.
    pub filter: String,
}

impl CursorSpec {
    /// A spec for `sort`/`direction` with the given filter values.
    pub fn new(sort: &str, direction: Direction, filters: &[&str]) -> CursorSpec {
        CursorSpec { sort: sort.to_owned(), direction, filter: fingerprint(filters) }
    }

    /// The cursor that continues after an item with `last_value` and `last_id`.
    pub fn after(&self, last_value: serde_json::Value, last_id: &str) -> Cursor {
        Cursor {
            version: VERSION,
            sort: self.sort.clone(),
            direction: self.direction,
            last_value,
            last_id: last_id.to_owned(),
            filter: self.filter.clone(),
        }
    }

    /// Decodes `raw` and checks it belongs to this list. Errors are located at
    /// `query.cursor`, as the API reports them.
    pub fn decode(&self, raw: &str) -> Result<Cursor, Violation> {
        let invalid = |why: &str| {
            Violation::new(["query", "cursor"], "value_error", format!("Invalid cursor: {why}"))
        };
        if raw.len() > MAX_LEN {
            return Err(invalid("too long"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(raw.trim_end_matches('='))
            .map_err(|_| invalid("not base64url"))?;
        let cursor: Cursor =
            serde_json::from_slice(&bytes).map_err(|_| invalid("not a cursor of this server"))?;
        if cursor.version != VERSION {
            return Err(invalid("made by another version"));
        }
        if cursor.sort != self.sort || cursor.direction != self.direction {
            return Err(invalid("made for another sort order"));
        }
        if cursor.filter != self.filter {
            return Err(invalid("made for other filters"));
        }
        // A number or a string; a list sorted by several keys (folders first, then a name)
        // carries an array of them.
        let scalar = |v: &serde_json::Value| v.is_number() || v.is_string() || v.is_boolean();
        let valid = match &cursor.last_value {
            serde_json::Value::Array(keys) => !keys.is_empty() && keys.iter().all(scalar),
            v => v.is_number() || v.is_string(),
        };
        if !valid {
            return Err(invalid("bad sort value"));
        }
        Ok(cursor)
    }
}

impl Cursor {
    /// The opaque string handed to clients.
    pub fn encode(&self) -> String {
        // Serializing a struct of strings and numbers cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// The last sort value as an integer, for lists sorted by a timestamp or count.
    pub fn last_i64(&self) -> Option<i64> {
        self.last_value.as_i64()
    }

    /// The last sort value as a string, for lists sorted by name.
    pub fn last_str(&self) -> Option<&str> {
        self.last_value.as_str()
    }
}

/// A short, stable digest of a list's filter values (order-sensitive).
pub fn fingerprint(filters: &[&str]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for f in filters {
        ctx.update(&(f.len() as u64).to_le_bytes());
        ctx.update(f.as_bytes());
    }
    ctx.finish().as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Page-size rules of a list: the reference's bounds and default.
#[derive(Debug, Clone, Copy)]
pub struct PageSizeRule {
    /// Smallest accepted value.
    pub min: i64,
    /// Largest accepted value.
    pub max: i64,
    /// Used when the client sends none.
    pub default: i64,
}

impl PageSizeRule {
    /// The rule of most convai lists: 1..=100, default 30.
    pub const STANDARD: PageSizeRule = PageSizeRule { min: 1, max: 100, default: 30 };

    /// The page size to use for the client's `requested` value, or the 422 violation
    /// (located at `query.page_size`) that pydantic would report.
    pub fn resolve(self, requested: Option<i64>) -> Result<u32, Violation> {
        // The default is trusted as written: some lists return everything unless asked for less.
        let Some(n) = requested else {
            return Ok(u32::try_from(self.default).unwrap_or(u32::MAX));
        };
        if n < self.min {
            return Err(Violation::new(
                ["query", "page_size"],
                "greater_than_equal",
                format!("Input should be greater than or equal to {}", self.min),
            ));
        }
        if n > self.max {
            return Err(Violation::new(
                ["query", "page_size"],
                "less_than_equal",
                format!("Input should be less than or equal to {}", self.max),
            ));
        }
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let spec = CursorSpec::new("created_at", Direction::Desc, &["search", ""]);
        let c = spec.after(serde_json::json!(1_700_000_000), "agent_x");
        let decoded = spec.decode(&c.encode()).unwrap();
        assert_eq!(decoded, c);
        assert_eq!(decoded.last_i64(), Some(1_700_000_000));
    }

    #[test]
    fn refuses_cursors_of_other_lists() {
        let spec = CursorSpec::new("name", Direction::Asc, &["a"]);
        let raw = spec.after(serde_json::json!("bob"), "id1").encode();
        for other in [
            CursorSpec::new("created_at", Direction::Asc, &["a"]),
            CursorSpec::new("name", Direction::Desc, &["a"]),
            CursorSpec::new("name", Direction::Asc, &["b"]),
        ] {
            let err = other.decode(&raw).unwrap_err();
            assert_eq!(err.loc, vec!["query".into(), "cursor".into()]);
        }
    }

    #[test]
    fn refuses_tampering() {
        let spec = CursorSpec::new("name", Direction::Asc, &[]);
        let mut raw = spec.after(serde_json::json!("bob"), "id1").encode();
        raw.insert(3, '!');
        assert!(spec.decode(&raw).is_err());
        assert!(spec.decode("").is_err());
        assert!(spec.decode(&"A".repeat(5000)).is_err());
        let obj =
            URL_SAFE_NO_PAD.encode(br#"{"v":1,"s":"name","d":"asc","lv":{},"li":"x","f":""}"#);
        assert!(spec.decode(&obj).is_err());
    }

    #[test]
    fn page_size_bounds() {
        let r = PageSizeRule::STANDARD;
        assert_eq!(r.resolve(None).unwrap(), 30);
        assert_eq!(r.resolve(Some(100)).unwrap(), 100);
        assert_eq!(r.resolve(Some(0)).unwrap_err().kind, "greater_than_equal");
        assert_eq!(r.resolve(Some(101)).unwrap_err().kind, "less_than_equal");
    }

    proptest! {
        #[test]
        fn any_string_decodes_or_fails_cleanly(raw in ".{0,300}") {
            let spec = CursorSpec::new("name", Direction::Asc, &[]);
            let _ = spec.decode(&raw);
        }

        #[test]
        fn any_position_round_trips(v in any::<i64>(), id in "[a-z0-9_]{1,40}", f in ".{0,20}") {
            let spec = CursorSpec::new("created_at", Direction::Asc, &[&f]);
            let c = spec.after(serde_json::json!(v), &id);
            prop_assert_eq!(spec.decode(&c.encode()).unwrap(), c);
        }
    }
}
