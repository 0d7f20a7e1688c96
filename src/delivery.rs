//! One email, end to end: claim the address in the database, render, hand
//! the message to the relay, then record the outcome. The claim keeps every
//! other sweep or resend off the address while the message is in flight, so
//! one event is mailed once; only a crash between the relay's acceptance and
//! the final write can repeat a message, once, after the claim's lease.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::domain::verification::{Key, ResendPlan};
use crate::domain::{mask_email, Notice, Policy, Status, TokenSecret, Verification};
use crate::mail::{MailContext, Mailer, SendError};
use crate::store::{Change, NotificationRecord, Store, VOID_SUPERSEDED, VOID_UNDELIVERED};
use crate::{Error, ErrorCode, Result};

/// What to send: a notice, and whether it goes out with a fresh key. Every
/// job is built here, from the notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub notice: Notice,
    /// Issue a fresh key with this email (installed only if it is accepted).
    pub fresh_key: bool,
}

impl Job {
    /// A notice the sweep found due: the first verification email issues
    /// the key; reminders and the expiry notice use the current one.
    pub fn scheduled(notice: Notice) -> Job {
        Job {
            notice,
            fresh_key: notice == Notice::Verification,
        }
    }

    /// A resend someone asked for (CONTRACT section 2, Resend): the current
    /// link while its key is good, else a fresh key.
    pub fn resend(plan: ResendPlan) -> Job {
        Job {
            notice: Notice::Resend,
            fresh_key: plan == ResendPlan::NewKey,
        }
    }
}

#[derive(Debug)]
pub enum Delivery {
    Sent(NotificationRecord),
    Failed(NotificationRecord, SendError),
    /// Someone else changed or claimed the address first; nothing was sent.
    Skipped,
}

/// How often the final write is retried while the database is unavailable,
/// and the first wait (doubling): 63 s in all, well inside a claim's lease,
/// so a restarting database does not cause a second email. The daemon's
/// shutdown grace is longer than this, so a stop waits for it.
const FINAL_WRITE_RETRIES: u32 = 6;
const FINAL_WRITE_FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest a delivery spends retrying its final write.
pub const FINAL_WRITE_WINDOW: Duration = Duration::from_secs(63);
/// Concurrent confirmations can bump the row's version; retry on that.
const VERSION_RETRIES: u32 = 10;

/// Delivers one email: what it needs and nothing more.
#[derive(Clone)]
pub struct Courier {
    store: Store,
    mailer: Arc<Mailer>,
    secret: TokenSecret,
    policy: Policy,
    clock: Clock,
    link_base: String,
}

impl Courier {
    pub fn new(
        store: Store,
        mailer: Arc<Mailer>,
        secret: TokenSecret,
        policy: Policy,
        clock: Clock,
        link_base: &str,
    ) -> Courier {
        Courier {
            store,
            mailer,
            secret,
            policy,
            clock,
            link_base: link_base.trim_end_matches('/').to_string(),
        }
    }

    /// Delivers `job` for the address of `v` (as read by the caller), under
    /// the claim `owner`.
    #[tracing::instrument(skip_all, fields(email = %mask_email(v.email.as_str()), reason = %job.notice))]
    pub async fn deliver(&self, v: &Verification, job: Job, owner: &str) -> Result<Delivery> {
        let now = self.clock.now();
        let mut claimed = v.clone();
        claimed.claim(owner, now, &self.policy);
        let note = NotificationRecord::started(&v.email_key, job.notice, now);
        // A fresh key is recorded with the claim, before the email leaves:
        // its link must work from the moment the registrant can have it,
        // even if this process dies before recording the outcome.
        let prepared = job
            .fresh_key
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
        let result = self.send(v, job.notice, key.as_ref(), now).await;
        self.finish(v, job, owner, key, result, note).await
    }

    /// Renders and sends; returns once the relay answered.
    async fn send(
        &self,
        v: &Verification,
        notice: Notice,
        key: Option<&Key>,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), SendError> {
        let key = key.ok_or_else(|| internal_send_error(Error::internal("no key to send")))?;
        let domains = self
            .store
            .address_domains(&v.email_key)
            .await
            .map_err(internal_send_error)?;
        let link = if notice.has_link() {
            let token = self.secret.token_for(&key.id, &v.email_key);
            self.link(token.expose())
        } else {
            String::new()
        };
        let ctx = MailContext {
            email: v.email.to_string(),
            domains: domains.iter().map(ToString::to_string).collect(),
            link,
            expires_at: key.expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            days_left: days_left(now, key.expires_at),
            registrar: self.mailer.sender_name(),
        };
        let rendered = self
            .mailer
            .render(notice, &ctx)
            .map_err(internal_send_error)?;
        self.mailer.send(&v.email, rendered).await
    }

    /// The confirmation link for a token.
    pub fn link(&self, token: &str) -> String {
        format!("{}/{token}", self.link_base)
    }

    /// Records the outcome, retrying while the database is unavailable.
    async fn finish(
        &self,
        v: &Verification,
        job: Job,
        owner: &str,
        key: Option<Key>,
        result: std::result::Result<(), SendError>,
        mut note: NotificationRecord,
    ) -> Result<Delivery> {
        let now = self.clock.now();
        match &result {
            Ok(()) => note.succeed(now),
            Err(e) => note.fail(now, e.code.clone(), e.detail.clone()),
        }
        let mut wait = FINAL_WRITE_FIRST_WAIT;
        let mut attempt = 0;
        loop {
            match self
                .record_outcome(v, job, owner, key.as_ref(), result.is_ok(), &note, now)
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
        let operation_type = job.notice.operation_type();
        Ok(match result {
            Ok(()) => {
                tracing::info!(event = "email_sent", operation_type, notification_id = %note.id,
                    "email accepted by the SMTP server");
                Delivery::Sent(note)
            }
            Err(e) => {
                tracing::warn!(event = "email_failed", operation_type, notification_id = %note.id,
                    error_code = %e.code, permanent = e.permanent,
                    "email not accepted; the address keeps its state");
                Delivery::Failed(note, e)
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_outcome(
        &self,
        v: &Verification,
        job: Job,
        owner: &str,
        key: Option<&Key>,
        sent: bool,
        note: &NotificationRecord,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for _ in 0..VERSION_RETRIES {
            let current = self.store.verification(&v.email_key).await?;
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
            let fresh_key = key.filter(|_| job.fresh_key);
            if sent {
                if let Some(k) = fresh_key.filter(|_| cur.status != Status::Validated) {
                    cur.install_key(k.clone());
                    change.void_other_keys = Some((&k.id, VOID_SUPERSEDED));
                }
                cur.sent(job.notice, now);
            } else {
                if let Some(k) = fresh_key {
                    change.void_key = Some((&k.id, VOID_UNDELIVERED));
                }
                if job.notice.backs_off_on_failure() {
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
