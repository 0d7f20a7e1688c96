//! `/v1`: the registrar-facing JSON endpoints, named after Route 53 Domains
//! and the reseller ContactApi.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use utoipa::{IntoParams, ToSchema};

use super::schemas::{
    ContactOrPage, ErrorBody, EventsPageBody, EvidenceListBody, NotificationsBody,
    ResendOutcomeBody,
};
use super::{ApiError, ApiJson, ApiQuery, AppState, RawBody};
use crate::domain::{OperationType, Status, StatusFlag};
use crate::service::ContactSelector;
use crate::service::{ContactDetails, DomainDetails, DomainResend, OperationsPage, Reachability};
use crate::store::OperationRecord;

type ApiResult = Result<Json<Value>, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/contacts", post(add_contact).get(get_contact))
        .route("/contacts/resend-verification", post(resend))
        .route("/contacts/verify", post(verify))
        .route("/contacts/reverify", post(reverify))
        .route("/contacts/evidence", get(contact_evidence))
        .route("/contacts/notifications", get(contact_notifications))
        .route("/evidence", get(export_evidence))
        .route("/domains/{name}", get(domain_show))
        .route("/events", get(list_events))
        .route("/bounces", post(bounces))
        .route("/domains/{name}/reachability", get(reachability))
        .route("/domains/{name}/reachability/resend", post(domain_resend))
        .route("/operations", post(add_operation).get(list_operations))
        .route("/operations/{id}", get(get_operation))
}

