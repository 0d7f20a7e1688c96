//! Counts for the operator's view (CONTRACT section 10, `stats` and the
//! gauges of `/metrics`), and the `last_sweep` table: the record each sweep
//! that sends writes when it finishes.
//!
//! The counts by state are one grouped statement, run by `stats` and once
//! per sweep for the gauges, never per scrape.

use chrono::{DateTime, Utc};

use super::{with_pool, with_writer, Store};
use crate::Result;

/// Counts by state. Contacts are counted per contact, by the status of the
/// address it uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub not_validated: i64,
    pub pending: i64,
    pub validated: i64,
    pub expired: i64,
    /// Bounced addresses that at least one contact uses.
    pub bounced: i64,
    /// Domains waiting on their registrant (suspended ones included: a
    /// suspended domain still waits for its registrant).
    pub domains_waiting: i64,
    pub domains_suspended: i64,
    /// Hook events not delivered yet.
    pub events_pending: i64,
}

/// The record of the last sweep that finished: when, and its summary as
/// `sweep` printed it (JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepRecord {
    pub finished_at: DateTime<Utc>,
    pub summary: String,
}

/// Every count in one statement: `(what, status, n)` rows.
const COUNTS: &str = "\
    SELECT 'contacts' AS what, COALESCE(v.status, 'NotValidated') AS status, COUNT(*) AS n \
      FROM contacts c LEFT JOIN verifications v ON v.email_key = c.email_key \
      GROUP BY COALESCE(v.status, 'NotValidated') \
    UNION ALL SELECT 'domains_waiting', '', COUNT(*) FROM domains WHERE waiting_since IS NOT NULL \
    UNION ALL SELECT 'domains_suspended', '', COUNT(*) FROM domains WHERE suspended \
    UNION ALL SELECT 'events_pending', '', COUNT(*) FROM events WHERE NOT delivered \
    UNION ALL SELECT 'bounced', '', COUNT(*) FROM verifications v WHERE v.bounced_at IS NOT NULL \
      AND EXISTS (SELECT 1 FROM contacts c WHERE c.email_key = v.email_key)";

impl Store {
    /// The counts by state, from one grouped query.
    pub async fn state_counts(&self) -> Result<StateCounts> {
        let rows: Vec<(String, String, i64)> =
            with_pool!(self, pool, d => sqlx::query_as(COUNTS).fetch_all(pool).await?);
        let mut c = StateCounts::default();
        for (what, status, n) in rows {
            match (what.as_str(), status.as_str()) {
                ("contacts", "NotValidated") => c.not_validated = n,
                ("contacts", "Pending") => c.pending = n,
                ("contacts", "Validated") => c.validated = n,
                ("contacts", "Expired") => c.expired = n,
                ("domains_waiting", _) => c.domains_waiting = n,
                ("domains_suspended", _) => c.domains_suspended = n,
                ("events_pending", _) => c.events_pending = n,
                ("bounced", _) => c.bounced = n,
                _ => {}
            }
        }
        Ok(c)
    }

    /// The earliest key issue time among `Pending` addresses that a contact
    /// uses: how long the oldest unanswered link has been out.
    pub async fn oldest_pending_since(&self) -> Result<Option<DateTime<Utc>>> {
        with_pool!(self, pool, d => Ok(sqlx::query_scalar(
            "SELECT MIN(v.key_issued_at) FROM verifications v WHERE v.status = 'Pending' \
             AND EXISTS (SELECT 1 FROM contacts c WHERE c.email_key = v.email_key)")
            .fetch_one(pool)
            .await?))
    }

    /// Replaces the record of the last sweep.
    pub async fn record_sweep(&self, finished_at: DateTime<Utc>, summary: &str) -> Result<()> {
        with_writer!(self, pool, d => sqlx::query(
            "INSERT INTO last_sweep (id, finished_at, summary) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET finished_at = excluded.finished_at, \
             summary = excluded.summary")
            .bind(finished_at)
            .bind(summary)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// The record of the last sweep that finished, if any has.
    pub async fn last_sweep(&self) -> Result<Option<SweepRecord>> {
        let row: Option<(DateTime<Utc>, String)> = with_pool!(self, pool, d => sqlx::query_as(
            "SELECT finished_at, summary FROM last_sweep WHERE id = 1")
            .fetch_optional(pool)
            .await?);
        Ok(row.map(|(finished_at, summary)| SweepRecord {
            finished_at,
            summary,
        }))
    }
}
