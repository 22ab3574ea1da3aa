//! Why a store operation failed, sorted so the API can answer 404 / 409 / 500 without guessing.

use crate::hub::model::UnknownValue;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The database URL is not one the hub understands.
    Url,
    /// The database could not be reached or refused the connection.
    Connect,
    /// A migration failed or the database is ahead of this binary.
    Migrate,
    /// The thing named does not exist.
    NotFound,
    /// The request is valid but the current state forbids it (task not ready, assignment over).
    Conflict,
    /// The request names something invalid (an unknown dependency, a bad value).
    Invalid,
    /// Any other database failure.
    Database,
}

impl StoreError {
    pub(crate) fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: StoreErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    pub(crate) fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(StoreErrorKind::NotFound, format!("{what} not found"))
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Conflict, message)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        // A unique or check violation is the database refusing a state change: a conflict, not
        // a server fault (the partial unique index on active assignments lands here).
        let kind = match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreErrorKind::Conflict,
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreErrorKind::Invalid,
            sqlx::Error::Database(db) if db.is_check_violation() => StoreErrorKind::Invalid,
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => StoreErrorKind::Connect,
            _ => StoreErrorKind::Database,
        };
        let message = match kind {
            StoreErrorKind::Conflict => "the change conflicts with the current state",
            StoreErrorKind::Invalid => "the change refers to something that does not exist",
            StoreErrorKind::Connect => "failed to reach the database",
            _ => "database query failed",
        };
        StoreError::with_source(kind, message, err)
    }
}

impl From<UnknownValue> for StoreError {
    fn from(err: UnknownValue) -> Self {
        // A stored value outside the vocabulary means the database was edited behind our back.
        StoreError::with_source(
            StoreErrorKind::Database,
            "the database holds a value this hub does not know",
            err,
        )
    }
}
