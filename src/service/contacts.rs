//! Contacts: create or update, GetDetails, and the address's notification
//! history.

use super::{ContactDetails, ContactSelector, Verifier};
use crate::domain::{mask_email, ContactEmail, ExternalId, Language, Status};
use crate::store::{ContactFilter, ContactRecord, ContactUpsert, NotificationRecord};
use crate::{Error, Result};

const MAX_LISTED_NOTIFICATIONS: i64 = 1000;

impl Verifier {
    /// `contact add` / `POST /v1/contacts`: create or update a contact.
    pub async fn add_contact(
        &self,
        external_id: &str,
        email: &str,
        domains: &[String],
        language: Option<&str>,
    ) -> Result<ContactDetails> {
        let input = ContactUpsert {
            external_id: ExternalId::parse(external_id)?,
            email: ContactEmail::parse(email)?,
            domains: self.parse_domains(domains)?,
            language: language.map(Language::parse).transpose()?,
            import: None,
        };
        let outcome = self
            .store
            .upsert_contact(&input, self.now(), &self.policy)
            .await?;
        if outcome.email_changed {
            tracing::info!(
                event = "contact_email_changed",
                external_id = %outcome.contact.external_id,
                email = %mask_email(outcome.contact.email.as_str()),
                "contact moved to a new email address; links sent to the old one no longer confirm it"
            );
        }
        self.details(&outcome.contact).await
    }

    /// GetDetails for a contact.
    pub async fn details(&self, contact: &ContactRecord) -> Result<ContactDetails> {
        let mut contact = contact.clone();
        let mut found = self.store.verification(&contact.email_key).await?;
        for _ in 0..super::RACE_ATTEMPTS {
            if found.is_some() {
                break;
            }
            // The contact moved to another address after it was read, and
            // the old address's record went (schemathesis found this as a
            // 500 under concurrent requests): read the contact again.
            contact = self
                .store
                .contact(&contact.external_id)
                .await?
                .ok_or_else(|| {
                    Error::not_found(format!(
                        "no contact with external id {}",
                        contact.external_id
                    ))
                })?;
            found = self.store.verification(&contact.email_key).await?;
        }
        let v = found.ok_or_else(|| Error::internal("contact has no verification record"))?;
        let contact = &contact;
        let domains = self
            .store
            .contact_domain_records(&contact.external_id)
            .await?;
        let expiration_date = match v.status {
            Status::Pending | Status::Expired => v.key.as_ref().map(|k| k.expires_at),
            Status::NotValidated | Status::Validated => None,
        };
        // An address none of whose contacts has a domain is dormant: no
        // sweep mails it (CONTRACT section 7).
        let dormant = self
            .store
            .address_domains(&contact.email_key)
            .await?
            .is_empty();
        let next_notification_date = if dormant {
            None
        } else {
            let due_since = self.store.due_at(&contact.email_key).await?;
            v.next_notification_at(self.now(), due_since, &self.policy)
        };
        Ok(ContactDetails {
            external_id: contact.external_id.clone(),
            contact_email: contact.email.clone(),
            verification_status: v.status,
            expiration_date,
            last_notification_date: v.last_notification_at,
            validated_at: v.validated_at.filter(|_| v.status == Status::Validated),
            next_notification_date,
            suspension_date: domains
                .iter()
                .filter(|d| d.waiting_since.is_some() && self.policy.suspend_after.is_some())
                .filter_map(|d| d.suspension_date)
                .min(),
            suspended_domains: domains
                .iter()
                .filter(|d| d.suspended)
                .map(|d| d.name.clone())
                .collect(),
            domains: domains.into_iter().map(|d| d.name).collect(),
            bounce: v.bounce.clone(),
            language: contact.language.clone(),
        })
    }

    pub async fn show_contact(&self, selector: &ContactSelector) -> Result<ContactDetails> {
        let contact = self.find_contact(selector).await?;
        self.details(&contact).await
    }

    /// A contact's notification records (its address's), newest first.
    pub async fn notifications(
        &self,
        selector: &ContactSelector,
    ) -> Result<Vec<NotificationRecord>> {
        let contact = self.find_contact(selector).await?;
        self.store
            .notifications(&contact.email_key, MAX_LISTED_NOTIFICATIONS)
            .await
    }
}

/// One page of `contact list`.
#[derive(Debug, Clone, utoipa::ToSchema)]
#[schema(rename_all = "PascalCase")]
pub struct ContactsPage {
    pub contacts: Vec<ContactDetails>,
    /// Null on the last page.
    #[schema(required = true)]
    pub next_page_marker: Option<String>,
}

impl ContactsPage {
    /// `{"Contacts":[GetDetails...],"NextPageMarker":...}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "Contacts": self.contacts,
            "NextPageMarker": self.next_page_marker,
        })
    }
}

impl Verifier {
    /// `contact list`: contacts in ExternalId order, filtered, a page at a
    /// time (default 100, at most 1000).
    pub async fn list_contacts(
        &self,
        status: Option<&str>,
        domain: Option<&str>,
        suspended: bool,
        bounced: bool,
        max_items: Option<i64>,
        marker: Option<&str>,
    ) -> Result<ContactsPage> {
        let filter = ContactFilter {
            status: status.map(Status::parse).transpose()?,
            domain: domain.map(|d| self.parse_domain(d)).transpose()?,
            suspended,
            bounced,
        };
        let limit = super::markers::page_size(max_items)?;
        let key = format!(
            "status={};domain={};suspended={};bounced={}",
            filter.status.map(Status::as_str).unwrap_or(""),
            filter.domain.as_ref().map(|d| d.as_str()).unwrap_or(""),
            filter.suspended,
            filter.bounced
        );
        let after = marker
            .map(|m| self.markers.read("contacts", &key, m))
            .transpose()?
            .map(|id| ExternalId::parse(&id))
            .transpose()?;
        let mut rows = self
            .store
            .contacts_page(&filter, after.as_ref(), limit + 1)
            .await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_page_marker = match rows.last() {
            Some(last) if more => Some(self.markers.issue(
                "contacts",
                &key,
                last.external_id.as_str(),
            )),
            _ => None,
        };
        let mut contacts = Vec::with_capacity(rows.len());
        for c in &rows {
            contacts.push(self.details(c).await?);
        }
        Ok(ContactsPage {
            contacts,
            next_page_marker,
        })
    }
}
