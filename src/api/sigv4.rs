//! AWS Signature Version 4 verification for the AWS-compatible endpoint
//! (CONTRACT section 11), server side: the request as received is turned
//! into AWS's canonical request, signed with the configured secret, and the
//! signatures are compared in constant time.
//!
//! What is checked, in this order (the first failure answers):
//! 1. an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
//!    Signature=...` header is there (else `MissingAuthenticationTokenException`)
//!    and parses strictly: one header, the three parts once each, a
//!    credential of exactly `KEY/YYYYMMDD/REGION/SERVICE/aws4_request`,
//!    signed header names lowercase, sorted and unique, a signature of 64
//!    lowercase hex digits (else `InvalidSignatureException`);
//! 2. no `X-Amz-Security-Token` (temporary credentials are not supported)
//!    and the access key is the configured one (else
//!    `UnrecognizedClientException`);
//! 3. the credential scope: region and service are the configured ones, the
//!    date is the date of `X-Amz-Date`; `X-Amz-Date` is within 15 minutes of
//!    now; `host`, `x-amz-date` and `x-amz-target` are among the signed
//!    headers and every signed header is present; an `x-amz-content-sha256`
//!    header, if any, is the SHA-256 of the body (`UNSIGNED-PAYLOAD` refused);
//! 4. the signature, over a payload hash always computed from the body
//!    received (the caller caps the body's size before it gets here).
//!
//! Failures of 3 and 4 are `InvalidSignatureException`. Only SHA-256 and
//! HMAC-SHA256 come from crates (`sha2`, `hmac`); the key derivation is the
//! four-step chain of AWS's specification, tested against AWS's published
//! test suite below. The secret is never formatted: [`Credentials`] has a
//! masking `Debug`, and no message carries it.

use std::fmt;

use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The only algorithm AWS SigV4 (not SigV4a) signs with.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far `X-Amz-Date` may be from the server's clock, either way.
pub const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(15);
/// Headers every request must sign (AWS JSON 1.1 names its operation in
/// `x-amz-target`, so an unsigned target could be swapped).
pub const REQUIRED_SIGNED_HEADERS: [&str; 3] = ["host", "x-amz-date", "x-amz-target"];
/// The payload hash clients send when they do not sign the body.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The configured key pair and the scope requests must be signed for.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    secret_access_key: String,
    pub region: String,
    pub service: String,
}

impl Credentials {
    pub fn new(access_key_id: &str, secret_access_key: &str, region: &str, service: &str) -> Self {
        Credentials {
            access_key_id: access_key_id.to_string(),
            secret_access_key: secret_access_key.to_string(),
            region: region.to_string(),
            service: service.to_string(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish()
    }
}

/// A request as received: the path and query exactly as on the wire.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Why a request was refused, as the AWS error code it is answered with
/// (HTTP 403 each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    MissingAuthenticationToken,
    UnrecognizedClient,
    InvalidSignature,
}

impl Failure {
    pub fn code(self) -> &'static str {
        match self {
            Failure::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Failure::UnrecognizedClient => "UnrecognizedClientException",
            Failure::InvalidSignature => "InvalidSignatureException",
        }
    }
}

/// A refusal with a message for the client; it never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub failure: Failure,
    pub message: String,
}

