//! The `contacts` and `domains` tables, and the one transaction that creates
//! or updates a contact: its row, the verification of its address (joined,
//! and the old one left), and its domains.

use chrono::{DateTime, Utc};

use super::records::ContactRecord;
use super::{
    on_tx, with_pool, ContactUpsert, Store, Tx, UpsertOutcome, VerificationWrite,
    VOID_EMAIL_CHANGED,
};
use crate::domain::suspension::deadline;
use crate::domain::{
    AddressChange, AddressLeft, ContactEmail, DomainName, EmailKey, Event, EventType, ExternalId,
    Language, Policy, Proof, Status, Verification,
};
use crate::{Error, Result};

/// What `contact list` filters by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactFilter {
    pub status: Option<Status>,
    pub domain: Option<DomainName>,
    /// Only contacts with a suspended domain.
    pub suspended: bool,
    /// Only contacts whose address bounced.
    pub bounced: bool,
}

const CONTACT_COLUMNS: &str = "external_id, email, email_key, language, created_at, updated_at";

impl Store {
    /// Creates or updates a contact and its domains in one transaction,
    /// moving it to the verification of its (new) address.
    pub async fn upsert_contact(
        &self,
        input: &ContactUpsert,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<UpsertOutcome> {
        let mut tx = self.begin().await?;
        let outcome = tx.upsert_contact(input, now, policy).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Upserts many contacts in one transaction (imports): all or none.
    pub async fn upsert_contacts(
        &self,
        inputs: &[ContactUpsert],
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for input in inputs {
            tx.upsert_contact(input, now, policy).await?;
        }
        tx.commit().await
    }

    pub async fn contact(&self, id: &ExternalId) -> Result<Option<ContactRecord>> {
        with_pool!(self, pool, d => Ok(sqlx::query_as(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE external_id = $1"))
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?))
    }

    /// Contacts using an address, by external id.
    pub async fn contacts_by_email(&self, email_key: &EmailKey) -> Result<Vec<ContactRecord>> {
        with_pool!(self, pool, d => Ok(sqlx::query_as(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE email_key = $1 ORDER BY external_id"))
            .bind(email_key.as_str())
            .fetch_all(pool)
            .await?))
    }

    pub async fn contact_domains(&self, external_id: &ExternalId) -> Result<Vec<DomainName>> {
        with_pool!(self, pool, d => {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM domains WHERE contact_external_id = $1 ORDER BY name")
                .bind(external_id.as_str())
                .fetch_all(pool)
                .await?;
            names.into_iter().map(DomainName::try_from).collect()
        })
    }

    /// Every domain of every contact using an address: what one email lists.
    pub async fn address_domains(&self, email_key: &EmailKey) -> Result<Vec<DomainName>> {
        with_pool!(self, pool, d => {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT d.name FROM domains d JOIN contacts c ON c.external_id = d.contact_external_id \
                 WHERE c.email_key = $1 ORDER BY d.name")
                .bind(email_key.as_str())
                .fetch_all(pool)
                .await?;
            names.into_iter().map(DomainName::try_from).collect()
        })
    }

    /// The language of each address that has one: of its contacts, the most
    /// recently updated that carries a language (one query for a chunk).
    pub async fn languages_of(
        &self,
        keys: &[EmailKey],
    ) -> Result<std::collections::HashMap<EmailKey, Language>> {
        let mut out = std::collections::HashMap::new();
        if keys.is_empty() {
            return Ok(out);
        }
        let marks: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT email_key, language FROM contacts \
             WHERE language IS NOT NULL AND email_key IN ({}) \
             ORDER BY email_key, updated_at DESC, external_id",
            marks.join(", ")
        );
        let rows: Vec<(String, String)> = with_pool!(self, pool, d => {
            let mut q = sqlx::query_as(&sql);
            for k in keys {
                q = q.bind(k.as_str());
            }
            q.fetch_all(pool).await?
        });
        for (k, lang) in rows {
            let key = EmailKey::try_from(k)?;
            if out.contains_key(&key) {
                continue;
            }
            // A tag stored before its rules tightened is skipped, not fatal.
            if let Ok(l) = Language::parse(&lang) {
                out.insert(key, l);
            }
        }
        Ok(out)
    }

    /// The language of one address (see [`Store::languages_of`]).
    pub async fn address_language(&self, key: &EmailKey) -> Result<Option<Language>> {
        Ok(self
            .languages_of(std::slice::from_ref(key))
            .await?
            .remove(key))
    }

    /// One page of contacts in `external_id` order after `after`, filtered
    /// by their address's status, a domain they hold, and whether any of
    /// their domains is suspended (keyset paging: no offset, any size).
    pub async fn contacts_page(
        &self,
        filter: &ContactFilter,
        after: Option<&ExternalId>,
        limit: i64,
    ) -> Result<Vec<ContactRecord>> {
        with_pool!(self, pool, d => Ok(sqlx::query_as(&format!(
            "SELECT c.external_id, c.email, c.email_key, c.language, c.created_at, c.updated_at \
             FROM contacts c JOIN verifications v ON v.email_key = c.email_key \
             WHERE c.external_id{bytes} > $1 AND ($2 IS NULL OR v.status = $2) \
               AND ($3 IS NULL OR EXISTS (SELECT 1 FROM domains dm \
                   WHERE dm.contact_external_id = c.external_id AND dm.name = $3)) \
               AND ($4 = FALSE OR EXISTS (SELECT 1 FROM domains dm \
                   WHERE dm.contact_external_id = c.external_id AND dm.suspended)) \
               AND ($6 = FALSE OR v.bounced_at IS NOT NULL) \
             ORDER BY c.external_id{bytes} LIMIT $5", bytes = d::BYTE_ORDER))
            .bind(after.map(ExternalId::as_str).unwrap_or(""))
            .bind(filter.status.map(Status::as_str))
            .bind(filter.domain.as_ref().map(DomainName::as_str))
            .bind(filter.suspended)
            .bind(limit)
            .bind(filter.bounced)
            .fetch_all(pool)
            .await?))
    }

    /// The registrant contact of a domain.
    pub async fn registrant(&self, domain: &DomainName) -> Result<Option<ContactRecord>> {
        with_pool!(self, pool, d => Ok(sqlx::query_as(
            "SELECT c.external_id, c.email, c.email_key, c.language, c.created_at, c.updated_at \
             FROM contacts c JOIN domains d ON d.contact_external_id = c.external_id WHERE d.name = $1")
            .bind(domain.as_str())
            .fetch_optional(pool)
            .await?))
    }
}

impl Tx {
    /// Creates or updates one contact inside this transaction: its row, its
    /// domains, the verification of its (new) address, the address it left,
    /// and whether its domains wait on it.
    pub(crate) async fn upsert_contact(
        &mut self,
        input: &ContactUpsert,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<UpsertOutcome> {
        let id = &input.external_id;
        let existing = self.contact_for_update(id).await?;
        let change = AddressChange::of(existing.as_ref().map(|c| &c.email_key), &input.email.key());
        let key = input.email.key();
        // An address without domains is dormant (nothing is due); the one
        // that gets its first domain becomes due from now.
        let was_dormant = !input.domains.is_empty() && self.address_domains(&key).await?.is_empty();
        if change.joins() {
            self.write_contact(id, &input.email, now).await?;
        }
        if let Some(lang) = &input.language {
            self.set_language(id, lang).await?;
        }
        for domain in &input.domains {
            self.assign_domain(domain, id, now).await?;
        }
        let mut created = false;
        if change.joins() {
            created = self.join_address(input, now, policy).await?;
            if let AddressChange::Moved { from } = &change {
                self.leave_address(from, now, policy).await?;
            }
        }
        if was_dormant && !created {
            if let Some(v) = self.verification_for_update(&key).await? {
                // Rewriting the row unchanged stores its due time afresh.
                self.write_verification(VerificationWrite::Redue(&v), now, policy)
                    .await?;
            }
        }
        self.reconcile_waiting(input, now, policy).await?;
        let contact = self
            .contact_for_update(id)
            .await?
            .ok_or_else(|| Error::internal("the contact vanished inside its own transaction"))?;
        Ok(UpsertOutcome {
            contact,
            created: change == AddressChange::Created,
            email_changed: matches!(change, AddressChange::Moved { .. }),
        })
    }

    /// Joins the verification of the contact's address, creating it if the
    /// address is new (returns whether it was) and applying an import line's
    /// state where it may.
    async fn join_address(
        &mut self,
        input: &ContactUpsert,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<bool> {
        let fresh = Verification::new(&input.email);
        let created = self
            .write_verification(VerificationWrite::Create(&fresh), now, policy)
            .await?;
        let Some(state) = &input.import else {
            return Ok(created);
        };
        let mut v = self
            .verification_for_update(&fresh.email_key)
            .await?
            .ok_or_else(|| Error::internal("the address's verification vanished"))?;
        if !v.takes_import(created) {
            return Ok(created);
        }
        v.apply_import(
            state.status,
            state.key_issued_at,
            state.last_notification_at,
            now,
            policy,
        )?;
        if !self
            .write_verification(VerificationWrite::Update(&v), now, policy)
            .await?
        {
            return Err(Error::internal("verification changed during import"));
        }
        if let Some(k) = &v.key {
            self.insert_key(&v.email_key, k).await?;
        }
        if v.status == Status::Validated {
            self.on_validated(&v, Proof::Import, now, policy).await?;
        }
        Ok(created)
    }

    /// CONTRACT section 7: the contact's domains wait while its address is
    /// not Validated (a domain already waiting keeps its deadline), and stop
    /// waiting, released from any suspension, when it is.
    async fn reconcile_waiting(
        &mut self,
        input: &ContactUpsert,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<()> {
        let key = input.email.key();
        let v = self
            .verification_for_update(&key)
            .await?
            .ok_or_else(|| Error::internal("the contact's address has no verification"))?;
        if v.status == Status::Validated {
            let released = self.stop_waiting_for_contact(&input.external_id).await?;
            if !released.is_empty() {
                let ids = self.address_contacts(&key).await?;
                let event = Event::new(
                    EventType::DomainUnsuspended,
                    now,
                    &v.email,
                    ids,
                    released,
                    "the domain's registrant's email address is verified",
                );
                self.insert_event(&event, !policy.hooks_configured, now)
                    .await?;
            }
        } else {
            let imported = input.import.as_ref().and_then(|i| i.suspension_date);
            let due = deadline(now, policy.suspend_after, imported);
            self.start_waiting_for_contact(&input.external_id, now, due)
                .await?;
        }
        Ok(())
    }

    /// After a contact moved away from `old`: if no contact uses it any more,
    /// the domain decides what becomes of its verification.
    async fn leave_address(
        &mut self,
        old: &EmailKey,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<()> {
        if self.contacts_using(old).await? > 0 {
            return Ok(());
        }
        let Some(v) = self.verification_for_update(old).await? else {
            return Ok(());
        };
        match v.on_address_left() {
            AddressLeft::Keep => {}
            AddressLeft::VoidAndDelete => {
                self.void_keys_of(old, None, VOID_EMAIL_CHANGED, now)
                    .await?;
                self.write_verification(VerificationWrite::Remove(&v), now, policy)
                    .await?;
            }
        }
        Ok(())
    }

    async fn contact_for_update(&mut self, id: &ExternalId) -> Result<Option<ContactRecord>> {
        Ok(on_tx!(self, conn, d => sqlx::query_as(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE external_id = $1{}", d::FOR_UPDATE))
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?))
    }

    async fn contacts_using(&mut self, email_key: &EmailKey) -> Result<i64> {
        Ok(on_tx!(self, conn, d => sqlx::query_scalar(
            "SELECT COUNT(*) FROM contacts WHERE email_key = $1")
            .bind(email_key.as_str())
            .fetch_one(&mut *conn)
            .await?))
    }

    /// Writes a contact's row: created with this address, or moved to it.
    async fn write_contact(
        &mut self,
        id: &ExternalId,
        email: &ContactEmail,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_tx!(self, conn, d => sqlx::query(
            "INSERT INTO contacts (external_id, email, email_key, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (external_id) DO UPDATE \
             SET email = excluded.email, email_key = excluded.email_key, updated_at = excluded.updated_at")
            .bind(id.as_str())
            .bind(email.as_str())
            .bind(email.key().as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected());
        Ok(())
    }

    /// A contact's language, when one was given (none given keeps it).
    async fn set_language(&mut self, id: &ExternalId, lang: &Language) -> Result<()> {
        on_tx!(self, conn, d => sqlx::query(
            "UPDATE contacts SET language = $2 WHERE external_id = $1")
            .bind(id.as_str())
            .bind(lang.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected());
        Ok(())
    }

    /// A domain has one registrant: naming it for a contact moves it there.
    async fn assign_domain(
        &mut self,
        domain: &DomainName,
        id: &ExternalId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_tx!(self, conn, d => sqlx::query(
            "INSERT INTO domains (name, contact_external_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $3) ON CONFLICT (name) DO UPDATE \
             SET contact_external_id = excluded.contact_external_id, updated_at = excluded.updated_at \
             WHERE domains.contact_external_id <> excluded.contact_external_id")
            .bind(domain.as_str())
            .bind(id.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected());
        Ok(())
    }
}
