//! The `notifications` table: one row per email attempt (Lightsail's
//! Operation), written when the attempt starts and updated with its outcome.

use chrono::{DateTime, Utc};

use super::records::{NotificationRecord, NotificationRow};
use super::verifications::SET_ROWS;
use super::{on_tx, with_pool, with_writer, Store, Tx};
use crate::domain::{EmailKey, Notice};
use crate::Result;

/// Inserts or updates one attempt; `$exec` is a pool or a connection.
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
        .bind(n.email_key.as_str())
        .bind(n.notice.operation_type())
        .bind(n.notice.reason())
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

impl Tx {
    pub(crate) async fn save_notification(&mut self, n: &NotificationRecord) -> Result<()> {
        on_tx!(self, conn, d => upsert_notification!(&mut *conn, n));
        Ok(())
    }

    /// The set-wise form of [`Tx::save_notification`] (ids are distinct).
    pub(crate) async fn save_notifications(&mut self, ns: &[&NotificationRecord]) -> Result<()> {
        for part in ns.chunks(SET_ROWS) {
            on_tx!(self, conn, d => {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO notifications (id, email_key, operation_type, reason, status, \
                     is_terminal, created_at, status_changed_at, error_code, error_details) ");
                qb.push_values(part, |mut b, n| {
                    b.push_bind(n.id.as_str())
                        .push_bind(n.email_key.as_str())
                        .push_bind(n.notice.operation_type())
                        .push_bind(n.notice.reason())
                        .push_bind(n.status.as_str())
                        .push_bind(n.is_terminal)
                        .push_bind(n.created_at)
                        .push_bind(n.status_changed_at)
                        .push_bind(n.error_code.as_deref())
                        .push_bind(n.error_details.as_deref());
                });
                qb.push(" ON CONFLICT (id) DO UPDATE SET \
                     status = excluded.status, is_terminal = excluded.is_terminal, \
                     status_changed_at = excluded.status_changed_at, error_code = excluded.error_code, \
                     error_details = excluded.error_details");
                qb.build().execute(&mut *conn).await?;
            });
        }
        Ok(())
    }

    /// Removes the records of attempts that were never made.
    pub(crate) async fn delete_notifications(&mut self, ids: &[&str]) -> Result<()> {
        for part in ids.chunks(SET_ROWS) {
            on_tx!(self, conn, d => {
                let mut qb = sqlx::QueryBuilder::new("DELETE FROM notifications WHERE id IN (");
                let mut list = qb.separated(", ");
                for id in part {
                    list.push_bind(*id);
                }
                qb.push(")");
                qb.build().execute(&mut *conn).await?;
            });
        }
        Ok(())
    }
}

impl Store {
    /// Records (or updates) one email attempt on its own, for attempts whose
    /// verification changed under them.
    pub async fn save_notification(&self, n: &NotificationRecord) -> Result<()> {
        with_writer!(self, pool, d => upsert_notification!(pool, n));
        Ok(())
    }

    /// An address's email attempts, newest first.
    pub async fn notifications(
        &self,
        email_key: &EmailKey,
        limit: i64,
    ) -> Result<Vec<NotificationRecord>> {
        with_pool!(self, pool, d => {
            let rows: Vec<NotificationRow> = sqlx::query_as(
                "SELECT id, email_key, reason, status, is_terminal, created_at, \
                 status_changed_at, error_code, error_details FROM notifications \
                 WHERE email_key = $1 ORDER BY created_at DESC, id DESC LIMIT $2")
                .bind(email_key.as_str())
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(NotificationRow::into_domain).collect()
        })
    }

    /// Closes attempts left `Started` by a process that died before the
    /// relay's answer was recorded: older than `before` (the claim lease)
    /// and whose address no live claim holds. They become `Failed` with the
    /// code `Interrupted` (the relay may or may not have taken the message);
    /// returns how many.
    pub async fn close_interrupted(
        &self,
        now: DateTime<Utc>,
        before: DateTime<Utc>,
        live_since: DateTime<Utc>,
    ) -> Result<u64> {
        // A claim past its lease whose owner still beats is not interrupted:
        // its owner will record the outcome once it can.
        with_writer!(self, pool, d => Ok(sqlx::query(
            "UPDATE notifications SET status = 'Failed', is_terminal = TRUE, \
             status_changed_at = $1, error_code = 'Interrupted', error_details = $2 \
             WHERE status = 'Started' AND created_at <= $3 \
               AND email_key NOT IN (SELECT email_key FROM verifications \
                   WHERE claim_until IS NOT NULL AND claim_until > $1) \
               AND email_key NOT IN (SELECT v.email_key FROM verifications v JOIN workers w \
                   ON v.claim_owner LIKE w.id || '/%' WHERE w.seen_at > $4)")
            .bind(now)
            .bind("the sending process stopped before the relay's answer was recorded; \
                   the email may have been delivered, and a later attempt may repeat it")
            .bind(before)
            .bind(live_since)
            .execute(pool)
            .await?
            .rows_affected()))
    }

    /// Resends to an address since `since` that did not fail, for the daily limit.
    pub async fn resends_since(&self, email_key: &EmailKey, since: DateTime<Utc>) -> Result<i64> {
        with_pool!(self, pool, d => Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE email_key = $1 AND reason = $2 \
             AND created_at > $3 AND status <> 'Failed'")
            .bind(email_key.as_str())
            .bind(Notice::RESEND_REASON)
            .bind(since)
            .fetch_one(pool)
            .await?))
    }
}
