//! CONTRACT section 2 end to end: sweeps, reminders, expiry, resends and
//! confirmation, against a real SMTP server on loopback and a fresh SQLite
//! file or Postgres database, with a manual clock instead of sleeps.

mod common;

use std::time::Duration as StdDuration;

use chrono::Duration;
use common::app::*;
use common::smtp::{Fault, TlsMode};
use common::TestDb;
use contact_verifier::ErrorCode;

const WAIT: StdDuration = StdDuration::from_secs(10);

both_backends!(
    first_sweep_sends_one_email_per_address_listing_every_domain,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "Alice@Example.com", &["a.com", "a.net"])
            .await;
        app.add("DNA-2", "alice@example.COM", &["b.org"]).await;
        app.add("DNA-3", "carol@example.com", &["c.com"]).await;
        let s = app.sweep().await;
        assert_eq!(
            (s.initial_sent, s.reminders_sent, s.failed, s.expired),
            (2, 0, 0, 0),
            "{s:?}"
        );
        let mails = app.sink.wait_for(2, WAIT).await;
        assert_eq!(mails.len(), 2);
        let alice = mails
            .iter()
            .find(|m| m.to == vec!["Alice@Example.com".to_string()])
            .expect("mail to the address as first written");
        for d in ["a.com", "a.net", "b.org"] {
            assert!(body(alice).contains(d), "{d} missing");
        }
        assert!(!body(alice).contains("c.com"));
        assert_eq!(header(alice, "Auto-Submitted"), Some("auto-generated"));
        assert!(header(alice, "Message-ID").is_some_and(|h| h.starts_with('<')));
        assert!(header(alice, "Date").is_some());
        assert!(subject_of(alice).starts_with("Action required"));
        for id in ["DNA-1", "DNA-2", "DNA-3"] {
            assert_eq!(app.status(id).await, "Pending");
        }
        let d = app.v.show_contact(&by_id("DNA-2")).await.unwrap();
        assert_eq!(d.expiration_date, Some(t0() + Duration::days(60)));
        assert_eq!(d.last_notification_date, Some(t0()));
        let notes = app.v.notifications(&by_id("DNA-1")).await.unwrap();
        assert_eq!(notes.len(), 1);
        let n = serde_json::to_value(&notes[0]).unwrap();
        assert_eq!(n["operationType"], "SendContactMethodVerification");
        assert_eq!(n["status"], "Succeeded");
        assert_eq!(n["isTerminal"], true);
        assert_eq!(n["createdAt"], "2026-06-01T09:00:00Z");
        assert_eq!(n["errorCode"], serde_json::Value::Null);
        // Nothing more is due: a second sweep sends nothing.
        let again = app.sweep().await;
        assert_eq!(again.initial_sent + again.reminders_sent, 0, "{again:?}");
        assert_eq!(app.sink.count(), 2);
        app.done().await;
    }
);

both_backends!(
    the_emailed_link_confirms_every_contact_of_the_address_and_twice_is_fine,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.add("DNA-2", "A@example.com", &["b.com"]).await;
        app.sweep().await;
        let token = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        let check = app.v.check_link(&token).await.unwrap();
        assert_eq!(
            (check.verification.email.as_str(), check.already_confirmed),
            ("a@example.com", false)
        );
        assert_eq!(
            app.status("DNA-1").await,
            "Pending",
            "looking at the link changes nothing"
        );
        let first = app.v.confirm(&token).await.unwrap();
        assert!(!first.already_confirmed);
        assert_eq!(first.details.verification_status.as_str(), "Validated");
        let second = app.v.confirm(&token).await.unwrap();
        assert!(second.already_confirmed);
        assert_eq!(app.status("DNA-2").await, "Validated");
        assert_eq!(app.v.reachability("b.com").await.unwrap().status, "DONE");
        // A contact added later to the validated address is validated at once, with no email.
        app.add("DNA-3", "a@EXAMPLE.com", &["c.com"]).await;
        assert_eq!(app.status("DNA-3").await, "Validated");
        app.sweep().await;
        assert_eq!(app.sink.count(), 1);
        app.done().await;
    }
);

both_backends!(
    tampered_unknown_and_malformed_tokens_are_refused,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sweep().await;
        let token = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        let mut tampered: Vec<char> = token.chars().collect();
        tampered[40] = if tampered[40] == 'A' { 'B' } else { 'A' };
        let tampered: String = tampered.into_iter().collect();
        for bad in [tampered.as_str(), "short", &"A".repeat(64)] {
            let e = app.v.confirm(bad).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput, "{bad}: {e}");
        }
        assert_eq!(app.status("DNA-1").await, "Pending");
        app.done().await;
    }
);

