//! Events for the registrar's systems (CONTRACT section 8): what happened to
//! which address and domains, written in the transaction of the change and
//! delivered at least once, in order, to the hook.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ts_serde, ContactEmail, DomainName, ExternalId};
use crate::{Error, Result};

/// The kinds of event, spelled as the hook receives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    DomainSuspended,
    DomainUnsuspended,
    ContactValidated,
    ContactExpired,
    EmailBounced,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::DomainSuspended => "domain_suspended",
            EventType::DomainUnsuspended => "domain_unsuspended",
            EventType::ContactValidated => "contact_validated",
            EventType::ContactExpired => "contact_expired",
            EventType::EmailBounced => "email_bounced",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "domain_suspended" => EventType::DomainSuspended,
            "domain_unsuspended" => EventType::DomainUnsuspended,
            "contact_validated" => EventType::ContactValidated,
            "contact_expired" => EventType::ContactExpired,
            "email_bounced" => EventType::EmailBounced,
            other => return Err(Error::internal(format!("unknown event type {other:?}"))),
        })
    }
}

/// One event, as delivered: `{"id","type","at","contactEmail","externalIds","domains","reason"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(serialize_with = "ts_serde::required")]
    pub at: DateTime<Utc>,
    pub contact_email: ContactEmail,
    pub external_ids: Vec<ExternalId>,
    pub domains: Vec<DomainName>,
    pub reason: String,
}

impl Event {
    pub fn new(
        kind: EventType,
        at: DateTime<Utc>,
        contact_email: &ContactEmail,
        external_ids: Vec<ExternalId>,
        domains: Vec<DomainName>,
        reason: impl Into<String>,
    ) -> Event {
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            at,
            contact_email: contact_email.clone(),
            external_ids,
            domains,
            reason: reason.into(),
        }
    }

    /// The body delivered to the hook, and stored as it will be delivered.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_serializes_in_the_contracts_shape() {
        let e = Event::new(
            EventType::DomainSuspended,
            crate::domain::testing::t0(),
            &ContactEmail::parse("a@example.com").unwrap(),
            vec![ExternalId::parse("DNA-1").unwrap()],
            vec![DomainName::parse("example.com").unwrap()],
            "no confirmation within 15 days",
        );
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["type"], "domain_suspended");
        assert_eq!(v["at"], "2026-01-01T00:00:00Z");
        assert_eq!(v["contactEmail"], "a@example.com");
        assert_eq!(v["externalIds"], serde_json::json!(["DNA-1"]));
        assert_eq!(v["domains"], serde_json::json!(["example.com"]));
        assert_eq!(v["reason"], "no confirmation within 15 days");
        assert_eq!(v["id"].as_str().unwrap().len(), 36);
        for t in [
            EventType::DomainSuspended,
            EventType::DomainUnsuspended,
            EventType::ContactValidated,
            EventType::ContactExpired,
            EventType::EmailBounced,
        ] {
            assert_eq!(EventType::parse(t.as_str()).unwrap(), t);
        }
    }
}
