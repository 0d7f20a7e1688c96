//! Rows as the store hands them out, and their JSON shapes where the contract
//! prints them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::verification::{Key, Status, Verification};
use crate::domain::{
    ts_serde, Bounce, ContactEmail, DomainName, EmailKey, Evidence, ExternalId, KeyId, Method,
    Notice, OperationStatus, OperationType, StatusFlag,
};
use crate::Result;

/// A contact as stored, its values typed as when they were parsed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ContactRecord {
    #[sqlx(try_from = "String")]
    pub external_id: ExternalId,
    #[sqlx(try_from = "String")]
    pub email: ContactEmail,
    #[sqlx(try_from = "String")]
    pub email_key: EmailKey,
    /// A language tag as stored (checked when it was given); None: not given.
    pub language: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A verification row as stored; [`Verification`] is its domain form.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct VerificationRow {
    #[sqlx(try_from = "String")]
    email_key: EmailKey,
    #[sqlx(try_from = "String")]
    email: ContactEmail,
    status: String,
    key_id: Option<String>,
    key_issued_at: Option<DateTime<Utc>>,
    key_expires_at: Option<DateTime<Utc>>,
    last_notification_at: Option<DateTime<Utc>>,
    reminder_day_covered: i64,
    expiry_notice_owed: bool,
    failures: i64,
    retry_at: Option<DateTime<Utc>>,
    claim_owner: Option<String>,
    claim_until: Option<DateTime<Utc>>,
    validated_at: Option<DateTime<Utc>>,
    bounce_code: Option<String>,
    bounce_detail: Option<String>,
    bounced_at: Option<DateTime<Utc>>,
    version: i64,
}

pub(crate) const VERIFICATION_COLUMNS: &str = "email_key, email, status, key_id, key_issued_at, \
     key_expires_at, last_notification_at, reminder_day_covered, expiry_notice_owed, failures, \
     retry_at, claim_owner, claim_until, validated_at, bounce_code, bounce_detail, bounced_at, \
     version";

impl VerificationRow {
    pub(crate) fn into_domain(self) -> Result<Verification> {
        let key = match (self.key_id, self.key_issued_at, self.key_expires_at) {
            (Some(id), Some(issued_at), Some(expires_at)) => Some(Key {
                id: KeyId::from_hex(&id)?,
                issued_at,
                expires_at,
            }),
            _ => None,
        };
        Ok(Verification {
            email_key: self.email_key,
            email: self.email,
            status: Status::parse(&self.status)?,
            key,
            last_notification_at: self.last_notification_at,
            reminder_day_covered: u32::try_from(self.reminder_day_covered).unwrap_or(0),
            expiry_notice_owed: self.expiry_notice_owed,
            failures: u32::try_from(self.failures).unwrap_or(u32::MAX),
            retry_at: self.retry_at,
            claim_owner: self.claim_owner,
            claim_until: self.claim_until,
            validated_at: self.validated_at,
            bounce: match (self.bounce_code, self.bounced_at) {
                (Some(code), Some(at)) => Some(Bounce {
                    code,
                    detail: self.bounce_detail.unwrap_or_default(),
                    at,
                }),
                _ => None,
            },
            version: self.version,
        })
    }
}

/// An issued key, kept after it is replaced so a stale link gets its reason.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyRecord {
    #[sqlx(try_from = "String")]
    pub key_id: KeyId,
    #[sqlx(try_from = "String")]
    pub email_key: EmailKey,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub voided_at: Option<DateTime<Utc>>,
    pub void_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum NotificationStatus {
    Started,
    Succeeded,
    Failed,
}

impl NotificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Started => "Started",
            NotificationStatus::Succeeded => "Succeeded",
            NotificationStatus::Failed => "Failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "Succeeded" => NotificationStatus::Succeeded,
            "Failed" => NotificationStatus::Failed,
            _ => NotificationStatus::Started,
        }
    }
}

/// One email attempt (Lightsail's Operation object). Its `operationType`
/// and `operationDetails` both follow from the [`Notice`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    pub id: String,
    pub email_key: EmailKey,
    pub notice: Notice,
    pub status: NotificationStatus,
    pub is_terminal: bool,
    pub created_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
    pub error_code: Option<String>,
    pub error_details: Option<String>,
}

/// [`NotificationRecord`] as the contract shows it, in the contract's field
/// order; also its OpenAPI schema (`Notification`).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Notification)]
struct NotificationShape<'a> {
    #[schema(value_type = String)]
    id: &'a str,
    #[schema(value_type = String)]
    operation_type: &'static str,
    operation_details: String,
    status: NotificationStatus,
    is_terminal: bool,
    #[serde(serialize_with = "ts_serde::required")]
    #[schema(value_type = String, format = DateTime)]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "ts_serde::required")]
    #[schema(value_type = String, format = DateTime)]
    status_changed_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, required = true)]
    error_code: Option<&'a str>,
    #[schema(value_type = Option<String>, required = true)]
    error_details: Option<&'a str>,
}