both_backends!(
    reminders_follow_the_schedule_one_per_sweep_with_the_same_link,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sweep().await;
        let link = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        let mut expected = 1;
        for (advance, day) in [(3, 3), (4, 7), (7, 14), (16, 30), (15, 45), (10, 55)] {
            app.advance_days(advance);
            let s = app.sweep().await;
            assert_eq!(s.reminders_sent, 1, "day {day}: {s:?}");
            expected += 1;
            let mails = app.sink.wait_for(expected, WAIT).await;
            let reminder = mails.last().unwrap();
            assert!(
                subject_of(reminder).starts_with("Reminder"),
                "{}",
                subject_of(reminder)
            );
            assert_eq!(
                token_of(reminder),
                link,
                "day {day}: a reminder carries the same link"
            );
            assert_eq!(
                app.sweep().await.reminders_sent,
                0,
                "day {day}: one reminder per day"
            );
            let notes = app.v.notifications(&by_id("DNA-1")).await.unwrap();
            assert_eq!(notes[0].notice.operation_type(), "SendVerificationReminder");
            assert_eq!(notes[0].notice.reason(), format!("reminder:{day}"));
        }
        assert_eq!(app.sink.count(), 7);
        // The link in a reminder confirms (the key has not expired: day 55).
        app.v.confirm(&link).await.unwrap();
        app.done().await;
    }
);

both_backends!(
    an_old_import_gets_one_reminder_not_a_burst,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let issued = t0() - Duration::days(50);
        app.import(&format!(
        "{{\"external_id\":\"DNA-1\",\"email\":\"a@example.com\",\"domains\":[\"a.com\"],\"status\":\"Pending\",\"key_issued_at\":\"{}\"}}\n",
        issued.to_rfc3339()
    ))
    .await;
        let s = app.sweep().await;
        assert_eq!((s.reminders_sent, s.initial_sent), (1, 0), "{s:?}");
        assert_eq!(app.sweep().await.reminders_sent, 0);
        let notes = app.v.notifications(&by_id("DNA-1")).await.unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].notice.reason(), "reminder:45");
        // The imported key keeps its validity: 60 days from its issue date.
        let d = app.v.show_contact(&by_id("DNA-1")).await.unwrap();
        assert_eq!(d.expiration_date, Some(issued + Duration::days(60)));
        // And the reminder's link confirms.
        let token = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        app.v.confirm(&token).await.unwrap();
        app.done().await;
    }
);

both_backends!(
    key_expires_after_sixty_days_with_one_notice_and_dead_links,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sweep().await;
        let token = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        app.clock.advance(Duration::days(60) - Duration::seconds(1));
        let before = app.sweep().await;
        assert_eq!(
            (before.expired, before.reminders_sent),
            (0, 1),
            "{before:?}"
        );
        app.clock.advance(Duration::seconds(1));
        let s = app.sweep().await;
        assert_eq!(
            (s.expired, s.expiry_notices_sent, s.reminders_sent),
            (1, 1, 0),
            "{s:?}"
        );
        assert_eq!(app.status("DNA-1").await, "Expired");
        assert_eq!(app.v.reachability("a.com").await.unwrap().status, "EXPIRED");
        let mails = app.sink.wait_for(3, WAIT).await;
        let notice = mails.last().unwrap();
        assert!(
            subject_of(notice).contains("not confirmed"),
            "{}",
            subject_of(notice)
        );
        // CONTRACT section 9: the expiry notice carries the expired link,
        // whose page offers a new one.
        assert_eq!(
            token_of(notice),
            token,
            "the expiry notice links to the expired key's page"
        );
        assert!(body(notice).contains("Send me a new link"));
        let e = app.v.confirm(&token).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Expired, "{e}");
        assert!(e.message.contains("expired"), "{e}");
        // One notice only, however many sweeps follow.
        app.advance_days(30);
        let later = app.sweep().await;
        assert_eq!(later.expiry_notices_sent + later.expired, 0, "{later:?}");
        assert_eq!(app.sink.count(), 3);
        app.done().await;
    }
);

