//! Set-based import: a batch of import lines written with a few multi-row
//! statements instead of a dozen statements a line. Lines that touch nothing
//! already stored (a new handle, a new address, new domains, none repeated
//! in the batch) are "fresh" and go in set-wise, with the same rules the
//! one-contact path applies (`Verification::apply_import`, the suspension
//! deadline, evidence and an event for an address imported Validated); any
//! other line takes the one-contact path (`Tx::upsert_contact`) in the same
//! transaction.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::{on_tx, ContactUpsert, Store, Tx};
use crate::domain::suspension::deadline;
use crate::domain::verification::Key;
use crate::domain::{Event, EventType, Evidence, Policy, Proof, Status, Verification};
use crate::Result;

/// Rows per multi-row statement: well inside both databases' limits on
/// bound parameters (SQLite 32766, Postgres 65535) at 18 columns.
const ROWS_PER_STATEMENT: usize = 500;

impl Store {
    /// Imports a batch in one transaction: all or none.
    pub async fn import_batch(
        &self,
        inputs: &[ContactUpsert],
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let fresh = tx.fresh_lines(inputs).await?;
        let mut bulk = Vec::new();
        for (input, is_fresh) in inputs.iter().zip(fresh) {
            if is_fresh {
                bulk.push(input);
            } else {
                tx.upsert_contact(input, now, policy).await?;
            }
        }
        for chunk in bulk.chunks(ROWS_PER_STATEMENT) {
            tx.insert_fresh(chunk, now, policy).await?;
        }
        tx.commit().await
    }
}

/// One domain row of a fresh line: the line, the name, since when it
/// waits and its deadline.
type DomainRow<'a> = (
    &'a Fresh<'a>,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// A fresh line, resolved to its rows.
struct Fresh<'a> {
    input: &'a ContactUpsert,
    v: Verification,
}

impl Tx {
    /// Which lines touch nothing stored and nothing else in the batch.
    async fn fresh_lines(&mut self, inputs: &[ContactUpsert]) -> Result<Vec<bool>> {
        let ids: Vec<String> = inputs.iter().map(|i| i.external_id.to_string()).collect();
        let keys: Vec<String> = inputs.iter().map(|i| i.email.key().to_string()).collect();
        let names: Vec<String> = inputs
            .iter()
            .flat_map(|i| i.domains.iter().map(|d| d.to_string()))
            .collect();
        let known_ids = self.existing("contacts", "external_id", &ids).await?;
        let known_keys = self.existing("verifications", "email_key", &keys).await?;
        let known_names = self.existing("domains", "name", &names).await?;
        let repeated = |items: &[String]| -> HashSet<String> {
            let mut seen = HashSet::new();
            items
                .iter()
                .filter(|i| !seen.insert(i.as_str()))
                .cloned()
                .collect()
        };
        let (rep_ids, rep_keys, rep_names) = (repeated(&ids), repeated(&keys), repeated(&names));
        Ok(inputs
            .iter()
            .zip(ids.iter().zip(&keys))
            .map(|(input, (id, key))| {
                !known_ids.contains(id)
                    && !rep_ids.contains(id)
                    && !known_keys.contains(key)
                    && !rep_keys.contains(key)
                    && input.domains.iter().all(|d| {
                        !known_names.contains(d.as_str()) && !rep_names.contains(d.as_str())
                    })
            })
            .collect())
    }

