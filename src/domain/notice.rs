//! What contact-verifier mails: one vocabulary for the sweep, resends, the
//! templates and the notification records.
//!
//! A [`Notice`] knows its template set, its Lightsail `operationType` and the
//! reason recorded with it (`operationDetails`). Adding a kind of email means
//! adding a variant here and a template set under `src/mail/templates/`.

use std::fmt;

use crate::{Error, Result};

/// One kind of email to a registrant's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Notice {
    /// The first verification email of a key.
    Verification,
    /// The verification email again, because someone asked (CLI, API).
    Resend,
    /// The reminder for this many days since the key was issued.
    Reminder { day: u32 },
    /// The one notice that the key expired unconfirmed.
    ExpiryNotice,
}

/// Lightsail's `operationType` values for the emails we send.
pub mod operation_type {
    pub const VERIFICATION: &str = "SendContactMethodVerification";
    pub const REMINDER: &str = "SendVerificationReminder";
    pub const EXPIRY_NOTICE: &str = "SendVerificationExpiredNotice";
}

impl Notice {
    /// The template set (`NAME.subject.txt`, `NAME.txt`, `NAME.html`).
    pub fn template(self) -> &'static str {
        match self {
            Notice::Verification | Notice::Resend => "verification",
            Notice::Reminder { .. } => "reminder",
            Notice::ExpiryNotice => "expiry",
        }
    }

    /// Lightsail's `operationType` of the notification record.
    pub fn operation_type(self) -> &'static str {
        match self {
            Notice::Verification | Notice::Resend => operation_type::VERIFICATION,
            Notice::Reminder { .. } => operation_type::REMINDER,
            Notice::ExpiryNotice => operation_type::EXPIRY_NOTICE,
        }
    }

    /// Whether the email carries a confirmation link.
    pub fn has_link(self) -> bool {
        !matches!(self, Notice::ExpiryNotice)
    }

    /// Whether a failed send delays the next attempt. A resend was asked for
    /// by a person, who sees the failure; it leaves the sweep's schedule alone.
    pub fn backs_off_on_failure(self) -> bool {
        !matches!(self, Notice::Resend)
    }

    /// The reason stored and shown as `operationDetails`: `initial`,
    /// `resend`, `reminder:DAYS` or `expiry`. Resends are counted by it for
    /// the daily limit.
    pub fn reason(self) -> String {
        match self {
            Notice::Verification => "initial".into(),
            Notice::Resend => Notice::RESEND_REASON.into(),
            Notice::Reminder { day } => format!("reminder:{day}"),
            Notice::ExpiryNotice => "expiry".into(),
        }
    }

    pub const RESEND_REASON: &'static str = "resend";

    /// Reads back a stored reason.
    pub fn from_reason(s: &str) -> Result<Notice> {
        match s {
            "initial" => Ok(Notice::Verification),
            "resend" => Ok(Notice::Resend),
            "expiry" => Ok(Notice::ExpiryNotice),
            other => other
                .strip_prefix("reminder:")
                .and_then(|d| d.parse().ok())
                .map(|day| Notice::Reminder { day })
                .ok_or_else(|| Error::internal(format!("unknown notification reason {other:?}"))),
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Notice; 4] = [
        Notice::Verification,
        Notice::Resend,
        Notice::Reminder { day: 14 },
        Notice::ExpiryNotice,
    ];

    #[test]
    fn every_notice_round_trips_through_its_stored_reason() {
        for n in ALL {
            assert_eq!(Notice::from_reason(&n.reason()).unwrap(), n);
        }
        assert!(Notice::from_reason("reminder:x").is_err());
        assert!(Notice::from_reason("welcome").is_err());
    }

    #[test]
    fn operation_types_are_lightsails() {
        assert_eq!(
            Notice::Resend.operation_type(),
            "SendContactMethodVerification"
        );
        assert_eq!(
            Notice::Reminder { day: 3 }.operation_type(),
            "SendVerificationReminder"
        );
        assert_eq!(
            Notice::ExpiryNotice.operation_type(),
            "SendVerificationExpiredNotice"
        );
    }

    #[test]
    fn only_the_expiry_notice_goes_without_a_link_and_only_resends_skip_backoff() {
        for n in ALL {
            assert_eq!(n.has_link(), n != Notice::ExpiryNotice);
            assert_eq!(n.backs_off_on_failure(), n != Notice::Resend);
        }
    }
}
