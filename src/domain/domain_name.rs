//! A domain name: IDN to punycode, LDH rules and length limits, checked once at the edge.

use std::fmt;

use crate::{Error, Result};

/// A registered domain name, normalised once: lowercase, no trailing dot,
/// internationalised labels in their punycode (A-label) form, so
/// `Bücher.Example.` and `xn--bcher-kva.example` are the same domain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(input: &str) -> Result<Self> {
        let raw = input.trim();
        let raw = raw.strip_suffix('.').unwrap_or(raw);
        if raw.is_empty() {
            return Err(Error::invalid("domain name is empty"));
        }
        let ascii = idna::domain_to_ascii(raw)
            .map_err(|_| Error::invalid(format!("domain name {raw:?} is not a valid IDN")))?;
        // RFC 1035: 253 octets in text form, 63 per label.
        if ascii.len() > 253 {
            return Err(Error::invalid(format!(
                "domain name {raw:?} is longer than 253 characters"
            )));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(Error::invalid(format!(
                "domain name {raw:?} needs at least two labels (name and TLD)"
            )));
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err(Error::invalid(format!(
                    "domain name {raw:?} has a label that is empty or longer than 63 characters"
                )));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(Error::invalid(format!(
                    "domain name {raw:?}: labels may hold only letters, digits and hyphens"
                )));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(Error::invalid(format!(
                    "domain name {raw:?}: a label may not start or end with a hyphen"
                )));
            }
        }
        let tld = labels[labels.len() - 1];
        if !(tld.starts_with("xn--") || tld.bytes().all(|b| b.is_ascii_lowercase())) {
            return Err(Error::invalid(format!(
                "domain name {raw:?} has a TLD that is not alphabetic"
            )));
        }
        Ok(DomainName(ascii))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The top-level label, for the `supported_tlds` check.
    pub fn tld(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Read back from the store, where only parsed names are written.
impl TryFrom<String> for DomainName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        DomainName::parse(&s)
    }
}

impl serde::Serialize for DomainName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_is_lowercased_and_loses_trailing_dot() {
        assert_eq!(
            DomainName::parse("Example.COM.").unwrap().as_str(),
            "example.com"
        );
    }

    #[test]
    fn idn_becomes_punycode() {
        assert_eq!(
            DomainName::parse("Bücher.example").unwrap().as_str(),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            DomainName::parse("xn--bcher-kva.example").unwrap(),
            DomainName::parse("bücher.example").unwrap()
        );
    }

    #[test]
    fn single_label_is_rejected() {
        assert!(DomainName::parse("localhost").is_err());
    }

    #[test]
    fn empty_label_is_rejected() {
        assert!(DomainName::parse("a..example").is_err());
        assert!(DomainName::parse(".").is_err());
    }

    #[test]
    fn bad_characters_are_rejected() {
        assert!(DomainName::parse("exa_mple.com").is_err());
        assert!(DomainName::parse("exa mple.com").is_err());
        assert!(DomainName::parse("-example.com").is_err());
    }

    #[test]
    fn numeric_tld_is_rejected() {
        assert!(DomainName::parse("192.168.0.1").is_err());
    }

    #[test]
    fn overlong_label_and_name_are_rejected() {
        assert!(DomainName::parse(&format!("{}.com", "a".repeat(64))).is_err());
        let long = format!("{}.com", ["abcdefghij"; 25].join("."));
        assert!(DomainName::parse(&long).is_err());
    }

    #[test]
    fn tld_is_the_last_label() {
        assert_eq!(DomainName::parse("www.example.co.uk").unwrap().tld(), "uk");
    }
}
