//! The `events` table: the outbox of hook events (CONTRACT section 8),
//! written in the transaction of the change that caused them and delivered
//! in `seq` order. Delivery claims the oldest undelivered event with a lease,
//! like an email, so several daemons never deliver one event at once.

use chrono::{DateTime, Utc};

use super::records::{EventRecord, EVENT_COLUMNS};
use super::{on_tx, with_pool, with_writer, Store, Tx};
use crate::domain::Event;
use crate::Result;

/// What the head of the queue allows right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextEvent {
    /// Nothing is waiting to be delivered.
    Empty,
    /// The oldest event waits out its retry until then.
    WaitUntil(DateTime<Utc>),
    /// Another deliverer holds it.
    Busy,
    /// Ours to deliver, until the lease given.
    Claimed(EventRecord),
}

impl Tx {
    /// Records an event; with no hook configured it counts as delivered at
    /// once, with no attempt.
    pub(crate) async fn insert_event(
        &mut self,
        e: &Event,
        delivered_now: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_tx!(self, conn, d => sqlx::query(
            "INSERT INTO events (id, type, at, payload, delivered, delivered_at) \
             VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&e.id)
            .bind(e.kind.as_str())
            .bind(e.at)
            .bind(e.to_json())
            .bind(delivered_now)
            .bind(delivered_now.then_some(now))
            .execute(&mut *conn)
            .await?
            .rows_affected());
        Ok(())
    }
}

impl Tx {
    /// The set-wise form of [`Tx::insert_event`], for imports; the events
    /// keep their order.
    pub(crate) async fn insert_events(
        &mut self,
        events: &[Event],
        delivered_now: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        on_tx!(self, conn, d => {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO events (id, type, at, payload, delivered, delivered_at) ");
            qb.push_values(events, |mut b, e| {
                b.push_bind(e.id.as_str())
                    .push_bind(e.kind.as_str())
                    .push_bind(e.at)
                    .push_bind(e.to_json())
                    .push_bind(delivered_now)
                    .push_bind(delivered_now.then_some(now));
            });
            qb.build().execute(&mut *conn).await?;
        });
        Ok(())
    }
}

impl Store {
    /// Claims the oldest undelivered event for `owner` until `lease_until`,
    /// unless it waits out a retry or another deliverer holds it: later
    /// events never overtake it.
    pub async fn claim_next_event(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<NextEvent> {
        type Head = (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let head: Option<Head> = with_pool!(self, pool, d => sqlx::query_as(
            "SELECT seq, next_attempt_at, claim_until FROM events WHERE NOT delivered \
             ORDER BY seq LIMIT 1")
            .fetch_optional(pool)
            .await?);
        let Some((seq, next_attempt_at, claim_until)) = head else {
            return Ok(NextEvent::Empty);
        };
        if claim_until.is_some_and(|t| t > now) {
            return Ok(NextEvent::Busy);
        }
        if let Some(t) = next_attempt_at.filter(|t| *t > now) {
            return Ok(NextEvent::WaitUntil(t));
        }
        let claimed = with_writer!(self, pool, d => sqlx::query(
            "UPDATE events SET claim_owner = $2, claim_until = $3 WHERE seq = $1 \
             AND NOT delivered AND (claim_until IS NULL OR claim_until <= $4)")
            .bind(seq)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        if claimed != 1 {
            return Ok(NextEvent::Busy);
        }
        let record: EventRecord = with_pool!(self, pool, d => sqlx::query_as(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq = $1"))
            .bind(seq)
            .fetch_one(pool)
            .await?);
        Ok(NextEvent::Claimed(record))
    }

    /// Records one delivery attempt of a claimed event: delivered, or failed
    /// with the error and when to try again. Returns false if the claim was
    /// lost meanwhile (the lease ran out and someone else took it).
    pub async fn finish_event(
        &self,
        seq: i64,
        owner: &str,
        now: DateTime<Utc>,
        failure: Option<(&str, DateTime<Utc>)>,
    ) -> Result<bool> {
        let n = with_writer!(self, pool, d => sqlx::query(
            "UPDATE events SET attempts = attempts + 1, delivered = $3, delivered_at = $4, \
             last_error = $5, next_attempt_at = $6, claim_owner = NULL, claim_until = NULL \
             WHERE seq = $1 AND claim_owner = $2")
            .bind(seq)
            .bind(owner)
            .bind(failure.is_none())
            .bind(failure.is_none().then_some(now))
            .bind(failure.map(|(e, _)| e))
            .bind(failure.map(|(_, t)| t))
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Events in delivery order after `after_seq`, all or only undelivered.
    pub async fn events(
        &self,
        pending_only: bool,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<EventRecord>> {
        with_pool!(self, pool, d => Ok(sqlx::query_as(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 AND ($2 = FALSE OR NOT delivered) \
             ORDER BY seq LIMIT $3"))
            .bind(after_seq)
            .bind(pending_only)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    pub async fn pending_event_count(&self) -> Result<i64> {
        with_pool!(self, pool, d => Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE NOT delivered")
            .fetch_one(pool)
            .await?))
    }
}
