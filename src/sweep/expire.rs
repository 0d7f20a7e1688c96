//! The expire pass: a `Pending` key past its validity makes the address
//! `Expired` (and, unless `verification.notify_on_expiry` is off, owes one
//! expiry notice, which the notify pass sends in the same sweep), with its
//! `contact_expired` event in the same transaction.

use chrono::{DateTime, Utc};

use crate::domain::{mask_email, Due, Policy, Verification};
use crate::store::Store;
use crate::Result;

/// A page split into what expires now and everything else.
#[derive(Debug, Default)]
pub(super) struct ExpirePlan {
    pub(super) to_expire: Vec<Verification>,
    pub(super) others: Vec<Verification>,
}

impl ExpirePlan {
    /// The verifications as they are once expired, without writing them
    /// (what a dry run goes on with).
    pub(super) fn applied(&self, p: &Policy) -> Vec<Verification> {
        self.to_expire
            .iter()
            .cloned()
            .map(|mut v| {
                v.expire(p);
                v
            })
            .collect()
    }
}

pub(super) fn plan(page: Vec<Verification>, now: DateTime<Utc>, p: &Policy) -> ExpirePlan {
    let (to_expire, others) = page
        .into_iter()
        .partition(|v| v.due(now, p) == Some(Due::Expire));
    ExpirePlan { to_expire, others }
}

/// What executing the plan did.
#[derive(Debug, Default)]
pub(super) struct Expired {
    /// Written, as they now are.
    pub(super) expired: Vec<Verification>,
    /// Changed by someone else first (a confirmation, another sweep).
    pub(super) lost: u64,
}

/// Expires the page's due addresses in one transaction.
pub(super) async fn execute(
    store: &Store,
    plan: &ExpirePlan,
    now: DateTime<Utc>,
    p: &Policy,
) -> Result<Expired> {
    let wanted = plan.to_expire.len() as u64;
    if wanted == 0 {
        return Ok(Expired::default());
    }
    let expired = store.expire_batch(plan.applied(p), now, p).await?;
    for v in &expired {
        tracing::info!(event = "contact_expired", email = %mask_email(v.email.as_str()),
            "verification key expired unconfirmed");
    }
    Ok(Expired {
        lost: wanted - expired.len() as u64,
        expired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ContactEmail, Notice, Status};
    use chrono::Duration;

    use crate::domain::testing::t0;

    fn pending(addr: &str, p: &Policy) -> Verification {
        let mut v = Verification::new(&ContactEmail::parse(addr).unwrap());
        v.install_key(Verification::prepare_key(t0(), p));
        v.sent(Notice::Verification, t0());
        v
    }

    #[test]
    fn only_keys_past_their_expiry_are_planned_to_expire() {
        let p = Policy::default();
        let old = pending("old@example.com", &p);
        let mut young = pending("young@example.com", &p);
        young.key.as_mut().unwrap().expires_at = t0() + Duration::days(90);
        let plan = plan(vec![old, young], t0() + Duration::days(60), &p);
        assert_eq!(plan.to_expire.len(), 1);
        assert_eq!(plan.to_expire[0].email.as_str(), "old@example.com");
        assert_eq!(plan.others.len(), 1);
    }

    #[test]
    fn an_applied_plan_is_expired_and_owes_the_notice_as_configured() {
        for notify in [true, false] {
            let p = Policy {
                notify_on_expiry: notify,
                ..Policy::default()
            };
            let plan = plan(
                vec![pending("a@example.com", &p)],
                t0() + Duration::days(61),
                &p,
            );
            let applied = plan.applied(&p);
            assert_eq!(applied[0].status, Status::Expired);
            assert_eq!(applied[0].expiry_notice_owed, notify);
            // The plan itself is untouched: a dry run writes nothing back.
            assert_eq!(plan.to_expire[0].status, Status::Pending);
        }
    }
}
