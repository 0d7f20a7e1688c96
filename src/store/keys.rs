//! The `verification_keys` table: every key ever issued, kept after it is
//! replaced so that a stale link is refused with its real reason. It holds
//! key ids only; a link's MAC needs the server secret.

use chrono::{DateTime, Utc};

use super::records::KeyRecord;
use super::verifications::SET_ROWS;
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

impl Tx {
    /// The set-wise form of [`Tx::insert_key`].
    pub(crate) async fn insert_keys(&mut self, keys: &[(&EmailKey, &Key)]) -> Result<()> {
        for part in keys.chunks(SET_ROWS) {
            on_tx!(self, conn, d => {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO verification_keys (key_id, email_key, issued_at, expires_at) ");
                qb.push_values(part, |mut b, (email_key, k)| {
                    b.push_bind(k.id.to_hex())
                        .push_bind(email_key.as_str())
                        .push_bind(k.issued_at)
                        .push_bind(k.expires_at);
                });
                qb.build().execute(&mut *conn).await?;
            });
        }
        Ok(())
    }

    /// Voids each key in `ids` still live, with one reason: the set-wise
    /// form of [`Tx::void_key`].
    pub(crate) async fn void_keys(
        &mut self,
        ids: &[&KeyId],
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for part in ids.chunks(SET_ROWS) {
            on_tx!(self, conn, d => {
                let mut qb = sqlx::QueryBuilder::new("UPDATE verification_keys SET voided_at = ");
                qb.push_bind(now)
                    .push(", void_reason = ")
                    .push_bind(reason)
                    .push(" WHERE voided_at IS NULL AND key_id IN (");
                let mut list = qb.separated(", ");
                for id in part {
                    list.push_bind(id.to_hex());
                }
                qb.push(")");
                qb.build().execute(&mut *conn).await?;
            });
        }
        Ok(())
    }

    /// For each (address, kept key): voids every other live key of the
    /// address. The set-wise form of [`Tx::void_keys_of`] with a key kept;
    /// key ids are unique, so keeping the set of kept keys over the set of
    /// addresses keeps exactly each address's own.
    pub(crate) async fn void_keys_superseded(
        &mut self,
        kept: &[(&EmailKey, &KeyId)],
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for part in kept.chunks(SET_ROWS) {
            on_tx!(self, conn, d => {
                let mut qb = sqlx::QueryBuilder::new("UPDATE verification_keys SET voided_at = ");
                qb.push_bind(now)
                    .push(", void_reason = ")
                    .push_bind(reason)
                    .push(" WHERE voided_at IS NULL AND email_key IN (");
                let mut list = qb.separated(", ");
                for (email_key, _) in part {
                    list.push_bind(email_key.as_str());
                }
                qb.push(") AND key_id NOT IN (");
                let mut list = qb.separated(", ");
                for (_, id) in part {
                    list.push_bind(id.to_hex());
                }
                qb.push(")");
                qb.build().execute(&mut *conn).await?;
            });
        }
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
