//! The daemon's Prometheus metrics (CONTRACT section 10, prefix
//! `contact_verifier_`), kept by the process and served at `/metrics` in the
//! Prometheus text format by the `prometheus-client` crate.
//!
//! Counters move where things happen: a send's answer ([`crate::delivery`]),
//! a confirmation ([`crate::service`]), a hook delivery ([`crate::hooks`]),
//! a sweep's end ([`crate::daemon`]). The gauges by state (`contacts`,
//! `domains_*`, `addresses_bounced`, `events_pending`) are set from one
//! grouped count query when the daemon starts and after each sweep
//! ([`Metrics::refresh`]), never by a scrape. `smtp_up` is the last send's
//! answer; `database_up` the last query or ping's.
//!
//! One registry per process ([`global`]), as with every Prometheus client:
//! the daemon serves it; a one-shot command's counters die with it.

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::domain::Notice;
use crate::mail::SendError;
use crate::store::{StateCounts, Store};
use crate::{Error, ErrorCode, Result};

/// `Content-Type` of the Prometheus text format (0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of `sweep_duration_seconds`: a quiet sweep takes
/// milliseconds, a backlog of thousands of emails minutes.
const SWEEP_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// A series with no labels that is absent until its value is known
/// (`smtp_up` before the first send, the last success before the first
/// sweep), so that an alert on its value cannot fire on a guess.
type Optional = Family<Vec<(&'static str, &'static str)>, Gauge>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailedLabels {
    kind: &'static str,
    permanent: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

/// What `/healthz` says of the SMTP relay: its last answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpState {
    /// Nothing was sent since the daemon started.
    Unknown,
    /// The last send reached the relay, which answered (a 5xx refusal of
    /// one recipient included: the relay is up).
    Ok,
    /// The last send did not reach the relay, or it answered "try later".
    Failing,
}

impl SmtpState {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpState::Unknown => "unknown",
            SmtpState::Ok => "ok",
            SmtpState::Failing => "failing",
        }
    }
}

/// How a confirmation ended (`confirmations_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    Confirmed,
    Already,
    Expired,
    Invalid,
}

impl ConfirmOutcome {
    fn as_str(self) -> &'static str {
        match self {
            ConfirmOutcome::Confirmed => "confirmed",
            ConfirmOutcome::Already => "already",
            ConfirmOutcome::Expired => "expired",
            ConfirmOutcome::Invalid => "invalid",
        }
    }

    /// The outcome a refused link counts as; `None` for failures that say
    /// nothing about the link (the database did not answer).
    pub fn of_error(e: &Error) -> Option<ConfirmOutcome> {
        match e.code {
            ErrorCode::Expired => Some(ConfirmOutcome::Expired),
            ErrorCode::InvalidInput => Some(ConfirmOutcome::Invalid),
            _ => None,
        }
    }
}

/// The `kind` label of an email.
pub fn kind(notice: Notice) -> &'static str {
    match notice {
        Notice::Verification => "verification",
        Notice::Resend => "resend",
        Notice::Reminder { .. } => "reminder",
        Notice::ExpiryNotice => "expiry_notice",
    }
}

/// The statuses `contacts{status}` always shows, zeros included.
const STATUSES: [&str; 4] = ["NotValidated", "Pending", "Validated", "Expired"];
/// Every `kind` of email.
const KINDS: [&str; 4] = ["verification", "resend", "reminder", "expiry_notice"];
/// Every `outcome` of a confirmation.
const CONFIRM_OUTCOMES: [&str; 4] = ["confirmed", "already", "expired", "invalid"];

