//! ResendContactVerificationNotice and ResendContactReachabilityEmail:
//! delivered now, not queued, within the daily limit.

use super::{ContactSelector, DomainResend, ResendOutcome, Verifier, RACE_ATTEMPTS};
use crate::delivery::{Delivery, Job};
use crate::domain::verification::ResendPlan;
use crate::{Error, ErrorCode, Result};

impl Verifier {
    /// ResendContactVerificationNotice: delivered now, not queued. Already
    /// validated -> no email; pending -> the current link again; otherwise a
    /// fresh key. More than the daily limit -> OperationLimitExceeded.
    pub async fn resend(&self, selector: &ContactSelector) -> Result<ResendOutcome> {
        let owner = self.liveness.owner("resend");
        for _ in 0..RACE_ATTEMPTS {
            let contact = self.find_contact(selector).await?;
            let now = self.now();
            let Some(v) = self.store.verification(&contact.email_key).await? else {
                // The contact moved to another address after it was read,
                // and the old address's record went (schemathesis found
                // this as a 500): read the contact again.
                continue;
            };
            let plan = v.resend_plan(now);
            if plan == ResendPlan::AlreadyVerified {
                return Ok(ResendOutcome {
                    details: self.details(&contact).await?,
                    notification: None,
                });
            }
            let limit = i64::from(self.settings.verification.resend_limit_per_day);
            let recent = self
                .store
                .resends_since(&contact.email_key, now - chrono::Duration::hours(24))
                .await?;
            if recent >= limit {
                return Err(Error::new(
                    ErrorCode::OperationLimitExceeded,
                    format!("{recent} verification emails were resent to this address in the last 24 hours (limit {limit}); try again later"),
                ));
            }
            if v.is_claimed(now) {
                // A sweep is mailing this address right now; wait for it.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
            match self
                .courier()?
                .deliver(&v, Job::resend(plan), &owner)
                .await?
            {
                Delivery::Skipped => continue,
                Delivery::Sent(note) => {
                    return Ok(ResendOutcome {
                        details: self.details(&contact).await?,
                        notification: Some(note),
                    })
                }
                Delivery::Failed(_, e) => {
                    return Err(Error::unavailable(format!(
                        "the SMTP server did not accept the message ({}): {}",
                        e.code, e.detail
                    )))
                }
            }
        }
        Err(Error::unavailable(
            "another delivery to this address is in progress; try again shortly",
        ))
    }

    /// ResendContactReachabilityEmail for a domain's registrant.
    pub async fn resend_for_domain(&self, name: &str) -> Result<DomainResend> {
        let domain = self.parse_domain(name)?;
        let contact = self.registrant(&domain).await?;
        let outcome = self
            .resend(&ContactSelector::ExternalId(contact.external_id.clone()))
            .await?;
        Ok(DomainResend {
            domain_name: domain,
            email_address: contact.email,
            is_already_verified: outcome.notification.is_none(),
        })
    }
}
