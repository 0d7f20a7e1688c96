//! CONTRACT section 7 (bounces) and section 10 (`bounce`, `POST /v1/bounces`)
//! end to end, on SQLite and Postgres: a relay that answers 550 for chosen
//! recipients (a real SMTP server on loopback), delivery status notifications
//! as mail servers send them, fed to the service, the CLI (stdin, as a pipe
//! transport does) and the HTTP API of a running daemon.

mod common;

use std::time::Duration as StdDuration;

use common::app::*;
use common::daemon::{daemon_bin, free_port, Daemon, API_TOKEN};
use common::smtp::{SmtpSink, TlsMode};
use common::{DbOutage, TestDb};
use contact_verifier::sweep::SweepSummary;
use contact_verifier::ErrorCode;
use serde_json::{json, Value};

const DEAD: &str = "dead@example.com";
const WAIT: StdDuration = StdDuration::from_secs(10);

/// A Postfix-shaped report (multipart/report with a text part, the status
/// part and the returned headers) for one recipient block.
fn report(final_rcpt: &str, original: Option<&str>, action: &str, status: &str) -> String {
    let original = original
        .map(|o| format!("Original-Recipient: rfc822;{o}\r\n"))
        .unwrap_or_default();
    format!(
        "Return-Path: <>\r\n\
         From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
         To: bounces@registrar.example\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"8C1E23A07.1790000000/mx.example.net\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --8C1E23A07.1790000000/mx.example.net\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not\r\n\
         be delivered to one or more recipients.\r\n\
         \r\n\
         --8C1E23A07.1790000000/mx.example.net\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.net\r\n\
         X-Postfix-Queue-ID: 8C1E23A07\r\n\
         Arrival-Date: Mon, 30 Nov 2026 10:00:00 +0000 (UTC)\r\n\
         \r\n\
         Final-Recipient: rfc822; {final_rcpt}\r\n\
         {original}\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Remote-MTA: dns; mail.example.com\r\n\
         Diagnostic-Code: smtp; 550 {status} <{final_rcpt}>: Recipient address\r\n\
         \x20   rejected: User unknown in virtual mailbox table\r\n\
         \r\n\
         --8C1E23A07.1790000000/mx.example.net\r\n\
         Content-Description: Undelivered Message Headers\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         From: Registrar <verify@registrar.example>\r\n\
         Subject: Action required: confirm your email address\r\n\
         \r\n\
         --8C1E23A07.1790000000/mx.example.net--\r\n"
    )
}

/// Emails a sweep had accepted, of any kind.
fn sent(s: &SweepSummary) -> u64 {
    s.initial_sent + s.reminders_sent + s.expiry_notices_sent
}

async fn details(app: &App, id: &str) -> Value {
    serde_json::to_value(app.v.show_contact(&by_id(id)).await.expect("show")).unwrap()
}

async fn bounce(app: &App, raw: &str) -> Value {
    serde_json::to_value(app.v.bounce_report(raw.as_bytes()).await.expect("bounce")).unwrap()
}

fn events_of(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["type"] == kind).count()
}

async fn events(app: &App) -> Vec<Value> {
    app.v
        .events(false, Some(1000), None)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.to_json())
        .collect()
}

async fn bounced_ids(app: &App) -> Vec<String> {
    let page = app
        .v
        .list_contacts(None, None, false, true, None, None)
        .await
        .expect("list --bounced");
    page.contacts
        .iter()
        .map(|c| c.external_id.to_string())
        .collect()
}

