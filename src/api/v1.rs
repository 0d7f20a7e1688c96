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

use super::{ApiError, ApiJson, ApiQuery, AppState};
use crate::service::ContactSelector;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ContactBody {
    external_id: String,
    contact_email: String,
    #[serde(default)]
    domains: Vec<String>,
}

async fn add_contact(State(s): State<AppState>, ApiJson(b): ApiJson<ContactBody>) -> ApiResult {
    json(
        &s.verifier
            .add_contact(&b.external_id, &b.contact_email, &b.domains)
            .await?,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactQuery {
    #[serde(rename = "externalId")]
    external_id: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactsQuery {
    #[serde(rename = "externalId")]
    external_id: Option<String>,
    email: Option<String>,
    status: Option<String>,
    domain: Option<String>,
    suspended: Option<bool>,
    #[serde(rename = "maxItems")]
    max_items: Option<i64>,
    marker: Option<String>,
}

/// GetDetails with `externalId` or `email`; else `contact list`.
async fn get_contact(State(s): State<AppState>, ApiQuery(q): ApiQuery<ContactsQuery>) -> ApiResult {
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
            q.max_items,
            q.marker.as_deref(),
        )
        .await?;
    Ok(Json(page.to_json()))
}

async fn contact_notifications(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> ApiResult {
    let selector = ContactSelector::from_parts(q.external_id.as_deref(), q.email.as_deref())?;
    let records = s.verifier.notifications(&selector).await?;
    Ok(Json(json!({ "operations": records })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ResendBody {
    external_id: Option<String>,
    contact_email: Option<String>,
}

async fn resend(State(s): State<AppState>, ApiJson(b): ApiJson<ResendBody>) -> ApiResult {
    let selector =
        ContactSelector::from_parts(b.external_id.as_deref(), b.contact_email.as_deref())?;
    Ok(Json(s.verifier.resend(&selector).await?.to_json()))
}

async fn reachability(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    json(&s.verifier.reachability(&name).await?)
}

async fn domain_resend(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    json(&s.verifier.resend_for_domain(&name).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct OperationBody {
    domain_name: String,
    #[serde(rename = "Type")]
    op_type: String,
    status_flag: Option<String>,
}

async fn add_operation(State(s): State<AppState>, ApiJson(b): ApiJson<OperationBody>) -> ApiResult {
    json(
        &s.verifier
            .add_operation(&b.domain_name, &b.op_type, b.status_flag.as_deref())
            .await?,
    )
}

async fn get_operation(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    json(&s.verifier.operation(&id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationsQuery {
    domain: Option<String>,
    #[serde(rename = "statusFlag")]
    status_flag: Option<String>,
    #[serde(rename = "maxItems")]
    max_items: Option<i64>,
    marker: Option<String>,
}

async fn list_operations(
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct VerifyBody {
    external_id: Option<String>,
    contact_email: Option<String>,
    reason: String,
    by: Option<String>,
}

async fn verify(State(s): State<AppState>, ApiJson(b): ApiJson<VerifyBody>) -> ApiResult {
    let selector =
        ContactSelector::from_parts(b.external_id.as_deref(), b.contact_email.as_deref())?;
    json(
        &s.verifier
            .verify_manually(&selector, &b.reason, b.by.as_deref())
            .await?,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ReverifyBody {
    external_id: Option<String>,
    contact_email: Option<String>,
    reason: String,
}

async fn reverify(State(s): State<AppState>, ApiJson(b): ApiJson<ReverifyBody>) -> ApiResult {
    let selector =
        ContactSelector::from_parts(b.external_id.as_deref(), b.contact_email.as_deref())?;
    json(&s.verifier.reverify(&selector, &b.reason).await?)
}

async fn contact_evidence(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> ApiResult {
    let selector = ContactSelector::from_parts(q.external_id.as_deref(), q.email.as_deref())?;
    let records = s.verifier.evidence(&selector).await?;
    Ok(Json(json!({ "Evidence": records })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceQuery {
    since: Option<String>,
    until: Option<String>,
}

/// `text/csv`, streamed page by page.
async fn export_evidence(
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

async fn domain_show(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    json(&s.verifier.domain_details(&name).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    pending: Option<bool>,
    #[serde(rename = "maxItems")]
    max_items: Option<i64>,
    marker: Option<String>,
}

async fn list_events(State(s): State<AppState>, ApiQuery(q): ApiQuery<EventsQuery>) -> ApiResult {
    let page = s
        .verifier
        .events(q.pending.unwrap_or(false), q.max_items, q.marker.as_deref())
        .await?;
    Ok(Json(page.to_json()))
}
