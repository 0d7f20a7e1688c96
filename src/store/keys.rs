//! The `verification_keys` table: every key ever issued, kept after it is
//! replaced so that a stale link is refused with its real reason. It holds
//! key ids only; a link's MAC needs the server secret.

use chrono::{DateTime, Utc};

use super::records::KeyRecord;
use super::{on_tx, with_pool, Store, Tx};
use crate::domain::verification::Key;
use crate::domain::{EmailKey, KeyId};
use crate::Result;

impl Tx {
    pub(crate) async fn insert_key(&mut self, email_key: &EmailKey, k: &Key) -> Result<()> {
        on_tx!(self, conn, d => sqlx::query(
            "INSERT INTO verification_keys (key_id, email_key, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4)")
            .bind(k.id.to_hex())
            .bind(email_key.as_str())
            .bind(k.issued_at)
            .bind(k.expires_at)
            .execute(&mut *conn)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Voids one key (its links stop working), keeping the reason to show.
    pub(crate) async fn void_key(
        &mut self,
        key_id: &KeyId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_tx!(self, conn, d => sqlx::query(
            "UPDATE verification_keys SET voided_at = $2, void_reason = $3 \
             WHERE key_id = $1 AND voided_at IS NULL")
            .bind(key_id.to_hex())
            .bind(now)
            .bind(reason)
            .execute(&mut *conn)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Voids every live key of an address, except `keep` when given.
    pub(crate) async fn void_keys_of(
        &mut self,
        email_key: &EmailKey,
        keep: Option<&KeyId>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_tx!(self, conn, d => sqlx::query(
            "UPDATE verification_keys SET voided_at = $2, void_reason = $3 \
             WHERE email_key = $1 AND voided_at IS NULL AND ($4 IS NULL OR key_id <> $4)")
            .bind(email_key.as_str())
            .bind(now)
            .bind(reason)
            .bind(keep.map(KeyId::to_hex))
            .execute(&mut *conn)
            .await?
            .rows_affected());
        Ok(())
    }
}

impl Store {
    pub async fn key(&self, key_id: &KeyId) -> Result<Option<KeyRecord>> {
        with_pool!(self, pool, d => Ok(sqlx::query_as(
            "SELECT key_id, email_key, issued_at, expires_at, voided_at, void_reason \
             FROM verification_keys WHERE key_id = $1")
            .bind(key_id.to_hex())
            .fetch_optional(pool)
            .await?))
    }
}
