//! The one error type every boundary maps from: the CLI turns it into an exit
//! code and a `error: Code: message` line, the HTTP API into a status and a
//! `{"__type","message"}` body. Codes are the contract's names.

use std::fmt;

/// The contract's error classes, each with its exit code and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidInput,
    NotFound,
    OperationLimitExceeded,
    UnsupportedTLD,
    /// The SMTP server or the database did not answer.
    Unavailable,
    /// The configuration is wrong; the message names the key.
    Configuration,
    /// A key or link that expired; the API answers 410 on the verify page.
    Expired,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "InvalidInput",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::OperationLimitExceeded => "OperationLimitExceeded",
            ErrorCode::UnsupportedTLD => "UnsupportedTLD",
            ErrorCode::Unavailable => "Unavailable",
            ErrorCode::Configuration => "Configuration",
            // The contract's CLI and API name no separate code for an expired
            // link: it is bad input whose message says it expired; only the
            // confirmation page tells it apart (410).
            ErrorCode::Expired => "InvalidInput",
            ErrorCode::Internal => "InternalFailure",
        }
    }

    /// Exit codes of CONTRACT section 3 (69 and 78 follow sysexits.h).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorCode::InvalidInput | ErrorCode::Expired => 2,
            ErrorCode::NotFound => 3,
            ErrorCode::OperationLimitExceeded => 4,
            ErrorCode::UnsupportedTLD => 5,
            ErrorCode::Unavailable => 69,
            ErrorCode::Configuration => 78,
            ErrorCode::Internal => 1,
        }
    }

    /// HTTP statuses of CONTRACT section 5.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidInput | ErrorCode::UnsupportedTLD => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::Expired => 410,
            ErrorCode::OperationLimitExceeded => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Configuration | ErrorCode::Internal => 500,
        }
    }
}

/// An error with its class and a message fit to show an operator.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Configuration, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            // Connection-level failures are "the database is unavailable" (exit
            // 69 / HTTP 503): the caller may retry once it is back.
            E::Io(_)
            | E::PoolTimedOut
            | E::PoolClosed
            | E::WorkerCrashed
            | E::Tls(_)
            | E::Protocol(_) => Error::unavailable(format!("database unavailable: {e}")),
            E::Database(db) if is_unavailable_db_error(db.as_ref()) => {
                Error::unavailable(format!("database unavailable: {e}"))
            }
            _ => Error::internal(format!("database error: {e}")),
        }
    }
}

/// Postgres reports a server shutting down or starting up with SQLSTATE class
/// 57P (operator intervention), a lost connection with 08, exhausted resources
/// (connections, disk) with 53, and a database not accepting connections with
/// 55000; SQLite reports a lock held past busy_timeout as SQLITE_BUSY (5) and
/// SQLITE_LOCKED (6).
fn is_unavailable_db_error(db: &dyn sqlx::error::DatabaseError) -> bool {
    match db.code() {
        Some(code) => {
            code.starts_with("57P")
                || code.starts_with("08")
                || code.starts_with("53")
                || code == "55000"
                || code == "5"
                || code == "6"
        }
        None => false,
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => inner.into(),
            other => Error::internal(format!("migration failed: {other}")),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
