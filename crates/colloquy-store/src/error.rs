//! The store's one error type. Drivers' "no row" becomes [`StoreError::NotFound`] and unique
//! violations [`StoreError::Conflict`] here, so callers never inspect driver errors.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist (in the caller's workspace).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database URL or options are unusable.
    #[error("invalid database configuration: {0}")]
    Config(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database cannot be reached or is shutting down (a restart, a network cut, no
    /// connection free in time): nothing was done, and the same request may succeed shortly.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// The database's disk is full: nothing was written.
    #[error("database full: {0}")]
    Full(sqlx::Error),
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            e if is_full(&e) => StoreError::Full(e),
            e if is_unavailable(&e) => StoreError::Unavailable(e),
            other => StoreError::Database(other),
        }
    }
}

/// Connection-level failures: the pool could not hand out a connection in time, the socket
/// broke, or PostgreSQL said it is shutting down or starting (SQLSTATE class 08, 57P01-03).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// A full disk: SQLite's `SQLITE_FULL` (13), PostgreSQL's `disk_full` (53100).
fn is_full(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| matches!(code.as_ref(), "13" | "53100"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection as _;

    use super::*;

    /// A real full SQLite database (its page limit reached) is `Full`, not a 500.
    #[tokio::test]
    async fn a_full_sqlite_database_is_full() {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("PRAGMA max_page_count = 8").execute(&mut conn).await.unwrap();
        sqlx::query("CREATE TABLE t (x BLOB)").execute(&mut conn).await.unwrap();
        let mut error = None;
        for _ in 0..100 {
            if let Err(e) =
                sqlx::query("INSERT INTO t VALUES (zeroblob(4000))").execute(&mut conn).await
            {
                error = Some(e);
                break;
            }
        }
        let error = StoreError::from(error.expect("the page limit is reached"));
        assert!(matches!(error, StoreError::Full(_)), "{error:?}");
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&mut conn).await.unwrap();
        assert!(n > 0, "what was written before stays readable");
    }

    #[test]
    fn a_timed_out_pool_is_unavailable() {
        assert!(matches!(StoreError::from(sqlx::Error::PoolTimedOut), StoreError::Unavailable(_)));
    }
}
