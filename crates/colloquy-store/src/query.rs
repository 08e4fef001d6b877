//! Queries whose text depends on the request (optional filters, keyset conditions): the SQL and
//! its parameters are built together, so numbering stays right, and bound in one place for both
//! backends.

use colloquy_core::ids::WorkspaceId;

/// One parameter value.
pub(crate) enum Bind {
    Text(String),
    Int(i64),
    Bool(bool),
}

/// SQL text with its parameters.
pub(crate) struct Query {
    pub(crate) sql: String,
    pub(crate) binds: Vec<Bind>,
}

impl Query {
    /// Starts with `sql`, whose parameters are `binds` (`$1`, `$2`, ... in order).
    pub(crate) fn new(sql: impl Into<String>, binds: Vec<Bind>) -> Query {
        Query { sql: sql.into(), binds }
    }

    /// `sql`, whose condition names the workspace as `$1`, with that bound.
    pub(crate) fn in_workspace(sql: impl Into<String>, workspace_id: &WorkspaceId) -> Query {
        Query::new(sql, vec![Bind::Text(workspace_id.to_string())])
    }

    /// `sql`, whose condition names the workspace as `$1` and a row's id as `$2`, with those
    /// bound: one row of the caller's.
    pub(crate) fn scoped(sql: impl Into<String>, workspace_id: &WorkspaceId, id: &str) -> Query {
        Query::new(sql, vec![Bind::Text(workspace_id.to_string()), Bind::Text(id.to_owned())])
    }

    /// `sql` (conditioned on the workspace as `$1`) narrowed to the rows whose `column` is one
    /// of `ids`; `None` when there are none to ask for.
    pub(crate) fn among(
        sql: impl Into<String>, workspace_id: &WorkspaceId, column: &str, ids: &[impl AsRef<str>],
    ) -> Option<Query> {
        if ids.is_empty() {
            return None;
        }
        let mut q = Query::in_workspace(sql, workspace_id);
        q.push_in(column, ids);
        Some(q)
    }

    /// Adds a parameter and returns its placeholder (`$n`).
    pub(crate) fn param(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// Appends `clause`, whose single `?` becomes the placeholder of `value`.
    pub(crate) fn push(&mut self, clause: &str, value: Bind) {
        let p = self.param(value);
        self.sql.push_str(&clause.replace('?', &p));
    }

    /// Appends text without parameters.
    pub(crate) fn raw(&mut self, text: &str) {
        self.sql.push_str(text);
    }

    /// Appends `ORDER BY <order> LIMIT <limit>`, the limit written into the text rather than
    /// bound: SQLite's planner reads a bound LIMIT's value, so it re-prepares a statement every
    /// time that parameter is bound again (11 % of a list request's CPU). A page size is one
    /// of a hundred integers, so the statement cache still holds every variant.
    pub(crate) fn order_and_limit(&mut self, order: &str, limit: u32) {
        self.sql.push_str(&format!(" ORDER BY {order} LIMIT {limit}"));
    }

    /// Appends `<column> IN (...)` over `values`.
    pub(crate) fn push_in(&mut self, column: &str, values: &[impl AsRef<str>]) {
        let placeholders: Vec<String> =
            values.iter().map(|v| self.param(Bind::Text(v.as_ref().to_owned()))).collect();
        self.sql.push_str(&format!(" AND {column} IN ({})", placeholders.join(", ")));
    }
}

/// The `VALUES` list of a multi-row INSERT: `rows` tuples of `width` placeholders, numbered
/// (`$1`, `$2`, ... for PostgreSQL) or anonymous (`?`, for SQLite). sqlx binds a numbered SQLite
/// parameter by asking SQLite its name, a linear search, so binding thousands of `$n` was
/// quadratic (two thirds of the audit writer's CPU); `?` binds in order.
pub(crate) fn values_placeholders(rows: usize, width: usize, numbered: bool) -> String {
    let mut sql = String::with_capacity(rows * width * 4);
    for row in 0..rows {
        sql.push_str(if row > 0 { ", (" } else { "(" });
        for col in 0..width {
            if col > 0 {
                sql.push_str(", ");
            }
            if numbered {
                sql.push_str(&format!("${}", row * width + col + 1));
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub(crate) fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Fetches every row of a [`Query`]: on the calling thread where SQLite allows (see
/// [`crate::inline`]), otherwise on the read pool.
macro_rules! fetch_all {
    ($store:expr, $query:expr) => {
        $crate::query::fetch!($store, $query, all, fetch_all)
    };
}
pub(crate) use fetch_all;

/// Fetches the first row of a [`Query`], if any, the way [`fetch_all!`] does.
macro_rules! fetch_optional {
    ($store:expr, $query:expr) => {
        $crate::query::fetch!($store, $query, optional, fetch_optional)
    };
}
pub(crate) use fetch_optional;

/// The workspace's row with this id ([`Query::scoped`]: `sql` names them `$1` and `$2`), or
/// [`crate::StoreError::NotFound`]. Used from functions returning a [`crate::StoreResult`].
macro_rules! find {
    ($store:expr, $sql:expr, $workspace_id:expr, $id:expr $(,)?) => {{
        let q = $crate::query::Query::scoped($sql, $workspace_id, $id);
        $crate::query::fetch_optional!($store, q)?.ok_or($crate::StoreError::NotFound)
    }};
}
pub(crate) use find;

/// [`fetch_all!`] and [`fetch_optional!`]: `$inline` on the calling thread, else `$fetch` on the
/// read pool.
macro_rules! fetch {
    ($store:expr, $query:expr, $inline:ident, $fetch:ident) => {{
        let query: &$crate::query::Query = &$query;
        match $store.inline().and_then(|reads| reads.$inline(query)) {
            Some(found) => Ok(found),
            None => $crate::db::run!($store, read, |pool| {
                $crate::query::bound!(sqlx::query_as(sqlx::AssertSqlSafe(query.sql.clone())), query)
                    .$fetch(pool)
                    .await
            }),
        }
    }};
}
pub(crate) use fetch;

/// Binds a [`Query`]'s parameters to a sqlx query.
macro_rules! bound {
    ($q:expr, $query:expr) => {{
        let mut q = $q;
        for b in &$query.binds {
            q = match b {
                $crate::query::Bind::Text(s) => q.bind(s.clone()),
                $crate::query::Bind::Int(n) => q.bind(*n),
                $crate::query::Bind::Bool(x) => q.bind(*x),
            };
        }
        q
    }};
}
pub(crate) use bound;