both_backends!(
    no_expiry_notice_when_notify_on_expiry_is_off,
    |db: TestDb| async move {
        let app = App::with(db, TlsMode::None, |s| {
            s.verification.notify_on_expiry = false
        })
        .await;
        app.import(&format!(
        "{{\"external_id\":\"DNA-1\",\"email\":\"a@example.com\",\"domains\":[\"a.com\"],\"status\":\"Pending\",\"key_issued_at\":\"{}\",\"last_notification_at\":\"{}\"}}\n",
        (t0() - Duration::days(61)).to_rfc3339(),
        (t0() - Duration::days(5)).to_rfc3339()
    ))
    .await;
        let s = app.sweep().await;
        assert_eq!((s.expired, s.expiry_notices_sent), (1, 0), "{s:?}");
        assert_eq!(app.sink.count(), 0);
        assert_eq!(app.status("DNA-1").await, "Expired");
        app.done().await;
    }
);

both_backends!(
    changing_the_email_voids_the_old_link_at_once,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "old@example.com", &["a.com"]).await;
        app.sweep().await;
        let old_token = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        app.add("DNA-1", "new@example.com", &[]).await;
        assert_eq!(app.status("DNA-1").await, "NotValidated");
        let e = app.v.confirm(&old_token).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInput);
        assert!(e.message.contains("email address was changed"), "{e}");
        let s = app.sweep().await;
        assert_eq!(s.initial_sent, 1);
        let mails = app.sink.wait_for(2, WAIT).await;
        assert_eq!(mails[1].to, vec!["new@example.com".to_string()]);
        app.v.confirm(&token_of(&mails[1])).await.unwrap();
        assert_eq!(app.status("DNA-1").await, "Validated");
        app.done().await;
    }
);

both_backends!(resend_follows_the_status_rules, |db: TestDb| async move {
    let app = App::new(db).await;
    app.add("DNA-V", "v@example.com", &["v.com"]).await;
    app.add("DNA-P", "p@example.com", &["p.com"]).await;
    app.sweep().await;
    let mails = app.sink.wait_for(2, WAIT).await;
    let v_mail = mails.iter().find(|m| m.to[0] == "v@example.com").unwrap();
    app.v.confirm(&token_of(v_mail)).await.unwrap();
    let p_token = token_of(mails.iter().find(|m| m.to[0] == "p@example.com").unwrap());

    // Validated: no email, null notification.
    let out = app.v.resend(&by_id("DNA-V")).await.unwrap();
    assert!(out.notification.is_none());
    assert_eq!(out.to_json()["Notification"], serde_json::Value::Null);
    assert_eq!(app.sink.count(), 2);

    // Pending: the same link now, the key's expiry unchanged.
    app.advance_days(10);
    let out = app.v.resend(&by_email("P@example.com")).await.unwrap();
    let note = out.notification.expect("a notification record");
    assert_eq!(
        note.notice.operation_type(),
        "SendContactMethodVerification"
    );
    assert_eq!(note.notice.reason(), "resend");
    assert_eq!(out.details.expiration_date, Some(t0() + Duration::days(60)));
    let mails = app.sink.wait_for(3, WAIT).await;
    assert_eq!(token_of(&mails[2]), p_token);

    // Expired: a fresh key and 60 days from now; the old link is void.
    app.advance_days(51);
    app.sweep().await; // expires and sends the notice
    assert_eq!(app.status("DNA-P").await, "Expired");
    let out = app.v.resend(&by_id("DNA-P")).await.unwrap();
    assert_eq!(out.details.verification_status.as_str(), "Pending");
    assert_eq!(
        out.details.expiration_date,
        Some(app.clock.now() + Duration::days(60))
    );
    let mails = app.sink.wait_for(5, WAIT).await;
    let fresh = token_of(&mails[4]);
    assert_ne!(fresh, p_token);
    let e = app.v.confirm(&p_token).await.unwrap_err();
    assert!(e.message.contains("newer"), "{e}");
    app.v.confirm(&fresh).await.unwrap();
    app.done().await;
});

both_backends!(
    more_than_five_resends_a_day_are_refused_without_email,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.add("DNA-2", "A@example.com", &["b.com"]).await;
        for _ in 0..5 {
            app.v.resend(&by_id("DNA-1")).await.unwrap();
        }
        assert_eq!(app.sink.wait_for(5, WAIT).await.len(), 5);
        let e = app.v.resend(&by_id("DNA-1")).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::OperationLimitExceeded);
        // The limit belongs to the address, whichever handle asks.
        let e = app.v.resend(&by_id("DNA-2")).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::OperationLimitExceeded);
        tokio::time::sleep(StdDuration::from_millis(300)).await;
        assert_eq!(app.sink.count(), 5);
        // A day later the window has moved on.
        app.advance_days(1);
        app.clock.advance(Duration::seconds(1));
        app.v.resend(&by_id("DNA-1")).await.unwrap();
        assert_eq!(app.sink.wait_for(6, WAIT).await.len(), 6);
        app.done().await;
    }
);

