//! Domains' suspension state (CONTRACT section 7): when a domain starts and
//! stops waiting on its registrant, its deadline, and its suspension. The
//! `domains` rows themselves are created with their contact (`contacts.rs`).

use chrono::{DateTime, Utc};

use super::records::{DomainRecord, DOMAIN_COLUMNS};
use super::{on_tx, with_pool, with_writer, Store, Tx};
use crate::domain::{DomainName, EmailKey, ExternalId};
use crate::Result;

/// The domains of every contact using an address.
const OF_ADDRESS: &str =
    "contact_external_id IN (SELECT external_id FROM contacts WHERE email_key = $1)";

impl Tx {
    /// A contact's domains that do not wait yet start waiting now, with the
    /// given deadline; those already waiting keep theirs.
    pub(crate) async fn start_waiting_for_contact(
        &mut self,
        id: &ExternalId,
        now: DateTime<Utc>,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        Ok(on_tx!(self, conn, d => sqlx::query(
            "UPDATE domains SET waiting_since = $2, suspension_date = $3 \
             WHERE contact_external_id = $1 AND waiting_since IS NULL")
            .bind(id.as_str())
            .bind(now)
            .bind(deadline)
            .execute(&mut *conn)
            .await?
            .rows_affected()))
    }

    /// The same for every domain of an address (`contact reverify`).
    pub(crate) async fn start_waiting_for_address(
        &mut self,
        email_key: &EmailKey,
        now: DateTime<Utc>,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        Ok(on_tx!(self, conn, d => sqlx::query(&format!(
            "UPDATE domains SET waiting_since = $2, suspension_date = $3 \
             WHERE {OF_ADDRESS} AND waiting_since IS NULL"))
            .bind(email_key.as_str())
            .bind(now)
            .bind(deadline)
            .execute(&mut *conn)
            .await?
            .rows_affected()))
    }

