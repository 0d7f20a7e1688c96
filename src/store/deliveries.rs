//! The transactions of email delivery, batched: claiming a chunk of
//! addresses (each with its fresh key and its `Started` record) in one
//! transaction, and recording the outcomes of a group of sends in one
//! transaction. The rules applied to each row are the domain's
//! (`Verification::claim`, `Verification::record_outcome`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::records::NotificationRecord;
use super::{with_pool, Store, VerificationWrite, VOID_SUPERSEDED, VOID_UNDELIVERED};
use crate::domain::verification::Key;
use crate::domain::{Bounce, DomainName, EmailKey, Notice, Policy, Verification};
use crate::Result;

/// Shown for a link whose email was claimed but never sent (a stop came first).
const VOID_NOT_SENT: &str = "the email carrying this link was not sent";

/// One address to claim for one email.
#[derive(Debug, Clone)]
pub struct Claim {
    /// As read; once claimed, as written.
    pub verification: Verification,
    pub notice: Notice,
    /// Recorded with the claim, before the email leaves: its link must work
    /// from the moment the registrant can have it.
    pub fresh_key: Option<Key>,
    pub note: NotificationRecord,
}

/// What became of one claimed email.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub email_key: EmailKey,
    pub owner: String,
    pub notice: Notice,
    pub fresh_key: Option<Key>,
    pub accepted: bool,
    /// False for a claimed email never handed to the relay (a stop came
    /// first): the claim is released and its record removed, as if never made.
    pub attempted: bool,
    /// The attempt's record, already marked succeeded or failed.
    pub note: NotificationRecord,
    /// The relay refused the address for good (a 5xx reply).
    pub bounce: Option<Bounce>,
}

impl Store {
    /// Claims every address still at the version read, for `owner`, in one
    /// transaction; returns the claims won, as written. The others were
    /// changed or claimed by someone else first and are left alone.
    pub async fn claim_batch(
        &self,
        claims: Vec<Claim>,
        owner: &str,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<Vec<Claim>> {
        let mut tx = self.begin().await?;
        let mut won = Vec::with_capacity(claims.len());
        for mut c in claims {
            c.verification.claim(owner, now, policy);
            if !tx
                .write_verification(VerificationWrite::Update(&c.verification), now, policy)
                .await?
            {
                continue;
            }
            c.verification.version += 1;
            if let Some(k) = &c.fresh_key {
                tx.insert_key(&c.verification.email_key, k).await?;
            }
            tx.save_notification(&c.note).await?;
            won.push(c);
        }
        tx.commit().await?;
        Ok(won)
    }

    /// Extends `owner`'s claim on an address by a lease from `now`; false
    /// (and nothing written) if the claim is no longer `owner`'s.
    pub async fn renew_claim(
        &self,
        email_key: &EmailKey,
        owner: &str,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let current = tx.verification_for_update(email_key).await?;
        let Some(mut cur) = current.filter(|c| c.is_claimed_by(owner) && c.is_claimed(now)) else {
            tx.rollback().await?;
            return Ok(false);
        };
        cur.claim(owner, now, policy);
        if !tx
            .write_verification(VerificationWrite::Update(&cur), now, policy)
            .await?
        {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records a group of outcomes in one transaction. An address whose
    /// claim is no longer the sender's (its contact moved away, or the lease
    /// ran out) keeps only the record of the attempt.
    pub async fn record_outcomes(
        &self,
        outcomes: &[Outcome],
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for o in outcomes {
            let current = tx.verification_for_update(&o.email_key).await?;
            if !o.attempted {
                if let Some(mut cur) = current.filter(|c| c.is_claimed_by(&o.owner)) {
                    cur.release();
                    tx.write_verification(VerificationWrite::Update(&cur), now, policy)
                        .await?;
                }
                if let Some(k) = &o.fresh_key {
                    tx.void_key(&k.id, VOID_NOT_SENT, now).await?;
                }
                tx.delete_notification(&o.note.id).await?;
                continue;
            }
            if let Some(mut cur) = current.filter(|c| c.is_claimed_by(&o.owner)) {
                let (superseding, undelivered) =
                    cur.record_outcome(o.notice, o.fresh_key.as_ref(), o.accepted, now, policy);
                if tx
                    .write_verification(VerificationWrite::Update(&cur), now, policy)
                    .await?
                {
                    if let Some(k) = &superseding {
                        tx.void_keys_of(&cur.email_key, Some(k), VOID_SUPERSEDED, now)
                            .await?;
                    }
                    if let Some(k) = &undelivered {
                        tx.void_key(k, VOID_UNDELIVERED, now).await?;
                    }
                }
            }
            tx.save_notification(&o.note).await?;
            if let Some(b) = &o.bounce {
                tx.record_bounce(&o.email_key, b, now, policy).await?;
            }
        }
        tx.commit().await
    }

    /// Every domain of every contact using each address, in one query: what
    /// a page of emails lists.
    pub async fn domains_of(
        &self,
        keys: &[EmailKey],
    ) -> Result<HashMap<EmailKey, Vec<DomainName>>> {
        let mut out: HashMap<EmailKey, Vec<DomainName>> = HashMap::new();
        if keys.is_empty() {
            return Ok(out);
        }
        let marks: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT c.email_key, d.name FROM domains d \
             JOIN contacts c ON c.external_id = d.contact_external_id \
             WHERE c.email_key IN ({}) ORDER BY c.email_key, d.name",
            marks.join(", ")
        );
        let rows: Vec<(String, String)> = with_pool!(self, pool, d => {
            let mut q = sqlx::query_as(&sql);
            for k in keys {
                q = q.bind(k.as_str());
            }
            q.fetch_all(pool).await?
        });
        for (k, name) in rows {
            out.entry(EmailKey::try_from(k)?)
                .or_default()
                .push(DomainName::try_from(name)?);
        }
        Ok(out)
    }
}