impl utoipa::PartialSchema for NotificationRecord {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <NotificationShape<'static> as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for NotificationRecord {
    fn name() -> std::borrow::Cow<'static, str> {
        <NotificationShape<'static> as utoipa::ToSchema>::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <NotificationShape<'static> as utoipa::ToSchema>::schemas(schemas)
    }
}

impl Serialize for NotificationRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        NotificationShape {
            id: &self.id,
            operation_type: self.notice.operation_type(),
            operation_details: self.notice.reason(),
            status: self.status,
            is_terminal: self.is_terminal,
            created_at: self.created_at,
            status_changed_at: self.status_changed_at,
            error_code: self.error_code.as_deref(),
            error_details: self.error_details.as_deref(),
        }
        .serialize(s)
    }
}

impl NotificationRecord {
    pub fn started(email_key: &EmailKey, notice: Notice, now: DateTime<Utc>) -> Self {
        NotificationRecord {
            id: uuid::Uuid::new_v4().to_string(),
            email_key: email_key.clone(),
            notice,
            status: NotificationStatus::Started,
            is_terminal: false,
            created_at: now,
            status_changed_at: now,
            error_code: None,
            error_details: None,
        }
    }

    pub fn succeed(&mut self, now: DateTime<Utc>) {
        self.status = NotificationStatus::Succeeded;
        self.is_terminal = true;
        self.status_changed_at = now;
    }