    /// The values of `column` in `table` among `values`.
    async fn existing(
        &mut self,
        table: &str,
        column: &str,
        values: &[String],
    ) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in values.chunks(ROWS_PER_STATEMENT) {
            if chunk.is_empty() {
                continue;
            }
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {column} FROM {table} WHERE {column} IN ({})",
                marks.join(", ")
            );
            let rows: Vec<String> = on_tx!(self, conn, d => {
                let mut q = sqlx::query_scalar(&sql);
                for v in chunk {
                    q = q.bind(v);
                }
                q.fetch_all(&mut *conn).await?
            });
            found.extend(rows);
        }
        Ok(found)
    }

    /// Writes fresh lines set-wise: contacts, verifications, keys, domains
    /// (waiting with their deadline unless Validated), and for addresses
    /// imported Validated their evidence and `contact_validated` event.
    async fn insert_fresh(
        &mut self,
        lines: &[&ContactUpsert],
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<()> {
        let mut fresh = Vec::with_capacity(lines.len());
        for input in lines {
            let mut v = Verification::new(&input.email);
            if let Some(state) = &input.import {
                v.apply_import(
                    state.status,
                    state.key_issued_at,
                    state.last_notification_at,
                    now,
                    policy,
                )?;
            }
            fresh.push(Fresh { input, v });
        }
        on_tx!(self, conn, d => {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO contacts (external_id, email, email_key, language, created_at, updated_at) ");
            qb.push_values(&fresh, |mut b, f| {
                b.push_bind(f.input.external_id.as_str())
                    .push_bind(f.input.email.as_str())
                    .push_bind(f.v.email_key.as_str())
                    .push_bind(f.input.language.as_ref().map(|l| l.as_str().to_string()))
                    .push_bind(now)
                    .push_bind(now);
            });
            qb.build().execute(&mut *conn).await?;
        });
        self.insert_verifications(fresh.iter().map(|f| &f.v), now, policy)
            .await?;
        let keys: Vec<(&Fresh, &Key)> = fresh
            .iter()
            .filter_map(|f| f.v.key.as_ref().map(|k| (f, k)))
            .collect();
        if !keys.is_empty() {
            on_tx!(self, conn, d => {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO verification_keys (key_id, email_key, issued_at, expires_at) ");
                qb.push_values(&keys, |mut b, (f, k)| {
                    b.push_bind(k.id.to_hex())
                        .push_bind(f.v.email_key.as_str())
                        .push_bind(k.issued_at)
                        .push_bind(k.expires_at);
                });
                qb.build().execute(&mut *conn).await?;
            });
        }
        let domains: Vec<DomainRow> = fresh
            .iter()
            .flat_map(|f| {
                let waiting = f.v.status != Status::Validated;
                let imported = f.input.import.as_ref().and_then(|i| i.suspension_date);
                let due = waiting
                    .then(|| deadline(now, policy.suspend_after, imported))
                    .flatten();
                f.input
                    .domains
                    .iter()
                    .map(move |d| (f, d.to_string(), waiting.then_some(now), due))
            })
            .collect();
        for chunk in domains.chunks(ROWS_PER_STATEMENT) {
            on_tx!(self, conn, d => {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO domains (name, contact_external_id, created_at, updated_at, \
                     waiting_since, suspension_date) ");
                qb.push_values(chunk, |mut b, (f, name, since, due)| {
                    b.push_bind(name.as_str())
                        .push_bind(f.input.external_id.as_str())
                        .push_bind(now)
                        .push_bind(now)
                        .push_bind(*since)
                        .push_bind(*due);
                });
                qb.build().execute(&mut *conn).await?;
            });
        }
        let validated: Vec<&Fresh> = fresh
            .iter()
            .filter(|f| f.v.status == Status::Validated)
            .collect();
        let evidence: Vec<Evidence> = validated
            .iter()
            .map(|f| {
                Evidence::new(
                    &f.v.email,
                    vec![f.input.external_id.clone()],
                    f.input.domains.clone(),
                    now,
                    Proof::Import,
                )
            })
            .collect();
        let events: Vec<Event> = validated
            .iter()
            .map(|f| {
                Event::new(
                    EventType::ContactValidated,
                    now,
                    &f.v.email,
                    vec![f.input.external_id.clone()],
                    f.input.domains.clone(),
                    "imported as Validated",
                )
            })
            .collect();
        self.insert_evidence_many(&evidence).await?;
        self.insert_events(&events, !policy.hooks_configured, now)
            .await?;
        Ok(())
    }
}
