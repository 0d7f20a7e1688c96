//! Persistence for contacts, verifications, keys, domains, operations and
//! notification records, on SQLite (the embedded default) or Postgres.
//!
//! One file per table: `contacts.rs` (contacts and their domains),
//! `domains.rs` (deadlines and suspension), `verifications.rs`, `keys.rs`,
//! `notifications.rs`, `operations.rs`, `evidence.rs`, `events.rs`; the
//! compliance rules' multi-table transactions are in `compliance.rs`. The
//! store decides nothing: the rules (what an email change or a departing
//! contact does to an address) are the domain's (`domain::verification`);
//! the store sequences their statements in one transaction.
//!
//! The two backends share every query: each statement is written once and
//! expanded for both pools by `with_pool!` (a read outside a transaction),
//! `with_writer!` (a write outside one) or for both transaction types by
//! `on_tx!` (inside one). On SQLite, writes and transactions go through the
//! process's one write connection and reads through read-only connections. What differs
//! (connection options, how a write transaction begins, row locks,
//! migrations) lives in `sqlite.rs` and `postgres.rs`. Verification rows are
//! written only by `Tx::write_verification`, a compare-and-set on their
//! version.

mod bounces;
mod compliance;
mod contacts;
mod deliveries;
mod domains;
mod events;
mod evidence;
mod import;
mod keys;
mod notifications;
mod operations;
mod postgres;
pub mod records;
mod sqlite;
mod stats;
mod verifications;
mod workers;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, SqlitePool};

use crate::config::DatabaseSettings;
use crate::domain::verification::{Key, Status};
use crate::domain::{ContactEmail, DomainName, EmailKey, ExternalId, KeyId};
use crate::{Error, Result};
pub use bounces::BounceRecorded;
pub use compliance::{OperationEffect, Validated, VOID_RESTARTED};
pub use contacts::ContactFilter;
pub use deliveries::{Claim, Outcome};
pub use events::NextEvent;
pub use operations::{OperationCursor, OperationFilter};
pub use records::*;
pub use stats::{StateCounts, SweepRecord};
pub use verifications::{ClaimView, VerificationWrite};

/// A connection pool to one of the supported databases.
#[derive(Clone, Debug)]
pub enum Store {
    /// The readers' pool and the one connection that writes (`sqlite.rs`).
    Sqlite(SqlitePool, SqlitePool),
    Postgres(PgPool),
}

/// Expands `$body` once per backend, with `$pool` bound to that backend's pool
/// for reads and `$d` to its dialect module (`BEGIN`, `FOR_UPDATE`,
/// `MIGRATOR`). A statement that writes uses `with_writer!`.
macro_rules! with_pool {
    ($store:expr, $pool:ident, $d:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool, _) => {
                #[allow(unused_imports)]
                use $crate::store::sqlite as $d;
                $body
            }
            $crate::store::Store::Postgres($pool) => {
                #[allow(unused_imports)]
                use $crate::store::postgres as $d;
                $body
            }
        }
    };
}
pub(crate) use with_pool;

/// As `with_pool!`, with `$pool` bound to the pool that writes: SQLite's one
/// write connection, or the Postgres pool.
macro_rules! with_writer {
    ($store:expr, $pool:ident, $d:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite(_, $pool) => {
                #[allow(unused_imports)]
                use $crate::store::sqlite as $d;
                $body
            }
            $crate::store::Store::Postgres($pool) => {
                #[allow(unused_imports)]
                use $crate::store::postgres as $d;
                $body
            }
        }
    };
}
pub(crate) use with_writer;