both_backends!(
    a_550_from_the_relay_marks_the_address_bounced_and_sweeps_stop_mailing_it,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.sink.refuse_recipient(DEAD);
        app.add("DNA-1", DEAD, &["a.com"]).await;
        app.add("DNA-2", "alive@example.com", &["b.com"]).await;
        let op = app
            .v
            .add_operation("a.com", "REGISTER_DOMAIN", None)
            .await
            .unwrap()
            .operation_id;

        let s = app.sweep().await;
        assert_eq!((sent(&s), s.failed), (1, 1), "{s:?}");
        let d = details(&app, "DNA-1").await;
        assert_eq!(d["VerificationStatus"], "NotValidated", "{d}");
        assert_eq!(d["Bounce"]["Code"], "5.1.1", "{d}");
        let detail = d["Bounce"]["Detail"].as_str().unwrap();
        assert!(detail.contains("User unknown"), "{d}");
        assert_eq!(d["Bounce"]["At"], "2026-06-01T09:00:00Z", "{d}");
        assert_eq!(d["NextNotificationDate"], Value::Null, "{d}");
        assert_eq!(details(&app, "DNA-2").await["Bounce"], Value::Null);
        let r = serde_json::to_value(app.v.reachability("a.com").await.unwrap()).unwrap();
        assert_eq!(r["status"], "PENDING", "{r}");

        // The waiting operation says why.
        let o = serde_json::to_value(app.v.operation(&op).await.unwrap()).unwrap();
        assert_eq!(o["StatusFlag"], "PENDING_CUSTOMER_ACTION", "{o}");
        let msg = o["Message"].as_str().unwrap_or_default();
        assert!(msg.contains("bounced") && msg.contains("5.1.1"), "{o}");
        let listed = app
            .v
            .operations(Some("a.com"), None, None, None)
            .await
            .unwrap();
        let listed = serde_json::to_value(&listed.operations[0]).unwrap();
        assert_eq!(listed["Message"], o["Message"]);

        let ev = events(&app).await;
        assert_eq!(events_of(&ev, "email_bounced"), 1, "{ev:?}");
        let e = ev.iter().find(|e| e["type"] == "email_bounced").unwrap();
        assert_eq!(e["contactEmail"], DEAD);
        assert_eq!(e["domains"], json!(["a.com"]));
        assert!(e["reason"].as_str().unwrap().contains("5.1.1"), "{e}");

        let stats = serde_json::to_value(app.v.stats().await.unwrap()).unwrap();
        assert_eq!(stats["Bounced"], 1, "{stats}");
        assert_eq!(bounced_ids(&app).await, ["DNA-1"]);

        // Days of sweeps later: still one attempt, no retries, no reminders.
        for _ in 0..5 {
            app.advance_days(4);
            let s = app.sweep().await;
            assert_eq!(s.failed, 0, "{s:?}");
        }
        let notes = app.v.notifications(&by_id("DNA-1")).await.unwrap();
        assert_eq!(notes.len(), 1, "one attempt, never retried: {notes:?}");
        app.done().await;
    }
);

both_backends!(
    a_resend_clears_the_bounce_and_mail_resumes,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.sink.refuse_recipient(DEAD);
        app.add("DNA-1", DEAD, &["a.com"]).await;
        app.sweep().await;
        assert_eq!(details(&app, "DNA-1").await["Bounce"]["Code"], "5.1.1");

        // Still refused: the resend fails and the bounce is replaced.
        app.advance_days(1);
        let e = app.v.resend(&by_id("DNA-1")).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
        let d = details(&app, "DNA-1").await;
        assert_eq!(d["Bounce"]["At"], "2026-06-02T09:00:00Z", "{d}");

        // The registrant fixed the mailbox: a resend gets through and clears it.
        app.sink.clear_refusals();
        app.v.resend(&by_id("DNA-1")).await.expect("resend");
        let d = details(&app, "DNA-1").await;
        assert_eq!(d["Bounce"], Value::Null, "{d}");
        assert_eq!(d["VerificationStatus"], "Pending", "{d}");
        assert_eq!(bounced_ids(&app).await, Vec::<String>::new());
        // Reminders resume.
        app.advance_days(3);
        let s = app.sweep().await;
        assert_eq!(sent(&s), 1, "{s:?}");
        app.done().await;
    }
);

