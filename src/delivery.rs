//! One email, end to end: claim the address in the database, render, hand
//! the message to the relay, then record the outcome. The claim keeps every
//! other sweep or resend off the address while the message is in flight, so
//! one event is mailed once; only a crash between the relay's acceptance and
//! the final write can repeat a message, once, after the claim's lease.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::config::BrandingSettings;
use crate::domain::verification::{Key, ResendPlan};
use crate::domain::{
    mask_addresses, mask_email, Bounce, DomainName, EmailKey, Language, Notice, Policy,
    TokenSecret, Verification,
};
use crate::liveness::Liveness;
use crate::mail::{MailContext, Mailer, SendError};
use crate::shutdown::StopSignal;
use crate::store::{Claim, NotificationRecord, Outcome, Store};
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
pub use crate::domain::verification::FINAL_WRITE_WINDOW;

/// Delivers emails: what it needs and nothing more.
#[derive(Clone)]
pub struct Courier {
    store: Store,
    mailer: Arc<Mailer>,
    secret: TokenSecret,
    policy: Policy,
    clock: Clock,
    link_base: String,
    /// Who the emails come from and where to get help (`name` resolved).
    branding: BrandingSettings,
    liveness: Liveness,
}

/// A claimed email on its way to the relay.
struct Sending {
    claim: Claim,
    key: Option<Key>,
    domains: Vec<DomainName>,
    language: Option<Language>,
}

impl Courier {
    pub fn new(
        store: Store,
        mailer: Arc<Mailer>,
        secret: TokenSecret,
        policy: Policy,
        clock: Clock,
        link_base: &str,
        liveness: Liveness,
    ) -> Courier {
        Courier {
            store,
            mailer,
            secret,
            policy,
            clock,
            link_base: link_base.trim_end_matches('/').to_string(),
            branding: BrandingSettings::default(),
            liveness,
        }
    }

    /// Names the registrar, its logo and support contacts in every email
    /// (CONTRACT section 9); without it, the sender's display name alone.
    pub fn with_branding(mut self, branding: BrandingSettings) -> Courier {
        self.branding = branding;
        self
    }

    /// Delivers `job` for the address of `v` (as read by the caller), under
    /// the claim `owner` (a resend).
    pub async fn deliver(&self, v: &Verification, job: Job, owner: &str) -> Result<Delivery> {
        let mut done = self
            .deliver_batch(vec![(v.clone(), job)], owner, 1, &StopSignal::never())
            .await?;
        Ok(done.pop().map(|(_, d)| d).unwrap_or(Delivery::Skipped))
    }

    /// Delivers a chunk of jobs: claims them, sends up to `concurrency` at
    /// once, and records outcomes in groups. Each send waits until its
    /// outcome is recorded before its connection takes the next message, so
    /// a crash repeats at most the messages in flight (one per connection).
    pub async fn deliver_batch(
        &self,
        jobs: Vec<(Verification, Job)>,
        owner: &str,
        concurrency: usize,
        stop: &StopSignal,
    ) -> Result<Vec<(Notice, Delivery)>> {
        let sendings = self.claim(jobs, owner).await?;
        if sendings.is_empty() {
            return Ok(Vec::new());
        }
        let writer = self.outcome_writer(concurrency);
        let done: Vec<Result<(Notice, Delivery)>> = futures::stream::iter(sendings)
            .map(|s| self.send_and_record(s, owner, &writer, stop))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        writer.finish().await;
        done.into_iter().collect()
    }

    /// Claims a chunk of jobs in one transaction and reads their domains and
    /// languages in one query each: the emails ready to go, for
    /// [`Courier::send_and_record`]. Those changed or claimed by someone else
    /// first are left out.
    async fn claim(&self, jobs: Vec<(Verification, Job)>, owner: &str) -> Result<Vec<Sending>> {
        let now = self.clock.now();
        let claims: Vec<Claim> = jobs
            .into_iter()
            .map(|(v, job)| Claim {
                note: NotificationRecord::started(&v.email_key, job.notice, now),
                fresh_key: job
                    .fresh_key
                    .then(|| Verification::prepare_key(now, &self.policy)),
                notice: job.notice,
                verification: v,
            })
            .collect();
        let won = self
            .store
            .claim_batch(claims, owner, now, &self.policy)
            .await?;
        if won.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<EmailKey> = won
            .iter()
            .map(|c| c.verification.email_key.clone())
            .collect();
        let mut domains = self.store.domains_of(&keys).await?;
        let mut languages = self.store.languages_of(&keys).await?;
        Ok(won
            .into_iter()
            .map(|claim| Sending {
                key: claim
                    .fresh_key
                    .clone()
                    .or_else(|| claim.verification.key.clone()),
                domains: domains
                    .remove(&claim.verification.email_key)
                    .unwrap_or_default(),
                language: languages.remove(&claim.verification.email_key),
                claim,
            })
            .collect())
    }