/// Every metric of the contract, and the state `/healthz` reads.
pub struct Metrics {
    registry: Registry,
    emails_sent: Family<KindLabels, Counter>,
    emails_failed: Family<FailedLabels, Counter>,
    sweeps: Family<OutcomeLabels, Counter>,
    sweep_duration: Histogram,
    last_sweep_success: Optional,
    contacts: Family<StatusLabels, Gauge>,
    domains_waiting: Gauge,
    domains_suspended: Gauge,
    addresses_bounced: Gauge,
    confirmations: Family<OutcomeLabels, Counter>,
    hook_deliveries: Family<OutcomeLabels, Counter>,
    events_pending: Gauge,
    smtp_up: Optional,
    database_up: Optional,
    /// [`SmtpState`] as a number, for `/healthz`.
    smtp: AtomicU8,
    /// When `database_up` was last set (Unix milliseconds; 0: never).
    database_seen_ms: AtomicI64,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of metrics in its own registry.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("contact_verifier"),
            emails_sent: Family::default(),
            emails_failed: Family::default(),
            sweeps: Family::default(),
            sweep_duration: Histogram::new(SWEEP_BUCKETS),
            last_sweep_success: Optional::default(),
            contacts: Family::default(),
            domains_waiting: Gauge::default(),
            domains_suspended: Gauge::default(),
            addresses_bounced: Gauge::default(),
            confirmations: Family::default(),
            hook_deliveries: Family::default(),
            events_pending: Gauge::default(),
            smtp_up: Optional::default(),
            database_up: Optional::default(),
            smtp: AtomicU8::new(0),
            database_seen_ms: AtomicI64::new(0),
        };
        // Counters are registered without `_total`: the encoder adds it.
        let r = &mut m.registry;
        r.register(
            "emails_sent",
            "Emails the SMTP relay accepted, by kind (verification, resend, reminder, expiry_notice)",
            m.emails_sent.clone(),
        );
        r.register(
            "emails_failed",
            "Emails the SMTP relay did not accept, by kind and whether the refusal was permanent (5xx)",
            m.emails_failed.clone(),
        );
        r.register(
            "sweeps",
            "Sweeps run by this daemon, by outcome (ok, failed)",
            m.sweeps.clone(),
        );
        r.register_with_unit(
            "sweep_duration",
            "How long each sweep took",
            Unit::Seconds,
            m.sweep_duration.clone(),
        );
        r.register(
            "last_sweep_success_timestamp_seconds",
            "Unix time the last successful sweep finished (absent before the first)",
            m.last_sweep_success.clone(),
        );
        r.register(
            "contacts",
            "Contacts by the status of their address, as of the last sweep",
            m.contacts.clone(),
        );
        r.register(
            "domains_waiting",
            "Domains waiting on their registrant's verification (suspended ones included), as of the last sweep",
            m.domains_waiting.clone(),
        );
        r.register(
            "domains_suspended",
            "Domains suspended for an unverified registrant, as of the last sweep",
            m.domains_suspended.clone(),
        );
        r.register(
            "addresses_bounced",
            "Bounced addresses that a contact uses, as of the last sweep",
            m.addresses_bounced.clone(),
        );
        r.register(
            "confirmations",
            "Confirmation attempts, by outcome (confirmed, already, expired, invalid)",
            m.confirmations.clone(),
        );
        r.register(
            "hook_deliveries",
            "Hook delivery attempts, by outcome (delivered, failed)",
            m.hook_deliveries.clone(),
        );
        r.register(
            "events_pending",
            "Hook events not delivered yet, as of the last sweep",
            m.events_pending.clone(),
        );
        r.register(
            "smtp_up",
            "1 if the last send reached the SMTP relay, 0 if not (absent before the first send)",
            m.smtp_up.clone(),
        );
        r.register(
            "database_up",
            "1 if the last database query or ping succeeded, 0 if not",
            m.database_up.clone(),
        );
        // Every series whose labels are known starts at 0, so a family is
        // there from the first scrape and `rate()` sees the first increment.
        for status in STATUSES {
            m.contacts.get_or_create(&StatusLabels { status }).set(0);
        }
        for kind in KINDS {
            m.emails_sent.get_or_create(&KindLabels { kind }).get();
            for permanent in ["true", "false"] {
                m.emails_failed
                    .get_or_create(&FailedLabels { kind, permanent })
                    .get();
            }
        }
        for outcome in ["ok", "failed"] {
            m.sweeps.get_or_create(&OutcomeLabels { outcome }).get();
        }
        for outcome in CONFIRM_OUTCOMES {
            m.confirmations
                .get_or_create(&OutcomeLabels { outcome })
                .get();
        }
        for outcome in ["delivered", "failed"] {
            m.hook_deliveries
                .get_or_create(&OutcomeLabels { outcome })
                .get();
        }
        m
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// The relay's answer to one email.
    pub fn sent(&self, notice: Notice, result: &std::result::Result<(), SendError>) {
        let kind = kind(notice);
        match result {
            Ok(()) => {
                self.emails_sent.get_or_create(&KindLabels { kind }).inc();
                self.smtp(SmtpState::Ok);
            }
            Err(e) => {
                let permanent = if e.permanent { "true" } else { "false" };
                self.emails_failed
                    .get_or_create(&FailedLabels { kind, permanent })
                    .inc();
                // A rendering failure never reached the relay: it says
                // nothing of it. A permanent refusal is the relay answering.
                if e.code != "InternalError" {
                    self.smtp(if e.permanent {
                        SmtpState::Ok
                    } else {
                        SmtpState::Failing
                    });
                }
            }
        }
    }

    fn smtp(&self, state: SmtpState) {
        let (n, up) = match state {
            SmtpState::Unknown => (0, None),
            SmtpState::Ok => (1, Some(1)),
            SmtpState::Failing => (2, Some(0)),
        };
        self.smtp.store(n, Ordering::Relaxed);
        if let Some(up) = up {
            self.smtp_up.get_or_create(&Vec::new()).set(up);
        }
    }

    /// The last send's answer, for `/healthz`.
    pub fn smtp_state(&self) -> SmtpState {
        match self.smtp.load(Ordering::Relaxed) {
            1 => SmtpState::Ok,
            2 => SmtpState::Failing,
            _ => SmtpState::Unknown,
        }
    }

    /// A sweep ended; `finished_at` is its end in Unix seconds.
    pub fn sweep(&self, ok: bool, took: Duration, finished_at: i64) {
        let outcome = if ok { "ok" } else { "failed" };
        self.sweeps.get_or_create(&OutcomeLabels { outcome }).inc();
        self.sweep_duration.observe(took.as_secs_f64());
        if ok {
            self.last_success(finished_at);
        }
    }

    /// When the last successful sweep finished (Unix seconds); the daemon
    /// starts from the record the last sweep left in the database.
    pub fn last_success(&self, at: i64) {
        self.last_sweep_success.get_or_create(&Vec::new()).set(at);
    }

    /// A confirmation's outcome.
    pub fn confirmation(&self, outcome: ConfirmOutcome) {
        self.confirmations
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// A hook delivery attempt.
    pub fn hook_delivery(&self, delivered: bool) {
        let outcome = if delivered { "delivered" } else { "failed" };
        self.hook_deliveries
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Whether the database answered the last query or ping.
    pub fn database(&self, up: bool) {
        self.database_up
            .get_or_create(&Vec::new())
            .set(i64::from(up));
        self.database_seen_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    /// Whether `database_up` was set within `age`.
    pub fn database_seen_within(&self, age: Duration) -> bool {
        let seen = self.database_seen_ms.load(Ordering::Relaxed);
        let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        seen > 0 && chrono::Utc::now().timestamp_millis() - seen <= age
    }

    /// Sets the gauges by state.
    pub fn set_state(&self, c: &StateCounts) {
        for (status, n) in
            STATUSES
                .into_iter()
                .zip([c.not_validated, c.pending, c.validated, c.expired])
        {
            self.contacts.get_or_create(&StatusLabels { status }).set(n);
        }
        self.domains_waiting.set(c.domains_waiting);
        self.domains_suspended.set(c.domains_suspended);
        self.addresses_bounced.set(c.bounced);
        self.events_pending.set(c.events_pending);
    }

    /// At the daemon's start: the gauges by state, and the last success from
    /// the record the last sweep (of any process) left.
    pub async fn start(&self, store: &Store) -> Result<()> {
        if let Some(r) = store.last_sweep().await? {
            self.last_success(r.finished_at.timestamp());
        }
        self.refresh(store).await
    }

    /// Reads the counts by state (one grouped query) into the gauges, and
    /// `database_up` from whether it answered.
    pub async fn refresh(&self, store: &Store) -> Result<()> {
        let counts = store.state_counts().await;
        if let Err(e) = &counts {
            if e.code == ErrorCode::Unavailable {
                self.database(false);
            }
        }
        let counts = counts?;
        self.database(true);
        self.set_state(&counts);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn every_family_is_named_with_the_prefix_and_typed() {
        let m = Metrics::new();
        m.sent(Notice::Verification, &Ok(()));
        m.sweep(true, Duration::from_secs(1), 1_780_000_000);
        m.database(true);
        let text = m.encode();
        for (name, kind) in [
            ("emails_sent_total", "counter"),
            ("emails_failed_total", "counter"),
            ("sweeps_total", "counter"),
            ("sweep_duration_seconds", "histogram"),
            ("last_sweep_success_timestamp_seconds", "gauge"),
            ("contacts", "gauge"),
            ("domains_waiting", "gauge"),
            ("domains_suspended", "gauge"),
            ("addresses_bounced", "gauge"),
            ("confirmations_total", "counter"),
            ("hook_deliveries_total", "counter"),
            ("events_pending", "gauge"),
            ("smtp_up", "gauge"),
            ("database_up", "gauge"),
        ] {
            let line = format!("# TYPE contact_verifier_{name} {kind}\n");
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("# EOF"), "Prometheus text, not OpenMetrics");
    }

    #[test]
    fn labelled_counters_start_at_zero_for_every_known_label() {
        let text = Metrics::new().encode();
        let s = |series: &str| sample(&text, &format!("contact_verifier_{series}"));
        for notice in [
            Notice::Verification,
            Notice::Resend,
            Notice::Reminder { day: 3 },
            Notice::ExpiryNotice,
        ] {
            let kind = kind(notice);
            assert_eq!(
                s(&format!("emails_sent_total{{kind=\"{kind}\"}}")),
                Some(0.0)
            );
            assert_eq!(
                s(&format!(
                    "emails_failed_total{{kind=\"{kind}\",permanent=\"false\"}}"
                )),
                Some(0.0)
            );
        }
        for outcome in [
            ConfirmOutcome::Confirmed,
            ConfirmOutcome::Already,
            ConfirmOutcome::Expired,
            ConfirmOutcome::Invalid,
        ] {
            let series = format!("confirmations_total{{outcome=\"{}\"}}", outcome.as_str());
            assert_eq!(s(&series), Some(0.0), "{series}");
        }
        assert_eq!(s("sweeps_total{outcome=\"failed\"}"), Some(0.0));
        assert_eq!(s("hook_deliveries_total{outcome=\"failed\"}"), Some(0.0));
    }

    #[test]
    fn unknown_values_are_absent_not_guessed() {
        let m = Metrics::new();
        let text = m.encode();
        assert_eq!(sample(&text, "contact_verifier_smtp_up"), None, "{text}");
        assert_eq!(
            sample(
                &text,
                "contact_verifier_last_sweep_success_timestamp_seconds"
            ),
            None
        );
        assert_eq!(
            sample(&text, "contact_verifier_contacts{status=\"Pending\"}"),
            Some(0.0)
        );
        assert_eq!(m.smtp_state(), SmtpState::Unknown);
        assert!(!m.database_seen_within(Duration::from_secs(3600)));
    }

    #[test]
    fn sends_count_by_kind_and_set_the_smtp_state() {
        let m = Metrics::new();
        m.sent(Notice::Reminder { day: 3 }, &Ok(()));
        m.sent(Notice::Verification, &Ok(()));
        m.sent(Notice::Verification, &Ok(()));
        assert_eq!(m.smtp_state(), SmtpState::Ok);
        let refused = SendError {
            code: "550".into(),
            permanent: true,
            refused: None,
            detail: "no such user".into(),
        };
        m.sent(Notice::ExpiryNotice, &Err(refused));
        assert_eq!(m.smtp_state(), SmtpState::Ok, "the relay answered");
        let down = SendError {
            code: "ConnectionError".into(),
            permanent: false,
            refused: None,
            detail: "refused".into(),
        };
        m.sent(Notice::Resend, &Err(down));
        assert_eq!(m.smtp_state(), SmtpState::Failing);
        let text = m.encode();
        let s = |series: &str| sample(&text, &format!("contact_verifier_{series}"));
        assert_eq!(s("emails_sent_total{kind=\"verification\"}"), Some(2.0));
        assert_eq!(s("emails_sent_total{kind=\"reminder\"}"), Some(1.0));
        assert_eq!(
            s("emails_failed_total{kind=\"expiry_notice\",permanent=\"true\"}"),
            Some(1.0)
        );
        assert_eq!(
            s("emails_failed_total{kind=\"resend\",permanent=\"false\"}"),
            Some(1.0)
        );
        assert_eq!(s("smtp_up"), Some(0.0));
    }

    #[test]
    fn sweeps_confirmations_hooks_and_state() {
        let m = Metrics::new();
        m.sweep(true, Duration::from_millis(300), 1_780_000_000);
        m.sweep(false, Duration::from_secs(12), 1_780_000_300);
        m.confirmation(ConfirmOutcome::Confirmed);
        m.confirmation(ConfirmOutcome::Invalid);
        m.hook_delivery(true);
        m.database(true);
        m.set_state(&StateCounts {
            not_validated: 1,
            pending: 2,
            validated: 3,
            expired: 4,
            bounced: 0,
            domains_waiting: 5,
            domains_suspended: 6,
            events_pending: 7,
        });
        let text = m.encode();
        let s = |series: &str| sample(&text, &format!("contact_verifier_{series}"));
        assert_eq!(s("sweeps_total{outcome=\"ok\"}"), Some(1.0));
        assert_eq!(s("sweeps_total{outcome=\"failed\"}"), Some(1.0));
        assert_eq!(s("sweep_duration_seconds_count"), Some(2.0));
        assert_eq!(s("sweep_duration_seconds_bucket{le=\"0.5\"}"), Some(1.0));
        assert_eq!(
            s("last_sweep_success_timestamp_seconds"),
            Some(1_780_000_000.0)
        );
        assert_eq!(s("confirmations_total{outcome=\"confirmed\"}"), Some(1.0));
        assert_eq!(s("confirmations_total{outcome=\"invalid\"}"), Some(1.0));
        assert_eq!(s("hook_deliveries_total{outcome=\"delivered\"}"), Some(1.0));
        assert_eq!(s("contacts{status=\"Expired\"}"), Some(4.0));
        assert_eq!(s("domains_waiting"), Some(5.0));
        assert_eq!(s("domains_suspended"), Some(6.0));
        assert_eq!(s("events_pending"), Some(7.0));
        assert_eq!(s("database_up"), Some(1.0));
        assert!(m.database_seen_within(Duration::from_secs(5)));
    }

    #[test]
    fn a_refused_link_counts_by_why() {
        assert_eq!(
            ConfirmOutcome::of_error(&Error::new(ErrorCode::Expired, "x")),
            Some(ConfirmOutcome::Expired)
        );
        assert_eq!(
            ConfirmOutcome::of_error(&Error::invalid("x")),
            Some(ConfirmOutcome::Invalid)
        );
        assert_eq!(ConfirmOutcome::of_error(&Error::unavailable("x")), None);
    }
}
