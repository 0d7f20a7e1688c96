//! Confirmation links: checking one without changing anything (the GET
//! page), confirming (POST, `contact confirm`), and what a refused link's
//! page needs to say.

use chrono::{DateTime, Utc};

use super::{Confirmation, LinkCheck, Verifier, RACE_ATTEMPTS};
use crate::domain::{format_timestamp, Proof, Status, VerificationToken};
use crate::store::VOID_EMAIL_CHANGED;
use crate::{Error, ErrorCode, Result};

/// Who confirmed, as the confirmation page saw them (for the evidence).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The peer, or the client a trusted proxy forwarded for.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Verifier {
    /// Checks a link without changing anything (the GET page; mail scanners
    /// fetch links): genuine, not voided, current, and either confirmable or
    /// already confirmed. Expired links are an `Expired` error.
    pub async fn check_link(&self, token: &str) -> Result<LinkCheck> {
        let secret = self.secret()?;
        let token = VerificationToken::parse(token)?;
        let invalid = || {
            Error::invalid(
                "this verification link is not valid; check that it was copied completely",
            )
        };
        let key = self.store.key(token.key_id()).await?.ok_or_else(invalid)?;
        if !secret.verify(&token, &key.email_key) {
            return Err(invalid());
        }
        let void = |reason: &str| {
            Error::invalid(format!("this verification link no longer works: {reason}"))
        };
        if let Some(reason) = &key.void_reason {
            return Err(void(reason));
        }
        // A key not voided is the current one, or one whose email is being
        // delivered right now: either way its holder received our link.
        let v = self
            .store
            .verification(&key.email_key)
            .await?
            .ok_or_else(|| void(VOID_EMAIL_CHANGED))?;
        let contact = self
            .store
            .contacts_by_email(&key.email_key)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| void("no contact uses the address any more"))?;
        if v.status != Status::Validated && self.now() >= key.expires_at {
            return Err(Error::new(
                ErrorCode::Expired,
                format!(
                    "this verification link expired on {}; ask your registrar to send a new one",
                    format_timestamp(&key.expires_at)
                ),
            ));
        }
        let domains = self.store.address_domains(&key.email_key).await?;
        Ok(LinkCheck {
            already_confirmed: v.status == Status::Validated,
            verification: v,
            contact,
            domains,
            key: Some(key),
        })
    }

    /// What the emailed link does (`contact confirm`, with no client).
    pub async fn confirm(&self, token: &str) -> Result<Confirmation> {
        self.confirm_from(token, ClientInfo::default()).await
    }

    /// Validates the address the token was issued for, if the token is
    /// genuine, current and unexpired; its domains are released and its
    /// operations settled in the same transaction, with evidence of who
    /// confirmed. Confirming again is a success that changes nothing.
    pub async fn confirm_from(&self, token: &str, client: ClientInfo) -> Result<Confirmation> {
        use crate::metrics::{global, ConfirmOutcome};
        for _ in 0..RACE_ATTEMPTS {
            let check = self.check_link(token).await.inspect_err(|e| {
                if let Some(outcome) = ConfirmOutcome::of_error(e) {
                    global().confirmation(outcome);
                }
            })?;
            let mut v = check.verification;
            if !check.already_confirmed {
                let now = self.now();
                let Some(key) = check.key.clone() else {
                    return Err(Error::internal("a confirmable link has a key"));
                };
                v.validate(now);
                let proof = Proof::Link {
                    key_id: key.key_id,
                    key_issued_at: key.issued_at,
                    client_ip: client.ip.clone(),
                    user_agent: client.user_agent.clone(),
                };
                let Some(done) = self
                    .store
                    .validate(&mut v, proof, now, &self.policy)
                    .await?
                else {
                    continue;
                };
                self.log_validated(&v, &done);
            }
            global().confirmation(if check.already_confirmed {
                ConfirmOutcome::Already
            } else {
                ConfirmOutcome::Confirmed
            });
            return Ok(Confirmation {
                details: self.details(&check.contact).await?,
                already_confirmed: check.already_confirmed,
                email: v.email,
                domains: check.domains,
            });
        }
        Err(Error::unavailable(
            "the verification kept changing; try again",
        ))
    }

    /// When the key a link names expires (or expired), for the page of an
    /// expired link; `None` when the token does not name a key.
    pub async fn link_expiry(&self, token: &str) -> Option<DateTime<Utc>> {
        let token = VerificationToken::parse(token).ok()?;
        let key = self.store.key(token.key_id()).await.ok()??;
        Some(key.expires_at)
    }
}
