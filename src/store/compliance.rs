//! The transactions of the compliance rules (CONTRACT sections 7 and 8),
//! each one atomic with the events it causes: an address becoming Validated
//! (its domains released, its operations settled, evidence written), a
//! verification started anew, an expiry, deadline suspensions, and the
//! operations that restart verification or suspend at once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::records::OperationRecord;
use super::verifications::SET_ROWS;
use super::{on_tx, Store, Tx, VerificationWrite};
use crate::domain::suspension::deadline;
use crate::domain::{
    format_timestamp, DomainName, EmailKey, Event, EventType, Evidence, ExternalId, Method, Policy,
    Proof, Status, Verification,
};
use crate::{Error, Result};

/// Shown for a link whose address was sent back to verification.
pub const VOID_RESTARTED: &str = "a new verification of the address was started";

/// What an address becoming Validated did besides its own row.
#[derive(Debug, Clone)]
pub struct Validated {
    pub evidence: Evidence,
    /// Domains released from suspension.
    pub unsuspended: Vec<DomainName>,
    /// Operations settled `SUCCESSFUL`, as they now are.
    pub settled: Vec<OperationRecord>,
}

/// What recording an operation did to its domain's registrant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationEffect {
    None,
    /// An Expired registrant's address was sent back to verification.
    Restarted,
    /// A restored name was suspended at once.
    Suspended,
}

impl Tx {
    /// Every side effect of `v` having just become Validated, written in
    /// this transaction.
    pub(crate) async fn on_validated(
        &mut self,
        v: &Verification,
        proof: Proof,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<Validated> {
        let ids = self.address_contacts(&v.email_key).await?;
        let domains = self.address_domains(&v.email_key).await?;
        let unsuspended = self.stop_waiting_for_address(&v.email_key).await?;
        let settled = self.settle_address_operations(&v.email_key, now).await?;
        let evidence = Evidence::new(&v.email, ids.clone(), domains.clone(), now, proof);
        self.insert_evidence(&evidence).await?;
        let reason = match (&evidence.method, &evidence.reason) {
            (Method::Link, _) => {
                "the registrant confirmed the email address with the emailed link".to_string()
            }
            (Method::Manual, Some(r)) => format!("verified manually: {r}"),
            (Method::Manual, None) => "verified manually".to_string(),
            (Method::Import, _) => "imported as Validated".to_string(),
        };
        let delivered = !policy.hooks_configured;
        let validated = Event::new(
            EventType::ContactValidated,
            now,
            &v.email,
            ids.clone(),
            domains,
            reason,
        );
        self.insert_event(&validated, delivered, now).await?;
        if !unsuspended.is_empty() {
            let released = Event::new(
                EventType::DomainUnsuspended,
                now,
                &v.email,
                ids,
                unsuspended.clone(),
                "the registrant's email address is verified",
            );
            self.insert_event(&released, delivered, now).await?;
        }
        Ok(Validated {
            evidence,
            unsuspended,
            settled,
        })
    }

    /// Settles the open operations of an address's domains now that it is
    /// Validated (`domain::settle` decides each).
    async fn settle_address_operations(
        &mut self,
        email_key: &EmailKey,
        now: DateTime<Utc>,
    ) -> Result<Vec<OperationRecord>> {
        let open = self.open_operations_of_address(email_key).await?;
        let mut settled = Vec::new();
        for op in open {
            let Some(new) = op.settled_by(Some(Status::Validated), now) else {
                continue;
            };
            if self.update_operation(&op, &new).await? {
                settled.push(new);
            }
        }
        Ok(settled)
    }

    /// The contacts using an address, by external id.
    pub(crate) async fn address_contacts(
        &mut self,
        email_key: &EmailKey,
    ) -> Result<Vec<ExternalId>> {
        let ids: Vec<String> = on_tx!(self, conn, d => sqlx::query_scalar(
            "SELECT external_id FROM contacts WHERE email_key = $1 ORDER BY external_id")
            .bind(email_key.as_str())
            .fetch_all(&mut *conn)
            .await?);
        ids.into_iter().map(ExternalId::try_from).collect()
    }
}

/// The domains of every contact using each address in the list that
/// follows, by address then name (closed by [`ADDRESS_DOMAINS_ORDER`]).
pub(crate) const ADDRESS_DOMAINS: &str = "SELECT c.email_key, d.name FROM domains d \
     JOIN contacts c ON c.external_id = d.contact_external_id WHERE c.email_key IN (";
pub(crate) const ADDRESS_DOMAINS_ORDER: &str = ") ORDER BY c.email_key, d.name";

/// Rows of (address, value) as a map from each address to its values, in
/// the rows' order.
pub(crate) fn group_by_address<V>(rows: Vec<(String, String)>) -> Result<HashMap<EmailKey, Vec<V>>>
where
    V: TryFrom<String>,
    Error: From<V::Error>,
{
    let mut out: HashMap<EmailKey, Vec<V>> = HashMap::new();
    for (k, v) in rows {
        out.entry(EmailKey::try_from(k)?)
            .or_default()
            .push(V::try_from(v)?);
    }
    Ok(out)
}

impl Tx {
    /// The contacts using each of `keys`, by external id.
    pub(crate) async fn contacts_of_addresses(
        &mut self,
        keys: &[&EmailKey],
    ) -> Result<HashMap<EmailKey, Vec<ExternalId>>> {
        self.by_address(
            "SELECT email_key, external_id FROM contacts WHERE email_key IN (",
            ") ORDER BY email_key, external_id",
            keys,
        )
        .await
    }