fn reject(failure: Failure, message: impl Into<String>) -> Rejection {
    Rejection {
        failure,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> Rejection {
    reject(Failure::InvalidSignature, message)
}

/// The parts of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key_id: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

impl<'a> Authorization<'a> {
    /// Parses `AWS4-HMAC-SHA256 Credential=K/D/R/S/aws4_request,
    /// SignedHeaders=a;b, Signature=HEX` strictly. `None` when the header is
    /// not a SigV4 header at all; `Err` when it is one but malformed.
    pub fn parse(header: &'a str) -> Result<Option<Self>, String> {
        let Some(rest) = header.strip_prefix(ALGORITHM) else {
            return Ok(None);
        };
        if !rest.starts_with(' ') {
            return Ok(None);
        }
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let part = part.trim_matches(' ');
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("Authorization part {part:?} is not NAME=VALUE"))?;
            let slot = match name {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed,
                "Signature" => &mut signature,
                other => return Err(format!("Authorization has an unknown part {other:?}")),
            };
            if slot.replace(value).is_some() {
                return Err(format!("Authorization names {name} twice"));
            }
        }
        let credential = credential.ok_or("Authorization header requires a Credential part")?;
        let signed = signed.ok_or("Authorization header requires a SignedHeaders part")?;
        let signature = signature.ok_or("Authorization header requires a Signature part")?;

        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, terminator] = scope[..] else {
            return Err(format!(
                "Credential {credential:?} is not KEY/YYYYMMDD/REGION/SERVICE/aws4_request"
            ));
        };
        if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
            return Err(format!("Credential {credential:?} has an empty part"));
        }
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("Credential date {date:?} is not YYYYMMDD"));
        }
        if terminator != "aws4_request" {
            return Err(format!(
                "Credential must end in aws4_request, not {terminator:?}"
            ));
        }

        let signed_headers: Vec<&str> = signed.split(';').collect();
        for name in &signed_headers {
            let token = |b: u8| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
            };
            if name.is_empty() || !name.bytes().all(token) {
                return Err(format!(
                    "SignedHeaders {signed:?} must be lowercase header names separated by ';'"
                ));
            }
        }
        if signed_headers.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "SignedHeaders {signed:?} must be sorted and without repeats"
            ));
        }
        if signature.len() != 64
            || !signature
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err("Signature must be 64 lowercase hexadecimal digits".into());
        }
        Ok(Some(Authorization {
            access_key_id,
            date,
            region,
            service,
            signed_headers,
            signature,
        }))
    }

    /// `DATE/REGION/SERVICE/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// Checks a request's signature; see the module's documentation.
pub fn verify(req: &Request, creds: &Credentials, now: DateTime<Utc>) -> Result<(), Rejection> {
    let mut values = req.headers.get_all("authorization").iter();
    let Some(header) = values.next() else {
        let presigned = req
            .query
            .split('&')
            .any(|p| p.starts_with("X-Amz-Signature="));
        return Err(reject(
            Failure::MissingAuthenticationToken,
            if presigned {
                "Missing Authentication Token: query-string (presigned) signatures are not accepted; sign with an Authorization header"
            } else {
                "Missing Authentication Token: the request carries no Authorization header with an AWS Signature Version 4"
            },
        ));
    };
    if values.next().is_some() {
        return Err(invalid(
            "the request carries more than one Authorization header",
        ));
    }
    let header = header
        .to_str()
        .map_err(|_| invalid("the Authorization header is not ASCII"))?;
    let auth = match Authorization::parse(header) {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Err(reject(
                Failure::MissingAuthenticationToken,
                format!("Missing Authentication Token: the Authorization header is not {ALGORITHM} (AWS Signature Version 4)"),
            ))
        }
        Err(e) => return Err(invalid(e)),
    };

    if req.headers.contains_key("x-amz-security-token") {
        return Err(reject(
            Failure::UnrecognizedClient,
            "The security token included in the request is invalid: temporary credentials (X-Amz-Security-Token) are not accepted; use the configured access key",
        ));
    }
    let known: bool = auth
        .access_key_id
        .as_bytes()
        .ct_eq(creds.access_key_id.as_bytes())
        .into();
    if !known {
        return Err(reject(
            Failure::UnrecognizedClient,
            format!(
                "The security token included in the request is invalid: access key {:?} is not known",
                auth.access_key_id
            ),
        ));
    }

    if auth.region != creds.region {
        return Err(invalid(format!(
            "Credential should be scoped to a valid region: {:?}, not {:?}",
            creds.region, auth.region
        )));
    }
    if auth.service != creds.service {
        return Err(invalid(format!(
            "Credential should be scoped to correct service: {:?}, not {:?}",
            creds.service, auth.service
        )));
    }
    let amz_date = single_header(req.headers, "x-amz-date")?
        .ok_or_else(|| invalid("the request has no X-Amz-Date header"))?;
    let signed_at = parse_amz_date(amz_date)?;
    if auth.date != &amz_date[..8] {
        return Err(invalid(format!(
            "Credential should be scoped to a valid date: {} is not the date of X-Amz-Date {amz_date}",
            auth.date
        )));
    }
    if signed_at < now - MAX_SKEW {
        return Err(invalid(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            amz(now - MAX_SKEW),
            amz(now)
        )));
    }
    if signed_at > now + MAX_SKEW {
        return Err(invalid(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
            amz(now + MAX_SKEW),
            amz(now)
        )));
    }
    for required in REQUIRED_SIGNED_HEADERS {
        if !auth.signed_headers.contains(&required) {
            return Err(invalid(format!(
                "SignedHeaders must include {}; {required} is missing",
                REQUIRED_SIGNED_HEADERS.join(", ")
            )));
        }
    }

    let payload_hash = hex(&Sha256::digest(req.body));
    if let Some(claimed) = single_header(req.headers, "x-amz-content-sha256")? {
        if claimed == UNSIGNED_PAYLOAD || claimed.starts_with("STREAMING-") {
            return Err(invalid(format!(
                "x-amz-content-sha256 {claimed} is not accepted: the body must be signed"
            )));
        }
        if claimed != payload_hash {
            return Err(invalid(
                "x-amz-content-sha256 is not the SHA-256 of the request body",
            ));
        }
    }

    let canonical = canonical_request(
        req.method,
        req.path,
        req.query,
        req.headers,
        &auth.signed_headers,
        &payload_hash,
    )
    .map_err(invalid)?;
    let to_sign = string_to_sign(amz_date, &auth.scope(), &canonical);
    let key = signing_key(
        &creds.secret_access_key,
        auth.date,
        &creds.region,
        &creds.service,
    );
    let expected = signature(&key, &to_sign);
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(invalid(format!(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. \
             The Canonical String for this request should have been\n'{}'\n\n\
             The String-to-Sign should have been\n'{to_sign}'\n",
            String::from_utf8_lossy(&canonical)
        )))
    }
}

