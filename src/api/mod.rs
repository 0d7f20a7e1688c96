//! The HTTP API of CONTRACT section 5: `/v1` JSON endpoints behind a bearer
//! token, the confirmation pages under `/verify`, and `/healthz` and
//! `/metrics` (section 10, `monitoring.rs`); with `aws.enabled`, the
//! AWS-compatible endpoint of section 11 at `POST /`.

mod aws;
mod client;
mod monitoring;
mod openapi;
pub(crate) mod pages;
mod schemas;
mod sigv4;
mod v1;

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

pub use openapi::document as openapi_document;

use crate::service::Verifier;
use crate::{Error, ErrorCode};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub verifier: Verifier,
    /// The bearer token for `/v1`; `None` refuses every `/v1` request.
    api_token: Option<Arc<[u8]>>,
    /// Peers whose `X-Forwarded-For` is believed (`http.trusted_proxies`).
    trusted_proxies: Arc<[std::net::IpAddr]>,
}

/// The whole HTTP application.
pub fn router(verifier: Verifier) -> Router {
    let token = verifier.settings.http.api_token.clone();
    let limit = verifier.settings.http.max_body_bytes;
    // Validated at configuration load: every entry is an IP address.
    let trusted: Vec<std::net::IpAddr> = verifier
        .settings
        .http
        .trusted_proxies
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    let state = AppState {
        api_token: (!token.is_empty()).then(|| Arc::from(token.into_bytes())),
        trusted_proxies: trusted.into(),
        verifier,
    };
    let serve_metrics = state.verifier.settings.http.metrics;
    let v1 = v1::routes().merge(monitoring::v1_routes()).route_layer(
        axum::middleware::from_fn_with_state(state.clone(), require_bearer_token),
    );
    // The OpenAPI document, added after the token layer: served without it.
    let v1 = v1.route("/openapi.json", axum::routing::get(openapi::openapi_json));
    let app = Router::new()
        .nest("/v1", v1)
        .merge(pages::routes(&state.verifier))
        .merge(monitoring::routes(serve_metrics))
        .fallback(|| async { ApiError(Error::not_found("no such endpoint")) })
        .layer(axum::extract::DefaultBodyLimit::max(limit));
    // `POST /`: the AWS-compatible endpoint, when `aws.enabled`.
    aws::mount(app, &state.verifier).with_state(state)
}

/// Checks `Authorization: Bearer <http.api_token>` in constant time.
async fn require_bearer_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &state.api_token else {
        return unauthorized("the API is disabled: no http.api_token is configured");
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(token) if token_matches(token, expected) => next.run(request).await,
        Some(_) => unauthorized("the bearer token is not valid"),
        None => unauthorized("an Authorization: Bearer token is required"),
    }
}

/// Compares digests, not the strings: `ct_eq` on slices of different
/// lengths returns early, which would reveal the token's length.
fn token_matches(given: &str, expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected);
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

fn unauthorized(message: &str) -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({"__type": "UnauthorizedException", "message": message})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// An error answered as `{"__type","message"}` with the contract's status.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status =
            StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() && e.code != ErrorCode::Unavailable {
            tracing::error!(event = "http_error", error = %e, "request failed");
        }
        (
            status,
            Json(serde_json::json!({"__type": e.code.as_str(), "message": e.message})),
        )
            .into_response()
    }
}

/// A JSON body whose every rejection (malformed, wrong type, missing
/// content type, too large) is a 400/413 in the contract's error shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::BytesRejection(r)) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Json(serde_json::json!({"__type": "InvalidInput", "message": "the request body is too large"})),
                )
                    .into_response())
            }
            Err(r) => Err(ApiError(Error::invalid(format!("invalid JSON body: {}", r.body_text()))).into_response()),
        }
    }
}

/// A body of any content type, as bytes; too large is a 413 in the
/// contract's error shape.
pub struct RawBody(pub bytes::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match bytes::Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(serde_json::json!({"__type": "InvalidInput", "message": "the request body is larger than http.max_body_bytes"})),
            )
                .into_response()),
            Err(r) => Err(ApiError(Error::invalid(format!(
                "cannot read the request body: {}",
                r.body_text()
            )))
            .into_response()),
        }
    }
}

/// Query parameters with rejections in the contract's error shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r: QueryRejection| {
                ApiError(Error::invalid(format!("invalid query: {}", r.body_text())))
            })
    }
}
