//! One sweep: find the addresses with work due, expire keys past their
//! validity, send initial emails, reminders and expiry notices (each under a
//! database claim, so concurrent sweeps never mail twice), then settle the
//! domain operations that wait on registrants.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;

use crate::delivery::{Delivery, Job};
use crate::domain::verification::{Due, Sent, Verification};
use crate::domain::{mask_email, settle};
use crate::mail::MailKind;
use crate::service::Verifier;
use crate::store::{operation_type, reason, Change, OperationRecord};
use crate::{ErrorCode, Result};

/// Addresses read per page.
const BATCH: i64 = 200;

/// The summary `sweep` prints and `sweep_finished` logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepSummary {
    pub expired: u64,
    pub initial_sent: u64,
    pub reminders_sent: u64,
    pub expiry_notices_sent: u64,
    pub failed: u64,
    pub operations_updated: u64,
    pub duration_ms: u64,
}

impl SweepSummary {
    fn add(&mut self, o: SweepSummary) {
        self.expired += o.expired;
        self.initial_sent += o.initial_sent;
        self.reminders_sent += o.reminders_sent;
        self.expiry_notices_sent += o.expiry_notices_sent;
        self.failed += o.failed;
    }
}

/// Tells a running sweep to stop starting new emails (SIGTERM): emails in
/// flight finish and are recorded.
#[derive(Clone)]
pub struct StopSignal(Option<watch::Receiver<bool>>);

impl StopSignal {
    pub fn never() -> Self {
        StopSignal(None)
    }

    pub fn new(rx: watch::Receiver<bool>) -> Self {
        StopSignal(Some(rx))
    }

    pub fn is_stopped(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Resolves once a stop is requested (never, for [`StopSignal::never`]).
    pub async fn wait(&mut self) {
        match &mut self.0 {
            Some(rx) => {
                let _ = rx.wait_for(|s| *s).await;
            }
            None => std::future::pending().await,
        }
    }
}

impl Verifier {
    /// Runs one sweep. With `dry_run` it counts what it would do and changes
    /// and sends nothing.
    #[tracing::instrument(skip_all, fields(dry_run))]
    pub async fn sweep(&self, dry_run: bool, stop: &StopSignal) -> Result<SweepSummary> {
        let started = Instant::now();
        tracing::info!(event = "sweep_started", dry_run, "sweep started");
        let owner = format!("sweep-{}", uuid::Uuid::new_v4().simple());
        let now = self.now();
        let concurrency = self.settings.smtp.max_connections.max(1) as usize;
        let mut summary = SweepSummary::default();
        // A dry run changes nothing, so it remembers which addresses it would
        // have expired, to settle their operations as the real sweep would.
        let would_expire = std::sync::Mutex::new(HashSet::new());
        let mut cursor: Option<(DateTime<Utc>, String)> = None;
        while !stop.is_stopped() {
            let page = self
                .store
                .due_verifications(now, cursor.as_ref(), BATCH)
                .await?;
            let Some((due, last)) = page.last() else {
                break;
            };
            cursor = Some((*due, last.email_key.clone()));
            let results: Vec<Result<SweepSummary>> = futures::stream::iter(page)
                .map(|(_, v)| self.sweep_one(v, now, dry_run, &owner, stop, &would_expire))
                .buffer_unordered(concurrency)
                .collect()
                .await;
            for r in results {
                match r {
                    Ok(tally) => summary.add(tally),
                    Err(e) if e.code == ErrorCode::Unavailable => return Err(e),
                    Err(e) => {
                        summary.failed += 1;
                        tracing::error!(event = "sweep_item_failed", error = %e, "one address could not be processed");
                    }
                }
            }
        }
        if !stop.is_stopped() {
            let would_expire = would_expire.into_inner().unwrap_or_else(|e| e.into_inner());
            summary.operations_updated = self.settle_operations(dry_run, &would_expire).await?;
        }
        summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            event = "sweep_finished",
            dry_run,
            stopped_early = stop.is_stopped(),
            expired = summary.expired,
            initial_sent = summary.initial_sent,
            reminders_sent = summary.reminders_sent,
            expiry_notices_sent = summary.expiry_notices_sent,
            failed = summary.failed,
            operations_updated = summary.operations_updated,
            duration_ms = summary.duration_ms,
            "sweep finished"
        );
        Ok(summary)
    }

