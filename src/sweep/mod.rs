//! One sweep: read the addresses with work due, page by page, and run the
//! passes over them: `expire` (keys past their validity), `notify` (initial
//! emails, reminders and expiry notices, each under a database claim, so
//! concurrent sweeps never mail twice); then `suspend` (domains past their
//! deadline) and `settle` (the domain operations that wait on registrants). Each pass plans first, from data alone; a real
//! sweep executes the plan, a dry run only counts it.

mod expire;
mod notify;
mod settle;
mod suspend;

use std::collections::HashSet;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::delivery::Courier;
use crate::domain::{EmailKey, Policy};
use crate::liveness::Liveness;
use crate::store::{ClaimView, Store};
use crate::{Error, Result};

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
    pub domains_suspended: u64,
    /// Addresses whose next email waits out a retry after failed sends
    /// (GetDetails' NextNotificationDate says until when).
    pub deferred: u64,
    pub duration_ms: u64,
}

pub use crate::shutdown::StopSignal;

/// Runs sweeps: the store, the courier that mails (none for a dry run) and
/// the rules.
pub struct Sweeper {
    store: Store,
    courier: Option<Courier>,
    policy: Policy,
    clock: Clock,
    /// Emails in flight at once (`smtp.max_connections`).
    concurrency: usize,
    /// Whose expired claims this process may take.
    liveness: Liveness,
}

impl Sweeper {
    pub fn new(
        store: Store,
        courier: Option<Courier>,
        policy: Policy,
        clock: Clock,
        concurrency: usize,
        liveness: Liveness,
    ) -> Sweeper {
        Sweeper {
            store,
            courier,
            policy,
            clock,
            concurrency: concurrency.max(1),
            liveness,
        }
    }

    /// Runs one sweep. With `dry_run` it counts what it would do and changes
    /// and sends nothing.
    #[tracing::instrument(skip_all, fields(dry_run))]
    pub async fn run(&self, dry_run: bool, stop: &StopSignal) -> Result<SweepSummary> {
        let started = Instant::now();
        tracing::info!(event = "sweep_started", "sweep started");
        let courier = match (&self.courier, dry_run) {
            (_, true) => None,
            (Some(c), false) => Some(c),
            (None, false) => {
                return Err(Error::internal("a sweep that sends needs the SMTP client"))
            }
        };
        let owner = self.liveness.owner("sweep");
        let now = self.clock.now();
        if courier.is_some() {
            // Beating first also writes outcomes held from an outage, so
            // their addresses are settled before this sweep reads them.
            self.liveness.beat(&self.store, now, &self.policy).await?;
        }
        let mut claims = self.liveness.claims(now);
        let held = self.liveness.held_keys();
        let mut summary = SweepSummary::default();
        // What a dry run would have expired: the settle pass counts their
        // operations as a real sweep, which wrote the expiry, would settle them.
        let mut expired_in_dry_run: HashSet<EmailKey> = HashSet::new();
        let mut cursor: Option<(DateTime<Utc>, EmailKey)> = None;
        loop {
            self.due_pass(
                courier,
                &owner,
                &claims,
                &held,
                now,
                stop,
                &mut cursor,
                &mut summary,
                &mut expired_in_dry_run,
            )
            .await?;
            // Addresses whose claim ran out under a silent process were
            // skipped: once this process has seen the database up long
            // enough that the silence means the owner is gone, take them
            // in a second pass (everything else went out meanwhile).
            if courier.is_none() || claims.take_others || stop.is_stopped() {
                break;
            }
            if !self.store.abandoned_due(now, &claims).await? {
                break;
            }
            tracing::info!(event = "sweep_waiting_for_owners", wait_secs = crate::liveness::LIVE_WITHIN.num_seconds(),
                "claims of silent processes ran out; waiting until their silence means they are gone");
            self.liveness
                .wait_to_judge(&self.store, &self.clock, &self.policy, stop)
                .await?;
            claims = self.liveness.claims(now);
            if !claims.take_others {
                break;
            }
            cursor = None;
        }
        self.after_due(
            courier,
            &claims,
            now,
            stop,
            summary,
            &expired_in_dry_run,
            started,
        )
        .await
    }