/// The value of a header that must appear at most once.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Rejection> {
    let mut all = headers.get_all(name).iter();
    let Some(v) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(invalid(format!(
            "the request carries {name} more than once"
        )));
    }
    v.to_str()
        .map(|s| Some(s.trim()))
        .map_err(|_| invalid(format!("{name} is not ASCII")))
}

/// `YYYYMMDDTHHMMSSZ`, exactly.
fn parse_amz_date(v: &str) -> Result<DateTime<Utc>, Rejection> {
    let b = v.as_bytes();
    let shaped = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    let parsed = shaped
        .then(|| NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%SZ").ok())
        .flatten();
    parsed.map(|t| t.and_utc()).ok_or_else(|| {
        invalid(format!(
            "X-Amz-Date {v:?} is not a timestamp of the form YYYYMMDDTHHMMSSZ"
        ))
    })
}

fn amz(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The canonical request of AWS's specification:
/// `METHOD\nURI\nQUERY\nHEADERS\n\nSIGNED\nPAYLOAD_HASH`. Fails naming a
/// signed header the request does not carry.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    signed_headers: &[&str],
    payload_hash: &str,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(query).as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        let mut values = headers.get_all(*name).iter().peekable();
        if values.peek().is_none() {
            return Err(format!("the signed header {name} is not in the request"));
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        for (i, v) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_trimmed(&mut out, v.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    Ok(out)
}

/// A header value with leading and trailing white space removed and every
/// run of inner white space collapsed to one space.
fn push_trimmed(out: &mut Vec<u8>, value: &[u8]) {
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            pending_space = started;
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b);
            started = true;
        }
    }
}

/// The path as received, every byte but the unreserved ones and `/`
/// percent-encoded (so `%20` on the wire signs as `%2520`, the double
/// encoding every AWS SDK uses for services other than S3).
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    uri_encode(path.as_bytes(), true)
}

/// Parameters decoded, re-encoded with AWS's rules, sorted by name then
/// value, joined with `&`; a parameter without `=` has an empty value.
pub fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    params.sort();
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// AWS's URI encoding: unreserved bytes (`A-Z a-z 0-9 - . _ ~`) as they
/// are, every other byte `%XX` in upper case; `/` kept when `keep_slash`.
fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `AWS4-HMAC-SHA256\nDATE\nSCOPE\nhex(SHA-256(canonical request))`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request))
    )
}