fn json<T: serde::Serialize>(v: &T) -> ApiResult {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|e| ApiError(crate::Error::internal(format!("cannot encode result: {e}"))))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct ContactBody {
    #[schema(min_length = 1, max_length = 64, pattern = "^\\s*[!-~]+\\s*$")]
    external_id: String,
    #[schema(format = Email)]
    contact_email: String,
    #[serde(default)]
    domains: Vec<String>,
    /// A language tag (`en`, `de`, `fr`, `es`, `pt-BR`); absent keeps the
    /// contact's.
    #[schema(example = "de")]
    language: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/contacts",
    tag = "v1",
    operation_id = "AddContact",
    request_body(content = ContactBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The contact as GetDetails shows it", body = ContactDetails),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 413, description = "The body is larger than `http.max_body_bytes`", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn add_contact(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<ContactBody>,
) -> ApiResult {
    json(
        &s.verifier
            .add_contact(
                &b.external_id,
                &b.contact_email,
                &b.domains,
                b.language.as_deref(),
            )
            .await?,
    )
}

/// `bounce` over HTTP: the raw delivery status notification as the body,
/// any content type.
#[utoipa::path(
    post,
    path = "/v1/bounces",
    tag = "v1",
    operation_id = "PostBounce",
    request_body(content = String, content_type = "text/plain",
        description = "One delivery status notification (RFC 3464), as received; any content type is taken (`message/rfc822` suggested)"),
    responses(
        (status = 200, description = "Blocks that marked a known address bounced, and the others", body = crate::service::BounceReport),
        (status = 400, description = "Not a mail message (`InvalidInput`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 413, description = "The body is larger than `http.max_body_bytes`", body = ErrorBody),
        (status = 503, description = "The database does not answer (`Unavailable`): send it again later", body = ErrorBody)
    )
)]
pub(super) async fn bounces(State(s): State<AppState>, body: RawBody) -> ApiResult {
    json(&s.verifier.bounce_report(&body.0).await?)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ContactQuery {
    #[serde(rename = "externalId")]
    external_id: Option<String>,
    #[param(format = Email)]
    email: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ContactsQuery {
    #[serde(rename = "externalId")]
    external_id: Option<String>,
    #[param(format = Email)]
    email: Option<String>,
    #[param(value_type = Option<Status>)]
    status: Option<String>,
    domain: Option<String>,
    suspended: Option<bool>,
    /// Only contacts whose address bounced.
    bounced: Option<bool>,
    #[serde(rename = "maxItems")]
    /// 1 to 1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    max_items: Option<i64>,
    marker: Option<String>,
}

/// GetDetails with `externalId` or `email`; else `contact list`.
#[utoipa::path(
    get,
    path = "/v1/contacts",
    tag = "v1",
    operation_id = "GetContacts",
    params(ContactsQuery),
    responses(
        (status = 200, description = "With `externalId` or `email`: the GetDetails object; else a page of `contact list`", body = ContactOrPage),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 404, description = "No such contact, domain or operation (`NotFound`)", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn get_contact(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ContactsQuery>,
) -> ApiResult {
    if q.external_id.is_some() || q.email.is_some() {
        let selector = ContactSelector::from_parts(q.external_id.as_deref(), q.email.as_deref())?;
        return json(&s.verifier.show_contact(&selector).await?);
    }
    let page = s
        .verifier
        .list_contacts(
            q.status.as_deref(),
            q.domain.as_deref(),
            q.suspended.unwrap_or(false),
            q.bounced.unwrap_or(false),
            q.max_items,
            q.marker.as_deref(),
        )
        .await?;
    Ok(Json(page.to_json()))
}

#[utoipa::path(
    get,
    path = "/v1/contacts/notifications",
    tag = "v1",
    operation_id = "GetContactNotifications",
    params(ContactQuery),
    responses(
        (status = 200, description = "The address's email attempts, newest first", body = NotificationsBody),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 404, description = "No such contact, domain or operation (`NotFound`)", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn contact_notifications(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> ApiResult {
    let selector = ContactSelector::from_parts(q.external_id.as_deref(), q.email.as_deref())?;
    let records = s.verifier.notifications(&selector).await?;
    Ok(Json(json!({ "operations": records })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct ResendBody {
    #[schema(min_length = 1, max_length = 64)]
    external_id: Option<String>,
    #[schema(format = Email)]
    contact_email: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/contacts/resend-verification",
    tag = "v1",
    operation_id = "ResendContactVerificationNotice",
    request_body(content = ResendBody, content_type = "application/json"),
    responses(
        (status = 200, description = "GetDetails plus the email sent (null when already verified)", body = ResendOutcomeBody),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 404, description = "No such contact, domain or operation (`NotFound`)", body = ErrorBody),
        (status = 413, description = "The body is larger than `http.max_body_bytes`", body = ErrorBody),
        (status = 429, description = "More resends than the daily limit (`OperationLimitExceeded`)", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn resend(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<ResendBody>,
) -> ApiResult {
    let selector =
        ContactSelector::from_parts(b.external_id.as_deref(), b.contact_email.as_deref())?;
    Ok(Json(s.verifier.resend(&selector).await?.to_json()))
}

#[utoipa::path(
    get,
    path = "/v1/domains/{name}/reachability",
    tag = "v1",
    operation_id = "GetContactReachabilityStatus",
    params(("name" = String, Path, description = "The domain name", example = "example.com")),
    responses(
        (status = 200, description = "The registrant's reachability", body = Reachability),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 404, description = "No such contact, domain or operation (`NotFound`)", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn reachability(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    json(&s.verifier.reachability(&name).await?)
}

#[utoipa::path(
    post,
    path = "/v1/domains/{name}/reachability/resend",
    tag = "v1",
    operation_id = "ResendContactReachabilityEmail",
    params(("name" = String, Path, description = "The domain name", example = "example.com")),
    responses(
        (status = 200, description = "Whom the email went to", body = DomainResend),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 404, description = "No such contact, domain or operation (`NotFound`)", body = ErrorBody),
        (status = 429, description = "More resends than the daily limit (`OperationLimitExceeded`)", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn domain_resend(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    json(&s.verifier.resend_for_domain(&name).await?)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct OperationBody {
    domain_name: String,
    #[serde(rename = "Type")]
    #[schema(value_type = OperationType)]
    op_type: String,
    #[schema(value_type = Option<StatusFlag>)]
    status_flag: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/operations",
    tag = "v1",
    operation_id = "AddOperation",
    request_body(content = OperationBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The recorded operation", body = OperationRecord),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 404, description = "No such contact, domain or operation (`NotFound`)", body = ErrorBody),
        (status = 413, description = "The body is larger than `http.max_body_bytes`", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn add_operation(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<OperationBody>,
) -> ApiResult {
    json(
        &s.verifier
            .add_operation(&b.domain_name, &b.op_type, b.status_flag.as_deref())
            .await?,
    )
}

#[utoipa::path(
    get,
    path = "/v1/operations/{id}",
    tag = "v1",
    operation_id = "GetOperationDetail",
    params(("id" = String, Path, description = "The operation's id")),
    responses(
        (status = 200, description = "The operation", body = OperationRecord),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 404, description = "No such contact, domain or operation (`NotFound`)", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn get_operation(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    json(&s.verifier.operation(&id).await?)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct OperationsQuery {
    domain: Option<String>,
    #[serde(rename = "statusFlag")]
    #[param(value_type = Option<StatusFlag>)]
    status_flag: Option<String>,
    #[serde(rename = "maxItems")]
    /// 1 to 1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    max_items: Option<i64>,
    marker: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/operations",
    tag = "v1",
    operation_id = "ListOperations",
    params(OperationsQuery),
    responses(
        (status = 200, description = "A page of operations", body = OperationsPage),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn list_operations(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<OperationsQuery>,
) -> ApiResult {
    let page = s
        .verifier
        .operations(
            q.domain.as_deref(),
            q.status_flag.as_deref(),
            q.max_items,
            q.marker.as_deref(),
        )
        .await?;
    Ok(Json(page.to_json()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct VerifyBody {
    #[schema(min_length = 1, max_length = 64)]
    external_id: Option<String>,
    #[schema(format = Email)]
    contact_email: Option<String>,
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
    #[schema(min_length = 1, max_length = 100)]
    by: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/contacts/verify",
    tag = "v1",
    operation_id = "VerifyContact",
    request_body(content = VerifyBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The contact, Validated", body = ContactDetails),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 404, description = "No such contact, domain or operation (`NotFound`)", body = ErrorBody),
        (status = 413, description = "The body is larger than `http.max_body_bytes`", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn verify(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<VerifyBody>,
) -> ApiResult {
    let selector =
        ContactSelector::from_parts(b.external_id.as_deref(), b.contact_email.as_deref())?;
    json(
        &s.verifier
            .verify_manually(&selector, &b.reason, b.by.as_deref())
            .await?,
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct ReverifyBody {
    #[schema(min_length = 1, max_length = 64)]
    external_id: Option<String>,
    #[schema(format = Email)]
    contact_email: Option<String>,
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
}

#[utoipa::path(
    post,
    path = "/v1/contacts/reverify",
    tag = "v1",
    operation_id = "ReverifyContact",
    request_body(content = ReverifyBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The contact, back to verification", body = ContactDetails),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 404, description = "No such contact, domain or operation (`NotFound`)", body = ErrorBody),
        (status = 413, description = "The body is larger than `http.max_body_bytes`", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn reverify(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<ReverifyBody>,
) -> ApiResult {
    let selector =
        ContactSelector::from_parts(b.external_id.as_deref(), b.contact_email.as_deref())?;
    json(&s.verifier.reverify(&selector, &b.reason).await?)
}

#[utoipa::path(
    get,
    path = "/v1/contacts/evidence",
    tag = "v1",
    operation_id = "GetContactEvidence",
    params(ContactQuery),
    responses(
        (status = 200, description = "The address's evidence, newest first", body = EvidenceListBody),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 404, description = "No such contact, domain or operation (`NotFound`)", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn contact_evidence(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> ApiResult {
    let selector = ContactSelector::from_parts(q.external_id.as_deref(), q.email.as_deref())?;
    let records = s.verifier.evidence(&selector).await?;
    Ok(Json(json!({ "Evidence": records })))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct EvidenceQuery {
    /// RFC 3339; the start, included.
    #[param(format = DateTime)]
    since: Option<String>,
    /// RFC 3339; the end, excluded.
    #[param(format = DateTime)]
    until: Option<String>,
}

/// `text/csv`, streamed page by page.
#[utoipa::path(
    get,
    path = "/v1/evidence",
    tag = "v1",
    operation_id = "ExportEvidence",
    params(EvidenceQuery),
    responses(
        (status = 200, description = "Every evidence record with `since <= ValidatedAt < until`, as CSV with a header row", content_type = "text/csv", body = String),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn export_evidence(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<EvidenceQuery>,
) -> Result<Response, ApiError> {
    use futures::TryStreamExt;
    let stream = s
        .verifier
        .evidence_csv(q.since.as_deref(), q.until.as_deref())?
        .map_err(|e| std::io::Error::other(e.message));
    let mut r = Body::from_stream(stream).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    Ok(r)
}

#[utoipa::path(
    get,
    path = "/v1/domains/{name}",
    tag = "v1",
    operation_id = "GetDomain",
    params(("name" = String, Path, description = "The domain name", example = "example.com")),
    responses(
        (status = 200, description = "The domain's verification and suspension", body = DomainDetails),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 404, description = "No such contact, domain or operation (`NotFound`)", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn domain_show(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    json(&s.verifier.domain_details(&name).await?)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    pending: Option<bool>,
    #[serde(rename = "maxItems")]
    /// 1 to 1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    max_items: Option<i64>,
    marker: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "v1",
    operation_id = "ListEvents",
    params(EventsQuery),
    responses(
        (status = 200, description = "Hook events, oldest first", body = EventsPageBody),
        (status = 400, description = "Invalid input (`InvalidInput`, `UnsupportedTLD`)", body = ErrorBody),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 503, description = "The database or the SMTP relay does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn list_events(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult {
    let page = s
        .verifier
        .events(q.pending.unwrap_or(false), q.max_items, q.marker.as_deref())
        .await?;
    Ok(Json(page.to_json()))
}
