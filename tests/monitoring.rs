//! The operator's monitoring surface (CONTRACT section 10) on a real daemon
//! with a real SMTP sink, on SQLite and Postgres: `/metrics` scraped and
//! parsed as Prometheus text, `stats` by CLI and HTTP with known counts,
//! `/healthz` in normal operation and during a database outage, and
//! `sweep_failed` in the logs when a sweep fails on the database.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use common::daemon::{daemon_bin, free_port, link_path, Daemon};
use common::smtp::{Fault, SmtpSink, TlsMode};
use common::{Bin, DbOutage, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// One scrape: samples by series (`name{labels}`), and family types.
struct Scrape {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
    text: String,
}

impl Scrape {
    /// Parses the Prometheus text format (0.0.4), strictly enough to catch
    /// a malformed line.
    fn parse(text: &str) -> Scrape {
        let mut samples = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                types.insert(name.to_string(), kind.to_string());
            } else if line.starts_with("# HELP ") {
                continue;
            } else {
                assert!(!line.starts_with('#'), "unexpected comment: {line}");
                let (series, value) = line.rsplit_once(' ').expect("series value");
                let value: f64 = match value {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
                };
                assert!(
                    series.starts_with("contact_verifier_"),
                    "unprefixed series {series}"
                );
                assert!(
                    samples.insert(series.to_string(), value).is_none(),
                    "duplicate {series}"
                );
            }
        }
        Scrape {
            samples,
            types,
            text: text.to_string(),
        }
    }

    /// The value of `contact_verifier_<series>`, if present.
    fn get(&self, series: &str) -> Option<f64> {
        self.samples
            .get(&format!("contact_verifier_{series}"))
            .copied()
    }

    fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{}", self.text))
    }
}