both_backends!(
    a_delivery_status_notification_marks_permanent_failures_only,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.add("DNA-2", "b@example.com", &["b.com"]).await;
        app.add("DNA-3", "c@example.com", &["c.com"]).await;
        app.sweep().await;

        // Delayed, 4.x.x, an unknown address and prose change nothing.
        let delayed = report("a@example.com", None, "delayed", "4.4.1");
        assert_eq!(
            bounce(&app, &delayed).await,
            json!({"bounced": 0, "ignored": 1})
        );
        let soft = report("a@example.com", None, "failed", "4.2.2");
        assert_eq!(
            bounce(&app, &soft).await,
            json!({"bounced": 0, "ignored": 1})
        );
        let stranger = report("nobody@example.org", None, "failed", "5.1.1");
        assert_eq!(
            bounce(&app, &stranger).await,
            json!({"bounced": 0, "ignored": 1})
        );
        let prose = "From: someone@example.net\r\nSubject: Out of office\r\n\r\n\
                     I am away. 550 5.1.1 user unknown, delivery failed.\r\n";
        assert_eq!(
            bounce(&app, prose).await,
            json!({"bounced": 0, "ignored": 0})
        );
        assert_eq!(details(&app, "DNA-1").await["Bounce"], Value::Null);

        // Case and angle brackets are ignored.
        let hard = report("<A@Example.COM>", None, "failed", "5.1.1");
        assert_eq!(
            bounce(&app, &hard).await,
            json!({"bounced": 1, "ignored": 0})
        );
        let d = details(&app, "DNA-1").await;
        assert_eq!(d["Bounce"]["Code"], "5.1.1", "{d}");
        assert!(
            d["Bounce"]["Detail"]
                .as_str()
                .unwrap()
                .contains("User unknown"),
            "{d}"
        );
        // Forwarded mail: the forwarding target is the Final-Recipient, the
        // registrant's address the Original-Recipient.
        let fwd = report(
            "b.forwarded@example.net",
            Some("b@example.com"),
            "failed",
            "5.2.2",
        );
        assert_eq!(
            bounce(&app, &fwd).await,
            json!({"bounced": 1, "ignored": 0})
        );
        assert_eq!(details(&app, "DNA-2").await["Bounce"]["Code"], "5.2.2");
        // A later bounce replaces an earlier one, and counts as bounced.
        app.advance_days(1);
        let again = report("a@example.com", None, "failed", "5.7.1");
        assert_eq!(
            bounce(&app, &again).await,
            json!({"bounced": 1, "ignored": 0})
        );
        let d = details(&app, "DNA-1").await;
        assert_eq!(d["Bounce"]["Code"], "5.7.1", "{d}");
        assert_eq!(d["Bounce"]["At"], "2026-06-02T09:00:00Z", "{d}");

        // Not a mail message: InvalidInput, nothing changed.
        for bad in [&b""[..], b"   \r\n", b"\x00\x01\x02\xff\xfe binary"] {
            let e = app.v.bounce_report(bad).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput, "{e}");
        }
        assert_eq!(details(&app, "DNA-3").await["Bounce"], Value::Null);
        assert_eq!(bounced_ids(&app).await, ["DNA-1", "DNA-2"]);
        // Sweeps leave the bounced addresses alone, the other gets its reminder.
        app.advance_days(3);
        let s = app.sweep().await;
        assert_eq!(sent(&s), 1, "{s:?}");
        app.done().await;
    }
);

both_backends!(
    a_bounce_of_a_validated_address_sends_it_back_to_verification,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.import(&format!(
            "{}\n",
            json!({"external_id": "DNA-1", "email": "a@example.com", "domains": ["a.com"], "status": "Validated"})
        ))
        .await;
        let hard = report("a@example.com", None, "failed", "5.1.1");
        assert_eq!(
            bounce(&app, &hard).await,
            json!({"bounced": 1, "ignored": 0})
        );
        let d = details(&app, "DNA-1").await;
        assert_eq!(d["VerificationStatus"], "NotValidated", "{d}");
        assert_eq!(d["SuspensionDate"], "2026-06-16T09:00:00Z", "{d}");
        assert_eq!(d["Bounce"]["Code"], "5.1.1", "{d}");
        // Bounced: no email until the bounce is cleared.
        let s = app.sweep().await;
        assert_eq!(sent(&s), 0, "{s:?}");
        assert_eq!(app.sink.count(), 0);
        // A manual verification clears it (and validates).
        app.v
            .verify_manually(&by_id("DNA-1"), "registrant phoned in", Some("ops"))
            .await
            .unwrap();
        let d = details(&app, "DNA-1").await;
        assert_eq!(
            (d["VerificationStatus"].clone(), d["Bounce"].clone()),
            (json!("Validated"), Value::Null)
        );
        app.done().await;
    }
);