    /// The group commit of outcomes for sends running up to `concurrency`
    /// at once; [`GroupWriter::finish`] it when they are done.
    fn outcome_writer(&self, concurrency: usize) -> GroupWriter {
        GroupWriter::spawn(self.clone(), concurrency)
    }

    /// One claimed email: render, send, record (through the group writer).
    /// After a stop it sends nothing and gives the address back.
    #[tracing::instrument(skip_all, fields(email = %mask_email(s.claim.verification.email.as_str()), reason = %s.claim.notice))]
    async fn send_and_record(
        &self,
        s: Sending,
        owner: &str,
        writer: &GroupWriter,
        stop: &StopSignal,
    ) -> Result<(Notice, Delivery)> {
        let notice = s.claim.notice;
        if stop.is_stopped() {
            // Claimed but not sent: give the address back at once rather
            // than leave it to wait out the lease.
            writer
                .record(Outcome {
                    email_key: s.claim.verification.email_key.clone(),
                    claimed: s.claim.verification.clone(),
                    owner: owner.to_string(),
                    notice,
                    fresh_key: s.claim.fresh_key,
                    accepted: false,
                    attempted: false,
                    note: s.claim.note,
                    bounce: None,
                })
                .await?;
            return Ok((notice, Delivery::Skipped));
        }
        // A claim that could run out before this send ends is renewed
        // first; one lost meanwhile is someone else's now: send nothing.
        if !self.claim_lasts(&s.claim.verification, owner).await? {
            return Ok((notice, Delivery::Skipped));
        }
        writer.sending();
        let result = self
            .send(
                &s.claim.verification,
                notice,
                s.key.as_ref(),
                &s.domains,
                s.language.as_ref(),
            )
            .await;
        crate::metrics::global().sent(notice, &result);
        let mut note = s.claim.note;
        let now = self.clock.now();
        match &result {
            Ok(()) => note.succeed(now),
            Err(e) => note.fail(now, e.code.clone(), e.detail.clone()),
        }
        let bounce = result
            .as_ref()
            .err()
            .and_then(|e| e.refused.as_ref())
            .and_then(|(code, text)| Bounce::from_reply(code, text, now));
        let outcome = Outcome {
            email_key: s.claim.verification.email_key.clone(),
            claimed: s.claim.verification.clone(),
            owner: owner.to_string(),
            notice,
            fresh_key: s.claim.fresh_key,
            accepted: result.is_ok(),
            attempted: true,
            note: note.clone(),
            bounce: bounce.clone(),
        };
        writer.record(outcome).await.inspect_err(|e| {
            tracing::error!(event = "state_write_failed", error = %e, notification_id = %note.id,
                "could not record a finished delivery");
        })?;
        let operation_type = notice.operation_type();
        Ok((
            notice,
            match result {
                Ok(()) => {
                    tracing::info!(event = "email_sent", operation_type, notification_id = %note.id,
                        "email accepted by the SMTP server");
                    Delivery::Sent(note)
                }
                Err(e) => {
                    if let Some(b) = &bounce {
                        tracing::warn!(event = "email_bounced", operation_type,
                            notification_id = %note.id,
                            email = %mask_email(s.claim.verification.email.as_str()),
                            code = %b.code, detail = %mask_addresses(&b.detail),
                            "the relay refused the address for good; sweeps stop mailing it");
                    }
                    tracing::warn!(event = "email_failed", operation_type, notification_id = %note.id,
                        error_code = %e.code, permanent = e.permanent, error = %mask_addresses(&e.detail),
                        "email not accepted; the address keeps its state");
                    Delivery::Failed(note, e)
                }
            },
        ))
    }

    /// Whether the claim on `v` covers a whole send from now, renewing it
    /// (one lease from now) when it would not; false if it is no longer
    /// `owner`'s.
    async fn claim_lasts(&self, v: &Verification, owner: &str) -> Result<bool> {
        let now = self.clock.now();
        if v.claim_until
            .is_some_and(|until| until >= now + self.policy.send_bound)
        {
            return Ok(true);
        }
        self.store
            .renew_claim(&v.email_key, owner, now, &self.policy)
            .await
    }

