//! The contract's response shapes, in one place: what the CLI prints and the
//! API answers, under the contract's field names and order.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{ts_serde, ContactEmail, DomainName, ExternalId, Status, Verification};
use crate::store::{ContactRecord, KeyRecord, NotificationRecord};

/// The reseller ContactApi's GetDetails object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ContactDetails {
    #[schema(value_type = String)]
    pub external_id: ExternalId,
    #[schema(value_type = String)]
    pub contact_email: ContactEmail,
    pub verification_status: Status,
    #[serde(serialize_with = "ts_serde::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub expiration_date: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ts_serde::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub last_notification_date: Option<DateTime<Utc>>,
    #[schema(value_type = Vec<String>)]
    pub domains: Vec<DomainName>,
    /// When the address became Validated (null unless it is).
    #[serde(serialize_with = "ts_serde::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub validated_at: Option<DateTime<Utc>>,
    /// When the address is next due an email, after any retry wait.
    #[serde(serialize_with = "ts_serde::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub next_notification_date: Option<DateTime<Utc>>,
    /// The earliest deadline among the contact's waiting domains.
    #[serde(serialize_with = "ts_serde::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub suspension_date: Option<DateTime<Utc>>,
    #[schema(value_type = Vec<String>)]
    pub suspended_domains: Vec<DomainName>,
    /// The address's last hard bounce (`{"Code","Detail","At"}`), or null.
    #[schema(required = true)]
    pub bounce: Option<crate::domain::Bounce>,
    /// The contact's language tag, or null.
    #[schema(required = true)]
    pub language: Option<String>,
}

/// `domain show`: a domain's verification and suspension (CONTRACT section 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DomainDetails {
    #[schema(value_type = String)]
    pub domain_name: DomainName,
    #[schema(value_type = String)]
    pub registrant_external_id: ExternalId,
    #[schema(value_type = String)]
    pub contact_email: ContactEmail,
    #[schema(value_type = String)]
    pub reachability_status: &'static str,
    #[serde(serialize_with = "ts_serde::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub suspension_date: Option<DateTime<Utc>>,
    /// Whole days left, rounded up; 0 once past; null when not waiting.
    #[schema(required = true)]
    pub days_to_suspend: Option<i64>,
    pub suspended: bool,
    #[serde(serialize_with = "ts_serde::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub suspended_at: Option<DateTime<Utc>>,
}

/// GetContactReachabilityStatus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reachability {
    #[schema(value_type = String)]
    pub domain_name: DomainName,
    #[schema(value_type = String)]
    pub status: &'static str,
}

/// One rejected import line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportRejection {
    pub line: u64,
    pub error: String,
}

/// What `contact import` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub imported: u64,
    pub rejected: Vec<ImportRejection>,
    /// All rejected lines, also those past the listed ones.
    pub rejected_count: u64,
}

/// ResendContactVerificationNotice's answer: GetDetails plus the record of
/// the email sent (`None` when the address was already verified).
#[derive(Debug, Clone)]
pub struct ResendOutcome {
    pub details: ContactDetails,
    pub notification: Option<NotificationRecord>,
}

impl ResendOutcome {
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.details).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.insert(
                "Notification".into(),
                serde_json::to_value(&self.notification).unwrap_or_default(),
            );
        }
        v
    }
}

/// ResendContactReachabilityEmail's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainResend {
    #[schema(value_type = String)]
    pub domain_name: DomainName,
    #[schema(value_type = String)]
    pub email_address: ContactEmail,
    pub is_already_verified: bool,
}

/// A link that checked out: whose it is, the domains it confirms, and
/// whether it was used already.
#[derive(Debug, Clone)]
pub struct LinkCheck {
    pub verification: Verification,
    pub contact: ContactRecord,
    /// Every domain of every contact using the address.
    pub domains: Vec<DomainName>,
    pub already_confirmed: bool,
    /// The key the link names.
    pub key: Option<KeyRecord>,
}

/// A confirmation's result, for the CLI and the result page.
#[derive(Debug, Clone)]
pub struct Confirmation {
    pub details: ContactDetails,
    pub already_confirmed: bool,
    /// The confirmed address.
    pub email: ContactEmail,
    /// Every domain of every contact using the address.
    pub domains: Vec<DomainName>,
}
