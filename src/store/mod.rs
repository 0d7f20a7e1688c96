//! Persistence for contacts, verifications, keys, domains, operations and
//! notification records, on SQLite (the embedded default) or Postgres.
//!
//! The two backends share every query: each method is written once and
//! expanded for both pools by [`with_pool!`], so a rule cannot be fixed in one
//! backend and forgotten in the other. What differs (connection options,
//! how a write transaction begins, row locks, migrations) lives in
//! `sqlite.rs` and `postgres.rs`. Every multi-row change is one transaction;
//! verification rows are only written through [`Store::commit`], a
//! compare-and-set on their version.

mod postgres;
pub mod records;
mod sqlite;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, SqlitePool};

use crate::config::DatabaseSettings;
use crate::domain::verification::{Key, Status, Verification};
use crate::domain::{ContactEmail, DomainName, ExternalId, Policy, StatusFlag};
use crate::{Error, Result};
pub use records::*;
use records::{DueRow, NotificationRow, OpenOperationRow, OperationRow, VerificationRow};

/// A connection pool to one of the supported databases.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Expands `$body` once per backend, with `$pool` bound to that backend's pool
/// and `$d` to its dialect module (`BEGIN`, `FOR_UPDATE`, `MIGRATOR`).
macro_rules! with_pool {
    ($store:expr, $pool:ident, $d:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => {
                #[allow(unused_imports)]
                use self::sqlite as $d;
                $body
            }
            Store::Postgres($pool) => {
                #[allow(unused_imports)]
                use self::postgres as $d;
                $body
            }
        }
    };
}

/// Counts applied migrations (0 before the first run).
macro_rules! applied_migrations {
    ($pool:expr) => {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one($pool)
            .await
            .unwrap_or(0)
    };
}

/// Compare-and-set write of a verification row; evaluates to whether it won.
macro_rules! write_verification {
    ($exec:expr, $v:expr, $now:expr, $policy:expr) => {{
        let v: &Verification = $v;
        let key = v.key.as_ref();
        sqlx::query(
            "UPDATE verifications SET email = $2, status = $3, key_id = $4, key_issued_at = $5, \
             key_expires_at = $6, last_notification_at = $7, reminder_day_covered = $8, \
             expiry_notice_owed = $9, failures = $10, retry_at = $11, claim_owner = $12, \
             claim_until = $13, validated_at = $14, due_at = $15, version = version + 1, \
             updated_at = $16 WHERE email_key = $1 AND version = $17",
        )
        .bind(&v.email_key)
        .bind(&v.email)
        .bind(v.status.as_str())
        .bind(key.map(|k| k.id.as_str()))
        .bind(key.map(|k| k.issued_at))
        .bind(key.map(|k| k.expires_at))
        .bind(v.last_notification_at)
        .bind(i64::from(v.reminder_day_covered))
        .bind(v.expiry_notice_owed)
        .bind(i64::from(v.failures))
        .bind(v.retry_at)
        .bind(v.claim_owner.as_deref())
        .bind(v.claim_until)
        .bind(v.validated_at)
        .bind(v.next_due_at($now, $policy))
        .bind($now)
        .bind(v.version)
        .execute($exec)
        .await?
        .rows_affected()
            == 1
    }};
}

