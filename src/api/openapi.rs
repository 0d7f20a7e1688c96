//! The OpenAPI 3.1 document of `/v1`, generated with `utoipa` from the
//! handlers' `#[utoipa::path]` annotations (`v1.rs`, `monitoring.rs`) and
//! the request and response types they use; served at `GET /v1/openapi.json`
//! without the token and committed as `docs/openapi.json`
//! (`contact-verifier-docs openapi docs/openapi.json` regenerates it).

use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::schemas::*;
use super::{monitoring, v1};

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
        v1::bounces,
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
