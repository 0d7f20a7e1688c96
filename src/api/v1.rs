//! `/v1`: the registrar-facing JSON endpoints, named after Route 53 Domains
//! and the reseller ContactApi.

use axum::extract::{Path, State};
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

async fn get_contact(State(s): State<AppState>, ApiQuery(q): ApiQuery<ContactQuery>) -> ApiResult {
    let selector = ContactSelector::from_parts(q.external_id.as_deref(), q.email.as_deref())?;
    json(&s.verifier.show_contact(&selector).await?)
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
}

async fn list_operations(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<OperationsQuery>,
) -> ApiResult {
    let ops = s
        .verifier
        .operations(q.domain.as_deref(), q.status_flag.as_deref())
        .await?;
    Ok(Json(json!({ "Operations": ops })))
}
