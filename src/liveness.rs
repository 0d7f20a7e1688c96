//! Which processes are alive to finish what they claimed. A claim keeps
//! other senders off an address for a lease; a database outage longer than
//! the lease must not let a second process mail an address whose first
//! sender is alive and only waiting to record that the relay took the email.
//! So each process beats in the `workers` table, holds the outcomes it could
//! not write yet (and writes them as soon as it can), and takes another
//! process's expired claim only when that process has been silent for
//! [`LIVE_WITHIN`] and this one has seen the database up at least as long.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};

use crate::clock::Clock;
use crate::domain::{EmailKey, Policy};
use crate::shutdown::StopSignal;
use crate::store::{ClaimView, Outcome, Store};
use crate::{ErrorCode, Result};

/// How often a process beats.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(4);
/// A process that beat within this is alive: several beats, so that one
/// slow write does not make a live process look dead.
pub const LIVE_WITHIN: Duration = Duration::seconds(15);
/// Rows of processes silent this long are removed.
const FORGET_AFTER: Duration = Duration::days(1);

/// This process's standing, shared by its sweeps, resends and heartbeat.
#[derive(Clone)]
pub struct Liveness {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    /// Since when the database has answered without a break, as far as this
    /// process saw; `None` until its first answer and after a failure. Real
    /// time: it measures how long live owners have had to beat again.
    up_since: Mutex<Option<std::time::Instant>>,
    /// Outcomes of sends the relay answered whose write failed: their
    /// claims stay this process's until they are written.
    held: Mutex<Vec<Outcome>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness::new()
    }
}

impl Liveness {
    pub fn new() -> Liveness {
        Liveness {
            inner: Arc::new(Inner {
                id: uuid::Uuid::new_v4().simple().to_string(),
                up_since: Mutex::new(None),
                held: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// A claim owner name of this process: `<process id>/<what>-<uuid>`.
    pub fn owner(&self, what: &str) -> String {
        format!("{}/{what}-{}", self.inner.id, uuid::Uuid::new_v4().simple())
    }

    /// Whose expired claims a sweep of this process may take at `now`.
    pub fn claims(&self, now: DateTime<Utc>) -> ClaimView<'_> {
        ClaimView {
            me: &self.inner.id,
            take_others: self.may_take_others(),
            live_since: now - LIVE_WITHIN,
        }
    }

    /// Whether the database has answered this process for [`LIVE_WITHIN`]:
    /// long enough for every live owner to have beaten since it came back,
    /// so that an owner's silence means it is gone.
    pub fn may_take_others(&self) -> bool {
        lock(&self.inner.up_since)
            .is_some_and(|t| t.elapsed() >= LIVE_WITHIN.to_std().unwrap_or_default())
    }

    /// Addresses whose outcome this process still holds: not to be mailed
    /// again by it either.
    pub fn held_keys(&self) -> HashSet<EmailKey> {
        lock(&self.inner.held)
            .iter()
            .map(|o| o.email_key.clone())
            .collect()
    }

    /// Keeps outcomes whose write failed, until [`Liveness::beat`] writes them.
    pub fn hold(&self, outcomes: &[Outcome]) {
        let mut held = lock(&self.inner.held);
        for o in outcomes {
            if !held.iter().any(|h| h.note.id == o.note.id) {
                held.push(o.clone());
            }
        }
    }

    /// Outcomes written after all: no longer held.
    pub fn release(&self, outcomes: &[Outcome]) {
        lock(&self.inner.held).retain(|h| !outcomes.iter().any(|o| o.note.id == h.note.id));
    }

    fn saw_database(&self, ok: bool) {
        let mut up = lock(&self.inner.up_since);
        match (ok, *up) {
            (true, None) => *up = Some(std::time::Instant::now()),
            (false, _) => *up = None,
            (true, Some(_)) => {}
        }
    }

    /// Beats once and writes the outcomes held. A failure to reach the
    /// database restarts the wait before others' claims may be taken.
    pub async fn beat(&self, store: &Store, now: DateTime<Utc>, policy: &Policy) -> Result<()> {
        let beat = store.heartbeat(&self.inner.id, now).await;
        self.saw_database(beat.is_ok());
        if let Err(e) = beat {
            if e.code != ErrorCode::Unavailable {
                return Err(e);
            }
            return Ok(());
        }
        let held: Vec<Outcome> = lock(&self.inner.held).clone();
        if !held.is_empty() {
            match store.record_outcomes(&held, now, policy).await {
                Ok(()) => {
                    self.release(&held);
                    tracing::info!(event = "state_write_recovered", count = held.len(),
                        "recorded deliveries whose outcome could not be written while the database was unavailable");
                }
                Err(e) if e.code == ErrorCode::Unavailable => self.saw_database(false),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Beats until this process may take other processes' expired claims
    /// (at most [`LIVE_WITHIN`] and a beat), or `stop`: a sweep that found
    /// claims whose owners are silent waits to know they are gone.
    pub async fn wait_to_judge(
        &self,
        store: &Store,
        clock: &Clock,
        policy: &Policy,
        stop: &StopSignal,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let limit = LIVE_WITHIN.to_std().unwrap_or_default() + HEARTBEAT_EVERY;
        while !self.may_take_others() && !stop.is_stopped() && started.elapsed() < limit {
            tokio::time::sleep(HEARTBEAT_EVERY.min(limit.saturating_sub(started.elapsed()))).await;
            self.beat(store, clock.now(), policy).await?;
        }
        Ok(())
    }

    /// Beats until `stop`, then leaves the table (only when nothing is held:
    /// a held outcome's claim must stay protected until its lease runs out).
    pub async fn run(self, store: Store, clock: Clock, policy: Policy, mut stop: StopSignal) {
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait() => break,
            }
            if let Err(e) = self.beat(&store, clock.now(), &policy).await {
                tracing::warn!(event = "heartbeat_failed", error = %e, "could not record that this process is alive");
            }
        }
        if lock(&self.inner.held).is_empty() {
            let now = clock.now();
            let _ = store
                .forget_workers(&self.inner.id, now - FORGET_AFTER)
                .await;
        }
    }
}
