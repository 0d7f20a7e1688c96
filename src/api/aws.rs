//! The AWS-compatible endpoint (CONTRACT section 11): Route 53 Domains'
//! GetContactReachabilityStatus, ResendContactReachabilityEmail,
//! GetOperationDetail and ListOperations over the AWS JSON 1.1 protocol at
//! `POST /`, so `boto3.client("route53domains", endpoint_url=...)` and
//! `aws route53domains ... --endpoint-url ...` work unchanged.
//!
//! Every request is checked by [`super::sigv4`] (body capped at
//! `http.max_body_bytes` first), then answered by the same service methods
//! as `/v1` and the CLI. This module only translates: members under AWS's
//! names, timestamps as epoch seconds, absent optional members omitted,
//! errors as `{"__type","message"}` with AWS's codes. Every answer carries
//! `x-amzn-RequestId` and `Date`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::sigv4::{self, Credentials};
use crate::domain::{OperationStatus, OperationType};
use crate::service::Verifier;
use crate::store::{OperationFilter, OperationRecord};
use crate::{Error, ErrorCode};

/// `X-Amz-Target` is this prefix and the operation's name.
pub const TARGET_PREFIX: &str = "Route53Domains_v20140515.";
/// The protocol's content type, of requests and answers.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The service name requests are signed for.
pub const SERVICE: &str = "route53domains";
/// The operations served, by their `X-Amz-Target` names.
pub const OPERATIONS: [&str; 4] = [
    "GetContactReachabilityStatus",
    "ResendContactReachabilityEmail",
    "GetOperationDetail",
    "ListOperations",
];

/// ListOperations' `MaxItems`: 1 to 100, 20 when not given (AWS's values).
const MAX_ITEMS_DEFAULT: i64 = 20;
const MAX_ITEMS_LIMIT: i64 = 100;
/// At most this many values in ListOperations' `Status` and `Type` lists.
const MAX_STATUSES: usize = 5;
const MAX_TYPES: usize = 21;

/// What the endpoint needs, shared by every request.
struct Endpoint {
    verifier: Verifier,
    credentials: Credentials,
    max_body: usize,
}

/// Adds `POST /` to `router` when `aws.enabled`; otherwise returns it as it is.
pub(super) fn mount<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    verifier: &Verifier,
) -> Router<S> {
    let settings = &verifier.settings;
    if !settings.aws.enabled {
        return router;
    }
    let endpoint = Arc::new(Endpoint {
        credentials: Credentials::new(
            &settings.aws.access_key_id,
            &settings.aws.secret_access_key,
            &settings.aws.region,
            SERVICE,
        ),
        max_body: settings.http.max_body_bytes,
        verifier: verifier.clone(),
    });
    router.route(
        "/",
        post(move |request: Request| {
            let endpoint = endpoint.clone();
            async move { endpoint.handle(request).await }
        }),
    )
}

/// An answer other than success: AWS's error code, its status and a message.
#[derive(Debug)]
struct AwsError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl AwsError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AwsError {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidInput", message)
    }
}

/// The service's errors under Route 53 Domains' codes. It has no NotFound:
/// an unknown domain or operation id is `InvalidInput`, as AWS answers it.
impl From<Error> for AwsError {
    fn from(e: Error) -> Self {
        let (status, code) = match e.code {
            ErrorCode::InvalidInput | ErrorCode::NotFound | ErrorCode::Expired => {
                (StatusCode::BAD_REQUEST, "InvalidInput")
            }
            ErrorCode::UnsupportedTLD => (StatusCode::BAD_REQUEST, "UnsupportedTLD"),
            ErrorCode::OperationLimitExceeded => {
                (StatusCode::BAD_REQUEST, "OperationLimitExceeded")
            }
            ErrorCode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            ErrorCode::Configuration | ErrorCode::Internal => {
                tracing::error!(event = "http_error", error = %e, "AWS endpoint request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure")
            }
        };
        AwsError::new(status, code, e.message)
    }
}

type AwsResult = Result<Value, AwsError>;

impl Endpoint {
    async fn handle(&self, request: Request) -> Response {
        let now = self.verifier.now();
        let (status, body, error_type) = match self.answer(request, now).await {
            Ok(v) => (StatusCode::OK, v, None),
            Err(e) => (
                e.status,
                json!({"__type": e.code, "message": e.message}),
                Some(e.code),
            ),
        };
        let mut r = (status, body.to_string()).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            h.insert(HeaderName::from_static("x-amzn-requestid"), id);
        }
        // IMF-fixdate: SDKs correct their clock from it after a skew error.
        if let Ok(date) =
            HeaderValue::from_str(&now.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        {
            h.insert(header::DATE, date);
        }
        if let Some(code) = error_type {
            h.insert(
                HeaderName::from_static("x-amzn-errortype"),
                HeaderValue::from_static(code),
            );
        }
        r
    }

