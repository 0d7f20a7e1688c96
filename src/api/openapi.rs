//! The OpenAPI 3.1 document of `/v1`, generated with `utoipa` from the
//! handlers' `#[utoipa::path]` annotations (`v1.rs`, `monitoring.rs`) and
//! the request and response types they use; served at `GET /v1/openapi.json`
//! without the token and committed as `docs/openapi.json`
//! (`contact-verifier-docs openapi docs/openapi.json` regenerates it).

use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::schema::{OneOfBuilder, Ref, Schema};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::{monitoring, v1};
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

/// Adds the bearer scheme the `/v1` operations name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "contact-verifier",
        description = "Registrant contact email verification: the registrar-facing /v1 API \
            (CONTRACT sections 5 and 10). Every /v1 operation but this document needs \
            `Authorization: Bearer <http.api_token>`; every error is \
            `{\"__type\":\"<Code>\",\"message\":\"...\"}`.",
    ),
    paths(
        v1::add_contact,
        v1::get_contact,
        v1::resend,
        v1::verify,
        v1::reverify,
        v1::contact_evidence,
        v1::contact_notifications,
        v1::export_evidence,
        v1::domain_show,
        v1::list_events,
        v1::reachability,
        v1::domain_resend,
        v1::add_operation,
        v1::list_operations,
        v1::get_operation,
        monitoring::stats,
        openapi_json,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    tags((name = "v1", description = "The registrar-facing API"))
)]
struct ApiDoc;

/// The document, pretty-printed with a final newline, as committed in
/// `docs/openapi.json`.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let mut doc = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
    // The operation AddOperation records is GetOperationDetail's `id` (a
    // link written as JSON: utoipa 5 spells a link's `operationId` in snake
    // case).
    if let Some(response) = doc.pointer_mut("/paths/~1v1~1operations/post/responses/200") {
        response["links"] = serde_json::json!({
            "GetOperationDetail": {
                "operationId": "GetOperationDetail",
                "parameters": {"id": "$response.body#/OperationId"},
                "description": "The operation just recorded"
            }
        });
    }
    let mut text = serde_json::to_string_pretty(&doc).expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

/// This document (no token needed).
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "v1",
    operation_id = "GetOpenApiDocument",
    security(()),
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub(super) async fn openapi_json() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let mut r = DOC.get_or_init(document).clone().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
