//! A verifier wired to a fresh database, a real SMTP server on loopback and a
//! manual clock, for behaviour tests of sending, reminding and confirming.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use contact_verifier::clock::Clock;
use contact_verifier::config::{Settings, SmtpTls};
use contact_verifier::service::{ContactSelector, Verifier};
use contact_verifier::store::Store;
use contact_verifier::sweep::{StopSignal, SweepSummary};

use super::smtp::{ReceivedMail, SmtpSink, TlsMode};
use super::{Bin, TestDb};

pub const SECRET: &str = "test-secret-0123456789-abcdefghijklmnop";
pub const LINK_BASE: &str = "https://registrar.example/verify";

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub fn settings_for(db: &TestDb, sink: &SmtpSink) -> Settings {
    let mut s = Settings::default();
    s.database.url = db.url.clone();
    s.verification.secret = SECRET.into();
    s.verification.link_base_url = LINK_BASE.into();
    s.smtp.host = "127.0.0.1".into();
    s.smtp.port = sink.port();
    s.smtp.tls = SmtpTls::None;
    s.smtp.timeout_secs = 5;
    s.smtp.data_timeout_secs = 30;
    s.schedule.claim_lease_secs = 60;
    s
}

pub struct App {
    pub db: TestDb,
    pub sink: SmtpSink,
    pub clock: Clock,
    pub settings: Settings,
    pub v: Verifier,
}

impl App {
    pub async fn new(db: TestDb) -> App {
        App::with(db, TlsMode::None, |_| {}).await
    }

    pub async fn with(db: TestDb, mode: TlsMode, tweak: impl FnOnce(&mut Settings)) -> App {
        let sink = SmtpSink::start(mode).await;
        let mut settings = settings_for(&db, &sink);
        tweak(&mut settings);
        let clock = Clock::manual(t0());
        let v = verifier(&settings, clock.clone()).await;
        App {
            db,
            sink,
            clock,
            settings,
            v,
        }
    }

    /// A second, independent verifier on the same database (its own pool),
    /// as a second process would be.
    pub async fn second_verifier(&self) -> Verifier {
        verifier(&self.settings, self.clock.clone()).await
    }

    pub async fn sweep(&self) -> SweepSummary {
        self.v
            .sweep(false, &StopSignal::never())
            .await
            .expect("sweep")
    }

    pub async fn add(&self, id: &str, email: &str, domains: &[&str]) {
        let domains: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
        self.v
            .add_contact(id, email, &domains, None)
            .await
            .expect("add contact");
    }

    pub async fn import(&self, jsonl: &str) {
        let report = self.v.import(jsonl.as_bytes()).await.expect("import");
        assert!(report.rejected.is_empty(), "{report:?}");
    }

    pub async fn status(&self, id: &str) -> String {
        let d = self.v.show_contact(&by_id(id)).await.expect("show");
        serde_json::to_value(d.verification_status)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn advance_days(&self, days: i64) {
        self.clock.advance(Duration::days(days));
    }

    pub fn bin(&self) -> Bin {
        Bin::new(&self.db)
            .with_env("CONTACT_VERIFIER__VERIFICATION__SECRET", SECRET)
            .with_env("CONTACT_VERIFIER__VERIFICATION__LINK_BASE_URL", LINK_BASE)
            .with_env("CONTACT_VERIFIER__SMTP__HOST", "127.0.0.1")
            .with_env(
                "CONTACT_VERIFIER__SMTP__PORT",
                &self.sink.port().to_string(),
            )
            .with_env("CONTACT_VERIFIER__SMTP__TLS", "none")
            .with_env("CONTACT_VERIFIER__SMTP__TIMEOUT_SECS", "5")
    }

    pub async fn done(self) {
        self.v.store.close().await;
        self.sink.stop().await;
        self.db.cleanup().await;
    }
}

pub async fn verifier(settings: &Settings, clock: Clock) -> Verifier {
    let store = Store::connect(&settings.database).await.expect("connect");
    store.migrate().await.expect("migrate");
    Verifier::new(store, Arc::new(settings.clone()), clock)
        .with_mail()
        .expect("mail setup")
}

pub fn by_id(id: &str) -> ContactSelector {
    ContactSelector::from_parts(Some(id), None).unwrap()
}

pub fn by_email(email: &str) -> ContactSelector {
    ContactSelector::from_parts(None, Some(email)).unwrap()
}

/// The message with soft line breaks of quoted-printable undone.
pub fn body(m: &ReceivedMail) -> String {
    m.data.replace("=\r\n", "").replace("=3D", "=")
}

/// The confirmation token in a message's link.
pub fn token_of(m: &ReceivedMail) -> String {
    let text = body(m);
    let marker = format!("{LINK_BASE}/");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no link in {text}"))
        + marker.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 64, "token {token:?} in {text}");
    token
}

pub fn subject_of(m: &ReceivedMail) -> String {
    m.data
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_else(|| panic!("no subject in {}", m.data))
        .to_string()
}

pub fn header<'a>(m: &'a ReceivedMail, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    m.data
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
}