async fn scrape(d: &Daemon) -> Scrape {
    let r = d.http.get(d.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    Scrape::parse(&r.text().await.unwrap())
}

/// Scrapes until `ok` holds.
async fn scrape_until(d: &Daemon, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = scrape(d).await;
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "never: {what}\n{}\nlog:\n{}",
            s.text,
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn call(d: &Daemon, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = d.api(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, v)
}

async fn add(d: &Daemon, id: &str, email: &str, domains: &[&str]) {
    let (s, v) = call(
        d,
        Method::POST,
        "/v1/contacts",
        Some(json!({"ExternalId": id, "ContactEmail": email, "Domains": domains})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn healthz(d: &Daemon) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let r = d.http.get(d.url("/healthz")).send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    (status, body, started.elapsed())
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Every family of CONTRACT section 10, with its type.
const FAMILIES: [(&str, &str); 14] = [
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
];

both_backends!(
    metrics_follow_sends_sweeps_confirmations_and_hooks,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let bin = daemon_bin(&db, &sink, port)
            .with_env("CONTACT_VERIFIER__HOOKS__COMMAND", "cat >/dev/null");
        let d = Daemon::start(&bin, port).await;

        // No token needed; nothing sent yet: the SMTP state is unknown and
        // smtp_up absent rather than guessed.
        let first = scrape(&d).await;
        assert_eq!(first.get("smtp_up"), None, "{}", first.text);
        assert_eq!(first.value("database_up"), 1.0);
        assert_eq!(first.value("contacts{status=\"Pending\"}"), 0.0);
        assert_eq!(first.value("emails_sent_total{kind=\"verification\"}"), 0.0);
        let (s, h, _) = healthz(&d).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            h,
            json!({"status": "ok", "database": "ok", "smtp": "unknown"})
        );

        add(&d, "DNA-1", "a@example.com", &["a.com"]).await;
        add(&d, "DNA-2", "b@example.com", &["b.com"]).await;
        let mails = sink.wait_for(2, WAIT).await;
        let to_a = mails
            .iter()
            .find(|m| m.to == ["a@example.com"])
            .expect("a mail to a@");
        // Confirmed, already, invalid.
        let link = link_path(to_a);
        let r = d.http.post(d.url(&link)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = d.http.post(d.url(&link)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let forged = format!("/verify/{}", "A".repeat(64));
        let r = d.http.post(d.url(&forged)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        // A resend is counted under its own kind.
        let (s, v) = call(
            &d,
            Method::POST,
            "/v1/contacts/resend-verification",
            Some(json!({"ExternalId": "DNA-2"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        sink.wait_for(3, WAIT).await;

        // The gauges by state follow the next sweep; the validation's event
        // reaches the hook.
        let m = scrape_until(&d, "counts after the confirmation", |s| {
            s.get("contacts{status=\"Validated\"}") == Some(1.0)
                && s.get("contacts{status=\"Pending\"}") == Some(1.0)
                && s.get("hook_deliveries_total{outcome=\"delivered\"}") >= Some(1.0)
                && s.get("events_pending") == Some(0.0)
        })
        .await;
        for (name, kind) in FAMILIES {
            assert_eq!(
                m.types
                    .get(&format!("contact_verifier_{name}"))
                    .map(String::as_str),
                Some(kind),
                "{name}\n{}",
                m.text
            );
        }
        assert_eq!(m.value("emails_sent_total{kind=\"verification\"}"), 2.0);
        assert_eq!(m.value("emails_sent_total{kind=\"resend\"}"), 1.0);
        assert_eq!(m.value("emails_sent_total{kind=\"reminder\"}"), 0.0);
        assert_eq!(
            m.value("emails_failed_total{kind=\"verification\",permanent=\"false\"}"),
            0.0
        );
        assert_eq!(m.value("confirmations_total{outcome=\"confirmed\"}"), 1.0);
        assert_eq!(m.value("confirmations_total{outcome=\"already\"}"), 1.0);
        assert_eq!(m.value("confirmations_total{outcome=\"invalid\"}"), 1.0);
        assert_eq!(m.value("confirmations_total{outcome=\"expired\"}"), 0.0);
        assert_eq!(m.value("contacts{status=\"NotValidated\"}"), 0.0);
        assert_eq!(m.value("contacts{status=\"Expired\"}"), 0.0);
        assert_eq!(m.value("domains_waiting"), 1.0, "b.com waits");
        assert_eq!(m.value("domains_suspended"), 0.0);
        assert_eq!(m.value("addresses_bounced"), 0.0);
        assert_eq!(m.value("smtp_up"), 1.0);
        assert_eq!(m.value("database_up"), 1.0);
        let sweeps = m.value("sweeps_total{outcome=\"ok\"}");
        assert!(sweeps >= 1.0);
        assert_eq!(m.value("sweeps_total{outcome=\"failed\"}"), 0.0);
        // A sweep can finish between the two lines being encoded.
        let counted = m.value("sweep_duration_seconds_count");
        assert!((counted - sweeps).abs() <= 1.0, "{counted} vs {sweeps}");
        assert_eq!(
            m.value("sweep_duration_seconds_bucket{le=\"+Inf\"}"),
            counted
        );
        let last = m.value("last_sweep_success_timestamp_seconds");
        let now = Utc::now().timestamp() as f64;
        assert!((now - 30.0..=now + 1.0).contains(&last), "{last} vs {now}");
        let (_, h, _) = healthz(&d).await;
        assert_eq!(h["smtp"], "ok");

        // The relay says "try later": a transient failure, SMTP failing,
        // still 200.
        sink.set_fault(Fault::Transient);
        add(&d, "DNA-3", "c@example.com", &["c.com"]).await;
        let m = scrape_until(&d, "a transient failure", |s| {
            s.get("emails_failed_total{kind=\"verification\",permanent=\"false\"}") >= Some(1.0)
        })
        .await;
        assert_eq!(m.value("smtp_up"), 0.0);
        let (s, h, _) = healthz(&d).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            h,
            json!({"status": "ok", "database": "ok", "smtp": "failing"})
        );

        // A permanent refusal is the relay answering: SMTP is up.
        sink.set_fault(Fault::Permanent);
        add(&d, "DNA-4", "d@example.com", &["d.com"]).await;
        let m = scrape_until(&d, "a permanent failure", |s| {
            s.get("emails_failed_total{kind=\"verification\",permanent=\"true\"}") >= Some(1.0)
        })
        .await;
        assert_eq!(m.value("smtp_up"), 1.0);
        assert_eq!(healthz(&d).await.1["smtp"], "ok");
        sink.set_fault(Fault::None);

        // An expired link: a Pending address whose key runs out in seconds
        // is reminded (day 55) by the daemon, then its link is posted late.
        let issued = Utc::now() - chrono::Duration::days(60) + chrono::Duration::seconds(10);
        let line = json!({"external_id": "DNA-5", "email": "e@example.com",
            "domains": ["e.com"], "status": "Pending",
            "key_issued_at": rfc3339(issued), "last_notification_at": rfc3339(issued)});
        let report = bin
            .run_with_stdin(
                &["contact", "import", "-"],
                Some(format!("{line}\n").as_bytes()),
            )
            .ok();
        assert_eq!(report["imported"], 1, "{report}");
        // Other addresses' retries may arrive first: wait for e@'s own.
        let waited = std::time::Instant::now();
        let reminder = loop {
            if let Some(m) = sink
                .messages()
                .into_iter()
                .rev()
                .find(|m| m.to == ["e@example.com"])
            {
                break m;
            }
            assert!(waited.elapsed() < WAIT, "no reminder to e@ within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let wait = (issued + chrono::Duration::days(60) - Utc::now())
            .to_std()
            .unwrap_or_default();
        tokio::time::sleep(wait + Duration::from_secs(1)).await;
        let r = d
            .http
            .post(d.url(&link_path(&reminder)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::GONE);
        let m = scrape(&d).await;
        assert_eq!(m.value("confirmations_total{outcome=\"expired\"}"), 1.0);
        assert!(m.value("emails_sent_total{kind=\"reminder\"}") >= 1.0);
        drop(d);
        sink.stop().await;
        db.cleanup().await;
    }
);

/// Import lines with known states: two NotValidated, three Pending contacts
/// on two addresses (one shared), one Validated, one Expired.
fn known_contacts(now: chrono::DateTime<Utc>) -> (String, String) {
    let days = |n: i64| rfc3339(now - chrono::Duration::days(n));
    let oldest = days(20);
    let lines = [
        json!({"external_id": "DNA-1", "email": "n1@example.com", "domains": ["n1.com"]}),
        json!({"external_id": "DNA-2", "email": "n2@example.com", "domains": ["n2.com"]}),
        // Its deadline has passed: the first real sweep suspends p1.com.
        json!({"external_id": "DNA-3", "email": "p1@example.com", "domains": ["p1.com"],
            "status": "Pending", "key_issued_at": oldest, "last_notification_at": days(1),
            "suspension_date": days(1)}),
        json!({"external_id": "DNA-4", "email": "p2@example.com", "domains": ["p2.com"],
            "status": "Pending", "key_issued_at": days(5), "last_notification_at": days(5)}),
        json!({"external_id": "DNA-5", "email": "P2@example.com", "domains": ["p2b.com"],
            "status": "Pending", "key_issued_at": days(5), "last_notification_at": days(5)}),
        json!({"external_id": "DNA-6", "email": "v@example.com", "domains": ["v.com"],
            "status": "Validated"}),
        json!({"external_id": "DNA-7", "email": "x@example.com", "domains": ["x.com"],
            "status": "Expired", "key_issued_at": days(70), "last_notification_at": days(10)}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    (text, oldest)
}

fn pending_events(bin: &Bin) -> usize {
    let page = bin
        .run(&["events", "list", "--pending", "--max-items", "1000"])
        .ok();
    page["Events"].as_array().unwrap().len()
}

both_backends!(stats_by_cli_and_http, |db: TestDb| async move {
    let sink = SmtpSink::start(TlsMode::None).await;
    let port = free_port();
    // A hook that refuses every event keeps them pending.
    let configured =
        || daemon_bin(&db, &sink, port).with_env("CONTACT_VERIFIER__HOOKS__COMMAND", "exit 3");
    let (bin, cli) = (configured(), configured());
    let (lines, oldest) = known_contacts(Utc::now());
    let report = cli
        .run_with_stdin(&["contact", "import", "-"], Some(lines.as_bytes()))
        .ok();
    assert_eq!(report["rejected"], json!([]), "{report}");

    let events = pending_events(&cli);
    let before = cli.run(&["stats"]).ok();
    assert_eq!(
        before,
        json!({"Contacts": {"NotValidated": 2, "Pending": 3, "Validated": 1, "Expired": 1},
            "Bounced": 0, "DomainsWaiting": 6, "DomainsSuspended": 0,
            "OldestPendingSince": oldest, "LastSweep": null, "EventsPending": events})
    );
    let keys: Vec<&String> = before.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "Contacts",
            "Bounced",
            "DomainsWaiting",
            "DomainsSuspended",
            "OldestPendingSince",
            "LastSweep",
            "EventsPending"
        ]
    );
    // A dry run leaves no record.
    cli.run(&["sweep", "--dry-run"]).ok();
    assert_eq!(cli.run(&["stats"]).ok()["LastSweep"], Value::Null);

    let summary = cli.run(&["sweep"]).ok();
    assert_eq!(summary["initial_sent"], 2, "{summary}");
    assert_eq!(summary["domains_suspended"], 1, "{summary}");
    let after = cli.run(&["stats"]).ok();
    let events = pending_events(&cli);
    assert!(events >= 1, "the suspension's event waits for the hook");
    assert_eq!(
        after["Contacts"],
        json!({"NotValidated": 0, "Pending": 5, "Validated": 1, "Expired": 1})
    );
    assert_eq!(after["DomainsWaiting"], 6, "{after}");
    assert_eq!(after["DomainsSuspended"], 1, "{after}");
    assert_eq!(after["OldestPendingSince"], oldest.as_str());
    assert_eq!(after["EventsPending"], events);
    assert_eq!(after["LastSweep"]["Summary"], summary, "{after}");
    let finished =
        chrono::DateTime::parse_from_rfc3339(after["LastSweep"]["FinishedAt"].as_str().unwrap())
            .unwrap();
    assert!((Utc::now() - finished.with_timezone(&Utc)).num_seconds() < 30);

    // Over HTTP, behind the token; the daemon's gauges agree.
    let d = Daemon::start(&bin, port).await;
    let r = d.http.get(d.url("/v1/stats")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let deadline = Instant::now() + WAIT;
    let http = loop {
        let (s, v) = call(&d, Method::GET, "/v1/stats", None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["LastSweep"]["FinishedAt"] != after["LastSweep"]["FinishedAt"] {
            break v;
        }
        assert!(Instant::now() < deadline, "the daemon never swept");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for key in [
        "Contacts",
        "Bounced",
        "DomainsWaiting",
        "DomainsSuspended",
        "OldestPendingSince",
    ] {
        assert_eq!(http[key], after[key], "{key}: {http}");
    }
    let summary_keys: BTreeSet<&String> = http["LastSweep"]["Summary"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        summary_keys,
        summary.as_object().unwrap().keys().collect::<BTreeSet<_>>()
    );
    let m = scrape_until(&d, "the gauges of the last sweep", |s| {
        s.get("sweeps_total{outcome=\"ok\"}") >= Some(1.0)
    })
    .await;
    assert_eq!(m.value("contacts{status=\"Pending\"}"), 5.0);
    assert_eq!(m.value("contacts{status=\"Validated\"}"), 1.0);
    assert_eq!(m.value("contacts{status=\"Expired\"}"), 1.0);
    assert_eq!(m.value("domains_waiting"), 6.0);
    assert_eq!(m.value("domains_suspended"), 1.0);
    assert_eq!(m.value("events_pending"), pending_events(&cli) as f64);
    // The one-shot sweep's attempt failed; the daemon's retry comes 10 s later.
    scrape_until(&d, "a failed hook delivery", |s| {
        s.get("hook_deliveries_total{outcome=\"failed\"}") >= Some(1.0)
    })
    .await;
    drop(d);

    // `http.metrics = false`: no /metrics; /healthz stays.
    let port = free_port();
    let off = daemon_bin(&db, &sink, port).with_env("CONTACT_VERIFIER__HTTP__METRICS", "false");
    let d = Daemon::start(&off, port).await;
    let r = d.http.get(d.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(healthz(&d).await.0, StatusCode::OK);
    drop(d);
    sink.stop().await;
    db.cleanup().await;
});

both_backends!(
    healthz_answers_503_fast_during_a_database_outage,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        // The pool would wait 10 s; the probe answers within ~2 s.
        let bin = daemon_bin(&db, &sink, port)
            .with_env("CONTACT_VERIFIER__DATABASE__ACQUIRE_TIMEOUT_SECS", "10");
        let d = Daemon::start(&bin, port).await;
        add(&d, "DNA-1", "a@example.com", &["a.com"]).await;
        sink.wait_for(1, WAIT).await;
        let deadline = Instant::now() + WAIT;
        while healthz(&d).await.1["smtp"] != "ok" {
            assert!(Instant::now() < deadline, "{}", d.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (s, h, took) = healthz(&d).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h, json!({"status": "ok", "database": "ok", "smtp": "ok"}));
        assert!(took < Duration::from_secs(1), "{took:?}");

        let outage = DbOutage::begin(&db).await;
        let deadline = Instant::now() + WAIT;
        let (h, took) = loop {
            let (s, h, took) = healthz(&d).await;
            assert!(took < Duration::from_millis(3500), "a probe took {took:?}");
            if s == StatusCode::SERVICE_UNAVAILABLE {
                break (h, took);
            }
            assert!(Instant::now() < deadline, "no 503 during the outage");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(took < Duration::from_millis(3500), "{took:?}");
        assert_eq!(h["status"], "unavailable", "{h}");
        assert_eq!(h["database"], "unavailable", "{h}");
        assert_eq!(h["smtp"], "ok", "{h}");
        let message = h["message"].as_str().unwrap();
        assert_eq!(
            message.matches("database unavailable").count(),
            1,
            "{message}"
        );
        // Scrapes answer too, and say the database is down.
        let started = Instant::now();
        let m = scrape(&d).await;
        assert!(started.elapsed() < Duration::from_millis(3500));
        assert_eq!(m.value("database_up"), 0.0);
        // Log-based alerting sees the outage: the next sweep fails.
        let failed = d
            .wait_event("sweep_failed", 1, Duration::from_secs(40))
            .await;
        assert_eq!(failed[0]["error_code"], "Unavailable", "{}", failed[0]);
        assert_eq!(failed[0]["level"], "ERROR", "{}", failed[0]);
        let m = scrape_until(&d, "a failed sweep counted", |s| {
            s.get("sweeps_total{outcome=\"failed\"}") >= Some(1.0)
        })
        .await;
        assert_eq!(m.value("database_up"), 0.0);

        outage.end().await;
        let deadline = Instant::now() + WAIT;
        loop {
            let (s, h, _) = healthz(&d).await;
            if s == StatusCode::OK {
                assert_eq!(h, json!({"status": "ok", "database": "ok", "smtp": "ok"}));
                break;
            }
            assert!(Instant::now() < deadline, "no recovery: {h}\n{}", d.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        scrape_until(&d, "database_up back to 1", |s| {
            s.get("database_up") == Some(1.0)
        })
        .await;
        // The probes cut short during the outage left no connection holding
        // a transaction: writes go through, and the next sweep mails.
        add(&d, "DNA-2", "b@example.com", &["b.com"]).await;
        let mails = sink.wait_for(2, WAIT).await;
        assert_eq!(mails[1].to, ["b@example.com"]);
        drop(d);
        sink.stop().await;
        db.cleanup().await;
    }
);

both_backends!(
    a_final_write_that_keeps_failing_is_a_failed_sweep,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        // Each failed write waits 10 s for SQLite's lock (Postgres refuses
        // at once), and up to 10 s more for the process's write connection
        // while its heartbeat waits for the lock: the retries still end with
        // their window.
        let bin = daemon_bin(&db, &sink, port)
            .with_env("CONTACT_VERIFIER__DATABASE__ACQUIRE_TIMEOUT_SECS", "10");
        let d = Daemon::start(&bin, port).await;
        // The relay answers the message 4 s after it arrives: the database
        // goes away while the email is in flight, so its outcome cannot be
        // written.
        sink.set_delay(Duration::from_secs(4));
        add(&d, "DNA-1", "a@example.com", &["a.com"]).await;
        let deadline = Instant::now() + WAIT;
        while sink.connection_count() == 0 {
            assert!(Instant::now() < deadline, "no send started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let outage = DbOutage::begin(&db).await;
        let started = Instant::now();
        d.wait_event("state_write_retry", 1, Duration::from_secs(40))
            .await;
        let failed = d
            .wait_event("sweep_failed", 1, Duration::from_secs(150))
            .await;
        let took = started.elapsed();
        assert_eq!(failed[0]["error_code"], "Unavailable", "{}", failed[0]);
        // The retries cover the documented window (63 s), plus the relay's
        // 4 s and at most one attempt's waits (20 s on SQLite), and no longer.
        assert!(
            took >= Duration::from_secs(63) && took < Duration::from_secs(100),
            "{took:?}"
        );
        outage.end().await;
        let m = scrape_until(&d, "the failed sweep counted", |s| {
            s.get("sweeps_total{outcome=\"failed\"}") >= Some(1.0)
        })
        .await;
        assert_eq!(m.value("emails_sent_total{kind=\"verification\"}"), 1.0);
        drop(d);
        sink.set_delay(Duration::ZERO);
        sink.stop().await;
        db.cleanup().await;
    }
);
