//! The storage layer's own error: callers decide what to do by *kind* (retry later, conflict,
//! missing, bug) without knowing which database or driver is behind the store. Every backend
//! error code is classified here, in one place.

/// What went wrong with a storage operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The database cannot be reached or is overloaded right now; the same call may succeed
    /// later (pool timeout, connection lost, SQLite busy, Postgres shutting down, deadlock).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule refused the write (a concurrent writer got there first).
    #[error("conflicting write: {0}")]
    Conflict(String),
    /// The row the operation needs does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Anything else: a bug or a broken database. Logged; never shown to clients.
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, Error>;

/// Postgres SQLSTATE classes and SQLite result codes that mean "try again later": SQLite
/// BUSY (5), LOCKED (6), BUSY_RECOVERY (261), BUSY_SNAPSHOT (517); Postgres connection
/// exceptions (08), operator intervention such as shutdown (57P), transaction rollbacks such
/// as serialization failures and deadlocks (40) and insufficient resources (53).
fn is_transient_code(code: &str) -> bool {
    matches!(code, "5" | "6" | "261" | "517")
        || code.starts_with("08")
        || code.starts_with("57P")
        || code.starts_with("40")
        || code.starts_with("53")
}

/// A unique or primary-key violation: Postgres 23505, SQLite CONSTRAINT_UNIQUE (2067) and
/// CONSTRAINT_PRIMARYKEY (1555).
fn is_unique_code(code: &str) -> bool {
    matches!(code, "23505" | "2067" | "1555")
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => Error::Unavailable(err.to_string()),
            sqlx::Error::RowNotFound => Error::NotFound(err.to_string()),
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                if is_transient_code(&code) {
                    Error::Unavailable(err.to_string())
                } else if is_unique_code(&code) {
                    Error::Conflict(err.to_string())
                } else {
                    Error::Other(err.to_string())
                }
            }
            _ => Error::Other(err.to_string()),
        }
    }
}

impl From<crate::domain::UnknownName> for Error {
    fn from(err: crate::domain::UnknownName) -> Self {
        Error::Other(format!("stored value: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert!(is_transient_code("5") && is_transient_code("40P01") && is_transient_code("08006"));
        assert!(!is_transient_code("23505") && !is_transient_code("22003"));
        assert!(is_unique_code("2067") && is_unique_code("23505") && !is_unique_code("23503"));
        assert!(matches!(Error::from(sqlx::Error::PoolTimedOut), Error::Unavailable(_)));
        assert!(matches!(Error::from(sqlx::Error::RowNotFound), Error::NotFound(_)));
    }
}
