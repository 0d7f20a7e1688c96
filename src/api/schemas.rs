//! The schemas the OpenAPI document describes the `/v1` answers with where
//! they are not the service's own types (the error body, wrappers of lists,
//! the one-of of `GET /v1/contacts`): shared by the handlers' annotations
//! and the document, so neither reaches into the other.

use serde::Serialize;
use utoipa::openapi::schema::{OneOfBuilder, Ref, Schema};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::domain::Evidence;
use crate::service::{ContactDetails, ContactsPage};
use crate::store::NotificationRecord;

/// Every error of the API: `{"__type":"<Code>","message":"..."}`.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// The contract's error code: `InvalidInput`, `UnsupportedTLD`,
    /// `NotFound`, `OperationLimitExceeded`, `Unavailable`,
    /// `UnauthorizedException` or `InternalFailure`.
    #[serde(rename = "__type")]
    pub code: String,
    pub message: String,
}

/// ResendContactVerificationNotice's answer: the GetDetails object plus the
/// record of the email sent (null when the address was already verified);
/// what `ResendOutcome::to_json` writes.
#[derive(Serialize, ToSchema)]
#[schema(as = ResendOutcome)]
pub struct ResendOutcomeBody {
    #[serde(flatten)]
    pub details: ContactDetails,
    #[serde(rename = "Notification")]
    #[schema(required = true)]
    pub notification: Option<NotificationRecord>,
}

/// A hook event as `EventRecord::to_json` writes it: the event exactly as
/// delivered (`id`, `type`, `at`, `contactEmail`, `externalIds`,
/// `domains`, `reason`) plus its delivery state.
#[derive(Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventBody {
    #[serde(rename = "Delivered")]
    pub delivered: bool,
    #[serde(rename = "Attempts")]
    pub attempts: i64,
    #[serde(rename = "LastError")]
    #[schema(required = true)]
    pub last_error: Option<String>,
}

/// One page of `events list` (`EventsPage::to_json`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = EventsPage)]
pub struct EventsPageBody {
    pub events: Vec<EventBody>,
    /// Null on the last page.
    #[schema(required = true)]
    pub next_page_marker: Option<String>,
}

/// `contact notifications`: the address's email attempts, newest first.
#[derive(Serialize, ToSchema)]
#[schema(as = Notifications)]
pub struct NotificationsBody {
    pub operations: Vec<NotificationRecord>,
}

/// `contact evidence`: the address's evidence, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = EvidenceList)]
pub struct EvidenceListBody {
    pub evidence: Vec<Evidence>,
}

/// `GET /v1/contacts` answers GetDetails when `externalId` or `email` is
/// given, else a page of `contact list`.
pub struct ContactOrPage;

impl utoipa::PartialSchema for ContactOrPage {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(Ref::from_schema_name(ContactDetails::name()))
            .item(Ref::from_schema_name(ContactsPage::name()))
            .into()
    }
}

impl ToSchema for ContactOrPage {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        for (name, schema) in [
            (ContactDetails::name(), ContactDetails::schema()),
            (ContactsPage::name(), ContactsPage::schema()),
        ] {
            schemas.push((name.into_owned(), schema));
        }
        ContactDetails::schemas(schemas);
        ContactsPage::schemas(schemas);
    }
}