    async fn answer(&self, request: Request, now: DateTime<Utc>) -> AwsResult {
        let (parts, body) = request.into_parts();
        let body = read_capped(&parts.headers, body, self.max_body).await?;
        let signed = sigv4::Request {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body: &body,
        };
        if let Err(r) = sigv4::verify(&signed, &self.credentials, now) {
            tracing::warn!(event = "aws_auth_refused", code = r.failure.code(),
                reason = %r.message.lines().next().unwrap_or(""), "AWS request refused");
            return Err(AwsError::new(
                StatusCode::FORBIDDEN,
                r.failure.code(),
                r.message,
            ));
        }

        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let operation = target
            .strip_prefix(TARGET_PREFIX)
            .filter(|op| OPERATIONS.contains(op))
            .ok_or_else(|| {
                AwsError::new(
                    StatusCode::BAD_REQUEST,
                    "UnknownOperationException",
                    format!(
                        "X-Amz-Target {target:?} is not an operation of this endpoint; it serves {TARGET_PREFIX}{{{}}}",
                        OPERATIONS.join(",")
                    ),
                )
            })?;
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case(CONTENT_TYPE) {
            return Err(AwsError::new(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                format!("Content-Type must be {CONTENT_TYPE}, not {content_type:?}"),
            ));
        }
        let input = Members::parse(&body)?;
        match operation {
            "GetContactReachabilityStatus" => {
                let name = input.required_string("domainName")?;
                Ok(encode(&self.verifier.reachability(name).await?)?)
            }
            "ResendContactReachabilityEmail" => {
                let name = input.required_string("domainName")?;
                Ok(encode(&self.verifier.resend_for_domain(name).await?)?)
            }
            "GetOperationDetail" => {
                let id = input.required_string("OperationId")?;
                Ok(operation_detail(&self.verifier.operation(id).await?))
            }
            _ => self.list_operations(&input).await,
        }
    }

    async fn list_operations(&self, input: &Members) -> AwsResult {
        let limit = input.integer("MaxItems")?.unwrap_or(MAX_ITEMS_DEFAULT);
        if !(1..=MAX_ITEMS_LIMIT).contains(&limit) {
            return Err(AwsError::invalid(format!(
                "MaxItems {limit} is out of range: give 1 to {MAX_ITEMS_LIMIT} (default {MAX_ITEMS_DEFAULT})"
            )));
        }
        let statuses = input.string_list("Status", MAX_STATUSES)?;
        let types = input.string_list("Type", MAX_TYPES)?;
        if let Some(by) = input.string("SortBy")? {
            if by != "SubmittedDate" {
                return Err(AwsError::invalid(format!(
                    "SortBy {by:?} is not one of: SubmittedDate"
                )));
            }
        }
        let oldest_first = match input.string("SortOrder")? {
            None | Some("DESC") => false,
            Some("ASC") => true,
            Some(other) => {
                return Err(AwsError::invalid(format!(
                    "SortOrder {other:?} is not one of: ASC, DESC"
                )))
            }
        };
        let filter = OperationFilter {
            statuses: statuses
                .into_iter()
                .map(OperationStatus::parse)
                .collect::<crate::Result<_>>()?,
            types: types
                .into_iter()
                .map(OperationType::parse)
                .collect::<crate::Result<_>>()?,
            submitted_since: input.timestamp("SubmittedSince")?,
            oldest_first,
            ..OperationFilter::default()
        };
        let marker = input.string("Marker")?.filter(|m| !m.is_empty());
        let page = self
            .verifier
            .operations_page(&filter, marker, limit)
            .await?;
        let mut out = Map::new();
        out.insert(
            "Operations".into(),
            page.operations.iter().map(operation_summary).collect(),
        );
        if let Some(m) = page.next_page_marker {
            out.insert("NextPageMarker".into(), Value::String(m));
        }
        Ok(Value::Object(out))
    }
}

