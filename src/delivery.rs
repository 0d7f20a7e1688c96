//! One email, end to end: claim the address in the database, render, hand
//! the message to the relay, then record the outcome. The claim keeps every
//! other sweep or resend off the address while the message is in flight, so
//! one event is mailed once; only a crash between the relay's acceptance and
//! the final write can repeat a message, once, after the claim's lease.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::verification::{Key, Sent, Verification};
use crate::domain::{mask_email, KeyId};
use crate::mail::{MailContext, MailKind, SendError};
use crate::service::Verifier;
use crate::store::{Change, NotificationRecord, VOID_SUPERSEDED, VOID_UNDELIVERED};
use crate::{Error, ErrorCode, Result};

/// What to send and how to record it.
#[derive(Debug, Clone)]
pub struct Job {
    pub kind: MailKind,
    pub operation_type: &'static str,
    pub reason: String,
    /// Issue a fresh key with this email (installed only if it is accepted).
    pub new_key: bool,
    /// Whether a failure delays the next attempt (sweeps) or not (resends,
    /// which a person asked for and which change nothing when they fail).
    pub backoff_on_failure: bool,
    pub sent: Sent,
}

#[derive(Debug)]
pub enum Delivery {
    Sent(NotificationRecord),
    Failed(NotificationRecord, SendError),
    /// Someone else changed or claimed the address first; nothing was sent.
    Skipped,
}

/// How often the final write is retried while the database is unavailable,
/// and the first wait (doubling): about a minute in all, well inside a
/// claim's lease, so a restarting database does not cause a second email.
const FINAL_WRITE_RETRIES: u32 = 6;
const FINAL_WRITE_FIRST_WAIT: Duration = Duration::from_secs(1);
/// Concurrent confirmations can bump the row's version; retry on that.
const VERSION_RETRIES: u32 = 10;

impl Verifier {
    /// Delivers `job` for the address of `v` (as read by the caller), under
    /// the claim `owner`.
    #[tracing::instrument(skip_all, fields(email = %mask_email(&v.email), reason = %job.reason))]
    pub async fn deliver(&self, v: &Verification, job: &Job, owner: &str) -> Result<Delivery> {
        let mailer = self.mailer()?;
        let secret = self.secret()?;
        let now = self.now();
        let mut claimed = v.clone();
        claimed.claim(owner, now, &self.policy);
        let note = NotificationRecord::started(&v.email_key, job.operation_type, &job.reason, now);
        // A fresh key is recorded with the claim, before the email leaves:
        // its link must work from the moment the registrant can have it,
        // even if this process dies before recording the outcome.
        let prepared = job
            .new_key
            .then(|| Verification::prepare_key(now, &self.policy));
        let change = Change {
            new_key: prepared.as_ref(),
            notification: Some(&note),
            ..Change::default()
        };
        if !self
            .store
            .commit(&mut claimed, &change, now, &self.policy)
            .await?
        {
            return Ok(Delivery::Skipped);
        }
        let key = prepared.or_else(|| claimed.key.clone());
        let result = async {
            let domains = self
                .store
                .address_domains(&v.email_key)
                .await
                .map_err(internal_send_error)?;
            let (link, expires_at) = match &key {
                Some(k) if job.kind != MailKind::ExpiryNotice => {
                    let id = KeyId::from_hex(&k.id).map_err(internal_send_error)?;
                    let token = secret.token_for(&id, &v.email_key);
                    (self.link(token.expose()), k.expires_at)
                }
                Some(k) => (String::new(), k.expires_at),
                None => return Err(internal_send_error(Error::internal("no key to send"))),
            };
            let ctx = MailContext {
                email: v.email.clone(),
                domains,
                link,
                expires_at: expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                days_left: days_left(now, expires_at),
                registrar: mailer.sender_name(),
            };
            let rendered = mailer.render(job.kind, &ctx).map_err(internal_send_error)?;
            mailer.send(&v.email, rendered).await
        }
        .await;
        self.finish(v, job, owner, key, result, note).await
    }

