//! A hard bounce of an address (CONTRACT section 7): the relay refused it
//! with a 5xx reply, or a delivery status notification reported it failed.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The longest `Detail` kept: relays' texts can run long.
const MAX_DETAIL: usize = 1000;

/// `{"Code","Detail","At"}` of GetDetails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Bounce {
    /// The enhanced status (`5.1.1`), or the reply code (`550`) when the
    /// relay gave none.
    pub code: String,
    /// The `Diagnostic-Code` text or the relay's reply text.
    pub detail: String,
    #[serde(serialize_with = "super::ts_serde::required")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
}

impl Bounce {
    pub fn new(code: &str, detail: &str, at: DateTime<Utc>) -> Bounce {
        let detail: String = detail.split_whitespace().collect::<Vec<_>>().join(" ");
        let detail = match detail.char_indices().nth(MAX_DETAIL) {
            Some((i, _)) => detail[..i].to_string(),
            None => detail,
        };
        Bounce {
            code: code.trim().to_string(),
            detail,
            at,
        }
    }

    /// From a relay's refusal: `reply_code` is the SMTP reply code (only a
    /// 5xx one is a bounce), `text` the reply; the code is the enhanced
    /// status at the start of the text when there is one.
    pub fn from_reply(reply_code: &str, text: &str, at: DateTime<Utc>) -> Option<Bounce> {
        let numeric = reply_code.len() == 3 && reply_code.bytes().all(|b| b.is_ascii_digit());
        if !numeric || !reply_code.starts_with('5') {
            return None;
        }
        let enhanced = text
            .split_whitespace()
            .find(|w| is_enhanced_status(w) && w.starts_with('5'));
        Some(Bounce::new(enhanced.unwrap_or(reply_code), text, at))
    }

    /// The reason of the event and of a re-verification it causes.
    pub fn reason(&self) -> String {
        format!("the email address bounced ({}: {})", self.code, self.detail)
    }
}

/// `class.subject.detail` of RFC 3463, e.g. `5.1.1`.
pub fn is_enhanced_status(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn a_5xx_reply_is_a_bounce_with_its_enhanced_status() {
        let b = Bounce::from_reply(
            "550",
            "5.1.1 <a@example.com>: Recipient address rejected",
            t(),
        )
        .unwrap();
        assert_eq!(b.code, "5.1.1");
        assert!(b.detail.contains("Recipient address rejected"));
    }

    #[test]
    fn a_5xx_reply_without_enhanced_status_keeps_the_reply_code() {
        let b = Bounce::from_reply("554", "Transaction failed", t()).unwrap();
        assert_eq!(b.code, "554");
    }

    #[test]
    fn transient_replies_and_connection_failures_are_not_bounces() {
        assert!(Bounce::from_reply("451", "4.3.0 try later", t()).is_none());
        assert!(Bounce::from_reply("ConnectionError", "refused", t()).is_none());
        assert!(Bounce::from_reply("InvalidMessage", "5.0.0", t()).is_none());
    }

    #[test]
    fn enhanced_status_shape() {
        assert!(is_enhanced_status("5.1.1"));
        assert!(is_enhanced_status("4.7.100"));
        assert!(!is_enhanced_status("5.1"));
        assert!(!is_enhanced_status("550"));
        assert!(!is_enhanced_status("6.1.1"));
    }
}