both_backends!(
    smtp_down_then_up_sends_exactly_one_email_after_recovery,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sink.set_fault(Fault::RefuseConnections);
        let s = app.sweep().await;
        assert_eq!((s.initial_sent, s.failed), (0, 1), "{s:?}");
        assert_eq!(
            app.status("DNA-1").await,
            "NotValidated",
            "a failed send keeps the state"
        );
        let notes = app.v.notifications(&by_id("DNA-1")).await.unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].status.as_str(), "Failed");
        assert!(notes[0].error_code.is_some());
        assert!(notes[0].error_details.is_some());
        // Still down, and within the backoff: not even tried.
        let s = app.sweep().await;
        assert_eq!(s.failed + s.initial_sent, 0, "{s:?}");
        app.sink.set_fault(Fault::None);
        let s = app.sweep().await;
        assert_eq!(
            s.initial_sent, 0,
            "backoff holds until retry_initial_secs passed: {s:?}"
        );
        app.clock.advance(Duration::seconds(60));
        let s = app.sweep().await;
        assert_eq!(s.initial_sent, 1, "{s:?}");
        app.sweep().await;
        tokio::time::sleep(StdDuration::from_millis(300)).await;
        assert_eq!(app.sink.count(), 1);
        assert_eq!(app.status("DNA-1").await, "Pending");
        app.done().await;
    }
);

both_backends!(
    failures_back_off_doubling_up_to_the_cap,
    |db: TestDb| async move {
        let app = App::with(db, TlsMode::None, |s| {
            s.smtp.retry_initial_secs = 60;
            s.smtp.retry_max_secs = 200;
        })
        .await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sink.set_fault(Fault::Transient);
        for wait in [60, 120, 200, 200] {
            let failed = app.sweep().await;
            assert_eq!((failed.failed, failed.deferred), (1, 1), "{failed:?}");
            app.clock.advance(Duration::seconds(wait - 1));
            let waiting = app.sweep().await;
            assert_eq!(waiting.failed, 0, "retried before {wait}s");
            assert_eq!(waiting.deferred, 1, "the summary shows the deferred retry");
            let d = app.v.show_contact(&by_id("DNA-1")).await.unwrap();
            assert_eq!(
                d.next_notification_date,
                Some(app.clock.now() + Duration::seconds(1)),
                "GetDetails says when"
            );
            app.clock.advance(Duration::seconds(1));
        }
        let notes = app.v.notifications(&by_id("DNA-1")).await.unwrap();
        assert_eq!(notes.len(), 4);
        assert!(
            notes.iter().all(|n| n.error_code.as_deref() == Some("451")),
            "{notes:?}"
        );
        app.done().await;
    }
);

both_backends!(
    permanent_refusal_is_recorded_with_its_code,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sink.set_fault(Fault::Permanent);
        assert_eq!(app.sweep().await.failed, 1);
        let notes = app.v.notifications(&by_id("DNA-1")).await.unwrap();
        assert_eq!(notes[0].error_code.as_deref(), Some("550"));
        // A resend while the relay refuses: an Unavailable error and nothing changed.
        let e = app.v.resend(&by_id("DNA-1")).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(e.message.contains("550"), "{e}");
        assert_eq!(app.status("DNA-1").await, "NotValidated");
        app.done().await;
    }
);

both_backends!(
    starttls_with_a_private_ca_delivers_and_unknown_certs_are_refused,
    |db: TestDb| async move {
        let app = App::with(db, TlsMode::StartTls, |s| {
            s.smtp.tls = contact_verifier::config::SmtpTls::Starttls;
            s.smtp.host = "localhost".into();
        })
        .await;
        // Without the private CA the certificate is not trusted: nothing is sent.
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        assert_eq!(app.sweep().await.failed, 1);
        assert_eq!(app.sink.count(), 0);
        // With it, the message goes out over STARTTLS.
        let mut settings = app.settings.clone();
        settings.smtp.ca_file = app.sink.ca_file().to_string_lossy().into_owned();
        let trusting = verifier(&settings, app.clock.clone()).await;
        app.clock.advance(Duration::seconds(60));
        let s = trusting
            .sweep(false, &contact_verifier::sweep::StopSignal::never())
            .await
            .unwrap();
        assert_eq!(s.initial_sent, 1, "{s:?}");
        assert_eq!(app.sink.wait_for(1, WAIT).await.len(), 1);
        trusting.store.close().await;
        app.done().await;
    }
);