    /// The domains of every contact using each of `keys`, by name.
    pub(crate) async fn domains_of_addresses(
        &mut self,
        keys: &[&EmailKey],
    ) -> Result<HashMap<EmailKey, Vec<DomainName>>> {
        self.by_address(ADDRESS_DOMAINS, ADDRESS_DOMAINS_ORDER, keys)
            .await
    }

    /// Runs `head` + the list of `keys` + `tail` (a query of (address,
    /// value) rows), one statement per [`SET_ROWS`] keys.
    async fn by_address<V>(
        &mut self,
        head: &str,
        tail: &str,
        keys: &[&EmailKey],
    ) -> Result<HashMap<EmailKey, Vec<V>>>
    where
        V: TryFrom<String>,
        Error: From<V::Error>,
    {
        let mut out: HashMap<EmailKey, Vec<V>> = HashMap::new();
        for part in keys.chunks(SET_ROWS) {
            let rows: Vec<(String, String)> = on_tx!(self, conn, d => {
                let mut qb = sqlx::QueryBuilder::new(head);
                let mut list = qb.separated(", ");
                for k in part {
                    list.push_bind(k.as_str());
                }
                qb.push(tail);
                qb.build_query_as().fetch_all(&mut *conn).await?
            });
            out.extend(group_by_address(rows)?);
        }
        Ok(out)
    }
}

impl Store {
    /// Writes `v` (just validated by the caller) if it is still at its
    /// version, with every effect of the validation, in one transaction.
    /// `None` if someone else changed the row first.
    pub async fn validate(
        &self,
        v: &mut Verification,
        proof: Proof,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<Option<Validated>> {
        let mut tx = self.begin().await?;
        if !tx
            .write_verification(VerificationWrite::Update(v), now, policy)
            .await?
        {
            tx.rollback().await?;
            return Ok(None);
        }
        let done = tx.on_validated(v, proof, now, policy).await?;
        tx.commit().await?;
        v.version += 1;
        Ok(Some(done))
    }

    /// Writes `v` (just restarted by the caller) if it is still at its
    /// version: its keys are voided and its domains that do not wait start
    /// waiting now. Returns false if someone else changed the row first.
    pub async fn restart_verification(
        &self,
        v: &mut Verification,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        if !tx.restart_in_tx(v, now, policy).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        v.version += 1;
        Ok(true)
    }

    /// Writes each of `vs` (just expired by the caller) that is still at its
    /// version, with its `contact_expired` event, in one transaction;
    /// returns those written, as written.
    pub async fn expire_batch(
        &self,
        vs: Vec<Verification>,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<Vec<Verification>> {
        let mut tx = self.begin().await?;
        let rows: Vec<&Verification> = vs.iter().collect();
        let written = tx.update_verifications(&rows, now, policy).await?;
        let keys: Vec<&EmailKey> = written.iter().collect();
        let mut ids = tx.contacts_of_addresses(&keys).await?;
        let mut domains = tx.domains_of_addresses(&keys).await?;
        let mut expired = Vec::with_capacity(written.len());
        let mut events = Vec::with_capacity(written.len());
        for mut v in vs {
            if !written.contains(&v.email_key) {
                continue;
            }
            let when = v
                .key
                .as_ref()
                .map(|k| format_timestamp(&k.expires_at))
                .unwrap_or_default();
            events.push(Event::new(
                EventType::ContactExpired,
                now,
                &v.email,
                ids.remove(&v.email_key).unwrap_or_default(),
                domains.remove(&v.email_key).unwrap_or_default(),
                format!("the verification link expired unconfirmed on {when}"),
            ));
            v.version += 1;
            expired.push(v);
        }
        tx.insert_events(&events, !policy.hooks_configured, now)
            .await?;
        tx.commit().await?;
        Ok(expired)
    }

    /// Suspends those of `names` (domains of one address) that are still due,
    /// with one `domain_suspended` event naming them; returns them.
    pub async fn suspend_due(
        &self,
        email_key: &EmailKey,
        names: &[DomainName],
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<Vec<DomainName>> {
        let mut tx = self.begin().await?;
        let Some(v) = tx.verification_for_update(email_key).await? else {
            tx.rollback().await?;
            return Ok(Vec::new());
        };
        if v.status == Status::Validated {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let mut suspended = Vec::new();
        for name in names {
            if tx.suspend_if_due(name, now).await? {
                suspended.push(name.clone());
            }
        }
        if !suspended.is_empty() {
            let ids = tx.address_contacts(email_key).await?;
            let event = Event::new(
                EventType::DomainSuspended,
                now,
                &v.email,
                ids,
                suspended.clone(),
                "the registrant did not confirm the email address before the deadline",
            );
            tx.insert_event(&event, !policy.hooks_configured, now)
                .await?;
        }
        tx.commit().await?;
        Ok(suspended)
    }

    /// Records an operation together with what it does to its registrant
    /// (CONTRACT section 7): a registration, transfer or registrant change on
    /// an Expired address starts a new verification; a restored name whose
    /// registrant is not Validated is suspended at once (when suspension is on).
    pub async fn add_operation(
        &self,
        op: &OperationRecord,
        registrant: Option<&mut Verification>,
        effect: OperationEffect,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<OperationEffect> {
        let mut tx = self.begin().await?;
        tx.insert_operation(op).await?;
        let done = match (effect, registrant) {
            (OperationEffect::Restarted, Some(v)) => {
                v.restart();
                if !tx.restart_in_tx(v, now, policy).await? {
                    tx.rollback().await?;
                    return Err(Error::unavailable(
                        "the registrant's verification changed meanwhile; try again",
                    ));
                }
                v.version += 1;
                OperationEffect::Restarted
            }
            (OperationEffect::Suspended, Some(v)) => {
                // Re-read under the lock: a confirmation that just landed
                // means the domain must not be touched.
                let still_unverified = tx
                    .verification_for_update(&v.email_key)
                    .await?
                    .is_some_and(|cur| cur.status != Status::Validated);
                if still_unverified && tx.suspend_domain(&op.domain_name, now).await? {
                    let ids = tx.address_contacts(&v.email_key).await?;
                    let event = Event::new(
                        EventType::DomainSuspended,
                        now,
                        &v.email,
                        ids,
                        vec![op.domain_name.clone()],
                        "restored name: the registrant's email address is not verified",
                    );
                    tx.insert_event(&event, !policy.hooks_configured, now)
                        .await?;
                    OperationEffect::Suspended
                } else {
                    OperationEffect::None
                }
            }
            _ => OperationEffect::None,
        };
        tx.commit().await?;
        Ok(done)
    }
}

impl Tx {
    pub(crate) async fn restart_in_tx(
        &mut self,
        v: &Verification,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<bool> {
        if !self
            .write_verification(VerificationWrite::Update(v), now, policy)
            .await?
        {
            return Ok(false);
        }
        self.void_keys_of(&v.email_key, None, VOID_RESTARTED, now)
            .await?;
        let due = deadline(now, policy.suspend_after, None);
        self.start_waiting_for_address(&v.email_key, now, due)
            .await?;
        Ok(true)
    }
}