    async fn sweep_one(
        &self,
        v: Verification,
        now: DateTime<Utc>,
        dry_run: bool,
        owner: &str,
        stop: &StopSignal,
        would_expire: &std::sync::Mutex<HashSet<String>>,
    ) -> Result<SweepSummary> {
        let mut tally = SweepSummary::default();
        let Some(due) = v.due(now, &self.policy) else {
            if !dry_run {
                // The stored due time was stale: store the right one.
                let mut v = v;
                self.store
                    .commit(&mut v, &Change::default(), now, &self.policy)
                    .await?;
            }
            return Ok(tally);
        };
        let mut v = v;
        if due == Due::Expire {
            tally.expired = 1;
            if dry_run {
                tally.expiry_notices_sent = u64::from(self.policy.notify_on_expiry);
                would_expire
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(v.email_key.clone());
                return Ok(tally);
            }
            v.expire(&self.policy);
            if !self
                .store
                .commit(&mut v, &Change::default(), now, &self.policy)
                .await?
            {
                return Ok(SweepSummary::default());
            }
            tracing::info!(event = "contact_expired", email = %mask_email(&v.email),
                "verification key expired unconfirmed");
            if v.due(now, &self.policy) != Some(Due::ExpiryNotice) {
                return Ok(tally);
            }
        }
        let due = v.due(now, &self.policy);
        let job = match due {
            Some(Due::Initial) => Job {
                kind: MailKind::Verification,
                operation_type: operation_type::VERIFICATION,
                reason: reason::INITIAL.into(),
                new_key: true,
                backoff_on_failure: true,
                sent: Sent::Verification,
            },
            Some(Due::Reminder { day }) => Job {
                kind: MailKind::Reminder,
                operation_type: operation_type::REMINDER,
                reason: reason::reminder(day),
                new_key: false,
                backoff_on_failure: true,
                sent: Sent::Reminder { day },
            },
            Some(Due::ExpiryNotice) => Job {
                kind: MailKind::ExpiryNotice,
                operation_type: operation_type::EXPIRY_NOTICE,
                reason: reason::EXPIRY.into(),
                new_key: false,
                backoff_on_failure: true,
                sent: Sent::ExpiryNotice,
            },
            Some(Due::Expire) | None => return Ok(tally),
        };
        if dry_run {
            count_sent(&mut tally, job.sent);
            return Ok(tally);
        }
        if stop.is_stopped() {
            return Ok(tally);
        }
        match self.deliver(&v, &job, owner).await? {
            Delivery::Sent(_) => count_sent(&mut tally, job.sent),
            Delivery::Failed(..) => tally.failed += 1,
            Delivery::Skipped => {}
        }
        Ok(tally)
    }

    /// Settles open operations against their registrants' status; returns
    /// how many changed (or would change, with `dry_run`, counting the
    /// addresses in `would_expire` as expired).
    pub async fn settle_operations(
        &self,
        dry_run: bool,
        would_expire: &HashSet<String>,
    ) -> Result<u64> {
        let mut updated = 0;
        for open in self.store.open_operations().await? {
            let op = open.operation;
            let registrant = match &open.registrant_email_key {
                Some(k) if would_expire.contains(k) => Some(crate::domain::Status::Expired),
                _ => open.registrant_status,
            };
            let Some((status, flag, message)) = settle(op.status, op.status_flag, registrant)
            else {
                continue;
            };
            if dry_run {
                updated += 1;
                continue;
            }
            let new = OperationRecord {
                status,
                status_flag: flag,
                message: message.map(str::to_string).or_else(|| op.message.clone()),
                last_updated_date: self.now(),
                ..op.clone()
            };
            if self.store.update_operation(&op, &new).await? {
                updated += 1;
                tracing::info!(event = "operation_updated", operation_id = %new.operation_id,
                    domain = %new.domain_name, status = %new.status,
                    status_flag = new.status_flag.map(|f| f.as_str()).unwrap_or("null"),
                    "operation settled by its registrant's verification");
            }
        }
        Ok(updated)
    }
}

fn count_sent(tally: &mut SweepSummary, sent: Sent) {
    match sent {
        Sent::Verification => tally.initial_sent += 1,
        Sent::Reminder { .. } => tally.reminders_sent += 1,
        Sent::ExpiryNotice => tally.expiry_notices_sent += 1,
    }
}
