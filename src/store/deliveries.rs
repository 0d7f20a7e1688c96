//! The transactions of email delivery, batched: claiming a chunk of
//! addresses (each with its fresh key and its `Started` record) in one
//! transaction, and recording the outcomes of a group of sends in one
//! transaction. The rules applied to each row are the domain's
//! (`Verification::claim`, `Verification::record_outcome`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::compliance::{group_by_address, ADDRESS_DOMAINS, ADDRESS_DOMAINS_ORDER};
use super::records::NotificationRecord;
use super::{with_pool, Store, VerificationWrite, VOID_SUPERSEDED, VOID_UNDELIVERED};
use crate::domain::verification::Key;
use crate::domain::{Bounce, DomainName, EmailKey, KeyId, Notice, Policy, Verification};
use crate::{Error, Result};

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
    /// The address as the claim wrote it: while the stored row is still at
    /// this version, the outcome is applied to it without reading it back.
    pub claimed: Verification,
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
    /// transaction of a few set-wise statements; returns the claims won, as
    /// written. The others were changed or claimed by someone else first and
    /// are left alone.
    pub async fn claim_batch(
        &self,
        mut claims: Vec<Claim>,
        owner: &str,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<Vec<Claim>> {
        for c in &mut claims {
            c.verification.claim(owner, now, policy);
        }
        let mut tx = self.begin().await?;
        let rows: Vec<&Verification> = claims.iter().map(|c| &c.verification).collect();
        let written = tx.update_verifications(&rows, now, policy).await?;
        let won: Vec<Claim> = claims
            .into_iter()
            .filter(|c| written.contains(&c.verification.email_key))
            .map(|mut c| {
                c.verification.version += 1;
                c
            })
            .collect();
        let keys: Vec<(&EmailKey, &Key)> = won
            .iter()
            .filter_map(|c| c.fresh_key.as_ref().map(|k| (&c.verification.email_key, k)))
            .collect();
        tx.insert_keys(&keys).await?;
        let notes: Vec<&NotificationRecord> = won.iter().map(|c| &c.note).collect();
        tx.save_notifications(&notes).await?;
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

    /// Records a group of outcomes in one transaction, a few set-wise
    /// statements for the whole group. Each address is changed from its
    /// state as claimed, written only if the row is still at that version;
    /// the few that moved meanwhile (a renewed claim, a changed contact) are
    /// read back under lock and changed from what they are. An address
    /// whose claim is no longer the sender's (its contact moved away, or the
    /// lease ran out) keeps only the record of the attempt.
    pub async fn record_outcomes(
        &self,
        outcomes: &[Outcome],
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut claimed: HashMap<EmailKey, Verification> = HashMap::new();
        for o in outcomes {
            claimed
                .entry(o.email_key.clone())
                .or_insert_with(|| o.claimed.clone());
        }
        let owners: HashMap<&EmailKey, &str> = outcomes
            .iter()
            .rev()
            .map(|o| (&o.email_key, o.owner.as_str()))
            .collect();
        let mut effects = apply_outcomes(&mut claimed, outcomes, now, policy);
        let rows: Vec<(&Verification, Option<&str>)> = effects
            .changed
            .iter()
            .filter_map(|k| claimed.get(k).map(|v| (v, owners.get(k).copied())))
            .collect();
        let written = tx.update_verifications_held(&rows, now, policy).await?;
        let moved: Vec<&EmailKey> = effects
            .changed
            .iter()
            .filter(|k| !written.contains(*k))
            .collect();
        if !moved.is_empty() {
            let mut current = tx.verifications_for_update(&moved).await?;
            let theirs: Vec<Outcome> = outcomes
                .iter()
                .filter(|o| moved.contains(&&o.email_key))
                .cloned()
                .collect();
            let again = apply_outcomes(&mut current, &theirs, now, policy);
            let rows: Vec<&Verification> = again
                .changed
                .iter()
                .filter_map(|k| current.get(k))
                .collect();
            if tx.update_verifications(&rows, now, policy).await?.len() != rows.len() {
                // The rows are locked by this transaction: nobody can have moved them.
                return Err(Error::internal("a claimed address changed under its lock"));
            }
            effects.superseding.retain(|(k, _)| written.contains(k));
            effects.undelivered.retain(|(k, _)| written.contains(k));
            effects.superseding.extend(again.superseding);
            effects.undelivered.extend(again.undelivered);
        }
        let kept: Vec<(&EmailKey, &KeyId)> =
            effects.superseding.iter().map(|(e, k)| (e, k)).collect();
        tx.void_keys_superseded(&kept, VOID_SUPERSEDED, now).await?;
        let refused: Vec<&KeyId> = effects.undelivered.iter().map(|(_, k)| k).collect();
        tx.void_keys(&refused, VOID_UNDELIVERED, now).await?;
        let not_sent: Vec<&KeyId> = outcomes
            .iter()
            .filter(|o| !o.attempted)
            .filter_map(|o| o.fresh_key.as_ref().map(|k| &k.id))
            .collect();
        tx.void_keys(&not_sent, VOID_NOT_SENT, now).await?;
        let unmade: Vec<&str> = outcomes
            .iter()
            .filter(|o| !o.attempted)
            .map(|o| o.note.id.as_str())
            .collect();
        tx.delete_notifications(&unmade).await?;
        let notes: Vec<&NotificationRecord> = outcomes
            .iter()
            .filter(|o| o.attempted)
            .map(|o| &o.note)
            .collect();
        tx.save_notifications(&notes).await?;
        for o in outcomes {
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
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let marks: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "{ADDRESS_DOMAINS}{}{ADDRESS_DOMAINS_ORDER}",
            marks.join(", ")
        );
        let rows: Vec<(String, String)> = with_pool!(self, pool, d => {
            let mut q = sqlx::query_as(&sql);
            for k in keys {
                q = q.bind(k.as_str());
            }
            q.fetch_all(pool).await?
        });
        group_by_address(rows)
    }
}

/// What applying a group's outcomes changed, and the keys to void once the
/// changes are written.
#[derive(Debug, Default)]
struct Applied {
    /// Addresses changed, sorted.
    changed: Vec<EmailKey>,
    /// A fresh key accepted: every other key of its address is void.
    superseding: Vec<(EmailKey, KeyId)>,
    /// A fresh key whose email the relay refused.
    undelivered: Vec<(EmailKey, KeyId)>,
}

/// Applies each outcome to its address in `rows` (the domain's rules:
/// `Verification::record_outcome`, or the claim released for an email never
/// sent), where the address is still the sender's.
fn apply_outcomes(
    rows: &mut HashMap<EmailKey, Verification>,
    outcomes: &[Outcome],
    now: DateTime<Utc>,
    policy: &Policy,
) -> Applied {
    let mut out = Applied::default();
    for o in outcomes {
        let Some(cur) = rows
            .get_mut(&o.email_key)
            .filter(|c| c.is_claimed_by(&o.owner))
        else {
            continue;
        };
        if o.attempted {
            let (supersedes, refused) =
                cur.record_outcome(o.notice, o.fresh_key.as_ref(), o.accepted, now, policy);
            out.superseding
                .extend(supersedes.map(|k| (o.email_key.clone(), k)));
            out.undelivered
                .extend(refused.map(|k| (o.email_key.clone(), k)));
        } else {
            cur.release();
        }
        out.changed.push(o.email_key.clone());
    }
    out.changed.sort();
    out.changed.dedup();
    out
}
