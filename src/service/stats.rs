//! `stats` and `GET /v1/stats` (CONTRACT section 10): counts for dashboards,
//! the oldest unanswered link, and the last sweep's record.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Verifier;
use crate::domain::ts_serde;
use crate::Result;

/// Contacts by the status of the address each uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ContactCounts {
    pub not_validated: i64,
    pub pending: i64,
    pub validated: i64,
    pub expired: i64,
}

/// When the last sweep finished and what it did (`sweep`'s summary).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct LastSweep {
    #[serde(serialize_with = "ts_serde::required")]
    #[schema(value_type = String, format = DateTime)]
    pub finished_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
}

/// The `stats` object, in the contract's field order.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Stats {
    pub contacts: ContactCounts,
    pub bounced: i64,
    pub domains_waiting: i64,
    pub domains_suspended: i64,
    #[serde(serialize_with = "ts_serde::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub oldest_pending_since: Option<DateTime<Utc>>,
    /// Null before the first sweep.
    #[schema(required = true)]
    pub last_sweep: Option<LastSweep>,
    pub events_pending: i64,
}

impl Verifier {
    /// Counts by state (one grouped query), the oldest pending key and the
    /// last sweep's record.
    pub async fn stats(&self) -> Result<Stats> {
        let c = self.store.state_counts().await?;
        let oldest_pending_since = self.store.oldest_pending_since().await?;
        let last_sweep = self.store.last_sweep().await?.map(|r| LastSweep {
            finished_at: r.finished_at,
            // Written by the sweep from its summary; kept as written.
            summary: serde_json::from_str(&r.summary).unwrap_or(serde_json::Value::Null),
        });
        Ok(Stats {
            contacts: ContactCounts {
                not_validated: c.not_validated,
                pending: c.pending,
                validated: c.validated,
                expired: c.expired,
            },
            bounced: c.bounced,
            domains_waiting: c.domains_waiting,
            domains_suspended: c.domains_suspended,
            oldest_pending_since,
            last_sweep,
            events_pending: c.events_pending,
        })
    }
}
