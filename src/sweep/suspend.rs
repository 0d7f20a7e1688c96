//! The suspend pass (CONTRACT section 7): a domain still waiting on its
//! registrant at or after its deadline is suspended, one transaction and one
//! `domain_suspended` event per address. Domains whose registrant is not
//! Validated but that do not wait yet (kept from before deadlines existed)
//! start waiting first.

use chrono::{DateTime, Utc};

use crate::domain::suspension::deadline;
use crate::domain::{mask_email, DomainName, EmailKey, Policy};
use crate::store::Store;
use crate::Result;

/// Due domains read per page.
const PAGE: i64 = 500;

/// Every due domain, grouped by address in `(email_key, name)` order.
pub(super) async fn plan(
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Vec<(EmailKey, Vec<DomainName>)>> {
    let mut plan: Vec<(EmailKey, Vec<DomainName>)> = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.due_suspensions(now, cursor.as_ref(), PAGE).await?;
        let full = page.len() as i64 == PAGE;
        cursor = page.last().cloned();
        for (key, name) in page {
            match plan.last_mut() {
                Some((k, names)) if *k == key => names.push(name),
                _ => plan.push((key, vec![name])),
            }
        }
        if !full {
            return Ok(plan);
        }
    }
}

/// Counts what a dry run would suspend.
pub(super) fn count(plan: &[(EmailKey, Vec<DomainName>)]) -> u64 {
    plan.iter().map(|(_, names)| names.len() as u64).sum()
}

/// Suspends the plan's domains that are still due; returns how many.
pub(super) async fn execute(
    store: &Store,
    plan: Vec<(EmailKey, Vec<DomainName>)>,
    now: DateTime<Utc>,
    p: &Policy,
) -> Result<u64> {
    let setting = p
        .suspend_after
        .map(|d| d.num_days().to_string())
        .unwrap_or_else(|| "0".into());
    let adopted = store
        .adopt_waiting_domains(now, deadline(now, p.suspend_after, None), &setting)
        .await?;
    if adopted > 0 {
        tracing::info!(
            event = "domains_waiting_adopted",
            domains = adopted,
            "domains of unverified registrants now wait with a deadline"
        );
    }
    let mut suspended = 0;
    for (key, names) in plan {
        let done = store.suspend_due(&key, &names, now, p).await?;
        if !done.is_empty() {
            let list: Vec<&str> = done.iter().map(|d| d.as_str()).collect();
            tracing::warn!(event = "domain_suspended", email = %mask_email(key.as_str()),
                domains = %list.join(","),
                "suspended: the registrant did not confirm the email address before the deadline");
            suspended += done.len() as u64;
        }
    }
    Ok(suspended)
}
