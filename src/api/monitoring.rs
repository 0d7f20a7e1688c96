//! The operator's endpoints (CONTRACT section 10): `/healthz` and, when
//! `http.metrics`, `/metrics` without the token; `GET /v1/stats` behind it.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::schemas::ErrorBody;
use super::{ApiError, AppState};
use crate::metrics;
use crate::service::Stats;
use crate::store::Store;
use crate::{Error, Result};

/// The longest `/healthz` (and a scrape's ping) waits for the database: a
/// load balancer's probe must be answered well within its own timeout,
/// whatever `database.acquire_timeout_secs` is.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A scrape pings the database when nothing else told `database_up` within
/// this long (sweeps are minutes apart).
const DATABASE_UP_MAX_AGE: Duration = Duration::from_secs(30);

/// `/healthz`, and `/metrics` when `http.metrics`.
pub fn routes(serve_metrics: bool) -> Router<AppState> {
    let r = Router::new().route("/healthz", get(healthz));
    if serve_metrics {
        r.route("/metrics", get(scrape))
    } else {
        r
    }
}

/// The `/v1` routes of the operator's view.
pub fn v1_routes() -> Router<AppState> {
    Router::new().route("/stats", get(stats))
}

/// Pings the database within [`PROBE_TIMEOUT`], and records the answer as
/// `database_up`.
pub async fn probe(store: &Store) -> Result<()> {
    let answer = match tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await {
        Ok(answer) => answer,
        Err(_) => Err(Error::unavailable(format!(
            "database unavailable: no answer within {} s",
            PROBE_TIMEOUT.as_secs()
        ))),
    };
    metrics::global().database(answer.is_ok());
    answer
}

/// 200 while the database answers, 503 when it does not; the SMTP relay's
/// state (its last answer) is reported, never a reason for 503.
async fn healthz(State(state): State<AppState>) -> Response {
    let answer = probe(&state.verifier.store).await;
    let smtp = metrics::global().smtp_state().as_str();
    match answer {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ok", "database": "ok", "smtp": smtp})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "database": "unavailable",
                "smtp": smtp,
                "message": e.message,
            })),
        )
            .into_response(),
    }
}

/// The Prometheus text format. The gauges by state are the last sweep's;
/// only `database_up`, when stale, costs a ping.
async fn scrape(State(state): State<AppState>) -> Response {
    let m = metrics::global();
    if !m.database_seen_within(DATABASE_UP_MAX_AGE) {
        let _ = probe(&state.verifier.store).await;
    }
    let mut r = m.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    r
}

#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = "v1",
    operation_id = "GetStats",
    responses(
        (status = 200, description = "Counts for dashboards", body = Stats),
        (status = 401, description = "No or a wrong bearer token (`UnauthorizedException`)", body = ErrorBody),
        (status = 503, description = "The database does not answer (`Unavailable`)", body = ErrorBody)
    )
)]
pub(super) async fn stats(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let stats = s.verifier.stats().await?;
    serde_json::to_value(stats)
        .map(Json)
        .map_err(|e| ApiError(Error::internal(format!("cannot encode result: {e}"))))
}
