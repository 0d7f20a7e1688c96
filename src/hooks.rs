//! Delivering events to the registrar's systems (CONTRACT section 8): to
//! `hooks.command` (the event on stdin, exit 0 = delivered) and/or
//! `hooks.url` (a signed POST, 2xx = delivered). At least once and in
//! order: the oldest undelivered event is claimed with a lease (so several
//! daemons never deliver one at once), and a failing one holds back the
//! rest, retried with a wait doubling from 10 s to 1 h.

use std::process::Stdio;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;

use crate::clock::Clock;
use crate::config::HookSettings;
use crate::store::{EventRecord, NextEvent, Store};
use crate::sweep::StopSignal;
use crate::{Error, Result};

/// The first retry wait and the cap (CONTRACT section 8).
const RETRY_FIRST: Duration = Duration::from_secs(10);
const RETRY_MAX: Duration = Duration::from_secs(3600);
/// How often an idle daemon looks for new events.
const POLL: Duration = Duration::from_secs(1);
/// The most of a failure's text kept as `LastError`.
const MAX_ERROR: usize = 500;

/// The configured hook.
#[derive(Clone)]
pub struct Hooks {
    store: Store,
    clock: Clock,
    command: Option<String>,
    url: Option<String>,
    secret: Vec<u8>,
    timeout: Duration,
    http: reqwest::Client,
    owner: String,
}

/// What one round of delivery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub delivered: u64,
    pub failed: u64,
}

impl Hooks {
    /// `None` when no hook is configured: events then count as delivered
    /// when written, and nothing runs.
    pub fn new(s: &HookSettings, store: Store, clock: Clock) -> Result<Option<Hooks>> {
        if s.command.is_empty() && s.url.is_empty() {
            return Ok(None);
        }
        let timeout = Duration::from_secs(s.timeout_secs);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // A redirect would post the event somewhere the operator did not name.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::config(format!("hooks.url: cannot set up the HTTP client: {e}")))?;
        Ok(Some(Hooks {
            store,
            clock,
            command: (!s.command.is_empty()).then(|| s.command.clone()),
            url: (!s.url.is_empty()).then(|| s.url.clone()),
            secret: s.secret.as_bytes().to_vec(),
            timeout,
            http,
            owner: format!("hooks-{}", uuid::Uuid::new_v4().simple()),
        }))
    }