both_backends!(
    with_reverify_on_bounce_off_a_validated_address_only_records_the_bounce,
    |db: TestDb| async move {
        let app = App::with(db, TlsMode::None, |s| {
            s.suspension.reverify_on_bounce = false
        })
        .await;
        app.import(&format!(
            "{}\n",
            json!({"external_id": "DNA-1", "email": "a@example.com", "domains": ["a.com"], "status": "Validated"})
        ))
        .await;
        let hard = report("a@example.com", None, "failed", "5.1.1");
        assert_eq!(
            bounce(&app, &hard).await,
            json!({"bounced": 1, "ignored": 0})
        );
        let d = details(&app, "DNA-1").await;
        assert_eq!(d["VerificationStatus"], "Validated", "{d}");
        assert_eq!(d["SuspensionDate"], Value::Null, "{d}");
        assert_eq!(d["Bounce"]["Code"], "5.1.1", "{d}");
        app.done().await;
    }
);

both_backends!(a_confirmation_clears_the_bounce, |db: TestDb| async move {
    let app = App::new(db).await;
    app.add("DNA-1", "a@example.com", &["a.com"]).await;
    app.sweep().await;
    let mail = app.sink.wait_for(1, WAIT).await;
    // The mailbox bounced a later message, but the registrant still has
    // the first email and confirms from it.
    let hard = report("a@example.com", None, "failed", "5.2.1");
    bounce(&app, &hard).await;
    assert_eq!(details(&app, "DNA-1").await["Bounce"]["Code"], "5.2.1");
    app.v.confirm(&token_of(&mail[0])).await.expect("confirm");
    let d = details(&app, "DNA-1").await;
    assert_eq!(
        (d["VerificationStatus"].clone(), d["Bounce"].clone()),
        (json!("Validated"), Value::Null)
    );
    app.done().await;
});

both_backends!(
    bounce_command_reads_a_pipe_and_exits_75_while_the_database_is_away,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        let bin = app.bin();
        let hard = report("a@example.com", None, "failed", "5.1.1");

        let outage = DbOutage::begin(&app.db).await;
        let run = bin
            .with_env("CONTACT_VERIFIER__DATABASE__ACQUIRE_TIMEOUT_SECS", "2")
            .run_with_stdin(&["bounce"], Some(hard.as_bytes()));
        // EX_TEMPFAIL: the mail server keeps the report and retries.
        run.err(75, "Unavailable");
        outage.end().await;
        // A new process: the test's own pool lost its sessions to the outage.
        let bin = app.bin();
        let shown = bin.run(&["contact", "show", "--external-id", "DNA-1"]).ok();
        assert_eq!(
            shown["Bounce"],
            Value::Null,
            "nothing half-written: {shown}"
        );

        let run = bin.run_with_stdin(&["bounce"], Some(hard.as_bytes()));
        assert_eq!(run.ok(), json!({"bounced": 1, "ignored": 0}));
        let run = bin.run_with_stdin(&["bounce", "-"], Some(b"Subject: hi\r\n\r\nthanks\r\n"));
        assert_eq!(run.ok(), json!({"bounced": 0, "ignored": 0}));
        let run = bin.run_with_stdin(&["bounce"], Some(b""));
        let msg = run.err(2, "InvalidInput");
        assert!(msg.contains("empty"), "{msg}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report.eml");
        std::fs::write(&file, report("a@example.com", None, "failed", "5.7.1")).unwrap();
        let run = bin.run(&["bounce", file.to_str().unwrap()]);
        assert_eq!(run.ok(), json!({"bounced": 1, "ignored": 0}));
        let listed = bin.run(&["contact", "list", "--bounced"]).ok();
        assert_eq!(listed["Contacts"][0]["Bounce"]["Code"], "5.7.1", "{listed}");
        app.done().await;
    }
);