    /// Records the outcome, retrying while the database is unavailable.
    async fn finish(
        &self,
        v: &Verification,
        job: &Job,
        owner: &str,
        key: Option<Key>,
        result: std::result::Result<(), SendError>,
        mut note: NotificationRecord,
    ) -> Result<Delivery> {
        let now = self.now();
        match &result {
            Ok(()) => note.succeed(now),
            Err(e) => note.fail(now, e.code.clone(), e.detail.clone()),
        }
        let mut wait = FINAL_WRITE_FIRST_WAIT;
        let mut attempt = 0;
        loop {
            match self
                .record_outcome(
                    &v.email_key,
                    job,
                    owner,
                    key.as_ref(),
                    result.is_ok(),
                    &note,
                    now,
                )
                .await
            {
                Ok(()) => break,
                Err(e) if e.code == ErrorCode::Unavailable && attempt < FINAL_WRITE_RETRIES => {
                    tracing::warn!(event = "state_write_retry", error = %e, "database unavailable; retrying the write of a finished delivery");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(event = "state_write_failed", error = %e, notification_id = %note.id, "could not record a finished delivery");
                    return Err(e);
                }
            }
        }
        let email = mask_email(&v.email);
        Ok(match result {
            Ok(()) => {
                tracing::info!(event = "email_sent", email = %email, operation_type = job.operation_type,
                    reason = %job.reason, notification_id = %note.id, "email accepted by the SMTP server");
                Delivery::Sent(note)
            }
            Err(e) => {
                tracing::warn!(event = "email_failed", email = %email, operation_type = job.operation_type,
                    reason = %job.reason, notification_id = %note.id, error_code = %e.code,
                    permanent = e.permanent, "email not accepted; the address keeps its state");
                Delivery::Failed(note, e)
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_outcome(
        &self,
        email_key: &str,
        job: &Job,
        owner: &str,
        key: Option<&Key>,
        sent: bool,
        note: &NotificationRecord,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for _ in 0..VERSION_RETRIES {
            let current = self.store.verification(email_key).await?;
            let Some(mut cur) = current.filter(|c| c.is_claimed_by(owner)) else {
                // The address was released meanwhile (its contact moved away,
                // or the lease ran out): keep the record of the attempt only.
                self.store.save_notification(note).await?;
                return Ok(());
            };
            cur.release();
            let mut change = Change {
                notification: Some(note),
                ..Change::default()
            };
            let fresh_key = key.filter(|_| job.new_key);
            if sent {
                if let Some(k) =
                    fresh_key.filter(|_| cur.status != crate::domain::Status::Validated)
                {
                    cur.install_key(k.clone());
                    change.void_other_keys = Some((k.id.as_str(), VOID_SUPERSEDED));
                }
                cur.sent(job.sent, now);
            } else {
                if let Some(k) = fresh_key {
                    change.void_key = Some((k.id.as_str(), VOID_UNDELIVERED));
                }
                if job.backoff_on_failure {
                    cur.send_failed(now, &self.policy);
                }
            }
            if self
                .store
                .commit(&mut cur, &change, now, &self.policy)
                .await?
            {
                return Ok(());
            }
        }
        Err(Error::internal(
            "the verification kept changing while recording a delivery",
        ))
    }

    /// The confirmation link for a token.
    pub fn link(&self, token: &str) -> String {
        format!(
            "{}/{token}",
            self.settings
                .verification
                .link_base_url
                .trim_end_matches('/')
        )
    }
}

fn internal_send_error(e: Error) -> SendError {
    SendError {
        code: "InternalError".into(),
        permanent: false,
        detail: e.message,
    }
}

/// Whole days left until `expires`, rounded up.
fn days_left(now: DateTime<Utc>, expires: DateTime<Utc>) -> i64 {
    let secs = (expires - now).num_seconds().max(0);
    (secs + 86_399) / 86_400
}
