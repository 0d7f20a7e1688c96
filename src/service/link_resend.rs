//! "Send me a new link" (CONTRACT section 9): the page of a link that
//! expired or was replaced offers a button that mails the address the link
//! was made for, and no other, through the ordinary resend (its daily limit
//! included). Also what such a page needs to know about a link: whose it is,
//! in which language to speak, and when another resend is allowed.

use chrono::{DateTime, Duration, Utc};

use super::{ContactSelector, Verifier};
use crate::domain::{ContactEmail, Language, Notice, VerificationToken};
use crate::store::{KeyRecord, NotificationStatus};
use crate::{Error, ErrorCode, Result};

/// What a genuine link (its MAC checks) tells about itself.
#[derive(Debug, Clone)]
pub struct LinkFacts {
    /// The key the link names, voided or expired as it may be.
    pub key: KeyRecord,
    /// The address the link was made for, while a contact still uses it.
    pub email: Option<ContactEmail>,
    /// The address's language, when its contacts carry one.
    pub language: Option<Language>,
}

/// What pressing "send me a new link" did.
#[derive(Debug, Clone)]
pub enum LinkResend {
    /// A verification email went to this address (the link's own).
    Sent { email: ContactEmail },
    /// The address is confirmed already: nothing was sent.
    AlreadyConfirmed { email: ContactEmail },
    /// No contact uses the address any more (it was changed): nothing was
    /// sent, and only the registrar can help.
    AddressChanged,
}

impl Verifier {
    /// The key a token names and what the page needs of it, when the token
    /// is genuine; `None` for anything else (malformed, unknown, tampered),
    /// which must learn nothing about any address.
    pub async fn link_facts(&self, token: &str) -> Result<Option<LinkFacts>> {
        let secret = self.secret()?;
        let Ok(token) = VerificationToken::parse(token) else {
            return Ok(None);
        };
        let Some(key) = self.store.key(token.key_id()).await? else {
            return Ok(None);
        };
        if !secret.verify(&token, &key.email_key) {
            return Ok(None);
        }
        let email = self
            .store
            .contacts_by_email(&key.email_key)
            .await?
            .into_iter()
            .next()
            .map(|c| c.email);
        let language = self.store.address_language(&key.email_key).await?;
        Ok(Some(LinkFacts {
            key,
            email,
            language,
        }))
    }

    /// Mails a new link to the address `token` was made for: checked as the
    /// confirmation checks it (parse, key, MAC against the key's address),
    /// then the ordinary resend of that address (a fresh key if expired,
    /// else the current link; OperationLimitExceeded past the daily limit).
    /// A token that does not check mails nothing.
    pub async fn resend_from_link(&self, token: &str) -> Result<LinkResend> {
        let invalid = || {
            Error::invalid(
                "this verification link is not valid; check that it was copied completely",
            )
        };
        let facts = self.link_facts(token).await?.ok_or_else(invalid)?;
        let Some(email) = facts.email else {
            return Ok(LinkResend::AddressChanged);
        };
        // By address, not by handle: a contact that moved to another address
        // meanwhile must not take this resend with it.
        match self.resend(&ContactSelector::Email(email.clone())).await {
            Ok(outcome) if outcome.notification.is_none() => {
                Ok(LinkResend::AlreadyConfirmed { email })
            }
            Ok(_) => Ok(LinkResend::Sent { email }),
            // The last contact left the address between the two reads.
            Err(e) if e.code == ErrorCode::NotFound => Ok(LinkResend::AddressChanged),
            Err(e) => Err(e),
        }
    }

    /// When the address the link was made for may have another resend:
    /// `None` while it is within the daily limit now. The counted resends
    /// are those of the last 24 hours that did not fail, as in
    /// [`Verifier::resend`].
    pub async fn resend_allowed_at(&self, facts: &LinkFacts) -> Result<Option<DateTime<Utc>>> {
        let limit = usize::try_from(self.settings.verification.resend_limit_per_day).unwrap_or(0);
        let now = self.now();
        let window = Duration::hours(24);
        let recent: Vec<DateTime<Utc>> = self
            .store
            .notifications(&facts.key.email_key, (limit as i64).saturating_add(200))
            .await?
            .into_iter()
            .filter(|n| {
                n.notice == Notice::Resend
                    && n.status != NotificationStatus::Failed
                    && n.created_at > now - window
            })
            .map(|n| n.created_at)
            .collect();
        // Newest first: once the limit-th newest leaves the window, one fewer
        // than the limit remains.
        Ok(match limit.checked_sub(1).and_then(|i| recent.get(i)) {
            Some(t) if recent.len() >= limit => Some(*t + window),
            _ if limit == 0 => Some(now + window),
            _ => None,
        })
    }
}
