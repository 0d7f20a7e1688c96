//! The confirmation pages a registrant reaches from the emailed link.
//!
//! `GET /verify/{token}` only shows whose address is being confirmed and a
//! button: mail scanners and link previews fetch links, so looking must not
//! confirm. `POST` confirms. Plain HTML that works without JavaScript, never
//! cached, never framed, and sent with no Referer (the URL holds the token).

use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::client::Client;
use super::AppState;
use chrono::{DateTime, Utc};

use crate::domain::{mask_email, DomainName};
use crate::{Error, ErrorCode};

pub fn routes() -> Router<AppState> {
    Router::new().route("/verify/{token}", get(show).post(confirm))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;line-height:1.5;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}\
h1{font-size:1.5rem}button{font-size:1.1rem;padding:.6rem 1.2rem;cursor:pointer}\
.note{color:#555;font-size:.9rem}";

/// Only our own stylesheet (by hash) and a form posting back here are allowed.
static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    )
});

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete page; `body` is already-escaped HTML.
fn page(status: StatusCode, title: &str, body: String) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n<title>{t}</title>\n<style>{STYLE}</style>\n</head>\n\
         <body>\n<main>\n<h1>{t}</h1>\n{body}\n</main>\n</body>\n</html>\n",
        t = escape(title)
    );
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
    if let Ok(csp) = HeaderValue::from_str(&CSP) {
        h.insert(HeaderName::from_static("content-security-policy"), csp);
    }
    r
}

fn domain_list(domains: &[DomainName]) -> String {
    let items: String = domains
        .iter()
        .map(|d| format!("<li>{}</li>", escape(d.as_str())))
        .collect();
    format!("<ul>{items}</ul>")
}

/// A refusal's reason as a sentence: "This verification link no longer
/// works: a newer verification link was sent."
fn sentence(message: &str) -> String {
    let m = message.trim().trim_end_matches('.');
    let mut chars = m.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

/// The page for a link that cannot be used, by why. `expired_on` is the
/// key's expiry, for the expired page.
fn refusal(e: &Error, expired_on: Option<DateTime<Utc>>) -> Response {
    match e.code {
        ErrorCode::Expired => {
            let when = expired_on
                .map(|t| format!(" on {}", t.format("%-d %B %Y at %H:%M UTC")))
                .unwrap_or_default();
            page(
                StatusCode::GONE,
                "This link has expired",
                format!(
                    "<p>This verification link expired{}, so it can no longer confirm your \
                     email address.</p>\n<p>To get a new link, ask your registrar to resend the \
                     verification email, for example from your account's contact settings.</p>",
                    escape(&when)
                ),
            )
        }
        ErrorCode::Unavailable => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again shortly",
            "<p>We cannot confirm email addresses right now. Your link still works: please try \
             again in a few minutes.</p>"
                .into(),
        ),
        ErrorCode::InvalidInput | ErrorCode::NotFound => page(
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            format!(
                "<p>{}</p>\n<p>If you copied the link from the email, make sure it is complete. \
                 Otherwise, ask your registrar to send a new verification email.</p>",
                escape(&sentence(&e.message))
            ),
        ),
        _ => {
            tracing::error!(event = "http_error", error = %e, "verification page failed");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "<p>Please try again later.</p>".into(),
            )
        }
    }
}

/// Renders a refusal, looking up the expiry date for expired links.
async fn refuse(s: &AppState, token: &str, e: &Error) -> Response {
    let expired_on = match e.code {
        ErrorCode::Expired => s.verifier.link_expiry(token).await,
        _ => None,
    };
    refusal(e, expired_on)
}

async fn show(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    let check = match s.verifier.check_link(&token).await {
        Ok(c) => c,
        Err(e) => return refuse(&s, &token, &e).await,
    };
    let email = escape(&mask_email(check.verification.email.as_str()));
    if check.already_confirmed {
        return page(
            StatusCode::OK,
            "Email address already confirmed",
            format!("<p>The email address <strong>{email}</strong> is already confirmed. There is nothing more to do.</p>"),
        );
    }
    page(
        StatusCode::OK,
        "Confirm your email address",
        format!(
            "<p>Please confirm that <strong>{email}</strong> is the email address of the \
             registrant of:</p>\n{}\n<form method=\"post\">\n\
             <button type=\"submit\">Confirm email address</button>\n</form>\n\
             <p class=\"note\">If you did not register these domains, close this page.</p>",
            domain_list(&check.domains)
        ),
    )
}

async fn confirm(
    State(s): State<AppState>,
    Path(token): Path<String>,
    Client(client): Client,
) -> Response {
    match s.verifier.confirm_from(&token, client).await {
        Ok(c) => {
            let email = escape(&mask_email(c.email.as_str()));
            if c.already_confirmed {
                page(
                    StatusCode::OK,
                    "Email address already confirmed",
                    format!("<p>The email address <strong>{email}</strong> is already confirmed. There is nothing more to do.</p>"),
                )
            } else {
                page(
                    StatusCode::OK,
                    "Email address confirmed",
                    format!("<p>Thank you. The email address <strong>{email}</strong> is confirmed for:</p>\n{}",
                        domain_list(&c.domains)),
                )
            }
        }
        Err(e) => refuse(&s, &token, &e).await,
    }
}
