//! Keyset pages of the lists a client can sort (agents, tools) and of a tool's dependents: a
//! sort column, a direction and the last row already seen, turned into one condition and one
//! `ORDER BY`. The fixed-order lists (conversations, invocations, executions, tests) still write
//! their own condition.

use crate::query::{Bind, Query};

/// A sort value of the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortValue {
    /// Numeric sort keys.
    Int(i64),
    /// Name.
    Text(String),
}

/// One page request over a list sorted by `S`.
#[derive(Debug, Clone)]
pub struct Page<S> {
    /// Sort key.
    pub sort: S,
    /// Descending?
    pub descending: bool,
    /// Continue after this (sort value, id).
    pub after: Option<(SortValue, String)>,
    /// Rows to return.
    pub limit: u32,
}

impl Query {
    /// Appends the page's keyset condition on `(column, id_column)` and its order and limit.
    /// The id breaks ties, so rows with the same sort value are neither skipped nor repeated.
    pub(crate) fn page<S>(&mut self, column: &str, id_column: &str, page: &Page<S>) {
        let (cmp, dir) = if page.descending { ("<", "DESC") } else { (">", "ASC") };
        if let Some((value, id)) = &page.after {
            let v = self.param(match value {
                SortValue::Int(i) => Bind::Int(*i),
                SortValue::Text(s) => Bind::Text(s.clone()),
            });
            let i = self.param(Bind::Text(id.clone()));
            self.raw(&format!(
                " AND ({column} {cmp} {v} OR ({column} = {v} AND {id_column} {cmp} {i}))"
            ));
        }
        self.order_and_limit(&format!("{column} {dir}, {id_column} {dir}"), page.limit);
    }
}