    /// One pass over the due addresses from `cursor`: expire, then mail.
    #[allow(clippy::too_many_arguments)]
    async fn due_pass(
        &self,
        courier: Option<&Courier>,
        owner: &str,
        claims: &ClaimView<'_>,
        held: &HashSet<EmailKey>,
        now: DateTime<Utc>,
        stop: &StopSignal,
        cursor: &mut Option<(DateTime<Utc>, EmailKey)>,
        summary: &mut SweepSummary,
        expired_in_dry_run: &mut HashSet<EmailKey>,
    ) -> Result<()> {
        while !stop.is_stopped() {
            let page = self
                .store
                .due_for(now, cursor.as_ref(), BATCH, Some(claims))
                .await?;
            let Some((due, last)) = page.last() else {
                break;
            };
            *cursor = Some((*due, last.email_key.clone()));
            let page: Vec<_> = page
                .into_iter()
                .map(|(_, v)| v)
                .filter(|v| !held.contains(&v.email_key))
                .collect();

            let plan = expire::plan(page, now, &self.policy);
            summary.expired += plan.to_expire.len() as u64;
            let expired = match courier {
                None => {
                    let expired = plan.applied(&self.policy);
                    expired_in_dry_run.extend(expired.iter().map(|v| v.email_key.clone()));
                    expired
                }
                Some(_) => {
                    let done = expire::execute(&self.store, &plan, now, &self.policy).await?;
                    summary.expired -= done.lost;
                    done.expired
                }
            };

            // An address just expired with no notice owed is done for now.
            let owing = expired
                .into_iter()
                .filter(|v| v.due(now, &self.policy).is_some());
            let plan = notify::plan(plan.others.into_iter().chain(owing), now, &self.policy);
            match courier {
                None => plan.count(summary),
                Some(c) => {
                    let done = notify::execute(
                        c,
                        &self.store,
                        plan,
                        owner,
                        stop,
                        self.concurrency,
                        now,
                        &self.policy,
                    )
                    .await?;
                    done.count(summary);
                }
            }
        }
        Ok(())
    }

    /// What a sweep does after the due addresses: close interrupted
    /// attempts, suspend, settle operations, record and log the summary.
    #[allow(clippy::too_many_arguments)]
    async fn after_due(
        &self,
        courier: Option<&Courier>,
        claims: &ClaimView<'_>,
        now: DateTime<Utc>,
        stop: &StopSignal,
        mut summary: SweepSummary,
        expired_in_dry_run: &HashSet<EmailKey>,
        started: Instant,
    ) -> Result<SweepSummary> {
        if courier.is_some() && !stop.is_stopped() {
            // Attempts a killed process left `Started` are closed once their
            // claim's lease has run out.
            let closed = self
                .store
                .close_interrupted(now, now - self.policy.claim_lease, claims.live_since)
                .await?;
            if closed > 0 {
                tracing::warn!(event = "attempts_interrupted", attempts = closed,
                    "attempts left Started by a stopped process are recorded as Failed (Interrupted)");
            }
        }
        if !stop.is_stopped() && self.policy.suspend_after.is_some() {
            let plan = suspend::plan(&self.store, now).await?;
            summary.domains_suspended = match courier {
                None => suspend::count(&plan),
                Some(_) => suspend::execute(&self.store, plan, now, &self.policy).await?,
            };
        } else if courier.is_some() && !stop.is_stopped() {
            // Suspension is off: remember it, so that turning it on again
            // gives the domains that waited meanwhile their deadline.
            self.store.adopt_waiting_domains(now, None, "0").await?;
        }
        if !stop.is_stopped() {
            let open = self.store.open_operations().await?;
            let plan = settle::plan(open, expired_in_dry_run, self.clock.now());
            summary.operations_updated = match courier {
                None => plan.len() as u64,
                Some(_) => settle::execute(&self.store, plan).await?,
            };
        }
        summary.deferred =
            u64::try_from(self.store.deferred_count(self.clock.now()).await?).unwrap_or(0);
        summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if courier.is_some() {
            // What `stats` shows as LastSweep.
            let json = serde_json::to_string(&summary)
                .map_err(|e| Error::internal(format!("cannot encode the sweep summary: {e}")))?;
            self.store.record_sweep(self.clock.now(), &json).await?;
        }
        tracing::info!(
            event = "sweep_finished",
            stopped_early = stop.is_stopped(),
            expired = summary.expired,
            initial_sent = summary.initial_sent,
            reminders_sent = summary.reminders_sent,
            expiry_notices_sent = summary.expiry_notices_sent,
            failed = summary.failed,
            operations_updated = summary.operations_updated,
            domains_suspended = summary.domains_suspended,
            deferred = summary.deferred,
            duration_ms = summary.duration_ms,
            "sweep finished"
        );
        Ok(summary)
    }
}
