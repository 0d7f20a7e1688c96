//! The `evidence` table: one record per validation, written in the
//! validation's transaction and never changed (CONTRACT section 7).

use chrono::{DateTime, Utc};

use super::records::{EvidenceRow, EVIDENCE_COLUMNS};
use super::{on_tx, with_pool, Store, Tx};
use crate::domain::{EmailKey, Evidence, KeyId};
use crate::Result;

fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

impl Tx {
    pub(crate) async fn insert_evidence(&mut self, e: &Evidence) -> Result<()> {
        on_tx!(self, conn, d => sqlx::query(&format!(
            "INSERT INTO evidence (email_key, {EVIDENCE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"))
            .bind(e.contact_email.key().as_str())
            .bind(&e.id)
            .bind(e.contact_email.as_str())
            .bind(json_list(&e.external_ids))
            .bind(json_list(&e.domains))
            .bind(e.validated_at)
            .bind(e.method.as_str())
            .bind(e.key_id.as_ref().map(KeyId::to_hex))
            .bind(e.key_issued_at)
            .bind(e.client_ip.as_deref())
            .bind(e.user_agent.as_deref())
            .bind(e.reason.as_deref())
            .bind(e.by.as_deref())
            .execute(&mut *conn)
            .await?
            .rows_affected());
        Ok(())
    }
}

impl Tx {
    /// The set-wise form of [`Tx::insert_evidence`], for imports.
    pub(crate) async fn insert_evidence_many(&mut self, records: &[Evidence]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        on_tx!(self, conn, d => {
            let mut qb = sqlx::QueryBuilder::new(format!(
                "INSERT INTO evidence (email_key, {EVIDENCE_COLUMNS}) "));
            qb.push_values(records, |mut b, e| {
                b.push_bind(e.contact_email.key().to_string())
                    .push_bind(e.id.as_str())
                    .push_bind(e.contact_email.as_str())
                    .push_bind(json_list(&e.external_ids))
                    .push_bind(json_list(&e.domains))
                    .push_bind(e.validated_at)
                    .push_bind(e.method.as_str())
                    .push_bind(e.key_id.as_ref().map(KeyId::to_hex))
                    .push_bind(e.key_issued_at)
                    .push_bind(e.client_ip.as_deref())
                    .push_bind(e.user_agent.as_deref())
                    .push_bind(e.reason.as_deref())
                    .push_bind(e.by.as_deref());
            });
            qb.build().execute(&mut *conn).await?;
        });
        Ok(())
    }
}

impl Store {
    /// An address's evidence, newest first.
    pub async fn evidence_of(&self, email_key: &EmailKey, limit: i64) -> Result<Vec<Evidence>> {
        with_pool!(self, pool, d => {
            let rows: Vec<EvidenceRow> = sqlx::query_as(&format!(
                "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE email_key = $1 \
                 ORDER BY validated_at DESC, id DESC LIMIT $2"))
                .bind(email_key.as_str())
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(EvidenceRow::into_domain).collect()
        })
    }

    /// One page of every record with `since <= validated_at < until`, in
    /// `(validated_at, id)` order after `after`: exports page through it so
    /// memory stays flat however many records there are.
    pub async fn evidence_page(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<&(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<Evidence>> {
        let (after_t, after_id) = match after {
            Some((t, id)) => (*t, id.as_str()),
            None => (since, ""),
        };
        with_pool!(self, pool, d => {
            let rows: Vec<EvidenceRow> = sqlx::query_as(&format!(
                "SELECT {EVIDENCE_COLUMNS} FROM evidence \
                 WHERE validated_at >= $1 AND validated_at < $2 \
                   AND (validated_at > $3 OR (validated_at = $3 AND id > $4)) \
                 ORDER BY validated_at, id LIMIT $5"))
                .bind(since)
                .bind(until)
                .bind(after_t)
                .bind(after_id)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(EvidenceRow::into_domain).collect()
        })
    }
}