both_backends!(
    implicit_tls_with_authentication_delivers,
    |db: TestDb| async move {
        let app = App::with(db, TlsMode::Implicit, |_| {}).await;
        app.sink.require_auth("relay-user", "relay-pass");
        let mut settings = app.settings.clone();
        settings.smtp.tls = contact_verifier::config::SmtpTls::Tls;
        settings.smtp.host = "localhost".into();
        settings.smtp.ca_file = app.sink.ca_file().to_string_lossy().into_owned();
        settings.smtp.username = "relay-user".into();
        settings.smtp.password = "relay-pass".into();
        let v = verifier(&settings, app.clock.clone()).await;
        v.add_contact("DNA-1", "a@example.com", &["a.com".into()], None)
            .await
            .unwrap();
        let out = v.resend(&by_id("DNA-1")).await.unwrap();
        assert!(out.notification.is_some());
        assert_eq!(app.sink.wait_for(1, WAIT).await.len(), 1);
        // Wrong password: refused, recorded, state unchanged.
        settings.smtp.password = "wrong".into();
        let bad = verifier(&settings, app.clock.clone()).await;
        bad.add_contact("DNA-2", "b@example.com", &["b.com".into()], None)
            .await
            .unwrap();
        assert_eq!(
            bad.resend(&by_id("DNA-2")).await.unwrap_err().code,
            ErrorCode::Unavailable
        );
        v.store.close().await;
        bad.store.close().await;
        app.done().await;
    }
);

both_backends!(
    two_concurrent_sweeps_never_mail_anyone_twice,
    |db: TestDb| async move {
        let app = App::new(db).await;
        for i in 0..30 {
            app.add(
                &format!("DNA-{i}"),
                &format!("r{i}@example.com"),
                &[&format!("d{i}.com")],
            )
            .await;
        }
        app.sink.set_delay(StdDuration::from_millis(20));
        let other = app.second_verifier().await;
        let never = contact_verifier::sweep::StopSignal::never();
        let (a, b) = tokio::join!(app.v.sweep(false, &never), other.sweep(false, &never));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.initial_sent + b.initial_sent, 30, "{a:?} {b:?}");
        assert_eq!(a.failed + b.failed, 0);
        let mails = app.sink.wait_for(30, WAIT).await;
        tokio::time::sleep(StdDuration::from_millis(300)).await;
        assert_eq!(app.sink.count(), 30);
        let mut recipients: Vec<String> = mails.iter().map(|m| m.to[0].clone()).collect();
        recipients.sort();
        recipients.dedup();
        assert_eq!(recipients.len(), 30, "every address exactly once");
        other.store.close().await;
        app.done().await;
    }
);

both_backends!(
    dry_run_counts_the_same_work_and_changes_nothing,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.import(&format!(
        "{{\"external_id\":\"DNA-2\",\"email\":\"b@example.com\",\"domains\":[\"b.com\"],\"status\":\"Pending\",\"key_issued_at\":\"{}\"}}\n\
         {{\"external_id\":\"DNA-3\",\"email\":\"c@example.com\",\"domains\":[\"c.com\"],\"status\":\"Pending\",\"key_issued_at\":\"{}\"}}\n",
        (t0() - Duration::days(8)).to_rfc3339(),
        (t0() - Duration::days(70)).to_rfc3339()
    ))
    .await;
        app.v
            .add_operation("c.com", "REGISTER_DOMAIN", None)
            .await
            .unwrap();
        let before: Vec<_> = futures_snapshot(&app).await;
        let dry = app
            .v
            .sweep(true, &contact_verifier::sweep::StopSignal::never())
            .await
            .unwrap();
        assert_eq!(app.sink.count(), 0);
        assert_eq!(
            futures_snapshot(&app).await,
            before,
            "dry run changed state"
        );
        let real = app.sweep().await;
        assert_eq!(
            (
                dry.expired,
                dry.initial_sent,
                dry.reminders_sent,
                dry.expiry_notices_sent,
                dry.operations_updated
            ),
            (
                real.expired,
                real.initial_sent,
                real.reminders_sent,
                real.expiry_notices_sent,
                real.operations_updated
            )
        );
        assert_eq!(
            (
                real.expired,
                real.initial_sent,
                real.reminders_sent,
                real.expiry_notices_sent,
                real.operations_updated
            ),
            (1, 1, 1, 1, 1)
        );
        app.done().await;
    }
);

