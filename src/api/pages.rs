//! The pages a registrant reaches from the emailed link (CONTRACT sections 5
//! and 9).
//!
//! `GET /verify/{token}` only shows whose address is being confirmed and a
//! button: mail scanners and link previews fetch links, so looking must not
//! confirm or send anything. `POST` confirms; `POST /verify/{token}/resend`
//! ("send me a new link", offered by the page of an expired or replaced
//! link) mails the link's own address. Every path under `/verify` answers a
//! page, never JSON. Pages speak the address's language, else the browser's
//! (`Accept-Language`), else English; they work without JavaScript, are
//! never cached or framed, and are sent with no Referer (the URL holds the
//! token).

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use minijinja::Value;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::client::Client;
use super::AppState;
use crate::config::{BrandingSettings, Settings};
use crate::domain::{mask_email, DomainName, Language};
use crate::i18n::{format_date, html_attr, negotiate, Catalog};
use crate::page_templates::{load as load_templates, PAGE};
use crate::service::{LinkFacts, LinkResend, Verifier};
use crate::store::VOID_EMAIL_CHANGED;
use crate::{Error, ErrorCode};

/// The pages' stylesheet, allowed by its hash in the Content-Security-Policy
/// (so a template cannot bring its own). Nothing in it is wider than the
/// screen: long addresses and domains wrap anywhere.
const STYLE: &str = "*{box-sizing:border-box}\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;line-height:1.5;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#1f2937;background:#fff;overflow-wrap:anywhere}\
header{display:flex;flex-wrap:wrap;align-items:center;gap:.75rem;padding-bottom:1rem;margin-bottom:1.5rem;border-bottom:1px solid #e5e7eb}\
.logo{display:block;max-width:100%;max-height:3rem;height:auto}\
.brand{margin:0;font-weight:600;color:#374151}\
h1{font-size:1.5rem;line-height:1.3;margin:0 0 1rem}\
li{font-weight:600}\
button{font:inherit;font-weight:600;max-width:100%;padding:.7rem 1.4rem;border:0;border-radius:.4rem;background:#1d4ed8;color:#fff;cursor:pointer}\
button:hover,button:focus{background:#1e40af}\
a{color:#1d4ed8}\
.note{color:#4b5563;font-size:.9rem}\
footer{margin-top:2rem;padding-top:1rem;border-top:1px solid #e5e7eb;color:#4b5563;font-size:.9rem}";

/// What every page shares: its templates, who is speaking, and the headers.
struct Pages {
    catalog: Catalog,
    branding: BrandingSettings,
    /// The page languages, for `Accept-Language`.
    languages: Vec<String>,
    csp: HeaderValue,
}

impl Pages {
    fn new(settings: &Settings) -> Pages {
        let dir = &settings.templates.dir;
        let dir = (!dir.is_empty()).then(|| FsPath::new(dir));
        // The daemon checked the directory at start-up (mail templates load
        // it first); should it have changed since, the built-ins still serve.
        let catalog = load_templates(dir).unwrap_or_else(|e| {
            tracing::error!(event = "templates_failed", error = %e,
                "cannot load the page templates; serving the built-in ones");
            load_templates(None).expect("the built-in page templates compile")
        });
        let branding = BrandingSettings {
            name: settings.registrar_name(),
            ..settings.branding.clone()
        };
        Pages {
            languages: catalog.languages(PAGE),
            csp: csp(&branding.logo_url),
            catalog,
            branding,
        }
    }
}

