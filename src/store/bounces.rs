//! Hard bounces (CONTRACT section 7), each written with its `email_bounced`
//! event in one transaction: from a relay's 5xx refusal (with the outcome of
//! the send) or from delivery status notifications (many at once).

use chrono::{DateTime, Utc};

use super::{Store, Tx, VerificationWrite};
use crate::domain::{
    Bounce, ContactEmail, DomainName, EmailKey, Event, EventType, ExternalId, Policy,
};
use crate::{Error, Result};

/// What recording one bounce did.
#[derive(Debug, Clone)]
pub struct BounceRecorded {
    pub email: ContactEmail,
    pub external_ids: Vec<ExternalId>,
    pub domains: Vec<DomainName>,
    /// A Validated address was sent back to verification.
    pub restarted: bool,
}

impl Tx {
    /// Marks an address bounced; `None` when no contact uses it (an address
    /// the product does not know, or no longer).
    pub(crate) async fn record_bounce(
        &mut self,
        key: &EmailKey,
        bounce: &Bounce,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<Option<BounceRecorded>> {
        let Some(mut v) = self.verification_for_update(key).await? else {
            return Ok(None);
        };
        let external_ids = self.address_contacts(key).await?;
        if external_ids.is_empty() {
            return Ok(None);
        }
        let restarted = v.bounced(bounce.clone(), policy.reverify_on_bounce);
        let written = if restarted {
            self.restart_in_tx(&v, now, policy).await?
        } else {
            self.write_verification(VerificationWrite::Update(&v), now, policy)
                .await?
        };
        if !written {
            // The row is locked by this transaction: nobody can have moved it.
            return Err(Error::internal("a bounced address changed under its lock"));
        }
        let domains = self.address_domains(key).await?;
        let event = Event::new(
            EventType::EmailBounced,
            now,
            &v.email,
            external_ids.clone(),
            domains.clone(),
            bounce.reason(),
        );
        self.insert_event(&event, !policy.hooks_configured, now)
            .await?;
        Ok(Some(BounceRecorded {
            email: v.email,
            external_ids,
            domains,
            restarted,
        }))
    }
}

impl Store {
    /// Records the bounces of one delivery status notification in one
    /// transaction; one answer per bounce, `None` for an unknown address.
    pub async fn record_bounces(
        &self,
        bounces: &[(EmailKey, Bounce)],
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<Vec<Option<BounceRecorded>>> {
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(bounces.len());
        for (key, bounce) in bounces {
            out.push(tx.record_bounce(key, bounce, now, policy).await?);
        }
        tx.commit().await?;
        Ok(out)
    }
}
