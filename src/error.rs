//! What can go wrong in a flow, said without HTTP; `edge::error` maps each case to a status and a code.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Unknown user or wrong password: one answer for both.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("no bearer token")]
    MissingToken,
    #[error("invalid token")]
    InvalidToken,
    /// A link from a mail that is unknown, expired or already used: 400, not 401 (no bearer token involved).
    #[error("invalid link")]
    InvalidLink,
    #[error("wrong current password")]
    WrongPassword,
    #[error("forbidden")]
    Forbidden,
    #[error("inactive user")]
    InactiveUser,
    /// A correct password for an account whose address is not confirmed, where that is required.
    #[error("email not verified")]
    EmailNotVerified,
    /// The action needs a session that passed the second factor.
    #[error("mfa required")]
    MfaRequired,
    /// A wrong TOTP or backup code: 401 while logging in, 400 when managing MFA.
    #[error("invalid code")]
    InvalidCode { at_login: bool },
    #[error("not found")]
    NotFound,
    #[error("conflict: {code}")]
    Conflict { code: &'static str, message: &'static str },
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("weak password")]
    WeakPassword(FieldError),
    #[error("too many requests")]
    TooManyRequests { code: &'static str, retry_after: Duration },
    #[error("the database is unavailable")]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// 429 `too_many_attempts` with `Retry-After: 1`: more attempts at once than a limit allows.
    pub fn too_many_attempts() -> Self {
        Self::TooManyRequests { code: "too_many_attempts", retry_after: Duration::from_secs(1) }
    }

    pub fn invalid_field(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError { field, message: message.into() }])
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        if is_connectivity(&err) {
            tracing::warn!(error = %err, "database unavailable");
            Error::Unavailable
        } else {
            Error::Internal(anyhow::Error::new(err).context("database query failed"))
        }
    }
}

/// Failures that mean "the database cannot be reached right now", which clients should retry, as
/// opposed to a query that is wrong.
fn is_connectivity(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL: 08xxx connection exceptions, 57P0x shutdowns, 53xxx out of resources.
            // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED after the busy timeout.
            code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") || code == "5" || code == "6"
        }
        _ => false,
    }
}