/// Reads the body, refusing one larger than `max` before it is all in
/// memory (and so before anything hashes it).
async fn read_capped(headers: &HeaderMap, body: Body, max: usize) -> Result<Vec<u8>, AwsError> {
    let too_large = || {
        AwsError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "InvalidInput",
            format!("the request body is larger than {max} bytes (http.max_body_bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            AwsError::new(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                format!("cannot read the request body: {e}"),
            )
        })?;
        if buf.len() + chunk.len() > max {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

fn encode<T: serde::Serialize>(v: &T) -> AwsResult {
    serde_json::to_value(v)
        .map_err(|e| AwsError::from(Error::internal(format!("cannot encode result: {e}"))))
}

/// GetOperationDetail's answer; `Message` and `StatusFlag` only when set.
fn operation_detail(op: &OperationRecord) -> Value {
    let mut m = Map::new();
    m.insert("OperationId".into(), json!(op.operation_id));
    m.insert("Status".into(), json!(op.status.as_str()));
    m.insert("Type".into(), json!(op.op_type.as_str()));
    m.insert("DomainName".into(), json!(op.domain_name.as_str()));
    if let Some(msg) = &op.message {
        m.insert("Message".into(), json!(msg));
    }
    m.insert("SubmittedDate".into(), json!(op.submitted_date.timestamp()));
    m.insert(
        "LastUpdatedDate".into(),
        json!(op.last_updated_date.timestamp()),
    );
    if let Some(flag) = op.status_flag {
        m.insert("StatusFlag".into(), json!(flag.as_str()));
    }
    Value::Object(m)
}

/// ListOperations' OperationSummary: the same members as GetOperationDetail.
fn operation_summary(op: &OperationRecord) -> Value {
    operation_detail(op)
}

/// A request's JSON object, with typed access to its members. A member
/// that is `null` counts as absent; unknown members are ignored, as AWS
/// services do.
#[derive(Debug)]
struct Members(Map<String, Value>);

impl Members {
    fn parse(body: &[u8]) -> Result<Members, AwsError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Members(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Members(m)),
            Ok(_) => Err(AwsError::new(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                "the request body must be a JSON object",
            )),
            Err(e) => Err(AwsError::new(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                format!("the request body is not JSON: {e}"),
            )),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn string(&self, name: &str) -> Result<Option<&str>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(AwsError::invalid(format!("{name} must be a string"))),
        }
    }

    fn required_string(&self, name: &str) -> Result<&str, AwsError> {
        self.string(name)?
            .ok_or_else(|| AwsError::invalid(format!("{name} is required")))
    }

    fn integer(&self, name: &str) -> Result<Option<i64>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| AwsError::invalid(format!("{name} must be an integer"))),
        }
    }

    fn string_list(&self, name: &str, max: usize) -> Result<Vec<&str>, AwsError> {
        let Some(v) = self.get(name) else {
            return Ok(Vec::new());
        };
        let items = v
            .as_array()
            .ok_or_else(|| AwsError::invalid(format!("{name} must be a list of strings")))?;
        if items.len() > max {
            return Err(AwsError::invalid(format!(
                "{name} has {} values; at most {max} are allowed",
                items.len()
            )));
        }
        items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| AwsError::invalid(format!("{name} must be a list of strings")))
            })
            .collect()
    }

    /// Epoch seconds, whole or fractional, as AWS JSON sends timestamps.
    fn timestamp(&self, name: &str) -> Result<Option<DateTime<Utc>>, AwsError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let bad = || {
            AwsError::invalid(format!(
                "{name} must be a timestamp in epoch seconds (a JSON number)"
            ))
        };
        let t = if let Some(secs) = v.as_i64() {
            DateTime::from_timestamp(secs, 0)
        } else {
            let f = v.as_f64().filter(|f| f.is_finite()).ok_or_else(bad)?;
            let secs = f.floor();
            let nanos = ((f - secs) * 1e9).round().min(999_999_999.0) as u32;
            if secs.abs() > 1e12 {
                return Err(bad());
            }
            DateTime::from_timestamp(secs as i64, nanos)
        };
        t.map(Some).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(v: Value) -> Members {
        Members::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn timestamps_are_epoch_seconds_whole_or_fractional() {
        let m = members(json!({"A": 1780304400, "B": 1780304400.25, "C": "2026-06-01", "D": null}));
        assert_eq!(
            m.timestamp("A").unwrap().unwrap().to_rfc3339(),
            "2026-06-01T09:00:00+00:00"
        );
        let b = m.timestamp("B").unwrap().unwrap();
        assert_eq!(b.timestamp(), 1780304400);
        assert_eq!(b.timestamp_subsec_millis(), 250);
        assert_eq!(m.timestamp("C").unwrap_err().code, "InvalidInput");
        assert_eq!(m.timestamp("D").unwrap(), None);
        assert_eq!(m.timestamp("E").unwrap(), None);
    }

    #[test]
    fn members_are_typed_and_required_ones_named() {
        let m = members(json!({"domainName": 5, "Status": ["SUBMITTED", 1], "MaxItems": 2.5}));
        assert!(m
            .required_string("domainName")
            .unwrap_err()
            .message
            .contains("domainName"));
        assert!(m
            .required_string("OperationId")
            .unwrap_err()
            .message
            .contains("required"));
        assert!(m.string_list("Status", 5).is_err());
        assert!(m.integer("MaxItems").is_err());
        assert_eq!(Members::parse(b"").unwrap().0.len(), 0);
        assert_eq!(
            Members::parse(b"[]").unwrap_err().code,
            "SerializationException"
        );
        assert_eq!(
            Members::parse(b"{").unwrap_err().code,
            "SerializationException"
        );
    }

    #[test]
    fn service_errors_map_to_route_53_domains_codes() {
        let cases = [
            (Error::not_found("no operation"), 400, "InvalidInput"),
            (Error::invalid("bad"), 400, "InvalidInput"),
            (
                Error::new(ErrorCode::UnsupportedTLD, "x"),
                400,
                "UnsupportedTLD",
            ),
            (
                Error::new(ErrorCode::OperationLimitExceeded, "x"),
                400,
                "OperationLimitExceeded",
            ),
            (Error::unavailable("db"), 503, "ServiceUnavailable"),
        ];
        for (e, status, code) in cases {
            let a = AwsError::from(e);
            assert_eq!((a.status.as_u16(), a.code), (status, code));
        }
    }
}
