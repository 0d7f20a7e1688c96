//! A contact's language: a BCP 47 tag whose primary subtag picks the
//! templates its emails and pages are written in (CONTRACT section 9).

use serde::{Serialize, Serializer};

use crate::{Error, Result};

/// A well-formed language tag such as `en`, `de` or `pt-BR`: a primary
/// subtag of 2 or 3 letters (lowercased), then optional subtags of 1-8
/// letters or digits (a 2-letter region uppercased, others lowercased).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Language(String);

/// The longest tag kept; real tags are far shorter.
const MAX_LEN: usize = 35;

impl Language {
    pub fn parse(s: &str) -> Result<Language> {
        let s = s.trim();
        let bad = |why: &str| {
            Error::invalid(format!(
                "language {s:?} is not a language tag ({why}); use a primary language subtag \
                 such as \"en\", \"de\", \"fr\" or \"es\", optionally with a region (\"pt-BR\")"
            ))
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.len() > MAX_LEN {
            return Err(bad("it is too long"));
        }
        let mut parts = s.split(['-', '_']);
        let primary = parts.next().unwrap_or_default();
        if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(bad("the primary subtag must be 2 or 3 letters"));
        }
        let mut tag = primary.to_ascii_lowercase();
        for sub in parts {
            if sub.is_empty() || sub.len() > 8 || !sub.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad("each subtag is 1 to 8 letters or digits"));
            }
            tag.push('-');
            if sub.len() == 2 && sub.bytes().all(|b| b.is_ascii_alphabetic()) {
                tag.push_str(&sub.to_ascii_uppercase());
            } else {
                tag.push_str(&sub.to_ascii_lowercase());
            }
        }
        Ok(Language(tag))
    }

    /// English, the language of last resort.
    pub fn english() -> Language {
        Language("en".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The primary subtag: `pt` of `pt-BR`.
    pub fn primary(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Language {
    type Error = Error;
    fn try_from(s: String) -> Result<Language> {
        Language::parse(&s)
    }
}

impl Serialize for Language {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_tags_and_regions_are_normalised() {
        assert_eq!(Language::parse("DE").unwrap().as_str(), "de");
        assert_eq!(Language::parse(" pt-br ").unwrap().as_str(), "pt-BR");
        assert_eq!(Language::parse("pt_BR").unwrap().primary(), "pt");
        assert_eq!(Language::parse("zh-Hant").unwrap().as_str(), "zh-hant");
        assert_eq!(Language::parse("gsw").unwrap().as_str(), "gsw");
    }

    #[test]
    fn malformed_tags_are_invalid_input_naming_the_tag() {
        for bad in [
            "",
            "e",
            "english",
            "de-",
            "d3",
            "de--at",
            "de-toolongsubtag",
            "<b>",
        ] {
            let e = Language::parse(bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidInput, "{bad}");
            assert!(e.message.contains("language"), "{}", e.message);
        }
    }
}