    /// How long a claim on an event lasts: longer than one delivery can take.
    fn lease(&self) -> chrono::Duration {
        let secs = self.timeout.as_secs() * 2 + 30;
        chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    /// Delivers pending events in order until none is left, the oldest waits
    /// out a retry, another deliverer holds it, or one fails.
    pub async fn deliver_pending(&self) -> Result<Round> {
        self.deliver_until(&StopSignal::never()).await
    }

    /// The same, stopping between events once `stop` is set.
    async fn deliver_until(&self, stop: &StopSignal) -> Result<Round> {
        let mut round = Round::default();
        while !stop.is_stopped() {
            let now = self.clock.now();
            let next = self
                .store
                .claim_next_event(&self.owner, now, now + self.lease())
                .await?;
            let NextEvent::Claimed(event) = next else {
                return Ok(round);
            };
            match self.deliver(&event).await {
                Ok(()) => {
                    if self
                        .store
                        .finish_event(event.seq, &self.owner, self.clock.now(), None)
                        .await?
                    {
                        crate::metrics::global().hook_delivery(true);
                        round.delivered += 1;
                        tracing::info!(event = "hook_delivered", event_id = %event.id,
                            event_type = %event.kind, attempts = event.attempts + 1,
                            "event delivered to the hook");
                    }
                }
                Err(error) => {
                    let wait = retry_wait(event.attempts + 1);
                    let at = self.clock.now()
                        + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
                    self.store
                        .finish_event(event.seq, &self.owner, self.clock.now(), Some((&error, at)))
                        .await?;
                    round.failed += 1;
                    crate::metrics::global().hook_delivery(false);
                    tracing::warn!(event = "hook_failed", event_id = %event.id,
                        event_type = %event.kind, attempts = event.attempts + 1,
                        error = %crate::domain::mask_addresses(&error), retry_in_secs = wait.as_secs(),
                        "event not delivered; later events wait for it");
                    return Ok(round);
                }
            }
        }
        Ok(round)
    }

    /// The daemon's loop: delivers continuously until stopped.
    pub async fn run(self, mut stop: StopSignal) {
        while !stop.is_stopped() {
            if let Err(e) = self.deliver_until(&stop).await {
                tracing::error!(event = "hook_failed", error = %e,
                    "cannot read or record events; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.wait() => break,
            }
        }
    }

    /// One attempt at one event: the command, then the URL; both must take it.
    async fn deliver(&self, event: &EventRecord) -> std::result::Result<(), String> {
        if let Some(command) = &self.command {
            self.run_command(command, event).await?;
        }
        if let Some(url) = &self.url {
            self.post(url, event).await?;
        }
        Ok(())
    }

    async fn run_command(
        &self,
        command: &str,
        event: &EventRecord,
    ) -> std::result::Result<(), String> {
        let mut child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .env("CONTACT_VERIFIER_EVENT_ID", &event.id)
            .env("CONTACT_VERIFIER_EVENT_TYPE", &event.kind)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so that a timeout kills the hook and
            // everything it started, not just the shell (dash forks).
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start hooks.command: {e}"))?;
        let group = child.id().and_then(|id| i32::try_from(id).ok());
        let mut stdin = child.stdin.take();
        let body = format!("{}\n", event.payload);
        let run = async {
            if let Some(stdin) = stdin.as_mut() {
                // A hook that exits without reading its input is its business.
                let _ = stdin.write_all(body.as_bytes()).await;
            }
            drop(stdin);
            child.wait_with_output().await
        };
        let finished = tokio::time::timeout(self.timeout, run).await;
        if finished.is_err() {
            if let Some(pgid) = group {
                // SAFETY: kill(2) with a negative pid signals that process
                // group only; the group is the hook's own, made above.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
        }
        match finished {
            Err(_) => Err(format!(
                "hooks.command did not finish within {} s and was killed",
                self.timeout.as_secs()
            )),
            Ok(Err(e)) => Err(format!("hooks.command failed: {e}")),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                Err(clip(&format!(
                    "hooks.command exited with {}: {}",
                    out.status,
                    stderr.trim()
                )))
            }
        }
    }

    async fn post(&self, url: &str, event: &EventRecord) -> std::result::Result<(), String> {
        let t = self.clock.now().timestamp();
        let answer = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .header("X-Contact-Verifier-Event", &event.id)
            .header(
                "X-Contact-Verifier-Signature",
                signature(&self.secret, t, event.payload.as_bytes()),
            )
            .body(event.payload.clone())
            .send()
            .await
            .map_err(|e| clip(&format!("POST to hooks.url failed: {}", error_chain(&e))))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let text = answer.text().await.unwrap_or_default();
        Err(clip(&format!(
            "hooks.url answered {status}: {}",
            text.trim()
        )))
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (CONTRACT section 8).
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// The wait after the `attempts`-th failure in a row: 10 s doubling, capped at 1 h.
pub fn retry_wait(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    RETRY_FIRST.saturating_mul(1u32 << doublings).min(RETRY_MAX)
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_ERROR).collect()
}

/// reqwest's top-level message hides the cause (connection refused, TLS).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_a_hooks_error_are_masked_for_the_log() {
        assert_eq!(
            crate::domain::mask_addresses("rejected \"alice@example.com\": no"),
            "rejected a***@example.com no"
        );
    }

    #[test]
    fn retries_wait_ten_seconds_doubling_to_an_hour() {
        assert_eq!(retry_wait(1), Duration::from_secs(10));
        assert_eq!(retry_wait(2), Duration::from_secs(20));
        assert_eq!(retry_wait(9), Duration::from_secs(2560));
        assert_eq!(retry_wait(10), Duration::from_secs(3600));
        assert_eq!(retry_wait(1000), Duration::from_secs(3600));
    }

    #[test]
    fn the_signature_is_an_hmac_of_time_dot_body() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac k
        assert_eq!(
            signature(b"k", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=1b6ad1bc9bf48c52ce01939866d5877c6cc4e87ddad27e16673cb8c4964394a3"
        );
    }
}