    pub fn fail(&mut self, now: DateTime<Utc>, code: String, details: String) {
        self.status = NotificationStatus::Failed;
        self.is_terminal = true;
        self.status_changed_at = now;
        self.error_code = Some(code);
        self.error_details = Some(details);
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct NotificationRow {
    id: String,
    #[sqlx(try_from = "String")]
    email_key: EmailKey,
    reason: String,
    status: String,
    is_terminal: bool,
    created_at: DateTime<Utc>,
    status_changed_at: DateTime<Utc>,
    error_code: Option<String>,
    error_details: Option<String>,
}

impl NotificationRow {
    pub(crate) fn into_domain(self) -> Result<NotificationRecord> {
        let r = self;
        Ok(NotificationRecord {
            id: r.id,
            email_key: r.email_key,
            notice: Notice::from_reason(&r.reason)?,
            status: NotificationStatus::parse(&r.status),
            is_terminal: r.is_terminal,
            created_at: r.created_at,
            status_changed_at: r.status_changed_at,
            error_code: r.error_code,
            error_details: r.error_details,
        })
    }
}

/// A domain operation (Route 53 Domains' GetOperationDetail), printed under
/// the contract's names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct OperationRecord {
    pub operation_id: String,
    pub status: OperationStatus,
    #[serde(rename = "Type")]
    pub op_type: OperationType,
    #[schema(value_type = String)]
    pub domain_name: DomainName,
    #[schema(required = true)]
    pub message: Option<String>,
    #[serde(serialize_with = "ts_serde::required")]
    #[schema(value_type = String, format = DateTime)]
    pub submitted_date: DateTime<Utc>,
    #[serde(serialize_with = "ts_serde::required")]
    #[schema(value_type = String, format = DateTime)]
    pub last_updated_date: DateTime<Utc>,
    #[schema(required = true)]
    pub status_flag: Option<StatusFlag>,
}

impl OperationRecord {
    /// The operation as its registrant's status settles it (`domain::settle`
    /// decides), stamped `now`; `None` when nothing changes.
    pub fn settled_by(
        &self,
        registrant: Option<crate::domain::Status>,
        now: DateTime<Utc>,
    ) -> Option<OperationRecord> {
        let (status, flag, message) =
            crate::domain::settle(self.status, self.status_flag, registrant)?;
        Some(OperationRecord {
            status,
            status_flag: flag,
            message: message.map(str::to_string).or_else(|| self.message.clone()),
            last_updated_date: now,
            ..self.clone()
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct OperationRow {
    id: String,
    #[sqlx(try_from = "String")]
    domain_name: DomainName,
    #[sqlx(rename = "type")]
    op_type: String,
    status: String,
    status_flag: Option<String>,
    message: Option<String>,
    submitted_at: DateTime<Utc>,
    last_updated_at: DateTime<Utc>,
}

pub(crate) const OPERATION_COLUMNS: &str =
    "id, domain_name, type, status, status_flag, message, submitted_at, last_updated_at";

/// The operations table as it is read: an open operation that waits on a
/// registrant whose address bounced says so in `Message` (CONTRACT section
/// 7), worked out when read so that clearing the bounce clears it too.
pub(crate) const OPERATIONS_VIEW: &str = "(SELECT o.id, o.domain_name, o.type, o.status, \
     o.status_flag, o.submitted_at, o.last_updated_at, \
     COALESCE(o.message, CASE WHEN o.status IN ('SUBMITTED', 'IN_PROGRESS') \
         AND o.status_flag = 'PENDING_CUSTOMER_ACTION' AND v.bounced_at IS NOT NULL \
       THEN 'The registrant''s email address bounced (' || v.bounce_code || ': ' \
         || COALESCE(v.bounce_detail, '') || '); the registrant cannot confirm until the \
address is corrected or the verification email is resent.' END) AS message \
     FROM operations o \
     LEFT JOIN domains dm ON dm.name = o.domain_name \
     LEFT JOIN contacts c ON c.external_id = dm.contact_external_id \
     LEFT JOIN verifications v ON v.email_key = c.email_key) ops";

impl OperationRow {
    pub(crate) fn into_domain(self) -> Result<OperationRecord> {
        Ok(OperationRecord {
            operation_id: self.id,
            status: OperationStatus::parse(&self.status)?,
            op_type: OperationType::parse(&self.op_type)?,
            domain_name: self.domain_name,
            message: self.message,
            submitted_date: self.submitted_at,
            last_updated_date: self.last_updated_at,
            status_flag: self
                .status_flag
                .as_deref()
                .map(StatusFlag::parse)
                .transpose()?,
        })
    }
}

/// A due verification with the `due_at` the sweep pages by.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DueRow {
    pub(crate) sweep_due_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub(crate) row: VerificationRow,
}

/// An open operation with its registrant's verification status, if any.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OpenOperationRow {
    #[sqlx(flatten)]
    pub(crate) op: OperationRow,
    pub(crate) registrant_status: Option<String>,
    pub(crate) registrant_email_key: Option<String>,
}

/// A domain and where it stands on the suspension deadline.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DomainRecord {
    #[sqlx(try_from = "String")]
    pub name: DomainName,
    #[sqlx(try_from = "String", rename = "contact_external_id")]
    pub registrant: ExternalId,
    /// Since when it waits on an unvalidated registrant (`None`: it does not).
    pub waiting_since: Option<DateTime<Utc>>,
    /// When it is suspended if it still waits (`None`: not waiting, or
    /// suspension is off).
    pub suspension_date: Option<DateTime<Utc>>,
    pub suspended: bool,
    pub suspended_at: Option<DateTime<Utc>>,
}

pub(crate) const DOMAIN_COLUMNS: &str =
    "name, contact_external_id, waiting_since, suspension_date, suspended, suspended_at";

/// An evidence row as stored; [`Evidence`] is its domain form.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EvidenceRow {
    id: String,
    #[sqlx(try_from = "String")]
    contact_email: ContactEmail,
    external_ids: String,
    domains: String,
    validated_at: DateTime<Utc>,
    method: String,
    key_id: Option<String>,
    key_issued_at: Option<DateTime<Utc>>,
    client_ip: Option<String>,
    user_agent: Option<String>,
    reason: Option<String>,
    by_name: Option<String>,
}

pub(crate) const EVIDENCE_COLUMNS: &str =
    "id, contact_email, external_ids, domains, validated_at, \
     method, key_id, key_issued_at, client_ip, user_agent, reason, by_name";

impl EvidenceRow {
    pub(crate) fn into_domain(self) -> Result<Evidence> {
        let ids: Vec<String> = serde_json::from_str(&self.external_ids)
            .map_err(|e| crate::Error::internal(format!("stored evidence ids: {e}")))?;
        let names: Vec<String> = serde_json::from_str(&self.domains)
            .map_err(|e| crate::Error::internal(format!("stored evidence domains: {e}")))?;
        Ok(Evidence {
            id: self.id,
            contact_email: self.contact_email,
            external_ids: ids
                .into_iter()
                .map(ExternalId::try_from)
                .collect::<Result<_>>()?,
            domains: names
                .into_iter()
                .map(DomainName::try_from)
                .collect::<Result<_>>()?,
            validated_at: self.validated_at,
            method: Method::parse(&self.method)?,
            key_id: self.key_id.map(KeyId::try_from).transpose()?,
            key_issued_at: self.key_issued_at,
            client_ip: self.client_ip,
            user_agent: self.user_agent,
            reason: self.reason,
            by: self.by_name,
        })
    }
}

/// A hook event with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRecord {
    /// The delivery order.
    pub seq: i64,
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    /// The event's JSON, exactly as delivered.
    pub payload: String,
    pub delivered: bool,
    pub delivered_at: Option<DateTime<Utc>>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

pub(crate) const EVENT_COLUMNS: &str =
    "seq, id, type, payload, delivered, delivered_at, attempts, last_error, next_attempt_at";

impl EventRecord {
    /// `events list`'s item: the event plus `Delivered`, `Attempts`, `LastError`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v: serde_json::Value =
            serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null);
        if let Some(map) = v.as_object_mut() {
            map.insert("Delivered".into(), self.delivered.into());
            map.insert("Attempts".into(), self.attempts.into());
            map.insert("LastError".into(), self.last_error.clone().into());
        }
        v
    }
}
