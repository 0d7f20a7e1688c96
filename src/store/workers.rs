//! The `workers` table: which processes are alive to finish what they
//! claimed (see `liveness.rs`).

use chrono::{DateTime, Utc};

use super::{with_pool, with_writer, ClaimView, Store};
use crate::Result;

impl Store {
    /// Records that process `id` is alive at `now`.
    pub async fn heartbeat(&self, id: &str, now: DateTime<Utc>) -> Result<()> {
        with_writer!(self, pool, d => sqlx::query(
            "INSERT INTO workers (id, seen_at) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at")
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Whether any address is due whose claim ran out under another process
    /// that has been silent since `claims.live_since`.
    pub async fn abandoned_due(&self, now: DateTime<Utc>, claims: &ClaimView<'_>) -> Result<bool> {
        let found: Option<i32> = with_pool!(self, pool, d => sqlx::query_scalar(
            "SELECT 1 FROM verifications v \
             WHERE v.due_at IS NOT NULL AND v.due_at <= $1 \
               AND v.claim_owner IS NOT NULL AND v.claim_until <= $1 \
               AND v.claim_owner NOT LIKE $2 || '/%' \
               AND NOT EXISTS (SELECT 1 FROM workers w \
                   WHERE w.seen_at > $3 AND v.claim_owner LIKE w.id || '/%') \
             LIMIT 1")
            .bind(now)
            .bind(claims.me)
            .bind(claims.live_since)
            .fetch_optional(pool)
            .await?);
        Ok(found.is_some())
    }

    /// A process that stopped cleanly, and workers silent since `before`
    /// (long dead), are forgotten.
    pub async fn forget_workers(&self, id: &str, before: DateTime<Utc>) -> Result<()> {
        with_writer!(self, pool, d => sqlx::query(
            "DELETE FROM workers WHERE id = $1 OR seen_at < $2")
            .bind(id)
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }
}
