//! The notify pass: every address with an email due gets it (the initial
//! verification email, the latest reminder, the expiry notice), each
//! delivered by the courier under its own claim, up to
//! `smtp.max_connections` at once. Rows whose stored due time was stale get
//! the right one.

use chrono::{DateTime, Utc};

use super::{StopSignal, SweepSummary};
use crate::delivery::{Courier, Delivery, Job};
use crate::domain::{Due, Notice, Policy, Verification};
use crate::store::{Change, Store};
use crate::{ErrorCode, Result};

#[derive(Debug, Default)]
pub(super) struct NotifyPlan {
    pub(super) sends: Vec<(Verification, Notice)>,
    /// Nothing due after all: the stored due time is rewritten.
    pub(super) stale: Vec<Verification>,
}

impl NotifyPlan {
    /// Counts the plan as if every email were accepted (a dry run).
    pub(super) fn count(&self, summary: &mut SweepSummary) {
        for (_, notice) in &self.sends {
            count_sent(summary, *notice);
        }
    }
}

pub(super) fn plan(
    vs: impl IntoIterator<Item = Verification>,
    now: DateTime<Utc>,
    p: &Policy,
) -> NotifyPlan {
    let mut plan = NotifyPlan::default();
    for v in vs {
        match v.due(now, p) {
            Some(Due::Send(notice)) => plan.sends.push((v, notice)),
            // The expire pass ran first; what it could not write waits for
            // the next sweep.
            Some(Due::Expire) => {}
            None => plan.stale.push(v),
        }
    }
    plan
}

/// What executing the plan did.
#[derive(Debug, Default)]
pub(super) struct Notified {
    sent: Vec<Notice>,
    failed: u64,
}

impl Notified {
    pub(super) fn count(&self, summary: &mut SweepSummary) {
        for notice in &self.sent {
            count_sent(summary, *notice);
        }
        summary.failed += self.failed;
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn execute(
    courier: &Courier,
    store: &Store,
    plan: NotifyPlan,
    owner: &str,
    stop: &StopSignal,
    concurrency: usize,
    now: DateTime<Utc>,
    p: &Policy,
) -> Result<Notified> {
    let mut done = Notified::default();
    for mut v in plan.stale {
        match store.commit(&mut v, &Change::default(), now, p).await {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::Unavailable => return Err(e),
            Err(e) => done.item_failed(&e),
        }
    }
    let chunk = chunk_size(concurrency, p);
    let mut sends = plan.sends;
    while !sends.is_empty() {
        if stop.is_stopped() {
            break;
        }
        let rest = sends.split_off(chunk.min(sends.len()));
        let jobs: Vec<(Verification, Job)> = sends
            .into_iter()
            .map(|(v, notice)| (v, Job::scheduled(notice)))
            .collect();
        sends = rest;
        match courier.deliver_batch(jobs, owner, concurrency, stop).await {
            Ok(results) => {
                for (notice, delivery) in results {
                    match delivery {
                        Delivery::Sent(_) => done.sent.push(notice),
                        Delivery::Failed(..) => done.failed += 1,
                        Delivery::Skipped => {}
                    }
                }
            }
            Err(e) if e.code == ErrorCode::Unavailable => return Err(e),
            Err(e) => done.item_failed(&e),
        }
    }
    Ok(done)
}

impl Notified {
    fn item_failed(&mut self, e: &crate::Error) {
        self.failed += 1;
        tracing::error!(event = "sweep_item_failed", error = %e, "one address could not be processed");
    }
}

/// How many addresses to claim at once. A send whose claim could run out
/// before it ends renews it first (`Courier`), so with a lease that covers
/// one whole send a chunk can be large: fewer transactions. With a shorter
/// lease (allowed by the configuration, not advised) a renewal cannot cover
/// a send, so only what goes out at once is claimed.
fn chunk_size(concurrency: usize, p: &Policy) -> usize {
    if p.claim_lease >= p.send_bound {
        (concurrency * 16).max(64)
    } else {
        concurrency.max(1)
    }
}

fn count_sent(summary: &mut SweepSummary, notice: Notice) {
    match notice {
        Notice::Verification | Notice::Resend => summary.initial_sent += 1,
        Notice::Reminder { .. } => summary.reminders_sent += 1,
        Notice::ExpiryNotice => summary.expiry_notices_sent += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ContactEmail;
    use chrono::Duration;

    use crate::domain::testing::t0;

    fn address(a: &str) -> Verification {
        Verification::new(&ContactEmail::parse(a).unwrap())
    }

    #[test]
    fn each_address_gets_the_notice_it_is_due_and_nothing_due_is_stale() {
        let p = Policy::default();
        let new = address("new@example.com");
        let mut reminded = address("r@example.com");
        reminded.install_key(Verification::prepare_key(t0(), &p));
        reminded.sent(Notice::Verification, t0());
        let mut done = address("v@example.com");
        done.validate(t0());
        let plan = plan(vec![new, reminded, done], t0() + Duration::days(8), &p);
        let notices: Vec<Notice> = plan.sends.iter().map(|(_, n)| *n).collect();
        assert_eq!(
            notices,
            vec![Notice::Verification, Notice::Reminder { day: 7 }]
        );
        assert_eq!(plan.stale.len(), 1);
        let mut summary = SweepSummary::default();
        plan.count(&mut summary);
        assert_eq!((summary.initial_sent, summary.reminders_sent), (1, 1));
    }

    #[test]
    fn chunks_are_large_when_a_renewed_claim_covers_a_send_and_small_when_not() {
        let covered = Policy {
            claim_lease: Duration::seconds(900),
            send_bound: Duration::seconds(843),
            ..Policy::default()
        };
        assert_eq!(chunk_size(4, &covered), 64);
        assert_eq!(chunk_size(8, &covered), 128);
        let tight = Policy {
            claim_lease: Duration::seconds(4),
            send_bound: Duration::seconds(72),
            ..Policy::default()
        };
        assert_eq!(chunk_size(4, &tight), 4, "only what goes out at once");
    }

    #[test]
    fn an_address_waiting_out_its_retry_is_not_planned() {
        let p = Policy::default();
        let mut v = address("a@example.com");
        v.send_failed(t0(), &p);
        let plan = plan(vec![v], t0() + Duration::seconds(30), &p);
        assert!(plan.sends.is_empty());
    }
}