macro_rules! insert_key {
    ($exec:expr, $email_key:expr, $k:expr) => {{
        let k: &Key = $k;
        sqlx::query(
            "INSERT INTO verification_keys (key_id, email_key, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&k.id)
        .bind($email_key)
        .bind(k.issued_at)
        .bind(k.expires_at)
        .execute($exec)
        .await?;
    }};
}

macro_rules! upsert_notification {
    ($exec:expr, $n:expr) => {{
        let n: &NotificationRecord = $n;
        sqlx::query(
            "INSERT INTO notifications (id, email_key, operation_type, reason, status, is_terminal, \
             created_at, status_changed_at, error_code, error_details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO UPDATE SET \
             status = excluded.status, is_terminal = excluded.is_terminal, \
             status_changed_at = excluded.status_changed_at, error_code = excluded.error_code, \
             error_details = excluded.error_details",
        )
        .bind(&n.id)
        .bind(&n.email_key)
        .bind(&n.operation_type)
        .bind(&n.operation_details)
        .bind(n.status.as_str())
        .bind(n.is_terminal)
        .bind(n.created_at)
        .bind(n.status_changed_at)
        .bind(n.error_code.as_deref())
        .bind(n.error_details.as_deref())
        .execute($exec)
        .await?;
    }};
}

/// After the last contact left `old`: a verification that is not Validated
/// loses its key (its links stop working) and is removed; a Validated one is
/// kept, so a contact returning to a verified address needs no new email.
macro_rules! release_address {
    ($tx:expr, $d:ident, $old:expr, $now:expr) => {{
        let still_used: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM contacts WHERE email_key = $1")
                .bind($old)
                .fetch_one(&mut *$tx)
                .await?;
        if still_used == 0 {
            let row: Option<VerificationRow> = sqlx::query_as(&format!(
                "SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE email_key = $1{}",
                $d::FOR_UPDATE
            ))
            .bind($old)
            .fetch_optional(&mut *$tx)
            .await?;
            if let Some(v) = row.map(VerificationRow::into_domain).transpose()? {
                if v.status != Status::Validated {
                    sqlx::query(
                        "UPDATE verification_keys SET voided_at = $2, void_reason = $3 \
                         WHERE email_key = $1 AND voided_at IS NULL",
                    )
                    .bind($old)
                    .bind($now)
                    .bind(VOID_EMAIL_CHANGED)
                    .execute(&mut *$tx)
                    .await?;
                    sqlx::query("DELETE FROM verifications WHERE email_key = $1")
                        .bind($old)
                        .execute(&mut *$tx)
                        .await?;
                }
            }
        }
    }};
}

/// Creates or updates one contact inside the open transaction `$tx`;
/// evaluates to its [`UpsertOutcome`]. Shared by single and batched writes.
macro_rules! upsert_in_tx {
    ($tx:ident, $d:ident, $input:expr, $now:expr, $policy:expr) => {{
        let new_key = $input.email.key();
        let existing: Option<ContactRecord> = sqlx::query_as(&format!(
            "SELECT external_id, email, email_key, created_at, updated_at FROM contacts \
             WHERE external_id = $1{}", $d::FOR_UPDATE))
            .bind($input.external_id.as_str())
            .fetch_optional(&mut *$tx)
            .await?;
        let created = existing.is_none();
        let old_key = existing.as_ref().map(|c| c.email_key.clone());
        let email_changed = old_key.as_deref().is_some_and(|k| k != new_key);
        if created {
            sqlx::query("INSERT INTO contacts (external_id, email, email_key, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $4)")
                .bind($input.external_id.as_str())
                .bind($input.email.as_str())
                .bind(&new_key)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
        } else if email_changed {
            sqlx::query("UPDATE contacts SET email = $2, email_key = $3, updated_at = $4 \
                         WHERE external_id = $1")
                .bind($input.external_id.as_str())
                .bind($input.email.as_str())
                .bind(&new_key)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
        }
        if created || email_changed {
            // Join the address's verification, creating it if it is new.
            let fresh = Verification::new(&$input.email);
            let inserted = sqlx::query(
                "INSERT INTO verifications (email_key, email, status, due_at, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 0, $5, $5) ON CONFLICT (email_key) DO NOTHING")
                .bind(&fresh.email_key)
                .bind(&fresh.email)
                .bind(fresh.status.as_str())
                .bind(fresh.next_due_at($now, $policy))
                .bind($now)
                .execute(&mut *$tx)
                .await?
                .rows_affected() == 1;
            if let Some(state) = &$input.import {
                let row: VerificationRow = sqlx::query_as(&format!(
                    "SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE email_key = $1{}", $d::FOR_UPDATE))
                    .bind(&new_key)
                    .fetch_one(&mut *$tx)
                    .await?;
                let mut v = row.into_domain()?;
                if inserted || (v.status == Status::NotValidated && v.key.is_none()) {
                    v.apply_import(state.status, state.key_issued_at, state.last_notification_at, $now, $policy)?;
                    if !write_verification!(&mut *$tx, &v, $now, $policy) {
                        return Err(Error::internal("verification changed during import"));
                    }
                    if let Some(k) = &v.key {
                        insert_key!(&mut *$tx, &v.email_key, k);
                    }
                }
            }
            if let Some(old) = old_key.as_deref().filter(|_| email_changed) {
                release_address!($tx, $d, old, $now);
            }
        }
        for domain in &$input.domains {
            // A domain has one registrant: naming it here moves it to this contact.
            sqlx::query("INSERT INTO domains (name, contact_external_id, created_at, updated_at) \
                         VALUES ($1, $2, $3, $3) ON CONFLICT (name) DO UPDATE \
                         SET contact_external_id = excluded.contact_external_id, updated_at = excluded.updated_at \
                         WHERE domains.contact_external_id <> excluded.contact_external_id")
                .bind(domain.as_str())
                .bind($input.external_id.as_str())
                .bind($now)
                .execute(&mut *$tx)
                .await?;
        }
        let contact: ContactRecord = sqlx::query_as(
            "SELECT external_id, email, email_key, created_at, updated_at FROM contacts WHERE external_id = $1")
            .bind($input.external_id.as_str())
            .fetch_one(&mut *$tx)
            .await?;
        UpsertOutcome { contact, created, email_changed }
    }};
}

/// An open operation with its registrant's verification.
#[derive(Debug, Clone)]
pub struct OpenOperation {
    pub operation: OperationRecord,
    pub registrant_status: Option<Status>,
    pub registrant_email_key: Option<String>,
}

/// A contact to create or update (`contact add`, an import line, the API).
#[derive(Debug, Clone)]
pub struct ContactUpsert {
    pub external_id: ExternalId,
    pub email: ContactEmail,
    pub domains: Vec<DomainName>,
    /// The verification state an import line carries, applied only to an
    /// address with no verification of its own yet.
    pub import: Option<ImportedState>,
}

#[derive(Debug, Clone)]
pub struct ImportedState {
    pub status: Status,
    pub key_issued_at: Option<DateTime<Utc>>,
    pub last_notification_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct UpsertOutcome {
    pub contact: ContactRecord,
    pub created: bool,
    pub email_changed: bool,
}

/// One atomic change to a verification: its new state (written only if the
/// stored version is still `verification.version`), plus the key and
/// notification rows that go with it.
#[derive(Debug, Default)]
pub struct Change<'a> {
    pub new_key: Option<&'a Key>,
    /// A key that stops working, with the reason a stale link will show.
    pub void_key: Option<(&'a str, &'a str)>,
    /// Voids every key of the address except the one named, with the reason.
    pub void_other_keys: Option<(&'a str, &'a str)>,
    pub notification: Option<&'a NotificationRecord>,
}

/// Shown for a link whose address was changed away from.
pub const VOID_EMAIL_CHANGED: &str = "the contact's email address was changed";
/// Shown for a link replaced by a newer one.
pub const VOID_SUPERSEDED: &str = "a newer verification link was sent";
/// Shown for a link whose email the relay refused.
pub const VOID_UNDELIVERED: &str = "the email carrying this link was not delivered";

impl Store {
    /// Opens the database named by `database.url` (a SQLite file is created
    /// if missing).
    pub async fn connect(s: &DatabaseSettings) -> Result<Store> {
        if s.url.starts_with("sqlite:") {
            Ok(Store::Sqlite(sqlite::connect(s).await?))
        } else {
            Ok(Store::Postgres(postgres::connect(s).await?))
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Applies pending migrations; returns how many were applied.
    pub async fn migrate(&self) -> Result<u64> {
        with_pool!(self, pool, d => {
            let before = applied_migrations!(pool);
            d::MIGRATOR.run(pool).await?;
            let after = applied_migrations!(pool);
            Ok(u64::try_from(after - before).unwrap_or(0))
        })
    }

    /// Whether the database can take a write now, for `/healthz`: a write
    /// transaction is begun (on SQLite that takes the write lock, which
    /// another process may hold) and rolled back. Any failure is Unavailable.
    pub async fn ping(&self) -> Result<()> {
        let probe = async {
            with_pool!(self, pool, d => {
                let mut tx = pool.begin_with(d::BEGIN).await?;
                sqlx::query("SELECT 1 FROM _sqlx_migrations LIMIT 1").execute(&mut *tx).await?;
                tx.rollback().await?;
                Ok::<(), Error>(())
            })
        };
        probe
            .await
            .map_err(|e| Error::unavailable(format!("database unavailable: {}", e.message)))
    }

    pub async fn close(&self) {
        with_pool!(self, pool, d => pool.close().await)
    }

    // ---- contacts and domains ----

    /// Creates or updates a contact and its domains in one transaction,
    /// moving it to the verification of its (new) address. A contact that
    /// leaves an address no one else uses voids that address's key.
    pub async fn upsert_contact(
        &self,
        input: &ContactUpsert,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<UpsertOutcome> {
        with_pool!(self, pool, d => {
            let mut tx = pool.begin_with(d::BEGIN).await?;
            let outcome = upsert_in_tx!(tx, d, input, now, policy);
            tx.commit().await?;
            Ok(outcome)
        })
    }

    /// Upserts many contacts in one transaction (imports): all or none.
    pub async fn upsert_contacts(
        &self,
        inputs: &[ContactUpsert],
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<()> {
        with_pool!(self, pool, d => {
            let mut tx = pool.begin_with(d::BEGIN).await?;
            for input in inputs {
                upsert_in_tx!(tx, d, input, now, policy);
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn contact(&self, id: &ExternalId) -> Result<Option<ContactRecord>> {
        with_pool!(self, pool, d => Ok(sqlx::query_as(
            "SELECT external_id, email, email_key, created_at, updated_at FROM contacts WHERE external_id = $1")
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?))
    }

    /// Contacts using an address, by external id.
    pub async fn contacts_by_email(&self, email_key: &str) -> Result<Vec<ContactRecord>> {
        with_pool!(self, pool, d => Ok(sqlx::query_as(
            "SELECT external_id, email, email_key, created_at, updated_at FROM contacts \
             WHERE email_key = $1 ORDER BY external_id")
            .bind(email_key)
            .fetch_all(pool)
            .await?))
    }

    pub async fn contact_domains(&self, external_id: &str) -> Result<Vec<String>> {
        with_pool!(self, pool, d => Ok(sqlx::query_scalar(
            "SELECT name FROM domains WHERE contact_external_id = $1 ORDER BY name")
            .bind(external_id)
            .fetch_all(pool)
            .await?))
    }

    /// Every domain of every contact using an address: what one email lists.
    pub async fn address_domains(&self, email_key: &str) -> Result<Vec<String>> {
        with_pool!(self, pool, d => Ok(sqlx::query_scalar(
            "SELECT d.name FROM domains d JOIN contacts c ON c.external_id = d.contact_external_id \
             WHERE c.email_key = $1 ORDER BY d.name")
            .bind(email_key)
            .fetch_all(pool)
            .await?))
    }

    /// The registrant contact of a domain.
    pub async fn registrant(&self, domain: &DomainName) -> Result<Option<ContactRecord>> {
        with_pool!(self, pool, d => Ok(sqlx::query_as(
            "SELECT c.external_id, c.email, c.email_key, c.created_at, c.updated_at \
             FROM contacts c JOIN domains d ON d.contact_external_id = c.external_id WHERE d.name = $1")
            .bind(domain.as_str())
            .fetch_optional(pool)
            .await?))
    }

    // ---- verifications ----

    pub async fn verification(&self, email_key: &str) -> Result<Option<Verification>> {
        with_pool!(self, pool, d => {
            let row: Option<VerificationRow> = sqlx::query_as(&format!(
                "SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE email_key = $1"))
                .bind(email_key)
                .fetch_optional(pool)
                .await?;
            row.map(VerificationRow::into_domain).transpose()
        })
    }

    /// Verifications with work due at `now` that no live claim holds and that
    /// some contact still uses, in `(due_at, email_key)` order after `after`.
    pub async fn due_verifications(
        &self,
        now: DateTime<Utc>,
        after: Option<&(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<(DateTime<Utc>, Verification)>> {
        let (after_due, after_key) = match after {
            Some((t, k)) => (*t, k.clone()),
            None => (DateTime::<Utc>::UNIX_EPOCH, String::new()),
        };
        with_pool!(self, pool, d => {
            let rows: Vec<DueRow> = sqlx::query_as(&format!(
                "SELECT due_at AS sweep_due_at, {VERIFICATION_COLUMNS} FROM verifications v \
                 WHERE v.due_at IS NOT NULL AND v.due_at <= $1 \
                   AND (v.due_at > $2 OR (v.due_at = $2 AND v.email_key > $3)) \
                   AND (v.claim_until IS NULL OR v.claim_until <= $1) \
                   AND EXISTS (SELECT 1 FROM contacts c WHERE c.email_key = v.email_key) \
                 ORDER BY v.due_at, v.email_key LIMIT $4"))
                .bind(now)
                .bind(after_due)
                .bind(&after_key)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.into_iter()
                .map(|r| Ok((r.sweep_due_at, r.row.into_domain()?)))
                .collect()
        })
    }

    /// Writes `v` if the stored row is still at `v.version`, together with the
    /// key and notification rows of `change`, in one transaction. Returns
    /// false (and writes nothing) if someone else changed the row first; on
    /// success `v.version` is the new version.
    pub async fn commit(
        &self,
        v: &mut Verification,
        change: &Change<'_>,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<bool> {
        with_pool!(self, pool, d => {
            let mut tx = pool.begin_with(d::BEGIN).await?;
            if !write_verification!(&mut *tx, &*v, now, policy) {
                tx.rollback().await?;
                return Ok(false);
            }
            if let Some(k) = change.new_key {
                insert_key!(&mut *tx, &v.email_key, k);
            }
            if let Some((key_id, reason)) = change.void_key {
                sqlx::query("UPDATE verification_keys SET voided_at = $2, void_reason = $3 \
                             WHERE key_id = $1 AND voided_at IS NULL")
                    .bind(key_id)
                    .bind(now)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some((keep, reason)) = change.void_other_keys {
                sqlx::query("UPDATE verification_keys SET voided_at = $2, void_reason = $3 \
                             WHERE email_key = $1 AND key_id <> $4 AND voided_at IS NULL")
                    .bind(&v.email_key)
                    .bind(now)
                    .bind(reason)
                    .bind(keep)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(n) = change.notification {
                upsert_notification!(&mut *tx, n);
            }
            tx.commit().await?;
            v.version += 1;
            Ok(true)
        })
    }

    pub async fn key(&self, key_id: &str) -> Result<Option<KeyRecord>> {
        with_pool!(self, pool, d => Ok(sqlx::query_as(
            "SELECT key_id, email_key, issued_at, expires_at, voided_at, void_reason \
             FROM verification_keys WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(pool)
            .await?))
    }

    // ---- notification records ----

    /// Records (or updates) one email attempt on its own, for attempts whose
    /// verification changed under them.
    pub async fn save_notification(&self, n: &NotificationRecord) -> Result<()> {
        with_pool!(self, pool, d => {
            upsert_notification!(pool, n);
            Ok(())
        })
    }

    /// An address's email attempts, newest first.
    pub async fn notifications(
        &self,
        email_key: &str,
        limit: i64,
    ) -> Result<Vec<NotificationRecord>> {
        with_pool!(self, pool, d => {
            let rows: Vec<NotificationRow> = sqlx::query_as(
                "SELECT id, email_key, operation_type, reason, status, is_terminal, created_at, \
                 status_changed_at, error_code, error_details FROM notifications \
                 WHERE email_key = $1 ORDER BY created_at DESC, id DESC LIMIT $2")
                .bind(email_key)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            Ok(rows.into_iter().map(NotificationRecord::from).collect())
        })
    }

    /// Resends to an address since `since` that did not fail, for the daily limit.
    pub async fn resends_since(&self, email_key: &str, since: DateTime<Utc>) -> Result<i64> {
        with_pool!(self, pool, d => Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE email_key = $1 AND reason = $2 \
             AND created_at > $3 AND status <> 'Failed'")
            .bind(email_key)
            .bind(reason::RESEND)
            .bind(since)
            .fetch_one(pool)
            .await?))
    }

    // ---- domain operations ----

    pub async fn insert_operation(&self, op: &OperationRecord) -> Result<()> {
        with_pool!(self, pool, d => {
            sqlx::query(&format!("INSERT INTO operations ({OPERATION_COLUMNS}) \
                                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
                .bind(&op.operation_id)
                .bind(&op.domain_name)
                .bind(op.op_type.as_str())
                .bind(op.status.as_str())
                .bind(op.status_flag.map(StatusFlag::as_str))
                .bind(&op.message)
                .bind(op.submitted_date)
                .bind(op.last_updated_date)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    pub async fn operation(&self, id: &str) -> Result<Option<OperationRecord>> {
        with_pool!(self, pool, d => {
            let row: Option<OperationRow> = sqlx::query_as(&format!(
                "SELECT {OPERATION_COLUMNS} FROM operations WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.map(OperationRow::into_domain).transpose()
        })
    }

    /// Operations, newest first, optionally of one domain and/or one flag.
    pub async fn operations(
        &self,
        domain: Option<&DomainName>,
        flag: Option<StatusFlag>,
        limit: i64,
    ) -> Result<Vec<OperationRecord>> {
        with_pool!(self, pool, d => {
            let rows: Vec<OperationRow> = sqlx::query_as(&format!(
                "SELECT {OPERATION_COLUMNS} FROM operations \
                 WHERE ($1 IS NULL OR domain_name = $1) AND ($2 IS NULL OR status_flag = $2) \
                 ORDER BY submitted_at DESC, id DESC LIMIT $3"))
                .bind(domain.map(DomainName::as_str))
                .bind(flag.map(StatusFlag::as_str))
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(OperationRow::into_domain).collect()
        })
    }

    /// Open operations that wait on their registrant (no flag, or ours),
    /// with the registrant's verification status.
    pub async fn open_operations(&self) -> Result<Vec<OpenOperation>> {
        with_pool!(self, pool, d => {
            let rows: Vec<OpenOperationRow> = sqlx::query_as(
                "SELECT o.id, o.domain_name, o.type, o.status, o.status_flag, o.message, \
                        o.submitted_at, o.last_updated_at, v.status AS registrant_status, \
                        v.email_key AS registrant_email_key \
                 FROM operations o \
                 LEFT JOIN domains dm ON dm.name = o.domain_name \
                 LEFT JOIN contacts c ON c.external_id = dm.contact_external_id \
                 LEFT JOIN verifications v ON v.email_key = c.email_key \
                 WHERE o.status IN ('SUBMITTED', 'IN_PROGRESS') \
                   AND (o.status_flag IS NULL OR o.status_flag = 'PENDING_CUSTOMER_ACTION') \
                 ORDER BY o.submitted_at")
                .fetch_all(pool)
                .await?;
            rows.into_iter()
                .map(|r| {
                    Ok(OpenOperation {
                        registrant_status: r.registrant_status.as_deref().map(Status::parse).transpose()?,
                        registrant_email_key: r.registrant_email_key,
                        operation: r.op.into_domain()?,
                    })
                })
                .collect()
        })
    }

    /// Writes `new` over `old` only if the row still holds `old`'s status and
    /// flag, so a concurrent change by another system is never overwritten.
    pub async fn update_operation(
        &self,
        old: &OperationRecord,
        new: &OperationRecord,
    ) -> Result<bool> {
        with_pool!(self, pool, d => Ok(sqlx::query(
            "UPDATE operations SET status = $2, status_flag = $3, message = $4, last_updated_at = $5 \
             WHERE id = $1 AND status = $6 AND status_flag IS NOT DISTINCT FROM $7")
            .bind(&new.operation_id)
            .bind(new.status.as_str())
            .bind(new.status_flag.map(StatusFlag::as_str))
            .bind(&new.message)
            .bind(new.last_updated_date)
            .bind(old.status.as_str())
            .bind(old.status_flag.map(StatusFlag::as_str))
            .execute(pool)
            .await?
            .rows_affected() == 1))
    }
}