/// A write transaction on either backend. Each of its methods runs one
/// statement; multi-statement changes are plain Rust over these methods.
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Expands `$body` once per backend with `$conn` bound to the transaction's
/// connection and `$d` to the dialect module.
macro_rules! on_tx {
    ($tx:expr, $conn:ident, $d:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $conn: &mut sqlx::SqliteConnection = &mut **t;
                #[allow(unused_imports)]
                use $crate::store::sqlite as $d;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $conn: &mut sqlx::PgConnection = &mut **t;
                #[allow(unused_imports)]
                use $crate::store::postgres as $d;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

impl Tx {
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub(crate) async fn rollback(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }
}

/// One atomic change to a verification: its new state (written only if the
/// stored version is still `verification.version`), plus the key and
/// notification rows that go with it.
#[derive(Debug, Default)]
pub struct Change<'a> {
    pub new_key: Option<&'a Key>,
    /// A key that stops working, with the reason a stale link will show.
    pub void_key: Option<(&'a KeyId, &'a str)>,
    /// Voids every key of the address except the one named, with the reason.
    pub void_other_keys: Option<(&'a KeyId, &'a str)>,
    pub notification: Option<&'a NotificationRecord>,
}

/// Shown for a link whose address was changed away from.
pub const VOID_EMAIL_CHANGED: &str = "the contact's email address was changed";
/// Shown for a link replaced by a newer one.
pub const VOID_SUPERSEDED: &str = "a newer verification link was sent";
/// Shown for a link whose email the relay refused.
pub const VOID_UNDELIVERED: &str = "the email carrying this link was not delivered";

/// An open operation with its registrant's verification.
#[derive(Debug, Clone)]
pub struct OpenOperation {
    pub operation: OperationRecord,
    pub registrant_status: Option<Status>,
    pub registrant_email_key: Option<EmailKey>,
}

/// A contact to create or update (`contact add`, an import line, the API).
#[derive(Debug, Clone)]
pub struct ContactUpsert {
    pub external_id: ExternalId,
    pub email: ContactEmail,
    pub domains: Vec<DomainName>,
    /// The contact's language; None keeps the one it has.
    pub language: Option<crate::domain::Language>,
    /// The verification state an import line carries, applied only to an
    /// address with no verification of its own yet.
    pub import: Option<ImportedState>,
}

#[derive(Debug, Clone)]
pub struct ImportedState {
    pub status: Status,
    pub key_issued_at: Option<DateTime<Utc>>,
    pub last_notification_at: Option<DateTime<Utc>>,
    /// The deadline of the line's domains, from the registrar's previous system.
    pub suspension_date: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct UpsertOutcome {
    pub contact: ContactRecord,
    pub created: bool,
    pub email_changed: bool,
}

impl Store {
    /// Opens the database named by `database.url` (a SQLite file is created
    /// if missing).
    pub async fn connect(s: &DatabaseSettings) -> Result<Store> {
        if s.url.starts_with("sqlite:") {
            let (readers, writer) = sqlite::connect(s).await?;
            Ok(Store::Sqlite(readers, writer))
        } else {
            Ok(Store::Postgres(postgres::connect(s).await?))
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(..) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite).
    pub(crate) async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Store::Sqlite(_, w) => Tx::Sqlite(w.begin_with(sqlite::BEGIN).await?),
            Store::Postgres(p) => Tx::Postgres(p.begin_with(postgres::BEGIN).await?),
        })
    }

    /// Applies pending migrations; returns how many were applied.
    pub async fn migrate(&self) -> Result<u64> {
        with_writer!(self, pool, d => {
            let count = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
            // Before the first run the table does not exist: none applied.
            let before: i64 = sqlx::query_scalar(count).fetch_one(pool).await.unwrap_or(0);
            d::MIGRATOR.run(pool).await?;
            let after: i64 = sqlx::query_scalar(count).fetch_one(pool).await.unwrap_or(0);
            Ok(u64::try_from(after - before).unwrap_or(0))
        })
    }

    /// Whether the database can take a write now, for `/healthz`: a write
    /// transaction is begun (on SQLite that takes the write lock, which
    /// another process may hold) and rolled back. Any failure is Unavailable.
    pub async fn ping(&self) -> Result<()> {
        let probe = async {
            let mut tx = self.begin().await?;
            on_tx!(&mut tx, conn, d => {
                sqlx::query("SELECT 1 FROM _sqlx_migrations LIMIT 1").execute(&mut *conn).await?;
            });
            tx.rollback().await
        };
        probe.await.map_err(|e| {
            // Connection failures already say "database unavailable: ".
            if e.message.starts_with("database unavailable") {
                Error::unavailable(e.message)
            } else {
                Error::unavailable(format!("database unavailable: {}", e.message))
            }
        })
    }

    pub async fn close(&self) {
        if let Store::Sqlite(readers, _) = self {
            readers.close().await;
        }
        with_writer!(self, pool, d => pool.close().await)
    }
}
