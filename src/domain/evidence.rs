//! Evidence for ICANN audits (CONTRACT section 7): one record each time an
//! address becomes Validated, written once and never changed.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ts_serde, ContactEmail, DomainName, ExternalId, KeyId};
use crate::{Error, Result};

/// How the address was validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The registrant confirmed with the emailed link.
    Link,
    /// An operator verified the address (`contact verify`).
    Manual,
    /// An import line brought the address in as Validated.
    Import,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Link => "link",
            Method::Manual => "manual",
            Method::Import => "import",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "link" => Ok(Method::Link),
            "manual" => Ok(Method::Manual),
            "import" => Ok(Method::Import),
            other => Err(Error::internal(format!(
                "unknown evidence method {other:?}"
            ))),
        }
    }
}

/// Who or what validated, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    Link {
        key_id: KeyId,
        key_issued_at: DateTime<Utc>,
        client_ip: Option<String>,
        user_agent: Option<String>,
    },
    Manual {
        reason: String,
        by: Option<String>,
    },
    Import,
}

/// One evidence record, in the contract's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Evidence {
    #[serde(skip)]
    pub id: String,
    #[schema(value_type = String)]
    pub contact_email: ContactEmail,
    #[schema(value_type = Vec<String>)]
    pub external_ids: Vec<ExternalId>,
    #[schema(value_type = Vec<String>)]
    pub domains: Vec<DomainName>,
    #[serde(serialize_with = "ts_serde::required")]
    #[schema(value_type = String, format = DateTime)]
    pub validated_at: DateTime<Utc>,
    pub method: Method,
    #[serde(serialize_with = "key_hex")]
    #[schema(value_type = Option<String>, required = true)]
    pub key_id: Option<KeyId>,
    #[serde(serialize_with = "ts_serde::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub key_issued_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub client_ip: Option<String>,
    #[schema(required = true)]
    pub user_agent: Option<String>,
    #[schema(required = true)]
    pub reason: Option<String>,
    #[schema(required = true)]
    pub by: Option<String>,
}

fn key_hex<S: serde::Serializer>(k: &Option<KeyId>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match k {
        Some(k) => s.serialize_str(&k.to_hex()),
        None => s.serialize_none(),
    }
}

/// Longest reason an operator may give, and longest user agent kept.
pub const MAX_REASON: usize = 500;
const MAX_USER_AGENT: usize = 512;

impl Evidence {
    pub fn new(
        contact_email: &ContactEmail,
        external_ids: Vec<ExternalId>,
        domains: Vec<DomainName>,
        validated_at: DateTime<Utc>,
        proof: Proof,
    ) -> Evidence {
        let mut e = Evidence {
            id: uuid::Uuid::new_v4().to_string(),
            contact_email: contact_email.clone(),
            external_ids,
            domains,
            validated_at,
            method: Method::Import,
            key_id: None,
            key_issued_at: None,
            client_ip: None,
            user_agent: None,
            reason: None,
            by: None,
        };
        match proof {
            Proof::Link {
                key_id,
                key_issued_at,
                client_ip,
                user_agent,
            } => {
                e.method = Method::Link;
                e.key_id = Some(key_id);
                e.key_issued_at = Some(key_issued_at);
                e.client_ip = client_ip;
                e.user_agent = user_agent.map(|ua| ua.chars().take(MAX_USER_AGENT).collect());
            }
            Proof::Manual { reason, by } => {
                e.method = Method::Manual;
                e.reason = Some(reason);
                e.by = by;
            }
            Proof::Import => {}
        }
        e
    }
}

/// An operator's reason (manual verification, re-verification): 1 to 500
/// characters after trimming.
pub fn parse_reason(reason: &str) -> Result<String> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(Error::invalid(
            "a reason is required (--reason TEXT, 1 to 500 characters): say why, for the audit record",
        ));
    }
    if r.chars().count() > MAX_REASON {
        return Err(Error::invalid(format!(
            "the reason is {} characters long; at most {MAX_REASON} are kept",
            r.chars().count()
        )));
    }
    if r.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::invalid("the reason contains control characters"));
    }
    Ok(r.to_string())
}

/// The operator's name for `--by`: 1 to 100 printable characters.
pub fn parse_by(by: &str) -> Result<String> {
    let b = by.trim();
    if b.is_empty() || b.chars().count() > 100 || b.chars().any(char::is_control) {
        return Err(Error::invalid(
            "--by must be 1 to 100 printable characters naming who verified",
        ));
    }
    Ok(b.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_overlong_reason_is_refused_and_a_good_one_trimmed() {
        assert!(parse_reason("  ").is_err());
        assert!(parse_reason(&"x".repeat(501)).is_err());
        assert_eq!(
            parse_reason(" called the registrant ").unwrap(),
            "called the registrant"
        );
        assert_eq!(parse_reason(&"é".repeat(500)).unwrap().chars().count(), 500);
    }

    #[test]
    fn link_evidence_records_key_client_and_agent_and_nulls_the_rest() {
        let key = KeyId::generate();
        let e = Evidence::new(
            &ContactEmail::parse("a@example.com").unwrap(),
            vec![],
            vec![],
            crate::domain::testing::t0(),
            Proof::Link {
                key_id: key.clone(),
                key_issued_at: crate::domain::testing::t0(),
                client_ip: Some("192.0.2.1".into()),
                user_agent: Some("Mozilla".into()),
            },
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["Method"], "link");
        assert_eq!(v["KeyId"], key.to_hex());
        assert_eq!(v["ClientIp"], "192.0.2.1");
        assert!(v["Reason"].is_null() && v["By"].is_null());
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "ContactEmail",
                "ExternalIds",
                "Domains",
                "ValidatedAt",
                "Method",
                "KeyId",
                "KeyIssuedAt",
                "ClientIp",
                "UserAgent",
                "Reason",
                "By"
            ]
        );
    }
}