/// The signing key: HMAC-SHA256 chained over the date, region, service and
/// `aws4_request`, starting from `"AWS4" + secret`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_secret = format!("AWS4{secret}");
    let k_date = hmac(k_secret.as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The signature: lowercase hex of HMAC-SHA256(signing key, string to sign).
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex(&hmac(signing_key, string_to_sign.as_bytes()))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    /// The documented example secret of AWS's SigV4 test suite.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const EMPTY_HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(
                HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        h
    }

    /// One case of AWS's SigV4 test suite (aws-sig-v4-test-suite, as vendored
    /// by awslabs/aws-c-auth under tests/aws-signing-test-suite/v4, Apache
    /// 2.0): its request, canonical request and signature, copied verbatim.
    /// Every case signs at 20150830T123600Z for us-east-1/service with
    /// AKIDEXAMPLE and the example secret.
    struct Vector {
        name: &'static str,
        method: &'static str,
        path: &'static str,
        query: &'static str,
        headers: &'static [(&'static str, &'static str)],
        body: &'static str,
        canonical: &'static str,
        signature: &'static str,
    }

    const VECTORS: &[Vector] = &[
        Vector {
            name: "get-vanilla",
            method: "GET",
            path: "/",
            query: "",
            headers: &[("Host", "example.amazonaws.com")],
            body: "",
            canonical: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "post-vanilla",
            method: "POST",
            path: "/",
            query: "",
            headers: &[("Host", "example.amazonaws.com")],
            body: "",
            canonical: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        },
        Vector {
            name: "post-x-www-form-urlencoded",
            method: "POST",
            path: "/",
            query: "",
            headers: &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Host", "example.amazonaws.com"),
                ("Content-Length", "13"),
                ("x-amz-content-sha256", "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"),
            ],
            body: "Param1=value1",
            canonical: "POST\n/\n\ncontent-length:13\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\nx-amz-date:20150830T123600Z\n\ncontent-length;content-type;host;x-amz-content-sha256;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            signature: "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
        },
        Vector {
            name: "get-header-value-trim",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("My-Header1", " value1"),
                ("My-Header2", " \"a   b   c\""),
            ],
            body: "",
            canonical: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        },
        Vector {
            name: "get-header-key-duplicate",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("My-Header1", "value2"),
                ("My-Header1", "value2"),
                ("My-Header1", "value1"),
            ],
            body: "",
            canonical: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        },
        Vector {
            name: "post-header-key-sort",
            method: "POST",
            path: "/",
            query: "",
            headers: &[("Host", "example.amazonaws.com"), ("My-Header1", "value1")],
            body: "",
            canonical: "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
        },
        Vector {
            name: "get-vanilla-query-order-key-case",
            method: "GET",
            path: "/",
            query: "Param2=value2&Param1=value1",
            headers: &[("Host", "example.amazonaws.com")],
            body: "",
            canonical: "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        },
        Vector {
            name: "get-vanilla-query-order-encoded",
            method: "GET",
            path: "/",
            query: "Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
            headers: &[("Host", "example.amazonaws.com")],
            body: "",
            canonical: "GET\n/\n%E1%88%B4=Value1&Param=Value2&Param-3=Value3\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            signature: "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac",
        },
        Vector {
            name: "get-vanilla-utf8-query",
            method: "GET",
            path: "/",
            query: "\u{1234}=bar",
            headers: &[("Host", "example.amazonaws.com")],
            body: "",
            canonical: "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        },
        Vector {
            name: "get-vanilla-query-unreserved",
            method: "GET",
            path: "/",
            query: "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            headers: &[("Host", "example.amazonaws.com")],
            body: "",
            canonical: "GET\n/\n-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        },
        Vector {
            name: "get-space-normalized",
            method: "GET",
            path: "/example space/",
            query: "",
            headers: &[("Host", "example.amazonaws.com")],
            body: "",
            canonical: "GET\n/example%20space/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        },
        Vector {
            name: "get-utf8",
            method: "GET",
            path: "/\u{1234}",
            query: "",
            headers: &[("Host", "example.amazonaws.com")],
            body: "",
            canonical: "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        },
        Vector {
            name: "get-unreserved",
            method: "GET",
            path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            query: "",
            headers: &[("Host", "example.amazonaws.com")],
            body: "",
            canonical: "GET\n/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        },
    ];

    #[test]
    fn aws_test_suite_canonical_requests_and_signatures() {
        for v in VECTORS {
            let mut h = headers(v.headers);
            h.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
            let mut signed: Vec<String> = h.keys().map(|k| k.as_str().to_string()).collect();
            signed.sort();
            signed.dedup();
            let signed: Vec<&str> = signed.iter().map(String::as_str).collect();
            let payload = hex(&Sha256::digest(v.body.as_bytes()));
            let canonical =
                canonical_request(v.method, v.path, v.query, &h, &signed, &payload).unwrap();
            assert_eq!(
                String::from_utf8(canonical.clone()).unwrap(),
                v.canonical,
                "{}",
                v.name
            );
            let to_sign = string_to_sign(
                "20150830T123600Z",
                "20150830/us-east-1/service/aws4_request",
                &canonical,
            );
            let key = signing_key(SECRET, "20150830", "us-east-1", "service");
            assert_eq!(signature(&key, &to_sign), v.signature, "{}", v.name);
        }
    }

    #[test]
    fn aws_test_suite_string_to_sign_of_get_vanilla() {
        let v = &VECTORS[0];
        assert_eq!(
            string_to_sign(
                "20150830T123600Z",
                "20150830/us-east-1/service/aws4_request",
                v.canonical.as_bytes()
            ),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
    }

    #[test]
    fn signing_key_matches_the_aws_documentation_example() {
        // "Examples of how to derive a signing key for Signature Version 4".
        let key = signing_key(SECRET, "20120215", "us-east-1", "iam");
        assert_eq!(
            hex(&key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    /// A request botocore 1.44.8 signed for
    /// `get_contact_reachability_status(domainName="example.com")` against
    /// `endpoint_url="http://127.0.0.1:8080"`, region eu-west-1, at
    /// 2026-06-01T09:00:00Z, with the example key pair.
    fn botocore_request() -> (HeaderMap, &'static str) {
        let h = headers(&[
            ("Host", "127.0.0.1:8080"),
            ("X-Amz-Target", "Route53Domains_v20140515.GetContactReachabilityStatus"),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("User-Agent", "Botocore/1.44.8 ua/2.1 os/linux md/arch#x86_64 lang/python#3.11.7 cfg/retry-mode#standard"),
            ("X-Amz-Date", "20260601T090000Z"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260601/eu-west-1/route53domains/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=72144f53d3a18106ce212cd8a35af0c7676f000ebbc9a659468995d5eab6d102"),
            ("amz-sdk-invocation-id", "01392f4f-b52f-45d5-aa79-7db9647a1b23"),
            ("amz-sdk-request", "attempt=1; max=3"),
            ("Content-Length", "29"),
        ]);
        (h, "{\"domainName\": \"example.com\"}")
    }

    fn creds() -> Credentials {
        Credentials::new("AKIDEXAMPLE", SECRET, "eu-west-1", "route53domains")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn check(h: &HeaderMap, body: &str, creds: &Credentials, now: &str) -> Result<(), Rejection> {
        let req = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: h,
            body: body.as_bytes(),
        };
        verify(&req, creds, at(now))
    }

    fn failure(r: Result<(), Rejection>) -> Failure {
        r.expect_err("expected a refusal").failure
    }

    #[test]
    fn a_botocore_signed_request_verifies() {
        let (h, body) = botocore_request();
        check(&h, body, &creds(), "2026-06-01T09:00:00Z").unwrap();
        // 15 minutes of skew either way are tolerated, not more.
        check(&h, body, &creds(), "2026-06-01T09:15:00Z").unwrap();
        check(&h, body, &creds(), "2026-06-01T08:45:00Z").unwrap();
        let late = check(&h, body, &creds(), "2026-06-01T09:15:01Z").unwrap_err();
        assert_eq!(late.failure, Failure::InvalidSignature);
        assert!(
            late.message.starts_with("Signature expired"),
            "{}",
            late.message
        );
        let early = check(&h, body, &creds(), "2026-06-01T08:44:59Z").unwrap_err();
        assert!(
            early.message.starts_with("Signature not yet current"),
            "{}",
            early.message
        );
    }

    #[test]
    fn any_change_to_a_signed_part_breaks_the_signature() {
        let (h, body) = botocore_request();
        let now = "2026-06-01T09:00:00Z";
        let tampered_body = body.replace("example.com", "example.net");
        assert_eq!(
            failure(check(&h, &tampered_body, &creds(), now)),
            Failure::InvalidSignature
        );
        for (name, value) in [
            (
                "x-amz-target",
                "Route53Domains_v20140515.ResendContactReachabilityEmail",
            ),
            ("host", "127.0.0.1:8081"),
            ("content-type", "application/json"),
        ] {
            let mut t = h.clone();
            t.insert(name, HeaderValue::from_static(value));
            assert_eq!(
                failure(check(&t, body, &creds(), now)),
                Failure::InvalidSignature,
                "{name}"
            );
        }
        let wrong_secret = Credentials::new(
            "AKIDEXAMPLE",
            "another-secret",
            "eu-west-1",
            "route53domains",
        );
        let e = check(&h, body, &wrong_secret, now).unwrap_err();
        assert_eq!(e.failure, Failure::InvalidSignature);
        assert!(!e.message.contains("another-secret") && !e.message.contains(SECRET));
        // Unsigned headers may change freely.
        let mut t = h.clone();
        t.insert("user-agent", HeaderValue::from_static("something else"));
        check(&t, body, &creds(), now).unwrap();
    }

    #[test]
    fn missing_unknown_and_temporary_credentials() {
        let (h, body) = botocore_request();
        let now = "2026-06-01T09:00:00Z";
        let mut none = h.clone();
        none.remove("authorization");
        assert_eq!(
            failure(check(&none, body, &creds(), now)),
            Failure::MissingAuthenticationToken
        );
        let mut bearer = h.clone();
        bearer.insert("authorization", HeaderValue::from_static("Bearer abc"));
        assert_eq!(
            failure(check(&bearer, body, &creds(), now)),
            Failure::MissingAuthenticationToken
        );
        let other_key = Credentials::new("AKIDOTHER", SECRET, "eu-west-1", "route53domains");
        assert_eq!(
            failure(check(&h, body, &other_key, now)),
            Failure::UnrecognizedClient
        );
        let mut token = h.clone();
        token.insert(
            "x-amz-security-token",
            HeaderValue::from_static("FQoGZXIvYXdzEXAMPLE"),
        );
        assert_eq!(
            failure(check(&token, body, &creds(), now)),
            Failure::UnrecognizedClient
        );
    }

    #[test]
    fn the_scope_must_be_the_configured_region_and_service_and_the_request_date() {
        let (h, body) = botocore_request();
        let now = "2026-06-01T09:00:00Z";
        let other_region = Credentials::new("AKIDEXAMPLE", SECRET, "us-east-1", "route53domains");
        let e = check(&h, body, &other_region, now).unwrap_err();
        assert_eq!(e.failure, Failure::InvalidSignature);
        assert!(e.message.contains("region"), "{}", e.message);
        let other_service = Credentials::new("AKIDEXAMPLE", SECRET, "eu-west-1", "route53");
        let e = check(&h, body, &other_service, now).unwrap_err();
        assert!(e.message.contains("service"), "{}", e.message);
        // A credential dated the day before X-Amz-Date.
        let mut t = h.clone();
        let auth = h["authorization"]
            .to_str()
            .unwrap()
            .replace("/20260601/", "/20260531/");
        t.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        let e = check(&t, body, &creds(), now).unwrap_err();
        assert!(e.message.contains("valid date"), "{}", e.message);
        let mut t = h.clone();
        t.remove("x-amz-date");
        assert_eq!(
            failure(check(&t, body, &creds(), now)),
            Failure::InvalidSignature
        );
        t.insert(
            "x-amz-date",
            HeaderValue::from_static("2026-06-01T09:00:00Z"),
        );
        assert_eq!(
            failure(check(&t, body, &creds(), now)),
            Failure::InvalidSignature
        );
    }

    #[test]
    fn required_headers_must_be_signed_and_signed_headers_present() {
        let (h, body) = botocore_request();
        let now = "2026-06-01T09:00:00Z";
        let auth = h["authorization"].to_str().unwrap();
        for (from, to, needle) in [
            (
                "content-type;host;x-amz-date;x-amz-target",
                "content-type;host;x-amz-date",
                "x-amz-target",
            ),
            (
                "content-type;host;x-amz-date;x-amz-target",
                "content-type;x-amz-date;x-amz-target",
                "host",
            ),
            (
                "content-type;host;x-amz-date;x-amz-target",
                "content-type;host;x-amz-target",
                "x-amz-date",
            ),
            (
                "content-type;host;x-amz-date;x-amz-target",
                "content-type;host;x-amz-date;x-amz-target;x-missing",
                "x-missing",
            ),
        ] {
            let mut t = h.clone();
            t.insert(
                "authorization",
                HeaderValue::from_str(&auth.replace(from, to)).unwrap(),
            );
            let e = check(&t, body, &creds(), now).unwrap_err();
            assert_eq!(e.failure, Failure::InvalidSignature);
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
    }

    #[test]
    fn the_payload_hash_is_always_the_body_s() {
        let (h, body) = botocore_request();
        let now = "2026-06-01T09:00:00Z";
        for claimed in [
            "UNSIGNED-PAYLOAD",
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            EMPTY_HASH,
        ] {
            let mut t = h.clone();
            t.insert("x-amz-content-sha256", HeaderValue::from_static(claimed));
            let e = check(&t, body, &creds(), now).unwrap_err();
            assert_eq!(e.failure, Failure::InvalidSignature, "{claimed}");
            assert!(e.message.contains("x-amz-content-sha256"), "{}", e.message);
        }
    }

    #[test]
    fn authorization_headers_are_parsed_strictly() {
        let good = "AWS4-HMAC-SHA256 Credential=AKID/20260601/eu-west-1/route53domains/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=72144f53d3a18106ce212cd8a35af0c7676f000ebbc9a659468995d5eab6d102";
        let a = Authorization::parse(good).unwrap().unwrap();
        assert_eq!(a.access_key_id, "AKID");
        assert_eq!(a.scope(), "20260601/eu-west-1/route53domains/aws4_request");
        assert_eq!(a.signed_headers, ["host", "x-amz-date", "x-amz-target"]);
        // Without spaces after the commas, as some SDKs send it.
        assert!(Authorization::parse(&good.replace(", ", ","))
            .unwrap()
            .is_some());
        assert_eq!(Authorization::parse("Bearer x").unwrap(), None);
        assert_eq!(
            Authorization::parse("AWS4-HMAC-SHA256X Credential=").unwrap(),
            None
        );
        for bad in [
            good.replace("/aws4_request", "/aws4_reqest"),
            good.replace("AKID/", "AKID/x/"),
            good.replace("20260601", "2026061"),
            good.replace("Credential=AKID", "Credential=/"),
            good.replace(
                "host;x-amz-date;x-amz-target",
                "x-amz-date;host;x-amz-target",
            ),
            good.replace(
                "host;x-amz-date;x-amz-target",
                "Host;x-amz-date;x-amz-target",
            ),
            good.replace(
                "host;x-amz-date;x-amz-target",
                "host;host;x-amz-date;x-amz-target",
            ),
            good.replace(
                "host;x-amz-date;x-amz-target",
                "host;;x-amz-date;x-amz-target",
            ),
            good.replace("Signature=72", "Signature=7"),
            good.replace("Signature=72", "Signature=7G"),
            good.replace("Signature=72144f53", "Signature=72144F53"),
            format!("{good}, Signature=00"),
            format!("{good}, Extra=1"),
            good.replace(", Signature=", ", Sig="),
            good.replace(", SignedHeaders=host;x-amz-date;x-amz-target", ""),
        ] {
            assert!(Authorization::parse(&bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let mut out = Vec::new();
        push_trimmed(&mut out, b"  a \t  b\r\n  c  ");
        assert_eq!(out, b"a b c");
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let text = format!("{:?}", creds());
        assert!(!text.contains(SECRET) && text.contains("***"), "{text}");
    }
}