    /// A contact's domains stop waiting (its address is Validated); returns
    /// those that were suspended and are now released.
    pub(crate) async fn stop_waiting_for_contact(
        &mut self,
        id: &ExternalId,
    ) -> Result<Vec<DomainName>> {
        let released: Vec<String> = on_tx!(self, conn, d => sqlx::query_scalar(&format!(
            "SELECT name FROM domains WHERE contact_external_id = $1 AND suspended ORDER BY name{}",
            d::FOR_UPDATE))
            .bind(id.as_str())
            .fetch_all(&mut *conn)
            .await?);
        on_tx!(self, conn, d => sqlx::query(
            "UPDATE domains SET waiting_since = NULL, suspension_date = NULL, suspended = FALSE, \
             suspended_at = NULL WHERE contact_external_id = $1 \
             AND (waiting_since IS NOT NULL OR suspended)")
            .bind(id.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected());
        released.into_iter().map(DomainName::try_from).collect()
    }

    /// Every domain of an address stops waiting (it became Validated);
    /// returns those released from suspension.
    pub(crate) async fn stop_waiting_for_address(
        &mut self,
        email_key: &EmailKey,
    ) -> Result<Vec<DomainName>> {
        let released: Vec<String> = on_tx!(self, conn, d => sqlx::query_scalar(&format!(
            "SELECT name FROM domains WHERE {OF_ADDRESS} AND suspended ORDER BY name{}",
            d::FOR_UPDATE))
            .bind(email_key.as_str())
            .fetch_all(&mut *conn)
            .await?);
        on_tx!(self, conn, d => sqlx::query(&format!(
            "UPDATE domains SET waiting_since = NULL, suspension_date = NULL, suspended = FALSE, \
             suspended_at = NULL WHERE {OF_ADDRESS} AND (waiting_since IS NOT NULL OR suspended)"))
            .bind(email_key.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected());
        released.into_iter().map(DomainName::try_from).collect()
    }

    /// Suspends one domain unless it already is; returns whether it changed.
    pub(crate) async fn suspend_domain(
        &mut self,
        name: &DomainName,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_tx!(self, conn, d => sqlx::query(
            "UPDATE domains SET suspended = TRUE, suspended_at = $2 WHERE name = $1 AND NOT suspended")
            .bind(name.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Suspends a waiting domain whose deadline has passed, re-checked under
    /// the lock: not suspended yet, still waiting, deadline at or before `now`.
    pub(crate) async fn suspend_if_due(
        &mut self,
        name: &DomainName,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = on_tx!(self, conn, d => sqlx::query(
            "UPDATE domains SET suspended = TRUE, suspended_at = $2 WHERE name = $1 \
             AND NOT suspended AND waiting_since IS NOT NULL \
             AND suspension_date IS NOT NULL AND suspension_date <= $2")
            .bind(name.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Every domain of every contact using an address, for event payloads.
    pub(crate) async fn address_domains(
        &mut self,
        email_key: &EmailKey,
    ) -> Result<Vec<DomainName>> {
        let names: Vec<String> = on_tx!(self, conn, d => sqlx::query_scalar(&format!(
            "SELECT name FROM domains WHERE {OF_ADDRESS} ORDER BY name"))
            .bind(email_key.as_str())
            .fetch_all(&mut *conn)
            .await?);
        names.into_iter().map(DomainName::try_from).collect()
    }
}

impl Store {
    pub async fn domain(&self, name: &DomainName) -> Result<Option<DomainRecord>> {
        with_pool!(self, pool, d => Ok(sqlx::query_as(&format!(
            "SELECT {DOMAIN_COLUMNS} FROM domains WHERE name = $1"))
            .bind(name.as_str())
            .fetch_optional(pool)
            .await?))
    }

    /// A contact's domains with their suspension state, by name.
    pub async fn contact_domain_records(&self, id: &ExternalId) -> Result<Vec<DomainRecord>> {
        with_pool!(self, pool, d => Ok(sqlx::query_as(&format!(
            "SELECT {DOMAIN_COLUMNS} FROM domains WHERE contact_external_id = $1 ORDER BY name"))
            .bind(id.as_str())
            .fetch_all(pool)
            .await?))
    }

    /// Waiting domains past their deadline and not yet suspended, whose
    /// registrant's address is still not Validated, with that address; by
    /// address so that one event can name an address's domains together.
    pub async fn due_suspensions(
        &self,
        now: DateTime<Utc>,
        after: Option<&(EmailKey, DomainName)>,
        limit: i64,
    ) -> Result<Vec<(EmailKey, DomainName)>> {
        let (after_key, after_name) = match after {
            Some((k, n)) => (k.as_str(), n.as_str()),
            None => ("", ""),
        };
        with_pool!(self, pool, d => {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT c.email_key, d.name FROM domains d \
                 JOIN contacts c ON c.external_id = d.contact_external_id \
                 JOIN verifications v ON v.email_key = c.email_key \
                 WHERE d.suspension_date IS NOT NULL AND d.suspension_date <= $1 \
                   AND NOT d.suspended AND d.waiting_since IS NOT NULL \
                   AND v.status <> 'Validated' \
                   AND (c.email_key > $2 OR (c.email_key = $2 AND d.name > $3)) \
                 ORDER BY c.email_key, d.name LIMIT $4")
                .bind(now)
                .bind(after_key)
                .bind(after_name)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.into_iter()
                .map(|(k, n)| Ok((EmailKey::try_from(k)?, DomainName::try_from(n)?)))
                .collect()
        })
    }

    /// Domains whose registrant is not Validated but that do not wait (rows
    /// from before deadlines were kept) start waiting now; waiting domains
    /// with no deadline (they started waiting while suspension was off) get
    /// `deadline`, counted from now that suspension is on. Both scan the
    /// domains, so they run once per setting of `suspension.after_days`
    /// (recorded in `maintenance`), not at every sweep.
    pub async fn adopt_waiting_domains(
        &self,
        now: DateTime<Utc>,
        deadline: Option<DateTime<Utc>>,
        setting: &str,
    ) -> Result<u64> {
        const PASS: &str = "domains_adopted_for_after_days";
        let done: Option<String> = with_pool!(self, pool, d => sqlx::query_scalar(
            "SELECT value FROM maintenance WHERE name = $1")
            .bind(PASS)
            .fetch_optional(pool)
            .await?);
        if done.as_deref() == Some(setting) {
            return Ok(0);
        }
        let changed = self.adopt_now(now, deadline).await?;
        with_writer!(self, pool, d => sqlx::query(
            "INSERT INTO maintenance (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .bind(PASS)
            .bind(setting)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(changed)
    }

    async fn adopt_now(&self, now: DateTime<Utc>, deadline: Option<DateTime<Utc>>) -> Result<u64> {
        let dated = match deadline {
            Some(_) => with_writer!(self, pool, d => sqlx::query(
                "UPDATE domains SET suspension_date = $1 \
                 WHERE waiting_since IS NOT NULL AND suspension_date IS NULL AND NOT suspended")
                .bind(deadline)
                .execute(pool)
                .await?
                .rows_affected()),
            None => 0,
        };
        let adopted = with_writer!(self, pool, d => sqlx::query(
            "UPDATE domains SET waiting_since = $1, suspension_date = $2 \
             WHERE waiting_since IS NULL AND contact_external_id IN ( \
               SELECT c.external_id FROM contacts c \
               JOIN verifications v ON v.email_key = c.email_key \
               WHERE v.status <> 'Validated')")
            .bind(now)
            .bind(deadline)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(dated + adopted)
    }
}