    /// Renders and sends; returns once the relay answered. Every notice
    /// carries its key's link: the expiry notice's (expired) link opens the
    /// page that offers a new one.
    async fn send(
        &self,
        v: &Verification,
        notice: Notice,
        key: Option<&Key>,
        domains: &[DomainName],
        language: Option<&Language>,
    ) -> std::result::Result<(), SendError> {
        let now = self.clock.now();
        let key = key.ok_or_else(|| internal_send_error(Error::internal("no key to send")))?;
        let token = self.secret.token_for(&key.id, &v.email_key);
        let mut branding = self.branding.clone();
        if branding.name.is_empty() {
            branding.name = self.mailer.sender_name();
        }
        let ctx = MailContext {
            email: v.email.to_string(),
            domains: domains.iter().map(ToString::to_string).collect(),
            link: self.link(token.expose()),
            expires_at: key.expires_at,
            days_left: days_left(now, key.expires_at),
            language: language.cloned(),
            branding,
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

    /// Writes a group of outcomes, retrying while the database is unavailable.
    /// The retries end with the window, however long each failed attempt
    /// waited for a connection (`database.acquire_timeout_secs`): a longer
    /// outage fails the sweep (`sweep_failed`) instead of hiding behind
    /// retries, and a stop's grace covers the window plus one attempt.
    async fn write_outcomes(&self, outcomes: &[Outcome]) -> Result<()> {
        let started = std::time::Instant::now();
        let mut wait = FINAL_WRITE_FIRST_WAIT;
        let mut attempt = 0;
        loop {
            match self
                .store
                .record_outcomes(outcomes, self.clock.now(), &self.policy)
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if e.code == ErrorCode::Unavailable => {
                    if attempt >= FINAL_WRITE_RETRIES || started.elapsed() >= FINAL_WRITE_WINDOW {
                        // Held: this process's claims on these addresses
                        // stay its own (its heartbeat keeps them from
                        // others) until its heartbeat writes them.
                        self.liveness.hold(outcomes);
                        return Err(e);
                    }
                    tracing::warn!(event = "state_write_retry", error = %e, "database unavailable; retrying the write of finished deliveries");
                    let left = FINAL_WRITE_WINDOW.saturating_sub(started.elapsed());
                    tokio::time::sleep(wait.min(left)).await;
                    wait *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Group commit of outcomes: sends hand their outcome over and wait for it
/// to be written; whatever has arrived meanwhile is written in one
/// transaction. While other sends are still at the relay, the writer waits a
/// moment ([`GATHER`]) for their outcomes too: one commit for the round
/// costs less than one per email, and the relay is idle for those sends
/// either way until their slot's outcome is written.
struct GroupWriter {
    tx: mpsc::Sender<(Outcome, oneshot::Sender<Result<()>>)>,
    /// Sends handed to the relay whose outcome has not arrived yet.
    sending: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// The longest the writer waits for the outcomes of sends still at the relay.
const GATHER: Duration = Duration::from_millis(1);

impl GroupWriter {
    fn spawn(courier: Courier, max_group: usize) -> GroupWriter {
        let max_group = max_group.max(1);
        let (tx, mut rx) = mpsc::channel::<(Outcome, oneshot::Sender<Result<()>>)>(max_group);
        let sending = Arc::new(AtomicUsize::new(0));
        let in_flight = sending.clone();
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                let until = tokio::time::Instant::now() + GATHER;
                while group.len() < max_group {
                    if let Ok(next) = rx.try_recv() {
                        group.push(next);
                        continue;
                    }
                    if in_flight.load(Ordering::Acquire) == 0 {
                        break;
                    }
                    match tokio::time::timeout_at(until, rx.recv()).await {
                        Ok(Some(next)) => group.push(next),
                        Ok(None) | Err(_) => break,
                    }
                }
                let outcomes: Vec<Outcome> = group.iter().map(|(o, _)| o.clone()).collect();
                let written = courier.write_outcomes(&outcomes).await;
                for (_, ack) in group {
                    let _ = ack.send(written.clone());
                }
            }
        });
        GroupWriter { tx, sending, task }
    }

    /// A send is at the relay; its outcome follows through [`GroupWriter::record`].
    fn sending(&self) {
        self.sending.fetch_add(1, Ordering::AcqRel);
    }

    /// Hands over the outcome of a send (after [`GroupWriter::sending`], if
    /// it was attempted) and waits until it is written.
    async fn record(&self, outcome: Outcome) -> Result<()> {
        if outcome.attempted {
            self.sending.fetch_sub(1, Ordering::AcqRel);
        }
        let (ack, done) = oneshot::channel();
        self.tx
            .send((outcome, ack))
            .await
            .map_err(|_| Error::internal("the outcome writer stopped"))?;
        done.await
            .map_err(|_| Error::internal("the outcome writer stopped"))?
    }

    /// Waits for the last group to be written.
    async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

fn internal_send_error(e: Error) -> SendError {
    SendError {
        code: "InternalError".into(),
        permanent: false,
        refused: None,
        detail: e.message,
    }
}

/// Whole days left until `expires`, rounded up.
fn days_left(now: DateTime<Utc>, expires: DateTime<Utc>) -> i64 {
    let secs = (expires - now).num_seconds().max(0);
    (secs + 86_399) / 86_400
}
