//! Typed values parsed once at the edge (CLI, import, API) and the pure
//! verification state machine. Nothing here does I/O.

pub mod bounce;
mod contact_email;
mod domain_name;
pub mod event;
pub mod evidence;
mod external_id;
mod language;
pub mod notice;
mod operation;
pub mod suspension;
pub mod token;
pub mod verification;

pub use bounce::Bounce;
pub use contact_email::{ContactEmail, EmailKey};
pub use domain_name::DomainName;
pub use event::{Event, EventType};
pub use evidence::{Evidence, Method, Proof};
pub use external_id::ExternalId;
pub use language::Language;
pub use notice::Notice;
pub use operation::{settle, OperationStatus, OperationType, StatusFlag};
pub use token::{KeyId, TokenSecret, VerificationToken};
pub use verification::{AddressChange, AddressLeft, Due, Policy, Status, Verification};

use chrono::{DateTime, SecondsFormat, Utc};

/// Parses an RFC 3339 timestamp and normalises it to UTC whole seconds, the
/// precision the contract's timestamps carry.
pub fn parse_timestamp(field: &str, s: &str) -> crate::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| truncate_to_seconds(t.with_timezone(&Utc)))
        .map_err(|e| {
            crate::Error::invalid(format!("{field}: not an RFC 3339 timestamp ({e}): {s:?}"))
        })
}

/// Timestamps are kept to the second so that they compare the same in SQLite
/// (text) and Postgres (timestamptz) and print as the contract shows them.
pub fn truncate_to_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// RFC 3339 in UTC with a `Z`, as every timestamp in the contract.
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Masks an address for logs: `a***@example.com`.
/// Every address in a free text (a relay's reply, a hook's output),
/// masked as [`mask_email`] does, before the text reaches a log.
pub fn mask_addresses(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.contains('@') {
                mask_email(word.trim_matches(|c: char| !c.is_alphanumeric()))
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn mask_email(addr: &str) -> String {
    match addr.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

/// serde helpers for optional contract timestamps.
pub mod ts_serde {
    use super::format_timestamp;
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn option<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_timestamp(t)),
            None => s.serialize_none(),
        }
    }

    pub fn required<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_timestamp(t))
    }
}

/// Fixed instants for the unit tests of the rules.
#[cfg(test)]
pub(crate) mod testing {
    use chrono::{DateTime, Utc};

    /// 2026-01-01T00:00:00Z.
    pub(crate) fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_in_utc_with_z() {
        let t = parse_timestamp("t", "2026-04-05T12:00:00.750+02:00").unwrap();
        assert_eq!(format_timestamp(&t), "2026-04-05T10:00:00Z");
    }

    #[test]
    fn malformed_timestamp_is_rejected_naming_the_field() {
        let e = parse_timestamp("key_issued_at", "yesterday").unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidInput);
        assert!(e.message.starts_with("key_issued_at:"), "{}", e.message);
    }

    #[test]
    fn emails_are_masked_for_logs() {
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert_eq!(mask_email("nobody"), "***");
    }
}
