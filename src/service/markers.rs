//! Opaque page markers for lists: a position plus a MAC over the list's kind
//! and filters, so a marker cannot be forged, nor reused with another
//! query; one that was not issued is `InvalidInput`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Error, Result};

const TAG_LEN: usize = 12;

#[derive(Clone)]
pub(crate) struct Markers {
    key: [u8; 32],
}

impl Markers {
    /// Keyed by the link secret when there is one (domain-separated, so the
    /// tags mean nothing for links).
    pub(crate) fn new(secret: &str) -> Markers {
        let mut h = Sha256::new();
        h.update(b"contact-verifier/marker/v1\0");
        h.update(secret.as_bytes());
        Markers {
            key: h.finalize().into(),
        }
    }

    fn tag(&self, list: &str, filter: &str, position: &str) -> [u8; TAG_LEN] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        for part in [list, filter, position] {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// The marker for the page after `position` of `list` with `filter`.
    pub(crate) fn issue(&self, list: &str, filter: &str, position: &str) -> String {
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(position),
            URL_SAFE_NO_PAD.encode(self.tag(list, filter, position))
        )
    }

    /// The position a marker stands for, if it was issued for this list
    /// and these filters.
    pub(crate) fn read(&self, list: &str, filter: &str, marker: &str) -> Result<String> {
        let invalid = || {
            Error::invalid(format!(
                "marker {marker:?} was not issued for this list and these filters: \
                 pass the NextPageMarker of the previous page unchanged"
            ))
        };
        let (pos, tag) = marker.trim().split_once('.').ok_or_else(invalid)?;
        let pos = URL_SAFE_NO_PAD.decode(pos).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        let pos = String::from_utf8(pos).map_err(|_| invalid())?;
        let expected = self.tag(list, filter, &pos);
        if tag.len() != TAG_LEN || !bool::from(expected.as_slice().ct_eq(&tag)) {
            return Err(invalid());
        }
        Ok(pos)
    }
}

/// `--max-items`/`maxItems`: default 100, 1 to 1000.
pub(crate) fn page_size(max_items: Option<i64>) -> Result<i64> {
    match max_items {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(Error::invalid(format!(
            "max items {n} is out of range: give 1 to 1000 (default 100)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_marker_reads_back_only_for_its_list_and_filters() {
        let m = Markers::new("secret");
        let marker = m.issue("events", "pending=true", "42");
        assert_eq!(m.read("events", "pending=true", &marker).unwrap(), "42");
        assert!(m.read("events", "pending=false", &marker).is_err());
        assert!(m.read("contacts", "pending=true", &marker).is_err());
        assert!(Markers::new("other")
            .read("events", "pending=true", &marker)
            .is_err());
    }

    #[test]
    fn a_forged_or_garbled_marker_is_invalid_input() {
        let m = Markers::new("");
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("1"),
            URL_SAFE_NO_PAD.encode([0u8; 12])
        );
        for bad in ["", "abc", "x.y", forged.as_str()] {
            let e = m.read("events", "", bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidInput);
        }
    }

    #[test]
    fn page_sizes_default_to_100_and_stay_within_1_to_1000() {
        assert_eq!(page_size(None).unwrap(), 100);
        assert_eq!(page_size(Some(1000)).unwrap(), 1000);
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(1001)).is_err());
    }
}