/// Contacts' details and notification counts, to compare before and after.
async fn futures_snapshot(app: &App) -> Vec<String> {
    let mut out = Vec::new();
    for id in ["DNA-1", "DNA-2", "DNA-3"] {
        let d = app.v.show_contact(&by_id(id)).await.unwrap();
        let n = app.v.notifications(&by_id(id)).await.unwrap().len();
        out.push(format!("{} {n}", serde_json::to_string(&d).unwrap()));
    }
    out.push(
        app.v
            .operations(None, None, Some(1000), None)
            .await
            .unwrap()
            .to_json()
            .to_string(),
    );
    out
}

both_backends!(
    operations_follow_their_registrant_and_foreign_flags_stay,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.import(&format!(
        "{{\"external_id\":\"DNA-2\",\"email\":\"b@example.com\",\"domains\":[\"b.com\"],\"status\":\"Pending\",\"key_issued_at\":\"{}\",\"last_notification_at\":\"{}\"}}\n",
        (t0() - Duration::days(59)).to_rfc3339(),
        (t0() - Duration::days(1)).to_rfc3339()
    ))
    .await;
        let pending = app
            .v
            .add_operation("a.com", "REGISTER_DOMAIN", None)
            .await
            .unwrap();
        let foreign = app
            .v
            .add_operation(
                "a.com",
                "TRANSFER_IN_DOMAIN",
                Some("PENDING_PAYMENT_VERIFICATION"),
            )
            .await
            .unwrap();
        let doomed = app
            .v
            .add_operation("b.com", "UPDATE_DOMAIN_CONTACT", None)
            .await
            .unwrap();
        let s = app.sweep().await;
        assert_eq!(s.operations_updated, 0, "flags already right: {s:?}");
        let token = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        app.clock.advance(Duration::minutes(5));
        app.v.confirm(&token).await.unwrap();
        // The confirmation settles its registrant's operations at once.
        let done = app.v.operation(&pending.operation_id).await.unwrap();
        assert_eq!(done.status.as_str(), "SUCCESSFUL");
        assert_eq!(done.status_flag, None);
        assert_eq!(done.last_updated_date, app.clock.now());
        assert!(done.last_updated_date > pending.last_updated_date);
        app.advance_days(1);
        let s = app.sweep().await;
        assert_eq!((s.operations_updated, s.expired), (1, 1), "{s:?}");
        assert_eq!(app.v.operation(&pending.operation_id).await.unwrap(), done);
        let failed = app.v.operation(&doomed.operation_id).await.unwrap();
        assert_eq!(failed.status.as_str(), "FAILED");
        assert_eq!(failed.status_flag, None);
        assert!(
            failed.message.as_deref().unwrap_or("").contains("expired"),
            "{failed:?}"
        );
        assert_eq!(
            app.v.operation(&foreign.operation_id).await.unwrap(),
            foreign
        );
        // Nothing changes on the next sweep, so LastUpdatedDate stays.
        app.advance_days(1);
        assert_eq!(app.sweep().await.operations_updated, 0);
        assert_eq!(app.v.operation(&pending.operation_id).await.unwrap(), done);
        app.done().await;
    }
);

both_backends!(
    the_database_alone_holds_no_usable_token,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sweep().await;
        let token = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        let dump = common::dump_database(&app.db.url).await;
        assert!(!dump.contains(&token), "the token is stored");
        assert!(!dump.contains(&token[22..]), "the token's MAC is stored");
        // What the database does hold (the key id) does not make a link without the secret.
        let other = contact_verifier::domain::TokenSecret::new(
            b"some-other-secret-of-enough-bytes!!".to_vec(),
        )
        .unwrap();
        let key_hex = &dump[dump.find("key_id=").unwrap() + 7..][..32];
        let key = contact_verifier::domain::KeyId::from_hex(key_hex).unwrap();
        let address = contact_verifier::domain::ContactEmail::parse("a@example.com").unwrap();
        let forged = other.token_for(&key, &address.key());
        assert_eq!(
            app.v.confirm(forged.expose()).await.unwrap_err().code,
            ErrorCode::InvalidInput
        );
        app.done().await;
    }
);
