//! The registrar's contact handle (`ExternalId`), checked once at the edge.

use std::fmt;

use crate::{Error, Result};

/// The registrar's contact handle (`DNA-111`): 1 to 64 printable ASCII
/// characters with no white space, so it is safe in URLs, logs and JSON keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExternalId(String);

const MAX_LEN: usize = 64;

impl ExternalId {
    pub fn parse(input: &str) -> Result<Self> {
        let s = input.trim();
        if s.is_empty() {
            return Err(Error::invalid("external id is empty"));
        }
        if s.len() > MAX_LEN {
            return Err(Error::invalid(format!(
                "external id is longer than {MAX_LEN} characters"
            )));
        }
        if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(Error::invalid(format!(
                "external id {s:?} contains {c:?}: only printable ASCII without spaces is allowed"
            )));
        }
        Ok(ExternalId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Read back from the store, where only parsed handles are written.
impl TryFrom<String> for ExternalId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        ExternalId::parse(&s)
    }
}

impl serde::Serialize for ExternalId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrar_handle_is_accepted() {
        assert_eq!(ExternalId::parse(" DNA-111 ").unwrap().as_str(), "DNA-111");
    }

    #[test]
    fn empty_external_id_is_rejected() {
        assert!(ExternalId::parse("").is_err());
    }

    #[test]
    fn external_id_with_space_or_control_is_rejected() {
        assert!(ExternalId::parse("DNA 111").is_err());
        assert!(ExternalId::parse("DNA\u{0}1").is_err());
        assert!(ExternalId::parse("DNÄ-1").is_err());
    }

    #[test]
    fn overlong_external_id_is_rejected() {
        assert!(ExternalId::parse(&"x".repeat(65)).is_err());
        assert!(ExternalId::parse(&"x".repeat(64)).is_ok());
    }
}
