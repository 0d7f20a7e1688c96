//! The `verifications` table: one row per email address, written only by
//! [`Tx::write_verification`] (a compare-and-set on the row's version), read
//! by the sweep in `(due_at, email_key)` order.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::records::{DueRow, VerificationRow, VERIFICATION_COLUMNS};
use super::{on_tx, with_pool, Change, Store, Tx};
use crate::domain::{EmailKey, Policy, Verification};
use crate::Result;

/// Whose expired claims a sweep may take (see `liveness.rs`).
#[derive(Debug, Clone, Copy)]
pub struct ClaimView<'a> {
    /// This process's id: its own expired claims are always its to retake.
    pub me: &'a str,
    /// Whether this process has seen the database up long enough to judge
    /// other processes dead by their silence.
    pub take_others: bool,
    /// A process that beat after this is alive.
    pub live_since: DateTime<Utc>,
}

/// The three ways a verification row changes.
#[derive(Debug, Clone, Copy)]
pub enum VerificationWrite<'a> {
    /// A new address: inserted unless a row for it exists (returns whether
    /// it was inserted).
    Create(&'a Verification),
    /// The row as read at `version`, changed: written only if nobody else
    /// wrote it since (returns whether it was written).
    Update(&'a Verification),
    /// As `Update`, and the address counts as due from now (it was dormant).
    Redue(&'a Verification),
    /// The row as read at `version`, removed under the same condition.
    Remove(&'a Verification),
}

impl Tx {
    /// The only statement that writes a verification row.
    pub(crate) async fn write_verification(
        &mut self,
        write: VerificationWrite<'_>,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<bool> {
        let affected = on_tx!(self, conn, d => match write {
            VerificationWrite::Create(v) => sqlx::query(
                "INSERT INTO verifications (email_key, email, status, due_at, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 0, $5, $5) ON CONFLICT (email_key) DO NOTHING")
                .bind(v.email_key.as_str())
                .bind(v.email.as_str())
                .bind(v.status.as_str())
                .bind(v.next_due_at(now, policy))
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
            VerificationWrite::Update(v) | VerificationWrite::Redue(v) => {
                let key = v.key.as_ref();
                // An address already due keeps the moment it became due
                // (NextNotificationDate does not move with every write);
                // `Redue` restarts it.
                let keep_due_since = matches!(write, VerificationWrite::Update(_));
                sqlx::query(
                    "UPDATE verifications SET email = $2, status = $3, key_id = $4, key_issued_at = $5, \
                     key_expires_at = $6, last_notification_at = $7, reminder_day_covered = $8, \
                     expiry_notice_owed = $9, failures = $10, retry_at = $11, claim_owner = $12, \
                     claim_until = $13, validated_at = $14, \
                     bounce_code = $19, bounce_detail = $20, bounced_at = $21, \
                     due_at = CASE WHEN $18 AND $15 <= $16 AND due_at IS NOT NULL AND due_at <= $15 \
                         THEN due_at ELSE $15 END, \
                     version = version + 1, updated_at = $16 WHERE email_key = $1 AND version = $17",
                )
                .bind(v.email_key.as_str())
                .bind(v.email.as_str())
                .bind(v.status.as_str())
                .bind(key.map(|k| k.id.to_hex()))
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
                .bind(v.next_due_at(now, policy))
                .bind(now)
                .bind(v.version)
                .bind(keep_due_since)
                .bind(v.bounce.as_ref().map(|b| b.code.as_str()))
                .bind(v.bounce.as_ref().map(|b| b.detail.as_str()))
                .bind(v.bounce.as_ref().map(|b| b.at))
                .execute(&mut *conn)
                .await?
                .rows_affected()
            }
            VerificationWrite::Remove(v) => sqlx::query(
                "DELETE FROM verifications WHERE email_key = $1 AND version = $2")
                .bind(v.email_key.as_str())
                .bind(v.version)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
        });
        Ok(affected == 1)
    }

    /// The set-wise form of [`VerificationWrite::Create`] for addresses new
    /// to the store (imports), with their whole state; only the import path
    /// uses it, after checking that none of the addresses exists.
    pub(crate) async fn insert_verifications(
        &mut self,
        vs: impl Iterator<Item = &Verification>,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<()> {
        let vs: Vec<&Verification> = vs.collect();
        if vs.is_empty() {
            return Ok(());
        }
        on_tx!(self, conn, d => {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO verifications (email_key, email, status, key_id, key_issued_at, \
                 key_expires_at, last_notification_at, reminder_day_covered, expiry_notice_owed, \
                 failures, retry_at, claim_owner, claim_until, validated_at, bounce_code, \
                 bounce_detail, bounced_at, due_at, version, created_at, updated_at) ");
            qb.push_values(&vs, |mut b, v| {
                let key = v.key.as_ref();
                b.push_bind(v.email_key.as_str())
                    .push_bind(v.email.as_str())
                    .push_bind(v.status.as_str())
                    .push_bind(key.map(|k| k.id.to_hex()))
                    .push_bind(key.map(|k| k.issued_at))
                    .push_bind(key.map(|k| k.expires_at))
                    .push_bind(v.last_notification_at)
                    .push_bind(i64::from(v.reminder_day_covered))
                    .push_bind(v.expiry_notice_owed)
                    .push_bind(i64::from(v.failures))
                    .push_bind(v.retry_at)
                    .push_bind(v.claim_owner.as_deref())
                    .push_bind(v.claim_until)
                    .push_bind(v.validated_at)
                    .push_bind(v.bounce.as_ref().map(|b| b.code.clone()))
                    .push_bind(v.bounce.as_ref().map(|b| b.detail.clone()))
                    .push_bind(v.bounce.as_ref().map(|b| b.at))
                    .push_bind(v.next_due_at(now, policy))
                    .push_bind(v.version)
                    .push_bind(now)
                    .push_bind(now);
            });
            qb.build().execute(&mut *conn).await?;
        });
        Ok(())
    }

    /// The row of an address, locked for this transaction (Postgres; on
    /// SQLite `BEGIN IMMEDIATE` already holds the only write lock).
    pub(crate) async fn verification_for_update(
        &mut self,
        email_key: &EmailKey,
    ) -> Result<Option<Verification>> {
        let row: Option<VerificationRow> = on_tx!(self, conn, d => sqlx::query_as(&format!(
            "SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE email_key = $1{}", d::FOR_UPDATE))
            .bind(email_key.as_str())
            .fetch_optional(&mut *conn)
            .await?);
        row.map(VerificationRow::into_domain).transpose()
    }
}

/// Rows per set-wise statement: a few thousand bound values, well inside
/// both backends' limits on bind parameters.
pub(crate) const SET_ROWS: usize = 256;

impl Tx {
    /// The set-wise form of [`VerificationWrite::Update`], one statement per
    /// [`SET_ROWS`]: each row as read at its version, changed, written only
    /// if nobody else wrote it since. Returns the addresses written. A batch
    /// of emails is claimed and recorded with a handful of statements
    /// instead of several per email.
    pub(crate) async fn update_verifications(
        &mut self,
        vs: &[&Verification],
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<HashSet<EmailKey>> {
        let rows: Vec<(&Verification, Option<&str>)> = vs.iter().map(|v| (*v, None)).collect();
        self.update_verifications_held(&rows, now, policy).await
    }

    /// As [`Tx::update_verifications`], each row with an owner written only
    /// while that owner's claim is on the stored row as well: a row removed
    /// and created again since it was read can have reached the same
    /// version.
    pub(crate) async fn update_verifications_held(
        &mut self,
        vs: &[(&Verification, Option<&str>)],
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<HashSet<EmailKey>> {
        let mut written = HashSet::with_capacity(vs.len());
        for part in vs.chunks(SET_ROWS) {
            // The same columns and due-time rule as the one-row Update; the
            // new values come in as a VALUES table (`n.columnN` on both
            // backends).
            let keys: Vec<String> = on_tx!(self, conn, d => {
                let mut qb = sqlx::QueryBuilder::new(
                    "UPDATE verifications SET email = n.column2, status = n.column3, \
                     key_id = n.column4, key_issued_at = n.column5, key_expires_at = n.column6, \
                     last_notification_at = n.column7, reminder_day_covered = n.column8, \
                     expiry_notice_owed = n.column9, failures = n.column10, retry_at = n.column11, \
                     claim_owner = n.column12, claim_until = n.column13, validated_at = n.column14, \
                     bounce_code = n.column18, bounce_detail = n.column19, bounced_at = n.column20, \
                     due_at = CASE WHEN n.column15 <= n.column16 AND verifications.due_at IS NOT NULL \
                         AND verifications.due_at <= n.column15 \
                         THEN verifications.due_at ELSE n.column15 END, \
                     version = verifications.version + 1, updated_at = n.column16 FROM (");
                qb.push_values(part, |mut b, (v, held_by)| {
                    let key = v.key.as_ref();
                    b.push_bind(v.email_key.as_str())
                        .push_bind(v.email.as_str())
                        .push_bind(v.status.as_str())
                        .push_bind(key.map(|k| k.id.to_hex()))
                        .push_bind(key.map(|k| k.issued_at))
                        .push_bind(key.map(|k| k.expires_at))
                        .push_bind(v.last_notification_at)
                        .push_bind(i64::from(v.reminder_day_covered))
                        .push_bind(v.expiry_notice_owed)
                        .push_bind(i64::from(v.failures))
                        .push_bind(v.retry_at)
                        .push_bind(v.claim_owner.as_deref())
                        .push_bind(v.claim_until)
                        .push_bind(v.validated_at)
                        .push_bind(v.next_due_at(now, policy))
                        .push_bind(now)
                        .push_bind(v.version)
                        .push_bind(v.bounce.as_ref().map(|b| b.code.as_str()))
                        .push_bind(v.bounce.as_ref().map(|b| b.detail.as_str()))
                        .push_bind(v.bounce.as_ref().map(|b| b.at))
                        .push_bind(*held_by);
                });
                qb.push(") AS n WHERE verifications.email_key = n.column1 \
                         AND verifications.version = n.column17 \
                         AND (n.column21 IS NULL OR verifications.claim_owner = n.column21) \
                         RETURNING verifications.email_key");
                qb.build_query_scalar().fetch_all(&mut *conn).await?
            });
            for k in keys {
                written.insert(EmailKey::try_from(k)?);
            }
        }
        Ok(written)
    }

    /// The rows of `keys` that exist, locked for this transaction (Postgres
    /// locks them in key order, so two writers cannot deadlock on them).
    pub(crate) async fn verifications_for_update(
        &mut self,
        keys: &[&EmailKey],
    ) -> Result<HashMap<EmailKey, Verification>> {
        let mut out = HashMap::with_capacity(keys.len());
        for part in keys.chunks(SET_ROWS) {
            let rows: Vec<VerificationRow> = on_tx!(self, conn, d => {
                let mut qb = sqlx::QueryBuilder::new(format!(
                    "SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE email_key IN ("));
                let mut list = qb.separated(", ");
                for k in part {
                    list.push_bind(k.as_str());
                }
                qb.push(format!(") ORDER BY email_key{}", d::FOR_UPDATE));
                qb.build_query_as().fetch_all(&mut *conn).await?
            });
            for row in rows {
                let v = row.into_domain()?;
                out.insert(v.email_key.clone(), v);
            }
        }
        Ok(out)
    }
}

impl Store {
    pub async fn verification(&self, email_key: &EmailKey) -> Result<Option<Verification>> {
        with_pool!(self, pool, d => {
            let row: Option<VerificationRow> = sqlx::query_as(&format!(
                "SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE email_key = $1"))
                .bind(email_key.as_str())
                .fetch_optional(pool)
                .await?;
            row.map(VerificationRow::into_domain).transpose()
        })
    }

    /// Addresses whose next email waits out a retry after failed sends.
    pub async fn deferred_count(&self, now: DateTime<Utc>) -> Result<i64> {
        with_pool!(self, pool, d => Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM verifications WHERE retry_at IS NOT NULL AND retry_at > $1 \
             AND status <> 'Validated'")
            .bind(now)
            .fetch_one(pool)
            .await?))
    }

    /// When the sweep next has work at an address, as stored.
    pub async fn due_at(&self, email_key: &EmailKey) -> Result<Option<DateTime<Utc>>> {
        with_pool!(self, pool, d => Ok(sqlx::query_scalar(
            "SELECT due_at FROM verifications WHERE email_key = $1")
            .bind(email_key.as_str())
            .fetch_optional(pool)
            .await?
            .flatten()))
    }

    /// Verifications with work due at `now` that no live claim holds and that
    /// some contact with a domain uses (an address without domains is dormant:
    /// CONTRACT section 7), in `(due_at, email_key)` order after `after`.
    pub async fn due_verifications(
        &self,
        now: DateTime<Utc>,
        after: Option<&(DateTime<Utc>, EmailKey)>,
        limit: i64,
    ) -> Result<Vec<(DateTime<Utc>, Verification)>> {
        self.due_for(now, after, limit, None).await
    }

    /// As [`Store::due_verifications`], for a process that respects live
    /// owners: a claim past its lease is skipped while its owner's process
    /// beat since `claims.live_since`, and every other process's expired
    /// claim is skipped unless `claims.take_others`.
    pub async fn due_for(
        &self,
        now: DateTime<Utc>,
        after: Option<&(DateTime<Utc>, EmailKey)>,
        limit: i64,
        claims: Option<&ClaimView<'_>>,
    ) -> Result<Vec<(DateTime<Utc>, Verification)>> {
        let (respect, me, take_others, live_since) = match claims {
            Some(c) => (true, c.me, c.take_others, c.live_since),
            None => (false, "", true, now),
        };
        let (after_due, after_key) = match after {
            Some((t, k)) => (*t, k.as_str()),
            None => (DateTime::<Utc>::UNIX_EPOCH, ""),
        };
        with_pool!(self, pool, d => {
            let rows: Vec<DueRow> = sqlx::query_as(&format!(
                "SELECT due_at AS sweep_due_at, {VERIFICATION_COLUMNS} FROM verifications v \
                 WHERE v.due_at IS NOT NULL AND v.due_at <= $1 \
                   AND (v.due_at, v.email_key) > ($2, $3) \
                   AND (v.claim_until IS NULL OR v.claim_until <= $1) \
                   AND (NOT $5 OR v.claim_owner IS NULL OR v.claim_owner LIKE $6 || '/%' \
                        OR ($7 AND NOT EXISTS (SELECT 1 FROM workers w \
                            WHERE w.seen_at > $8 AND v.claim_owner LIKE w.id || '/%'))) \
                   AND EXISTS (SELECT 1 FROM contacts c JOIN domains dm \
                       ON dm.contact_external_id = c.external_id WHERE c.email_key = v.email_key) \
                 ORDER BY v.due_at, v.email_key LIMIT $4"))
                .bind(now)
                .bind(after_due)
                .bind(after_key)
                .bind(limit)
                .bind(respect)
                .bind(me)
                .bind(take_others)
                .bind(live_since)
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
        let mut tx = self.begin().await?;
        if !tx
            .write_verification(VerificationWrite::Update(v), now, policy)
            .await?
        {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(k) = change.new_key {
            tx.insert_key(&v.email_key, k).await?;
        }
        if let Some((key_id, reason)) = change.void_key {
            tx.void_key(key_id, reason, now).await?;
        }
        if let Some((keep, reason)) = change.void_other_keys {
            tx.void_keys_of(&v.email_key, Some(keep), reason, now)
                .await?;
        }
        if let Some(n) = change.notification {
            tx.save_notification(n).await?;
        }
        tx.commit().await?;
        v.version += 1;
        Ok(true)
    }
}