/// Only our own stylesheet (by hash), a form posting back here and, when a
/// logo is configured, images from the logo's origin.
fn csp(logo_url: &str) -> HeaderValue {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    let img = url::Url::parse(logo_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| u.origin().ascii_serialization())
        .map(|origin| format!("; img-src {origin}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'{img}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

pub fn routes(verifier: &Verifier) -> Router<AppState> {
    let pages = Arc::new(Pages::new(&verifier.settings));
    Router::new()
        .route(
            "/verify/{token}",
            get(show).post(confirm).fallback(method_not_allowed),
        )
        .route("/verify/{token}/resend", post(resend).fallback(only_post))
        .route("/verify", any(not_found))
        .route("/verify/", any(not_found))
        .route("/verify/{token}/{*rest}", any(not_found))
        .layer(Extension(pages))
}

/// Which page, and what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Confirm,
    Confirmed,
    Already,
    Expired,
    Replaced,
    Moved,
    Invalid,
    Resent,
    Limited,
    Unavailable,
    NotFound,
    Method,
    Error,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Confirm => "confirm",
            Kind::Confirmed => "confirmed",
            Kind::Already => "already",
            Kind::Expired => "expired",
            Kind::Replaced => "replaced",
            Kind::Moved => "moved",
            Kind::Invalid => "invalid",
            Kind::Resent => "resent",
            Kind::Limited => "limited",
            Kind::Unavailable => "unavailable",
            Kind::NotFound => "not_found",
            Kind::Method => "method",
            Kind::Error => "error",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Kind::Confirm | Kind::Confirmed | Kind::Already | Kind::Resent => StatusCode::OK,
            Kind::Expired => StatusCode::GONE,
            Kind::Replaced | Kind::Moved | Kind::Invalid => StatusCode::BAD_REQUEST,
            Kind::Limited => StatusCode::TOO_MANY_REQUESTS,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Method => StatusCode::METHOD_NOT_ALLOWED,
            Kind::Error => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One page to render: its kind and what it names.
#[derive(Debug, Clone, Default, Serialize)]
struct Shown {
    /// The masked address (`a***@example.com`); never the full one.
    email: String,
    domains: Vec<String>,
    /// The token, for the forms that post back to it.
    token: String,
    expired_on: String,
    retry_at: String,
}

/// Who asks: the languages their browser accepts.
struct Request<'a> {
    pages: &'a Pages,
    accept_language: String,
}

impl<'a> Request<'a> {
    fn new(pages: &'a Pages, headers: &HeaderMap) -> Request<'a> {
        Request {
            pages,
            accept_language: headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// The address's language when a page exists in it, else the browser's
    /// best, else English.
    fn language(&self, address: Option<&Language>) -> Option<Language> {
        let have = &self.pages.languages;
        address
            .filter(|l| have.iter().any(|h| h == l.as_str() || h == l.primary()))
            .cloned()
            .or_else(|| {
                negotiate(&self.accept_language, have).and_then(|t| Language::parse(&t).ok())
            })
    }

    fn page(&self, kind: Kind, lang: Option<&Language>, shown: Shown) -> Response {
        let (name, lang) = self.pages.catalog.pick(PAGE, lang);
        let b = &self.pages.branding;
        let values = minijinja::context! {
            lang => &lang,
            kind => kind.name(),
            style => Value::from_safe_string(STYLE.to_string()),
            registrar => &b.name,
            support_email => html_attr(&b.support_email),
            support_url => html_attr(&b.support_url),
            logo_url => html_attr(&b.logo_url),
            ..Value::from_serialize(&shown)
        };
        let (status, html) = match self.pages.catalog.render(&name, &values) {
            Ok(html) => (kind.status(), html),
            Err(e) => {
                tracing::error!(event = "http_error", error = %e, "cannot render a verification page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Something went wrong</title></head>\
                     <body><h1>Something went wrong</h1><p>Please try again later.</p></body></html>\n"
                        .to_string(),
                )
            }
        };
        let mut r = (status, html).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            HeaderName::from_static("content-security-policy"),
            self.pages.csp.clone(),
        );
        if let Ok(lang) = HeaderValue::from_str(&lang) {
            h.insert(header::CONTENT_LANGUAGE, lang);
        }
        r
    }

    /// The page for an unexpected failure (logged; the page says nothing of it).
    fn failure(&self, lang: Option<&Language>, e: &Error) -> Response {
        if e.code == ErrorCode::Unavailable {
            return self.page(Kind::Unavailable, lang, Shown::default());
        }
        tracing::error!(event = "http_error", error = %e, "verification page failed");
        self.page(Kind::Error, lang, Shown::default())
    }
}

fn domain_names(domains: &[DomainName]) -> Vec<String> {
    domains.iter().map(ToString::to_string).collect()
}

/// The page for a link that cannot confirm, by why. Only a genuine link
/// (`facts`) names its masked address or offers a new one.
fn refusal(req: &Request, token: &str, e: &Error, facts: Option<&LinkFacts>) -> Response {
    let lang = req.language(facts.and_then(|f| f.language.as_ref()));
    let lang = lang.as_ref();
    let masked = |f: &LinkFacts| f.email.as_ref().map(|e| mask_email(e.as_str()));
    match (e.code, facts) {
        (ErrorCode::Expired, Some(f)) => {
            let Some(email) = masked(f) else {
                return req.page(Kind::Moved, lang, Shown::default());
            };
            let shown = Shown {
                email,
                token: token.to_string(),
                expired_on: format_date(
                    f.key.expires_at,
                    req.pages.catalog.pick(PAGE, lang).1.as_str(),
                ),
                ..Shown::default()
            };
            req.page(Kind::Expired, lang, shown)
        }
        (ErrorCode::InvalidInput | ErrorCode::NotFound, Some(f)) => {
            match (f.key.void_reason.as_deref(), masked(f)) {
                (Some(VOID_EMAIL_CHANGED), _) | (_, None) => {
                    req.page(Kind::Moved, lang, Shown::default())
                }
                (Some(_), Some(email)) => req.page(
                    Kind::Replaced,
                    lang,
                    Shown {
                        email,
                        token: token.to_string(),
                        ..Shown::default()
                    },
                ),
                (None, Some(_)) => req.page(Kind::Invalid, lang, Shown::default()),
            }
        }
        (ErrorCode::InvalidInput | ErrorCode::NotFound | ErrorCode::Expired, None) => {
            req.page(Kind::Invalid, lang, Shown::default())
        }
        _ => req.failure(lang, e),
    }
}

async fn show(
    State(s): State<AppState>,
    Extension(pages): Extension<Arc<Pages>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let req = Request::new(&pages, &headers);
    let facts = match s.verifier.link_facts(&token).await {
        Ok(f) => f,
        Err(e) => return req.failure(req.language(None).as_ref(), &e),
    };
    let check = match s.verifier.check_link(&token).await {
        Ok(c) => c,
        Err(e) => return refusal(&req, &token, &e, facts.as_ref()),
    };
    let lang = req.language(facts.as_ref().and_then(|f| f.language.as_ref()));
    let email = mask_email(check.verification.email.as_str());
    if check.already_confirmed {
        let shown = Shown {
            email,
            ..Shown::default()
        };
        return req.page(Kind::Already, lang.as_ref(), shown);
    }
    let shown = Shown {
        email,
        domains: domain_names(&check.domains),
        ..Shown::default()
    };
    req.page(Kind::Confirm, lang.as_ref(), shown)
}

async fn confirm(
    State(s): State<AppState>,
    Extension(pages): Extension<Arc<Pages>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Client(client): Client,
) -> Response {
    let req = Request::new(&pages, &headers);
    let result = s.verifier.confirm_from(&token, client).await;
    let facts = match s.verifier.link_facts(&token).await {
        Ok(f) => f,
        Err(e) => return req.failure(req.language(None).as_ref(), &e),
    };
    let lang = req.language(facts.as_ref().and_then(|f| f.language.as_ref()));
    match result {
        Ok(c) => {
            let email = mask_email(c.email.as_str());
            if c.already_confirmed {
                let shown = Shown {
                    email,
                    ..Shown::default()
                };
                req.page(Kind::Already, lang.as_ref(), shown)
            } else {
                let shown = Shown {
                    email,
                    domains: domain_names(&c.domains),
                    ..Shown::default()
                };
                req.page(Kind::Confirmed, lang.as_ref(), shown)
            }
        }
        Err(e) => refusal(&req, &token, &e, facts.as_ref()),
    }
}

async fn resend(
    State(s): State<AppState>,
    Extension(pages): Extension<Arc<Pages>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let req = Request::new(&pages, &headers);
    let facts = match s.verifier.link_facts(&token).await {
        Ok(f) => f,
        Err(e) => return req.failure(req.language(None).as_ref(), &e),
    };
    let lang = req.language(facts.as_ref().and_then(|f| f.language.as_ref()));
    let lang = lang.as_ref();
    let Some(facts) = facts else {
        // Not a genuine link: nothing is mailed, and nothing is offered.
        return req.page(Kind::Invalid, lang, Shown::default());
    };
    match s.verifier.resend_from_link(&token).await {
        Ok(LinkResend::Sent { email }) => {
            let shown = Shown {
                email: mask_email(email.as_str()),
                ..Shown::default()
            };
            req.page(Kind::Resent, lang, shown)
        }
        Ok(LinkResend::AlreadyConfirmed { email }) => {
            let shown = Shown {
                email: mask_email(email.as_str()),
                ..Shown::default()
            };
            req.page(Kind::Already, lang, shown)
        }
        Ok(LinkResend::AddressChanged) => req.page(Kind::Moved, lang, Shown::default()),
        Err(e) if e.code == ErrorCode::OperationLimitExceeded => {
            limited(&req, &s.verifier, &facts, lang).await
        }
        Err(e) if matches!(e.code, ErrorCode::InvalidInput | ErrorCode::NotFound) => {
            req.page(Kind::Invalid, lang, Shown::default())
        }
        Err(e) => req.failure(lang, &e),
    }
}

/// The resend limit's page: when a new link may be asked for, also as
/// `Retry-After` (seconds).
async fn limited(
    req: &Request<'_>,
    verifier: &Verifier,
    facts: &LinkFacts,
    lang: Option<&Language>,
) -> Response {
    let at: Option<DateTime<Utc>> = match verifier.resend_allowed_at(facts).await {
        Ok(at) => at,
        Err(e) => return req.failure(lang, &e),
    };
    let now = verifier.now();
    // Shown to the minute, so rounded up: never earlier than allowed.
    let shown_at = at.map(|t| {
        let secs = t.timestamp();
        DateTime::from_timestamp(secs + (60 - secs.rem_euclid(60)) % 60, 0).unwrap_or(t)
    });
    let written = req.pages.catalog.pick(PAGE, lang).1;
    let shown = Shown {
        retry_at: shown_at
            .map(|t| format_date(t, &written))
            .unwrap_or_default(),
        ..Shown::default()
    };
    let mut r = req.page(Kind::Limited, lang, shown);
    let wait = at.map(|t| (t - now).num_seconds().max(1)).unwrap_or(86_400);
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

async fn not_found(Extension(pages): Extension<Arc<Pages>>, headers: HeaderMap) -> Response {
    let req = Request::new(&pages, &headers);
    req.page(
        Kind::NotFound,
        req.language(None).as_ref(),
        Shown::default(),
    )
}

/// 405 for a link: looking (`GET`) and confirming (`POST`) are all there is.
async fn method_not_allowed(
    Extension(pages): Extension<Arc<Pages>>,
    headers: HeaderMap,
) -> Response {
    refuse_method(&pages, &headers, "GET, HEAD, POST")
}

/// 405 for the new-link button's URL: it only acts, on `POST`.
async fn only_post(Extension(pages): Extension<Arc<Pages>>, headers: HeaderMap) -> Response {
    refuse_method(&pages, &headers, "POST")
}

fn refuse_method(pages: &Pages, headers: &HeaderMap, allow: &'static str) -> Response {
    let req = Request::new(pages, headers);
    let mut r = req.page(Kind::Method, req.language(None).as_ref(), Shown::default());
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logo_origin_alone_is_allowed_for_images() {
        let with = csp("https://cdn.registrar.example/brand/logo.png?v=2");
        let with = with.to_str().unwrap();
        assert!(
            with.ends_with("; img-src https://cdn.registrar.example"),
            "{with}"
        );
        let without = csp("");
        assert!(!without.to_str().unwrap().contains("img-src"));
        assert!(!csp("javascript:alert(1)")
            .to_str()
            .unwrap()
            .contains("img-src"));
    }

    #[test]
    fn every_built_in_page_kind_renders_in_every_language() {
        let catalog = load_templates(None).unwrap();
        assert_eq!(catalog.languages(PAGE), ["en", "de", "es", "fr"]);
        for lang in ["en", "de", "fr", "es"] {
            for kind in [
                Kind::Confirm,
                Kind::Confirmed,
                Kind::Already,
                Kind::Expired,
                Kind::Replaced,
                Kind::Moved,
                Kind::Invalid,
                Kind::Resent,
                Kind::Limited,
                Kind::Unavailable,
                Kind::NotFound,
                Kind::Method,
                Kind::Error,
            ] {
                let l = Language::parse(lang).unwrap();
                let (name, _) = catalog.pick(PAGE, Some(&l));
                let html = catalog
                    .render(
                        &name,
                        &minijinja::context! { lang, kind => kind.name(), registrar => "Registrar",
                            email => "a***@example.com", domains => vec!["example.com"], token => "TOKEN" },
                    )
                    .unwrap();
                let title = html
                    .split("<title>")
                    .nth(1)
                    .and_then(|t| t.split("</title>").next())
                    .unwrap_or_default();
                assert!(!title.trim().is_empty(), "{lang} {kind:?}: no title");
                assert!(
                    html.contains(&format!("<h1>{title}</h1>")),
                    "{lang} {kind:?}: heading is the title"
                );
                assert!(html.contains(&format!("<html lang=\"{lang}\">")));
                let has_form = html.contains("<form");
                assert_eq!(
                    has_form,
                    matches!(kind, Kind::Confirm | Kind::Expired | Kind::Replaced),
                    "{lang} {kind:?}"
                );
            }
        }
    }
}
