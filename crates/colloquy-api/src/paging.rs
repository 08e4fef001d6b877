//! Keyset paging of every list endpoint: `page_size` checked against the reference's bounds,
//! `cursor` decoded and checked against the list it was made for, one row more than the page
//! fetched to learn whether there is more, and the next page's cursor made from the last row.
//! A handler names its sort and filters once ([`Pager::new`]), asks for where to continue
//! ([`Pager::after`]), and cuts what the store gave ([`Pager::page`]).

pub use colloquy_core::cursor::PageSizeRule;
use colloquy_core::cursor::{Cursor, CursorSpec, Direction};
use colloquy_core::validation::Violation;
use colloquy_store::SortValue;
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

/// A sort value a cursor can carry: what the last row of a page is ordered by.
pub trait SortKey: Sized {
    /// The value as stored in a cursor.
    fn to_cursor(&self) -> Value;
    /// The value read back from a cursor; `None` when the cursor holds something else.
    fn from_cursor(value: &Value) -> Option<Self>;
}

/// Times and counts.
impl SortKey for i64 {
    fn to_cursor(&self) -> Value {
        json!(self)
    }

    fn from_cursor(value: &Value) -> Option<Self> {
        value.as_i64()
    }
}

/// Names.
impl SortKey for String {
    fn to_cursor(&self) -> Value {
        json!(self)
    }

    fn from_cursor(value: &Value) -> Option<Self> {
        value.as_str().map(str::to_owned)
    }
}

/// Lists sorted by one of several keys, which give their value as JSON.
impl SortKey for Value {
    fn to_cursor(&self) -> Value {
        self.clone()
    }

    fn from_cursor(value: &Value) -> Option<Self> {
        Some(value.clone())
    }
}

/// One page request of a list: its size and where the previous page ended.
#[derive(Debug)]
pub struct Pager {
    spec: CursorSpec,
    limit: u32,
    after: Option<Cursor>,
}

impl Pager {
    /// A page of a list sorted by `sort` in `direction` with `filters` (a cursor made for any
    /// other sort or filters is refused), `page_size` within `rule` (most lists:
    /// [`PageSizeRule::STANDARD`], 1..=100, default 30).
    pub fn new(
        rule: PageSizeRule, page_size: Option<i64>, cursor: Option<&str>, sort: &str,
        direction: Direction, filters: &[&str],
    ) -> ApiResult<Pager> {
        let limit = rule.resolve(page_size).map_err(ApiError::invalid)?;
        let spec = CursorSpec::new(sort, direction, filters);
        let after = cursor
            .filter(|c| !c.is_empty())
            .map(|raw| spec.decode(raw))
            .transpose()
            .map_err(ApiError::invalid)?;
        Ok(Pager { spec, limit, after })
    }

    /// Rows in a page.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Rows to ask the store for: one more than the page, which only says there is more.
    pub fn fetch(&self) -> u32 {
        self.limit.saturating_add(1)
    }

    /// The sort value and id of the previous page's last row, if this is not the first page.
    pub fn after<K: SortKey>(&self) -> ApiResult<Option<(K, String)>> {
        self.after
            .as_ref()
            .map(|c| {
                K::from_cursor(&c.last_value)
                    .map(|value| (value, c.last_id.clone()))
                    .ok_or_else(bad_sort_value)
            })
            .transpose()
    }

    /// [`Pager::after`] for a list sorted by a name (`by_text`) or by a number.
    pub fn after_value(&self, by_text: bool) -> ApiResult<Option<(SortValue, String)>> {
        Ok(if by_text {
            self.after::<String>()?.map(|(v, id)| (SortValue::Text(v), id))
        } else {
            self.after::<i64>()?.map(|(v, id)| (SortValue::Int(v), id))
        })
    }

    /// Cuts what the store gave (up to [`Pager::fetch`] rows) to the page, with the cursor of
    /// the next page made from the last row's sort value and id (`key`).
    pub fn page<T, K: SortKey>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> (K, &str)) -> Page<T> {
        let has_more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next_cursor = rows.last().filter(|_| has_more).map(|last| {
            let (value, id) = key(last);
            self.spec.after(value.to_cursor(), id).encode()
        });
        Page { items: rows, has_more, next_cursor }
    }
}

impl Pager {
    /// The cursor of the page after a row with sort value `value` and id `id`, for a page
    /// written as it is read rather than cut from rows ([`Pager::page`]).
    pub fn next_cursor(&self, value: Value, id: &str) -> String {
        self.spec.after(value, id).encode()
    }
}

/// A page of rows, and how to go on.
#[derive(Debug)]
pub struct Page<T> {
    /// The page's rows.
    pub items: Vec<T>,
    /// Whether more rows follow.
    pub has_more: bool,
    /// The cursor of the next page (`None` on the last).
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The same page with views borrowed from its rows, for serializing.
    pub fn view<'a, U>(&'a self, f: impl FnMut(&'a T) -> U) -> Page<U> {
        Page {
            items: self.items.iter().map(f).collect(),
            has_more: self.has_more,
            next_cursor: self.next_cursor.clone(),
        }
    }

    /// The page as the response, its body written once straight from the views.
    pub fn respond(&self, items_key: &'static str) -> ApiResult<axum::response::Response>
    where
        T: Serialize,
    {
        Ok(crate::extract::json_text(serde_json::to_vec(&self.body(items_key))?))
    }

    /// The reference's page body, `{<items_key>: [...], "next_cursor", "has_more"}`.
    pub fn body(&self, items_key: &'static str) -> PageBody<'_, T> {
        PageBody { items_key, page: self }
    }
}

/// A page as the reference's list responses write it.
pub struct PageBody<'a, T> {
    items_key: &'static str,
    page: &'a Page<T>,
}

impl<T: Serialize> Serialize for PageBody<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry(self.items_key, &self.page.items)?;
        map.serialize_entry("next_cursor", &self.page.next_cursor)?;
        map.serialize_entry("has_more", &self.page.has_more)?;
        map.end()
    }
}

/// A cursor of this list whose sort value is not of the list's kind (it decoded, so it was
/// altered).
fn bad_sort_value() -> ApiError {
    ApiError::invalid(Violation::new(
        ["query", "cursor"],
        "value_error",
        "Invalid cursor: bad sort value",
    ))
}
