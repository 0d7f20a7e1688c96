//! A registrant's email address and the case-insensitive key that verifications share.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// A registrant's email address, syntax-checked (RFC 5321 via lettre's
/// parser) with a bounded length. Verification is keyed by [`Self::key`]: the
/// address compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEmail(lettre::Address);

/// RFC 5321 section 4.5.3.1.3: a path is at most 256 octets including the
/// angle brackets, so an address is at most 254.
const MAX_LEN: usize = 254;

impl ContactEmail {
    pub fn parse(input: &str) -> Result<Self> {
        let s = input.trim();
        if s.is_empty() {
            return Err(Error::invalid("email address is empty"));
        }
        if s.len() > MAX_LEN {
            return Err(Error::invalid(format!(
                "email address is longer than {MAX_LEN} characters"
            )));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(format!(
                "email address {s:?} contains white space"
            )));
        }
        let addr = lettre::Address::from_str(s)
            .map_err(|e| Error::invalid(format!("not a valid email address {s:?}: {e}")))?;
        let domain = addr.domain();
        // A registrant address must be deliverable on the public Internet: a
        // dotted domain name, not an IP literal or a bare host.
        if domain.starts_with('[') || !domain.contains('.') {
            return Err(Error::invalid(format!(
                "email address {s:?} needs a fully qualified domain"
            )));
        }
        Ok(ContactEmail(addr))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    /// The parsed address, for the mailer: no second parse on the way out.
    pub fn address(&self) -> &lettre::Address {
        &self.0
    }

    /// The verification key: the whole address lowercased, so that
    /// `Alice@Example.com` and `alice@example.com` share one verification.
    pub fn key(&self) -> EmailKey {
        EmailKey(self.as_str().to_lowercase())
    }
}

impl fmt::Display for ContactEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ContactEmail {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The identity a verification is keyed by: the whole address lowercased, so
/// `Alice@Example.com` and `alice@example.com` share one verification.
/// Only [`ContactEmail::key`] and the store (reading back what it wrote) make one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EmailKey(String);

impl EmailKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Read back from the store: the store only ever writes lowercased keys.
impl TryFrom<String> for EmailKey {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        if s.chars().any(char::is_uppercase) {
            return Err(Error::internal(format!(
                "stored email key {s:?} is not lowercase"
            )));
        }
        Ok(EmailKey(s))
    }
}

/// Read back from the store, where only parsed addresses are written.
impl TryFrom<String> for ContactEmail {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        ContactEmail::parse(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_plain_address_is_accepted_and_trimmed() {
        let e = ContactEmail::parse("  a@example.com ").unwrap();
        assert_eq!(e.as_str(), "a@example.com");
    }

    #[test]
    fn email_missing_at_symbol_is_rejected() {
        assert!(ContactEmail::parse("example.com").is_err());
    }

    #[test]
    fn email_missing_local_part_is_rejected() {
        assert!(ContactEmail::parse("@example.com").is_err());
    }

    #[test]
    fn empty_email_is_rejected() {
        assert!(ContactEmail::parse("   ").is_err());
    }

    #[test]
    fn email_with_inner_space_is_rejected() {
        assert!(ContactEmail::parse("a b@example.com").is_err());
    }

    #[test]
    fn email_with_a_bare_host_is_rejected() {
        assert!(ContactEmail::parse("root@localhost").is_err());
        assert!(ContactEmail::parse("root@[127.0.0.1]").is_err());
    }

    #[test]
    fn overlong_email_is_rejected() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(ContactEmail::parse(&long).is_err());
    }

    #[test]
    fn key_ignores_case() {
        let a = ContactEmail::parse("Alice@Example.COM").unwrap();
        let b = ContactEmail::parse("alice@example.com").unwrap();
        assert_eq!(a.key(), b.key());
        assert_eq!(a.as_str(), "Alice@Example.COM");
    }

    proptest! {
        #[test]
        fn valid_addresses_parse_and_keep_their_text(
            local in "[a-z0-9][a-z0-9._+-]{0,20}[a-z0-9]",
            host in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
            tld in "[a-z]{2,6}",
        ) {
            prop_assume!(!local.contains(".."));
            let s = format!("{local}@{host}.{tld}");
            let e = ContactEmail::parse(&s).unwrap();
            prop_assert_eq!(e.as_str(), s.as_str());
        }

        #[test]
        fn strings_without_at_are_never_addresses(s in "[^@]{0,40}") {
            prop_assert!(ContactEmail::parse(&s).is_err());
        }
    }
}