both_backends!(
    post_v1_bounces_takes_the_raw_report,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let bin = daemon_bin(&db, &sink, port)
            .with_env("CONTACT_VERIFIER__HTTP__MAX_BODY_BYTES", "65536");
        bin.add_contact("DNA-1", "a@example.com", &["a.com"]);
        let d = Daemon::start(&bin, port).await;
        let post = |body: Vec<u8>| {
            d.http
                .post(format!("{}/v1/bounces", d.base))
                .bearer_auth(API_TOKEN)
                .header("Content-Type", "message/rfc822")
                .body(body)
                .send()
        };
        let r = post(report("a@example.com", None, "failed", "5.1.1").into_bytes())
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"bounced": 1, "ignored": 0})
        );
        let r = post(Vec::new()).await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["__type"], "InvalidInput");
        let r = post(vec![b'a'; 70_000]).await.unwrap();
        assert_eq!(r.status(), 413);
        let r = d
            .http
            .post(format!("{}/v1/bounces", d.base))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let c: Value = d
            .http
            .get(format!("{}/v1/contacts?bounced=true", d.base))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(c["Contacts"][0]["ExternalId"], "DNA-1", "{c}");
        let metrics = d
            .http
            .get(format!("{}/metrics", d.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("contact_verifier_addresses_bounced"),
            "{metrics}"
        );
        drop(d);
        sink.stop().await;
        db.cleanup().await;
    }
);

// The real shapes (tests/fixtures/dsn): each report, piped to `bounce` as
// a mail server would, against contacts using the addresses it names.
both_backends!(
    reports_as_postfix_exim_gmail_and_exchange_send_them_mark_their_recipients,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let bin = app.bin();
        let cases: &[(&str, &[&str], Value)] = &[
            (
                "postfix-550.eml",
                &["alice.registrant@example.com"],
                json!({"bounced": 1, "ignored": 0}),
            ),
            (
                "exim-550.eml",
                &["bob.holder@example.org"],
                json!({"bounced": 1, "ignored": 0}),
            ),
            (
                "gmail-550.eml",
                &["carol.owner@example.net"],
                json!({"bounced": 1, "ignored": 0}),
            ),
            (
                "forwarded.eml",
                &["dave.contact@example.com"],
                json!({"bounced": 1, "ignored": 0}),
            ),
            (
                "postfix-delayed.eml",
                &["erin.admin@example.org"],
                json!({"bounced": 0, "ignored": 1}),
            ),
            (
                "temporary-4xx.eml",
                &["frank.billing@example.net"],
                json!({"bounced": 0, "ignored": 1}),
            ),
            (
                "multi-recipient.eml",
                &["grace.tech@example.com", "heidi.ops@example.net"],
                json!({"bounced": 1, "ignored": 1}),
            ),
            (
                "lf-only.eml",
                &["ivan.hostmaster@lapsed.example.org"],
                json!({"bounced": 1, "ignored": 0}),
            ),
            (
                "nested.eml",
                &["judy.registrant@example.com"],
                json!({"bounced": 1, "ignored": 0}),
            ),
            (
                "base64-status.eml",
                &["ken.domains@example.org"],
                json!({"bounced": 1, "ignored": 0}),
            ),
            ("autoreply.eml", &[], json!({"bounced": 0, "ignored": 0})),
            ("prose-only.eml", &[], json!({"bounced": 0, "ignored": 0})),
        ];
        let mut n = 0;
        for (_, addrs, _) in cases {
            for a in *addrs {
                n += 1;
                app.add(&format!("DNA-{n}"), a, &[&format!("d{n}.com")])
                    .await;
            }
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dsn");
        for (file, _, want) in cases {
            let raw = std::fs::read(format!("{dir}/{file}")).unwrap();
            let got = bin.run_with_stdin(&["bounce"], Some(&raw)).ok();
            assert_eq!(&got, want, "{file}");
        }
        let d = details(&app, "DNA-4").await;
        assert_eq!(d["ContactEmail"], "dave.contact@example.com");
        assert_eq!(d["Bounce"]["Code"], "5.2.1", "the Original-Recipient: {d}");
        assert_eq!(
            details(&app, "DNA-5").await["Bounce"],
            Value::Null,
            "delayed"
        );
        assert_eq!(
            details(&app, "DNA-8").await["Bounce"],
            Value::Null,
            "heidi: delayed"
        );
        let stats = serde_json::to_value(app.v.stats().await.unwrap()).unwrap();
        assert_eq!(stats["Bounced"], 8, "{stats}");
        app.done().await;
    }
);
