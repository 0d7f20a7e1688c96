//! CONTRACT sections 7, 8 and 10 end to end: suspension deadlines, release
//! on validation, manual verification, evidence, re-verification, restored
//! names, dormant addresses and the events list. Each rule runs on SQLite and
//! Postgres against a real SMTP server on loopback, with a manual clock.

mod common;

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use common::app::*;
use common::smtp::{ReceivedMail, TlsMode};
use common::TestDb;
use contact_verifier::domain::VerificationToken;
use contact_verifier::sweep::{StopSignal, SweepSummary};
use contact_verifier::ErrorCode;
use futures::TryStreamExt;
use serde_json::{json, Value};

const WAIT: StdDuration = StdDuration::from_secs(10);

/// `t0` plus whole days.
fn day(n: i64) -> DateTime<Utc> {
    t0() + Duration::days(n)
}

/// The contract's timestamp spelling.
fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `domain show NAME` as JSON.
async fn domain(app: &App, name: &str) -> Value {
    let d = app
        .v
        .domain_details(name)
        .await
        .unwrap_or_else(|e| panic!("domain show {name}: {e}"));
    serde_json::to_value(d).unwrap()
}

/// GetDetails as JSON.
async fn contact(app: &App, id: &str) -> Value {
    let d = app
        .v
        .show_contact(&by_id(id))
        .await
        .unwrap_or_else(|e| panic!("contact show {id}: {e}"));
    serde_json::to_value(d).unwrap()
}

/// `contact evidence`, newest first, as JSON.
async fn evidence(app: &App, id: &str) -> Vec<Value> {
    app.v
        .evidence(&by_id(id))
        .await
        .unwrap_or_else(|e| panic!("contact evidence {id}: {e}"))
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

/// GetOperationDetail as JSON.
async fn operation(app: &App, id: &str) -> Value {
    serde_json::to_value(app.v.operation(id).await.unwrap()).unwrap()
}

/// Records an operation and returns its id.
async fn add_op(app: &App, domain: &str, op_type: &str, flag: Option<&str>) -> String {
    app.v
        .add_operation(domain, op_type, flag)
        .await
        .unwrap_or_else(|e| panic!("operation add {domain} {op_type}: {e}"))
        .operation_id
}

/// Every event, oldest first, as `events list` prints them.
async fn all_events(app: &App) -> Vec<Value> {
    app.v
        .events(false, Some(1000), None)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.to_json())
        .collect()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

async fn dry_run(app: &App) -> SweepSummary {
    app.v
        .sweep(true, &StopSignal::never())
        .await
        .expect("dry run")
}

/// `evidence export` collected and parsed: the header row, then the records.
async fn export(app: &App, since: Option<&str>, until: Option<&str>) -> Vec<Vec<String>> {
    let stream = app
        .v
        .evidence_csv(since, until)
        .unwrap_or_else(|e| panic!("export {since:?} {until:?}: {e}"));
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect("export stream");
    let all: Vec<u8> = chunks.concat();
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(all.as_slice())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// The messages sent to one address, in order.
fn mails_to(app: &App, addr: &str) -> Vec<ReceivedMail> {
    app.sink
        .messages()
        .into_iter()
        .filter(|m| m.to == vec![addr.to_string()])
        .collect()
}

/// Asserts that a domain of `id` waits with this deadline, counted from now,
/// and is not suspended.
async fn assert_domain_waits_until(
    app: &App,
    name: &str,
    id: &str,
    deadline: DateTime<Utc>,
    step: &str,
) {
    let d = domain(app, name).await;
    let secs = (deadline - app.clock.now()).num_seconds().max(0);
    let days = (secs + 86_399) / 86_400;
    assert_eq!(d["SuspensionDate"], iso(deadline), "{step}: {d}");
    assert_eq!(d["DaysToSuspend"], days, "{step}: {d}");
    assert_eq!(d["Suspended"], false, "{step}: {d}");
    assert_eq!(d["RegistrantExternalId"], id, "{step}: {d}");
}

/// The same, for a contact's only waiting domain: its GetDetails shows the
/// deadline too.
async fn assert_waits_until(app: &App, name: &str, id: &str, deadline: DateTime<Utc>, step: &str) {
    assert_domain_waits_until(app, name, id, deadline, step).await;
    let c = contact(app, id).await;
    assert_eq!(c["SuspensionDate"], iso(deadline), "{step}: {c}");
}

fn import_line(id: &str, email: &str, domains: &[&str], extra: Value) -> String {
    let mut line = json!({"external_id": id, "email": email, "domains": domains});
    for (k, v) in extra.as_object().unwrap() {
        line[k] = v.clone();
    }
    format!("{line}\n")
}

/// A contact imported as Expired, its key issued 70 days before `t0`.
fn expired_line(id: &str, email: &str, domain: &str) -> String {
    import_line(
        id,
        email,
        &[domain],
        json!({"status": "Expired", "key_issued_at": iso(t0() - Duration::days(70))}),
    )
}

// 1. A domain given to an unvalidated contact waits 15 days.

both_backends!(
    suspension_date_is_15_days_after_a_domain_is_given_to_an_unvalidated_contact,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        let d = domain(&app, "a.com").await;
        assert_eq!(
            d,
            json!({
                "DomainName": "a.com",
                "RegistrantExternalId": "DNA-1",
                "ContactEmail": "a@example.com",
                "ReachabilityStatus": "PENDING",
                "SuspensionDate": "2026-06-16T09:00:00Z",
                "DaysToSuspend": 15,
                "Suspended": false,
                "SuspendedAt": null
            })
        );
        let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "DomainName",
                "RegistrantExternalId",
                "ContactEmail",
                "ReachabilityStatus",
                "SuspensionDate",
                "DaysToSuspend",
                "Suspended",
                "SuspendedAt"
            ]
        );
        let c = contact(&app, "DNA-1").await;
        assert_eq!(c["SuspensionDate"], "2026-06-16T09:00:00Z");
        assert_eq!(c["SuspendedDomains"], json!([]));
        assert_eq!(c["ValidatedAt"], Value::Null);

        // DaysToSuspend counts whole days left, rounded up.
        app.clock.advance(Duration::hours(36));
        assert_eq!(domain(&app, "a.com").await["DaysToSuspend"], 14);

        // A second domain given later waits from then; GetDetails shows the earliest.
        app.add("DNA-1", "a@example.com", &["b.com"]).await;
        let b = domain(&app, "b.com").await;
        assert_eq!(b["SuspensionDate"], "2026-06-17T21:00:00Z");
        assert_eq!(b["DaysToSuspend"], 15);
        assert_eq!(
            domain(&app, "a.com").await["SuspensionDate"],
            "2026-06-16T09:00:00Z"
        );
        assert_eq!(
            contact(&app, "DNA-1").await["SuspensionDate"],
            "2026-06-16T09:00:00Z"
        );
        app.done().await;
    }
);

both_backends!(
    a_domain_starts_waiting_when_it_leaves_a_validated_address,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-V", "v@example.com", &["v1.com", "v2.com"])
            .await;
        app.add("DNA-N", "n@example.com", &["n.com"]).await;
        app.sweep().await;
        let mails = app.sink.wait_for(2, WAIT).await;
        let v_mail = mails.iter().find(|m| m.to[0] == "v@example.com").unwrap();
        app.v.confirm(&token_of(v_mail)).await.unwrap();
        let v1 = domain(&app, "v1.com").await;
        assert_eq!(v1["SuspensionDate"], Value::Null);
        assert_eq!(v1["DaysToSuspend"], Value::Null);

        // Moved from a validated registrant to an unvalidated one: waits from now.
        app.advance_days(2);
        app.add("DNA-N", "n@example.com", &["v1.com"]).await;
        assert_domain_waits_until(&app, "v1.com", "DNA-N", day(17), "moved to DNA-N").await;
        // n.com keeps its own deadline, the earliest of DNA-N's.
        assert_eq!(contact(&app, "DNA-N").await["SuspensionDate"], iso(day(15)));

        // The validated registrant's email changes to a new address: waits from now.
        app.advance_days(1);
        app.add("DNA-V", "v-new@example.com", &[]).await;
        assert_eq!(app.status("DNA-V").await, "NotValidated");
        assert_waits_until(&app, "v2.com", "DNA-V", day(18), "email changed").await;

        // Moved to a validated address: it stops waiting.
        app.add("DNA-W", "v@example.com", &["n.com"]).await;
        assert_eq!(app.status("DNA-W").await, "Validated");
        let n = domain(&app, "n.com").await;
        assert_eq!(n["SuspensionDate"], Value::Null, "{n}");
        assert_eq!(n["ReachabilityStatus"], "DONE", "{n}");
        app.done().await;
    }
);

// 2. The deadline is not reset while the domain keeps waiting.

both_backends!(
    deadline_is_not_reset_by_email_change_domain_move_resend_or_new_key,
    |db: TestDb| async move {
        // Keys valid 5 days, so that an expiry and a new key fit before the deadline.
        let app = App::with(db, TlsMode::None, |s| {
            s.verification.key_validity_days = 5;
            s.verification.reminder_days = vec![3];
        })
        .await;
        let deadline = day(15);
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        assert_waits_until(&app, "a.com", "DNA-1", deadline, "given").await;
        app.sweep().await;
        let first = token_of(&app.sink.wait_for(1, WAIT).await[0]);

        // The contact's email changes to another unvalidated address.
        app.advance_days(1);
        app.add("DNA-1", "b@example.com", &["a.com"]).await;
        assert_eq!(app.status("DNA-1").await, "NotValidated");
        assert_waits_until(&app, "a.com", "DNA-1", deadline, "email changed").await;
        assert_eq!(
            app.v.confirm(&first).await.unwrap_err().code,
            ErrorCode::InvalidInput
        );

        // The domain moves to another unvalidated contact.
        app.advance_days(1);
        app.add("DNA-2", "c@example.com", &["a.com"]).await;
        assert_waits_until(&app, "a.com", "DNA-2", deadline, "moved").await;
        let one = contact(&app, "DNA-1").await;
        assert_eq!(one["Domains"], json!([]));
        assert_eq!(one["SuspensionDate"], Value::Null);
        let s = app.sweep().await;
        assert_eq!(s.initial_sent, 1, "{s:?}");
        assert_waits_until(&app, "a.com", "DNA-2", deadline, "first key").await;

        // A resend of the current key.
        app.advance_days(1);
        let out = app.v.resend(&by_id("DNA-2")).await.unwrap();
        assert_eq!(out.details.expiration_date, Some(day(7)));
        assert_waits_until(&app, "a.com", "DNA-2", deadline, "resend").await;

        // The key expires; a resend issues a new one.
        app.advance_days(4);
        let s = app.sweep().await;
        assert_eq!(s.expired, 1, "{s:?}");
        assert_eq!(app.status("DNA-2").await, "Expired");
        assert_waits_until(&app, "a.com", "DNA-2", deadline, "expired").await;
        app.advance_days(1);
        let out = app.v.resend(&by_id("DNA-2")).await.unwrap();
        assert_eq!(out.details.verification_status.as_str(), "Pending");
        assert_eq!(out.details.expiration_date, Some(day(13)));
        assert_waits_until(&app, "a.com", "DNA-2", deadline, "new key").await;

        // And the original deadline is the one that bites.
        app.clock.advance(Duration::days(7) - Duration::seconds(1));
        assert_eq!(app.sweep().await.domains_suspended, 0);
        app.clock.advance(Duration::seconds(1));
        assert_eq!(app.sweep().await.domains_suspended, 1);
        let d = domain(&app, "a.com").await;
        assert_eq!(d["Suspended"], true, "{d}");
        assert_eq!(d["SuspendedAt"], iso(deadline), "{d}");
        app.done().await;
    }
);

// 3. The first sweep at or after the deadline suspends.

both_backends!(
    first_sweep_at_the_deadline_suspends_and_the_current_link_still_confirms,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com", "b.com"]).await;
        app.sweep().await;
        let token = token_of(&app.sink.wait_for(1, WAIT).await[0]);

        app.clock.advance(Duration::days(15) - Duration::seconds(1));
        let s = app.sweep().await;
        assert_eq!(s.domains_suspended, 0, "{s:?}");
        let a = domain(&app, "a.com").await;
        assert_eq!(
            (&a["Suspended"], &a["DaysToSuspend"]),
            (&json!(false), &json!(1))
        );

        app.clock.advance(Duration::seconds(1));
        let s = app.sweep().await;
        assert_eq!(s.domains_suspended, 2, "{s:?}");
        for name in ["a.com", "b.com"] {
            let d = domain(&app, name).await;
            assert_eq!(d["Suspended"], true, "{d}");
            assert_eq!(d["SuspendedAt"], "2026-06-16T09:00:00Z", "{d}");
            assert_eq!(d["SuspensionDate"], "2026-06-16T09:00:00Z", "{d}");
            assert_eq!(d["DaysToSuspend"], 0, "{d}");
            assert_eq!(d["ReachabilityStatus"], "PENDING", "{d}");
        }
        let c = contact(&app, "DNA-1").await;
        assert_eq!(c["SuspendedDomains"], json!(["a.com", "b.com"]));
        // Suspension does not touch the verification.
        assert_eq!(c["VerificationStatus"], "Pending");
        assert_eq!(c["ExpirationDate"], iso(day(60)));

        // Suspended once: later sweeps count nothing and keep SuspendedAt.
        app.clock.advance(Duration::hours(1));
        assert_eq!(app.sweep().await.domains_suspended, 0);
        assert_eq!(
            domain(&app, "a.com").await["SuspendedAt"],
            "2026-06-16T09:00:00Z"
        );

        // The registrant can still confirm with the link it has.
        app.advance_days(2);
        let check = app.v.check_link(&token).await.unwrap();
        assert!(!check.already_confirmed);
        let done = app.v.confirm(&token).await.unwrap();
        assert_eq!(done.details.verification_status.as_str(), "Validated");
        assert_eq!(domain(&app, "a.com").await["Suspended"], false);
        app.done().await;
    }
);

both_backends!(
    a_dry_run_counts_due_suspensions_and_changes_nothing,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sweep().await;
        app.advance_days(15);
        let before = (domain(&app, "a.com").await, contact(&app, "DNA-1").await);
        let s = dry_run(&app).await;
        assert_eq!(s.domains_suspended, 1, "{s:?}");
        assert_eq!(
            (domain(&app, "a.com").await, contact(&app, "DNA-1").await),
            before
        );
        assert_eq!(before.0["Suspended"], false);
        assert!(all_events(&app).await.is_empty());
        assert_eq!(app.sink.count(), 1, "a dry run sends nothing");
        let s = app.sweep().await;
        assert_eq!(s.domains_suspended, 1, "{s:?}");
        assert_eq!(domain(&app, "a.com").await["Suspended"], true);
        assert_eq!(dry_run(&app).await.domains_suspended, 0);
        app.done().await;
    }
);

// 4. Confirming releases and settles in the same call.

both_backends!(
    confirming_the_link_releases_suspended_domains_and_settles_operations_at_once,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com", "b.com"]).await;
        app.add("DNA-2", "A@Example.com", &["c.com"]).await;
        let op_a = app
            .v
            .add_operation("a.com", "REGISTER_DOMAIN", None)
            .await
            .unwrap();
        assert_eq!(op_a.status.as_str(), "SUBMITTED");
        assert_eq!(
            op_a.status_flag.map(|f| f.as_str()),
            Some("PENDING_CUSTOMER_ACTION")
        );
        let op_a = op_a.operation_id;
        let op_c = add_op(&app, "c.com", "TRANSFER_IN_DOMAIN", None).await;
        let op_other = add_op(
            &app,
            "b.com",
            "UPDATE_NAMESERVER",
            Some("PENDING_SUPPORT_CASE"),
        )
        .await;
        app.sweep().await;
        let token = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        app.advance_days(15);
        assert_eq!(app.sweep().await.domains_suspended, 3);

        app.clock.advance(Duration::hours(1));
        let now = iso(app.clock.now());
        let done = app.v.confirm(&token).await.unwrap();
        let details = serde_json::to_value(&done.details).unwrap();
        assert_eq!(details["VerificationStatus"], "Validated");
        assert_eq!(details["ValidatedAt"], now);
        assert_eq!(details["SuspensionDate"], Value::Null);
        assert_eq!(details["SuspendedDomains"], json!([]));

        // No sweep ran: the confirmation itself released and settled.
        for name in ["a.com", "b.com", "c.com"] {
            let d = domain(&app, name).await;
            assert_eq!(d["Suspended"], false, "{d}");
            assert_eq!(d["SuspendedAt"], Value::Null, "{d}");
            assert_eq!(d["SuspensionDate"], Value::Null, "{d}");
            assert_eq!(d["DaysToSuspend"], Value::Null, "{d}");
            assert_eq!(d["ReachabilityStatus"], "DONE", "{d}");
        }
        let c2 = contact(&app, "DNA-2").await;
        assert_eq!(c2["ValidatedAt"], now);
        assert_eq!(c2["SuspendedDomains"], json!([]));
        for id in [&op_a, &op_c] {
            let op = operation(&app, id).await;
            assert_eq!(op["Status"], "SUCCESSFUL", "{op}");
            assert_eq!(op["StatusFlag"], Value::Null, "{op}");
            assert_eq!(op["LastUpdatedDate"], now, "{op}");
        }
        let other = operation(&app, &op_other).await;
        assert_eq!(other["Status"], "SUBMITTED", "{other}");
        assert_eq!(other["StatusFlag"], "PENDING_SUPPORT_CASE", "{other}");
        assert_eq!(other["LastUpdatedDate"], iso(t0()), "{other}");

        // The next sweep finds nothing left to do.
        let s = app.sweep().await;
        assert_eq!((s.operations_updated, s.domains_suspended), (0, 0), "{s:?}");
        app.done().await;
    }
);

// 5. Manual verification.

both_backends!(
    manual_verification_has_the_effects_of_a_link_and_records_who_and_why,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.add("DNA-2", "b@example.com", &["b.com"]).await;
        let op = add_op(&app, "a.com", "REGISTER_DOMAIN", None).await;
        app.sweep().await;
        app.sink.wait_for(2, WAIT).await;
        let token = token_of(&mails_to(&app, "a@example.com")[0]);
        app.advance_days(15);
        assert_eq!(app.sweep().await.domains_suspended, 2);

        app.clock.advance(Duration::hours(1));
        let now = iso(app.clock.now());
        let reason = "Called the registrant on the phone number on file; address confirmed";
        let out = app
            .v
            .verify_manually(
                &by_email("A@example.com"),
                &format!("  {reason}  "),
                Some("alice.ops"),
            )
            .await
            .unwrap();
        let out = serde_json::to_value(&out).unwrap();
        assert_eq!(out["VerificationStatus"], "Validated");
        assert_eq!(out["ValidatedAt"], now);
        assert_eq!(out["SuspensionDate"], Value::Null);
        assert_eq!(out["SuspendedDomains"], json!([]));
        let d = domain(&app, "a.com").await;
        assert_eq!(
            (&d["Suspended"], &d["SuspendedAt"], &d["SuspensionDate"]),
            (&json!(false), &Value::Null, &Value::Null),
            "{d}"
        );
        let op = operation(&app, &op).await;
        assert_eq!(
            (&op["Status"], &op["StatusFlag"]),
            (&json!("SUCCESSFUL"), &Value::Null),
            "{op}"
        );
        assert_eq!(op["LastUpdatedDate"], now);

        let ev = evidence(&app, "DNA-1").await;
        assert_eq!(
            ev,
            vec![json!({
                "ContactEmail": "a@example.com",
                "ExternalIds": ["DNA-1"],
                "Domains": ["a.com"],
                "ValidatedAt": now,
                "Method": "manual",
                "KeyId": null,
                "KeyIssuedAt": null,
                "ClientIp": null,
                "UserAgent": null,
                "Reason": reason,
                "By": "alice.ops"
            })]
        );
        let events = all_events(&app).await;
        let tail: Vec<&Value> = events.iter().rev().take(2).collect();
        let mut tail_types: Vec<&str> = tail.iter().map(|e| e["type"].as_str().unwrap()).collect();
        tail_types.sort();
        assert_eq!(tail_types, ["contact_validated", "domain_unsuspended"]);

        // The emailed link now answers "already confirmed"; no second record.
        assert!(app.v.confirm(&token).await.unwrap().already_confirmed);
        app.v
            .verify_manually(&by_id("DNA-1"), "again", None)
            .await
            .unwrap();
        assert_eq!(evidence(&app, "DNA-1").await.len(), 1);

        // A 500-character reason is accepted; `By` is optional.
        let long = "r".repeat(500);
        app.v
            .verify_manually(&by_id("DNA-2"), &long, None)
            .await
            .unwrap();
        let ev = evidence(&app, "DNA-2").await;
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0]["Reason"], long);
        assert_eq!(ev[0]["By"], Value::Null);
        assert_eq!(app.status("DNA-2").await, "Validated");
        app.done().await;
    }
);

both_backends!(
    manual_verification_refuses_a_missing_or_long_reason_and_an_unknown_contact,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        let op = add_op(&app, "a.com", "REGISTER_DOMAIN", None).await;
        app.sweep().await;
        app.advance_days(15);
        assert_eq!(app.sweep().await.domains_suspended, 1);
        let before = (
            contact(&app, "DNA-1").await,
            domain(&app, "a.com").await,
            operation(&app, &op).await,
            all_events(&app).await,
        );
        let long = "x".repeat(501);
        for reason in ["", "   ", long.as_str()] {
            let e = app
                .v
                .verify_manually(&by_id("DNA-1"), reason, Some("ops"))
                .await
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput, "{reason:?}: {e}");
        }
        for who in [by_id("DNA-404"), by_email("nobody@example.com")] {
            let e = app
                .v
                .verify_manually(&who, "called", Some("ops"))
                .await
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::NotFound, "{e}");
        }
        let after = (
            contact(&app, "DNA-1").await,
            domain(&app, "a.com").await,
            operation(&app, &op).await,
            all_events(&app).await,
        );
        assert_eq!(after, before);
        assert_eq!(before.0["VerificationStatus"], "Pending");
        assert_eq!(before.1["Suspended"], true);
        assert!(evidence(&app, "DNA-1").await.is_empty());
        app.done().await;
    }
);

// 6. Evidence.

both_backends!(
    evidence_is_one_record_per_validation_by_link_import_or_operator,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sweep().await;
        let token = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        let key_hex = VerificationToken::parse(&token).unwrap().key_id().to_hex();

        app.advance_days(1);
        assert!(!app.v.confirm(&token).await.unwrap().already_confirmed);
        assert!(app.v.confirm(&token).await.unwrap().already_confirmed);
        let link = json!({
            "ContactEmail": "a@example.com",
            "ExternalIds": ["DNA-1"],
            "Domains": ["a.com"],
            "ValidatedAt": "2026-06-02T09:00:00Z",
            "Method": "link",
            "KeyId": key_hex,
            "KeyIssuedAt": "2026-06-01T09:00:00Z",
            "ClientIp": null,
            "UserAgent": null,
            "Reason": null,
            "By": null
        });
        assert_eq!(evidence(&app, "DNA-1").await, vec![link.clone()]);

        app.advance_days(1);
        app.import(&import_line(
            "DNA-2",
            "b@example.com",
            &["b.com"],
            json!({"status": "Validated"}),
        ))
        .await;
        assert_eq!(
            evidence(&app, "DNA-2").await,
            vec![json!({
                "ContactEmail": "b@example.com",
                "ExternalIds": ["DNA-2"],
                "Domains": ["b.com"],
                "ValidatedAt": "2026-06-03T09:00:00Z",
                "Method": "import",
                "KeyId": null,
                "KeyIssuedAt": null,
                "ClientIp": null,
                "UserAgent": null,
                "Reason": null,
                "By": null
            })]
        );
        let b = contact(&app, "DNA-2").await;
        assert_eq!(b["VerificationStatus"], "Validated");
        assert_eq!(b["SuspensionDate"], Value::Null);

        // Sent back and verified again: a second record, listed first.
        app.advance_days(1);
        app.v
            .reverify(&by_id("DNA-1"), "mailbox reported gone")
            .await
            .unwrap();
        app.advance_days(1);
        app.v
            .verify_manually(&by_id("DNA-1"), "confirmed in person", Some("bob"))
            .await
            .unwrap();
        let ev = evidence(&app, "DNA-1").await;
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0]["Method"], "manual");
        assert_eq!(ev[0]["ValidatedAt"], "2026-06-05T09:00:00Z");
        assert_eq!(ev[0]["Reason"], "confirmed in person");
        assert_eq!(ev[0]["By"], "bob");
        assert_eq!(ev[1], link);
        assert_eq!(
            app.v.evidence(&by_id("DNA-404")).await.unwrap_err().code,
            ErrorCode::NotFound
        );
        app.done().await;
    }
);

both_backends!(
    evidence_export_is_csv_with_a_header_and_since_inclusive_until_exclusive,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com", "a.net"]).await;
        app.add("DNA-3", "c@example.com", &["c.com"]).await;
        app.sweep().await;
        app.sink.wait_for(2, WAIT).await;
        let token = token_of(&mails_to(&app, "a@example.com")[0]);
        let key_hex = VerificationToken::parse(&token).unwrap().key_id().to_hex();
        app.advance_days(1);
        app.v.confirm(&token).await.unwrap();
        app.advance_days(1);
        app.import(&import_line(
            "DNA-2",
            "b@example.com",
            &["b.com"],
            json!({"status": "Validated"}),
        ))
        .await;
        app.advance_days(2);
        app.v
            .verify_manually(&by_id("DNA-3"), "called, \"yes\"", Some("ops"))
            .await
            .unwrap();

        let header = [
            "ContactEmail",
            "ExternalIds",
            "Domains",
            "ValidatedAt",
            "Method",
            "KeyId",
            "KeyIssuedAt",
            "ClientIp",
            "UserAgent",
            "Reason",
            "By",
        ];
        let link_row = [
            "a@example.com",
            "DNA-1",
            "a.com a.net",
            "2026-06-02T09:00:00Z",
            "link",
            key_hex.as_str(),
            "2026-06-01T09:00:00Z",
            "",
            "",
            "",
            "",
        ];
        let import_row = [
            "b@example.com",
            "DNA-2",
            "b.com",
            "2026-06-03T09:00:00Z",
            "import",
            "",
            "",
            "",
            "",
            "",
            "",
        ];
        let manual_row = [
            "c@example.com",
            "DNA-3",
            "c.com",
            "2026-06-05T09:00:00Z",
            "manual",
            "",
            "",
            "",
            "",
            "called, \"yes\"",
            "ops",
        ];
        let all = export(&app, None, None).await;
        assert_eq!(
            all,
            vec![
                header.to_vec(),
                link_row.to_vec(),
                import_row.to_vec(),
                manual_row.to_vec()
            ]
        );

        // since <= ValidatedAt < until.
        let mid = export(
            &app,
            Some("2026-06-03T09:00:00Z"),
            Some("2026-06-05T09:00:00Z"),
        )
        .await;
        assert_eq!(mid, vec![header.to_vec(), import_row.to_vec()]);
        let later = export(&app, Some("2026-06-02T09:00:01Z"), None).await;
        assert_eq!(
            later,
            vec![header.to_vec(), import_row.to_vec(), manual_row.to_vec()]
        );
        let upto = export(&app, None, Some("2026-06-02T09:00:01Z")).await;
        assert_eq!(upto, vec![header.to_vec(), link_row.to_vec()]);
        let none = export(&app, None, Some("2026-06-02T09:00:00Z")).await;
        assert_eq!(none, vec![header.to_vec()]);

        for (since, until) in [
            (Some("yesterday"), None),
            (Some("2026-06-02"), None),
            (None, Some("2026-13-01T00:00:00Z")),
        ] {
            let e = app
                .v
                .evidence_csv(since, until)
                .err()
                .unwrap_or_else(|| panic!("{since:?} {until:?} accepted"));
            assert_eq!(e.code, ErrorCode::InvalidInput, "{e}");
        }
        app.done().await;
    }
);

// 7. Re-verification.

both_backends!(
    reverify_sends_a_validated_address_back_with_a_new_deadline_and_a_fresh_email,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com", "b.com"]).await;
        // Another contact using the same address: verification is the address's.
        app.add("DNA-2", "A@Example.com", &["c.com"]).await;
        app.sweep().await;
        let old = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        app.advance_days(1);
        app.v.confirm(&old).await.unwrap();

        app.advance_days(9);
        let out = app
            .v
            .reverify(
                &by_id("DNA-1"),
                "the registrant's mail provider reports the mailbox is gone",
            )
            .await
            .unwrap();
        let out = serde_json::to_value(&out).unwrap();
        assert_eq!(out["VerificationStatus"], "NotValidated");
        assert_eq!(out["ValidatedAt"], Value::Null);
        assert_eq!(out["ExpirationDate"], Value::Null);
        assert_eq!(out["SuspensionDate"], iso(day(25)));
        for name in ["a.com", "b.com"] {
            assert_waits_until(&app, name, "DNA-1", day(25), "reverified").await;
            assert_eq!(domain(&app, name).await["ReachabilityStatus"], "PENDING");
        }
        assert_waits_until(&app, "c.com", "DNA-2", day(25), "reverified, shared").await;
        assert_eq!(app.status("DNA-2").await, "NotValidated");
        assert_eq!(app.v.reachability("a.com").await.unwrap().status, "PENDING");

        // The old link no longer confirms.
        let e = app.v.confirm(&old).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInput, "{e}");
        assert_eq!(app.status("DNA-1").await, "NotValidated");

        // The next sweep mails a fresh key.
        let s = app.sweep().await;
        assert_eq!(s.initial_sent, 1, "{s:?}");
        let mails = app.sink.wait_for(2, WAIT).await;
        assert_eq!(mails[1].to, vec!["a@example.com".to_string()]);
        assert!(subject_of(&mails[1]).starts_with("Action required"));
        for name in ["a.com", "b.com", "c.com"] {
            assert!(body(&mails[1]).contains(name), "{name}");
        }
        let fresh = token_of(&mails[1]);
        assert_ne!(fresh, old);
        let c = contact(&app, "DNA-1").await;
        assert_eq!(c["VerificationStatus"], "Pending");
        assert_eq!(c["ExpirationDate"], iso(day(70)));

        // The new deadline is the one that bites, and validation releases it.
        app.clock.advance(Duration::days(15) - Duration::seconds(1));
        assert_eq!(app.sweep().await.domains_suspended, 0);
        app.clock.advance(Duration::seconds(1));
        assert_eq!(app.sweep().await.domains_suspended, 3);
        app.v.confirm(&fresh).await.unwrap();
        let d = domain(&app, "a.com").await;
        assert_eq!(
            (&d["Suspended"], &d["SuspensionDate"]),
            (&json!(false), &Value::Null)
        );
        assert_eq!(evidence(&app, "DNA-1").await.len(), 2);
        app.done().await;
    }
);

both_backends!(
    reverify_refuses_an_address_that_is_not_validated_and_changes_nothing,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-N", "n@example.com", &["n.com"]).await;
        app.add("DNA-P", "p@example.com", &["p.com"]).await;
        app.import(&expired_line("DNA-E", "e@example.com", "e.com"))
            .await;
        // Not yet mailed: NotValidated.
        let e = app
            .v
            .reverify(&by_id("DNA-N"), "bounced")
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInput, "{e}");
        assert_eq!(app.status("DNA-N").await, "NotValidated");
        app.sweep().await;
        app.sink.wait_for(2, WAIT).await;
        let token = token_of(&mails_to(&app, "p@example.com")[0]);
        app.advance_days(2);
        for id in ["DNA-P", "DNA-E"] {
            let before = (contact(&app, id).await, all_events(&app).await);
            let e = app.v.reverify(&by_id(id), "bounced").await.unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput, "{id}: {e}");
            assert_eq!(
                (contact(&app, id).await, all_events(&app).await),
                before,
                "{id}"
            );
        }
        assert_waits_until(&app, "p.com", "DNA-P", day(15), "after refusal").await;
        assert_eq!(app.status("DNA-E").await, "Expired");
        assert_eq!(app.sink.count(), 2);
        // DNA-P's link still works.
        app.v.confirm(&token).await.unwrap();
        // A Validated address needs a reason, and an unknown contact is NotFound.
        let e = app.v.reverify(&by_id("DNA-P"), "  ").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInput, "{e}");
        assert_eq!(app.status("DNA-P").await, "Validated");
        let e = app
            .v
            .reverify(&by_id("DNA-404"), "bounced")
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound, "{e}");
        app.done().await;
    }
);

// 8. Registrant operations on an Expired registrant restart its verification.

both_backends!(
    registrant_operations_on_an_expired_registrant_restart_verification,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let cases = [
            ("DNA-R", "r@example.com", "reg.com", "REGISTER_DOMAIN"),
            ("DNA-T", "t@example.com", "xfer.com", "TRANSFER_IN_DOMAIN"),
            ("DNA-O", "o@example.com", "owner.com", "CHANGE_DOMAIN_OWNER"),
            (
                "DNA-U",
                "u@example.com",
                "contact.com",
                "UPDATE_DOMAIN_CONTACT",
            ),
        ];
        let lines: String = cases
            .iter()
            .map(|(id, email, dom, _)| expired_line(id, email, dom))
            .collect();
        app.import(&lines).await;
        let mut ops = Vec::new();
        for (id, _, dom, op_type) in cases {
            assert_eq!(app.status(id).await, "Expired");
            let op = app.v.add_operation(dom, op_type, None).await.unwrap();
            assert_eq!(op.status.as_str(), "SUBMITTED", "{op_type}");
            assert_eq!(
                op.status_flag.map(|f| f.as_str()),
                Some("PENDING_CUSTOMER_ACTION"),
                "{op_type}"
            );
            let c = contact(&app, id).await;
            assert_eq!(c["VerificationStatus"], "NotValidated", "{op_type}: {c}");
            assert_eq!(c["ExpirationDate"], Value::Null, "{op_type}: {c}");
            ops.push(op.operation_id);
        }

        let s = app.sweep().await;
        assert_eq!((s.initial_sent, s.expired, s.failed), (4, 0, 0), "{s:?}");
        app.sink.wait_for(4, WAIT).await;
        for ((id, email, dom, op_type), op) in cases.iter().zip(&ops) {
            let mails = mails_to(&app, email);
            assert_eq!(mails.len(), 1, "{op_type}");
            assert!(
                subject_of(&mails[0]).starts_with("Action required"),
                "{op_type}"
            );
            assert!(body(&mails[0]).contains(dom), "{op_type}");
            assert_eq!(token_of(&mails[0]).len(), 64, "{op_type}");
            let c = contact(&app, id).await;
            assert_eq!(c["VerificationStatus"], "Pending", "{op_type}");
            assert_eq!(c["ExpirationDate"], iso(day(60)), "{op_type}");
            let op = operation(&app, op).await;
            assert_eq!(op["Status"], "SUBMITTED", "{op_type}: {op}");
            assert_eq!(
                op["StatusFlag"], "PENDING_CUSTOMER_ACTION",
                "{op_type}: {op}"
            );
        }
        // The fresh link confirms and settles the operation.
        let token = token_of(&mails_to(&app, "r@example.com")[0]);
        app.v.confirm(&token).await.unwrap();
        let op = operation(&app, &ops[0]).await;
        assert_eq!(
            (&op["Status"], &op["StatusFlag"]),
            (&json!("SUCCESSFUL"), &Value::Null)
        );
        app.done().await;
    }
);

both_backends!(
    a_change_of_owner_after_the_key_expired_restarts_with_a_fresh_key,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sweep().await;
        let old = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        app.advance_days(60);
        let s = app.sweep().await;
        assert_eq!(
            (s.expired, s.expiry_notices_sent, s.domains_suspended),
            (1, 1, 1),
            "{s:?}"
        );
        assert_eq!(app.status("DNA-1").await, "Expired");

        app.advance_days(1);
        let op = add_op(&app, "a.com", "CHANGE_DOMAIN_OWNER", None).await;
        assert_eq!(app.status("DNA-1").await, "NotValidated");
        let before = app.sink.count();
        let s = app.sweep().await;
        assert_eq!((s.initial_sent, s.operations_updated), (1, 0), "{s:?}");
        let mails = app.sink.wait_for(before + 1, WAIT).await;
        let fresh = token_of(mails.last().unwrap());
        assert_ne!(fresh, old);
        assert!(subject_of(mails.last().unwrap()).starts_with("Action required"));
        let o = operation(&app, &op).await;
        assert_eq!(
            (&o["Status"], &o["StatusFlag"]),
            (&json!("SUBMITTED"), &json!("PENDING_CUSTOMER_ACTION")),
            "{o}"
        );
        let e = app.v.confirm(&old).await.unwrap_err();
        assert!(
            matches!(e.code, ErrorCode::InvalidInput | ErrorCode::Expired),
            "{e}"
        );
        // Still suspended until the address is Validated.
        assert_eq!(domain(&app, "a.com").await["Suspended"], true);
        app.v.confirm(&fresh).await.unwrap();
        assert_eq!(domain(&app, "a.com").await["Suspended"], false);
        let o = operation(&app, &op).await;
        assert_eq!(o["Status"], "SUCCESSFUL", "{o}");
        app.done().await;
    }
);

both_backends!(
    a_renewal_on_an_expired_registrant_does_not_restart_and_fails,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.import(&format!(
            "{}{}",
            expired_line("DNA-N", "n@example.com", "renew.com"),
            expired_line("DNA-S", "s@example.com", "ns.com")
        ))
        .await;
        let renew = add_op(&app, "renew.com", "RENEW_DOMAIN", None).await;
        let ns = add_op(&app, "ns.com", "UPDATE_NAMESERVER", None).await;
        assert_eq!(app.status("DNA-N").await, "Expired");
        assert_eq!(app.status("DNA-S").await, "Expired");
        let s = app.sweep().await;
        assert_eq!((s.initial_sent, s.operations_updated), (0, 2), "{s:?}");
        assert_eq!(app.sink.count(), 0);
        for id in [&renew, &ns] {
            let o = operation(&app, id).await;
            assert_eq!(o["Status"], "FAILED", "{o}");
            assert_eq!(o["StatusFlag"], Value::Null, "{o}");
            assert!(
                o["Message"].as_str().is_some_and(|m| m.contains("expired")),
                "{o}"
            );
        }
        assert_eq!(app.status("DNA-N").await, "Expired");
        app.done().await;
    }
);

// 9. Restored names.

both_backends!(
    a_restored_name_of_an_unvalidated_registrant_is_suspended_at_once,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com", "b.com"]).await;
        app.add("DNA-V", "v@example.com", &["v.com"]).await;
        app.sweep().await;
        app.sink.wait_for(2, WAIT).await;
        let a_token = token_of(&mails_to(&app, "a@example.com")[0]);
        app.v
            .confirm(&token_of(&mails_to(&app, "v@example.com")[0]))
            .await
            .unwrap();

        app.advance_days(1);
        let op = app
            .v
            .add_operation("a.com", "RESTORE_DOMAIN", None)
            .await
            .unwrap();
        assert_eq!(op.status.as_str(), "SUBMITTED");
        assert_eq!(
            op.status_flag.map(|f| f.as_str()),
            Some("PENDING_CUSTOMER_ACTION")
        );
        let a = domain(&app, "a.com").await;
        assert_eq!(a["Suspended"], true, "{a}");
        assert_eq!(a["SuspendedAt"], iso(day(1)), "{a}");
        assert_eq!(domain(&app, "b.com").await["Suspended"], false);
        assert_eq!(
            contact(&app, "DNA-1").await["SuspendedDomains"],
            json!(["a.com"])
        );
        let events = all_events(&app).await;
        let last = events.last().unwrap();
        assert_eq!(last["type"], "domain_suspended", "{last}");
        assert_eq!(last["domains"], json!(["a.com"]), "{last}");
        assert_eq!(last["at"], iso(day(1)), "{last}");

        // A Validated registrant's restored name is not touched.
        let v_op = app
            .v
            .add_operation("v.com", "RESTORE_DOMAIN", None)
            .await
            .unwrap();
        assert_eq!(v_op.status_flag, None);
        let v = domain(&app, "v.com").await;
        assert_eq!(
            (&v["Suspended"], &v["SuspendedAt"]),
            (&json!(false), &Value::Null),
            "{v}"
        );

        // Expired and never-mailed registrants are suspended too, and stay as they were.
        app.import(&expired_line("DNA-E", "e@example.com", "e.com"))
            .await;
        app.add("DNA-F", "f@example.com", &["f.com"]).await;
        add_op(&app, "e.com", "RESTORE_DOMAIN", None).await;
        add_op(&app, "f.com", "RESTORE_DOMAIN", None).await;
        assert_eq!(domain(&app, "e.com").await["Suspended"], true);
        assert_eq!(domain(&app, "f.com").await["Suspended"], true);
        assert_eq!(app.status("DNA-E").await, "Expired");
        assert_eq!(app.status("DNA-F").await, "NotValidated");

        // Validation releases it like any suspension.
        app.v.confirm(&a_token).await.unwrap();
        let a = domain(&app, "a.com").await;
        assert_eq!(
            (&a["Suspended"], &a["SuspendedAt"]),
            (&json!(false), &Value::Null),
            "{a}"
        );
        let o = operation(&app, &op.operation_id).await;
        assert_eq!(o["Status"], "SUCCESSFUL", "{o}");
        let events = all_events(&app).await;
        let released = events
            .iter()
            .find(|e| e["type"] == "domain_unsuspended")
            .expect("domain_unsuspended");
        assert_eq!(released["domains"], json!(["a.com"]));
        app.done().await;
    }
);

both_backends!(
    with_suspension_off_nothing_gets_a_deadline_or_is_suspended,
    |db: TestDb| async move {
        let app = App::with(db, TlsMode::None, |s| s.suspension.after_days = 0).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        let report = app
            .v
            .import(
                import_line(
                    "DNA-2",
                    "b@example.com",
                    &["b.com"],
                    json!({"suspension_date": "2026-06-02T00:00:00Z"}),
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(
            (report.imported, report.rejected.len()),
            (1, 0),
            "{report:?}"
        );
        let op = add_op(&app, "a.com", "RESTORE_DOMAIN", None).await;
        let check = |when: &'static str| {
            let app = &app;
            async move {
                for (id, name) in [("DNA-1", "a.com"), ("DNA-2", "b.com")] {
                    let c = contact(app, id).await;
                    assert_eq!(c["SuspensionDate"], Value::Null, "{when}: {c}");
                    assert_eq!(c["SuspendedDomains"], json!([]), "{when}: {c}");
                    let d = domain(app, name).await;
                    assert_eq!(d["SuspensionDate"], Value::Null, "{when}: {d}");
                    assert_eq!(d["DaysToSuspend"], Value::Null, "{when}: {d}");
                    assert_eq!(d["Suspended"], false, "{when}: {d}");
                    assert_eq!(d["SuspendedAt"], Value::Null, "{when}: {d}");
                }
            }
        };
        check("at once").await;
        app.sweep().await;
        app.advance_days(30);
        assert_eq!(dry_run(&app).await.domains_suspended, 0);
        let s = app.sweep().await;
        assert_eq!(s.domains_suspended, 0, "{s:?}");
        check("30 days later").await;
        let o = operation(&app, &op).await;
        assert_eq!(o["StatusFlag"], "PENDING_CUSTOMER_ACTION", "{o}");
        assert!(!types(&all_events(&app).await).contains(&"domain_suspended".to_string()));
        app.done().await;
    }
);

both_backends!(
    turning_suspension_on_gives_the_waiting_domains_a_deadline,
    |db: TestDb| async move {
        let app = App::with(db, TlsMode::None, |s| s.suspension.after_days = 0).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sweep().await;
        // The operator turns suspension on (15 days) a day later.
        app.advance_days(1);
        let mut settings = app.settings.clone();
        settings.suspension.after_days = 15;
        let on = verifier(&settings, app.clock.clone()).await;
        on.sweep(false, &StopSignal::never()).await.unwrap();
        // The domain still waits on an unvalidated registrant: it has a deadline now,
        // at most 15 days from when suspension was turned on.
        let d = serde_json::to_value(on.domain_details("a.com").await.unwrap()).unwrap();
        let deadline = d["SuspensionDate"]
            .as_str()
            .unwrap_or_else(|| panic!("no SuspensionDate once suspension is on: {d}"))
            .to_string();
        assert!(deadline.as_str() <= iso(day(16)).as_str(), "{d}");
        app.advance_days(15);
        let s = on.sweep(false, &StopSignal::never()).await.unwrap();
        assert_eq!(s.domains_suspended, 1, "{s:?}");
        on.store.close().await;
        app.done().await;
    }
);

both_backends!(
    turning_suspension_off_shows_no_deadline_and_suspends_nothing,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sweep().await;
        assert_eq!(domain(&app, "a.com").await["SuspensionDate"], iso(day(15)));
        // The operator turns suspension off.
        let mut settings = app.settings.clone();
        settings.suspension.after_days = 0;
        let off = verifier(&settings, app.clock.clone()).await;
        app.advance_days(20);
        let s = off.sweep(false, &StopSignal::never()).await.unwrap();
        assert_eq!(s.domains_suspended, 0, "{s:?}");
        let d = serde_json::to_value(off.domain_details("a.com").await.unwrap()).unwrap();
        assert_eq!(d["Suspended"], false, "{d}");
        assert_eq!(d["SuspensionDate"], Value::Null, "{d}");
        assert_eq!(d["DaysToSuspend"], Value::Null, "{d}");
        let c = serde_json::to_value(off.show_contact(&by_id("DNA-1")).await.unwrap()).unwrap();
        assert_eq!(c["SuspensionDate"], Value::Null, "{c}");
        off.store.close().await;
        app.done().await;
    }
);

// 10. Import's suspension_date.

both_backends!(
    an_imported_suspension_date_is_the_deadline_and_a_malformed_one_rejects_its_line,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let lines = [
            import_line(
                "DNA-1",
                "a@example.com",
                &["a.com"],
                json!({"suspension_date": "2026-06-04T11:00:00+02:00"}),
            ),
            import_line(
                "DNA-2",
                "b@example.com",
                &["b.com"],
                json!({"suspension_date": "2026-06-04"}),
            ),
            import_line("DNA-3", "c@example.com", &["c.com"], json!({})),
            import_line(
                "DNA-4",
                "d@example.com",
                &["d.com"],
                json!({"suspension_date": "2026-05-20T00:00:00Z"}),
            ),
        ]
        .concat();
        let report = app.v.import(lines.as_bytes()).await.unwrap();
        assert_eq!(report.imported, 3, "{report:?}");
        assert_eq!(report.rejected_count, 1, "{report:?}");
        assert_eq!(report.rejected.len(), 1, "{report:?}");
        assert_eq!(report.rejected[0].line, 2, "{report:?}");
        assert!(
            report.rejected[0].error.contains("suspension_date"),
            "{report:?}"
        );
        assert_eq!(
            app.v.show_contact(&by_id("DNA-2")).await.unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_waits_until(&app, "a.com", "DNA-1", day(3), "imported date").await;
        assert_waits_until(&app, "c.com", "DNA-3", day(15), "default").await;
        let d = domain(&app, "d.com").await;
        assert_eq!(
            (&d["SuspensionDate"], &d["DaysToSuspend"]),
            (&json!("2026-05-20T00:00:00Z"), &json!(0)),
            "{d}"
        );

        // A deadline already past is met by the first sweep.
        let s = app.sweep().await;
        assert_eq!(s.domains_suspended, 1, "{s:?}");
        assert_eq!(domain(&app, "d.com").await["Suspended"], true);
        app.advance_days(3);
        assert_eq!(app.sweep().await.domains_suspended, 1);
        assert_eq!(domain(&app, "a.com").await["Suspended"], true);
        assert_eq!(domain(&app, "c.com").await["Suspended"], false);
        app.done().await;
    }
);

// 11. Dormant addresses.

both_backends!(
    a_dormant_address_gets_no_sweep_email_until_it_has_a_domain,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &[]).await;
        app.add("DNA-2", "b@example.com", &[]).await;
        let s = app.sweep().await;
        assert_eq!((s.initial_sent, s.failed), (0, 0), "{s:?}");
        assert_eq!(app.sink.count(), 0);
        for id in ["DNA-1", "DNA-2"] {
            let c = contact(&app, id).await;
            assert_eq!(c["NextNotificationDate"], Value::Null, "{c}");
            assert_eq!(c["SuspensionDate"], Value::Null, "{c}");
            assert_eq!(c["VerificationStatus"], "NotValidated", "{c}");
        }

        // A resend still mails it.
        app.advance_days(1);
        let out = app.v.resend(&by_id("DNA-2")).await.unwrap();
        assert!(out.notification.is_some());
        assert_eq!(
            app.sink.wait_for(1, WAIT).await[0].to,
            vec!["b@example.com".to_string()]
        );
        assert_eq!(app.status("DNA-2").await, "Pending");

        // Past reminder day 3 of that key: still nothing while dormant.
        app.advance_days(3);
        let s = app.sweep().await;
        assert_eq!((s.initial_sent, s.reminders_sent), (0, 0), "{s:?}");
        assert_eq!(app.sink.count(), 1);
        assert_eq!(
            contact(&app, "DNA-2").await["NextNotificationDate"],
            Value::Null
        );

        // Given a domain, it waits from now and the next sweep mails it.
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        let c = contact(&app, "DNA-1").await;
        assert_eq!(c["SuspensionDate"], iso(day(19)), "{c}");
        assert!(!c["NextNotificationDate"].is_null(), "{c}");
        let s = app.sweep().await;
        assert_eq!((s.initial_sent, s.reminders_sent), (1, 0), "{s:?}");
        let mails = app.sink.wait_for(2, WAIT).await;
        assert_eq!(mails[1].to, vec!["a@example.com".to_string()]);
        assert!(body(&mails[1]).contains("a.com"));

        app.add("DNA-2", "b@example.com", &["b.com"]).await;
        let s = app.sweep().await;
        assert_eq!((s.initial_sent, s.reminders_sent), (0, 1), "{s:?}");
        let mails = app.sink.wait_for(3, WAIT).await;
        assert_eq!(mails[2].to, vec!["b@example.com".to_string()]);
        assert!(subject_of(&mails[2]).starts_with("Reminder"));
        app.done().await;
    }
);

both_backends!(
    a_dormant_address_becomes_due_when_it_gets_a_domain,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &[]).await;
        app.sweep().await;
        app.advance_days(4);
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        // Section 7: NextNotificationDate is the moment the address becomes
        // due; dormant until now, it becomes due now, not when it was added.
        assert_eq!(
            contact(&app, "DNA-1").await["NextNotificationDate"],
            iso(day(4))
        );
        app.done().await;
    }
);

// 12. Events.

both_backends!(
    events_list_suspension_validation_and_expiry_in_order_with_the_contract_fields,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.add("DNA-2", "A@example.com", &["a.net"]).await;
        app.add("DNA-3", "b@example.com", &["b.com"]).await;
        app.sweep().await;
        app.sink.wait_for(2, WAIT).await;
        let a_token = token_of(&mails_to(&app, "a@example.com")[0]);
        assert!(all_events(&app).await.is_empty());

        app.advance_days(15);
        assert_eq!(app.sweep().await.domains_suspended, 3);
        app.advance_days(1);
        app.v.confirm(&a_token).await.unwrap();
        app.advance_days(44);
        assert_eq!(app.sweep().await.expired, 1);

        let events = all_events(&app).await;
        let kinds = types(&events);
        assert_eq!(kinds.len(), 5, "{events:#?}");
        assert_eq!(&kinds[..2], ["domain_suspended", "domain_suspended"]);
        let mut middle = kinds[2..4].to_vec();
        middle.sort();
        assert_eq!(middle, ["contact_validated", "domain_unsuspended"]);
        assert_eq!(kinds[4], "contact_expired");

        let keys = [
            "id",
            "type",
            "at",
            "contactEmail",
            "externalIds",
            "domains",
            "reason",
            "Delivered",
            "Attempts",
            "LastError",
        ];
        let mut ids = std::collections::HashSet::new();
        for e in &events {
            let got: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(got, keys, "{e}");
            assert!(
                uuid::Uuid::parse_str(e["id"].as_str().unwrap()).is_ok(),
                "{e}"
            );
            assert!(
                ids.insert(e["id"].as_str().unwrap().to_string()),
                "duplicate id: {e}"
            );
            assert!(!e["reason"].as_str().unwrap().is_empty(), "{e}");
            assert_eq!(
                (&e["Delivered"], &e["Attempts"], &e["LastError"]),
                (&json!(true), &json!(0), &Value::Null),
                "{e}"
            );
        }
        let a_ids = json!(["DNA-1", "DNA-2"]);
        let a_domains = json!(["a.com", "a.net"]);
        let find = |kind: &str, email: &str| {
            events
                .iter()
                .find(|e| e["type"] == kind && e["contactEmail"] == email)
                .unwrap_or_else(|| panic!("no {kind} for {email}: {events:#?}"))
                .clone()
        };
        let s = find("domain_suspended", "a@example.com");
        assert_eq!(
            (&s["at"], &s["externalIds"], &s["domains"]),
            (&json!(iso(day(15))), &a_ids, &a_domains),
            "{s}"
        );
        let s = find("domain_suspended", "b@example.com");
        assert_eq!(
            (&s["at"], &s["externalIds"], &s["domains"]),
            (&json!(iso(day(15))), &json!(["DNA-3"]), &json!(["b.com"])),
            "{s}"
        );
        let v = find("contact_validated", "a@example.com");
        assert_eq!(
            (&v["at"], &v["externalIds"], &v["domains"]),
            (&json!(iso(day(16))), &a_ids, &a_domains),
            "{v}"
        );
        let u = find("domain_unsuspended", "a@example.com");
        assert_eq!(
            (&u["at"], &u["externalIds"], &u["domains"]),
            (&json!(iso(day(16))), &a_ids, &a_domains),
            "{u}"
        );
        let x = find("contact_expired", "b@example.com");
        assert_eq!(
            (&x["at"], &x["externalIds"], &x["domains"]),
            (&json!(iso(day(60))), &json!(["DNA-3"]), &json!(["b.com"])),
            "{x}"
        );

        // Nothing waits for delivery when no hook is configured.
        let pending = app.v.events(true, None, None).await.unwrap();
        assert!(pending.events.is_empty());
        assert_eq!(pending.next_page_marker, None);
        app.done().await;
    }
);

both_backends!(
    events_page_one_at_a_time_and_refuse_forged_markers_and_bad_sizes,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.add("DNA-2", "b@example.com", &["b.com"]).await;
        app.sweep().await;
        app.sink.wait_for(2, WAIT).await;
        let token = token_of(&mails_to(&app, "a@example.com")[0]);
        app.advance_days(15);
        app.sweep().await;
        app.v.confirm(&token).await.unwrap();
        app.advance_days(45);
        app.sweep().await;
        let all = all_events(&app).await;
        assert_eq!(all.len(), 5, "{all:#?}");
        let whole = app.v.events(false, None, None).await.unwrap();
        assert_eq!(whole.next_page_marker, None);
        assert_eq!(whole.to_json()["Events"], json!(all));

        let mut walked = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = app
                .v
                .events(false, Some(1), marker.as_deref())
                .await
                .unwrap();
            assert_eq!(page.events.len(), 1, "{page:?}");
            walked.push(page.events[0].to_json());
            match page.next_page_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
            assert!(walked.len() < 10, "the pages never end");
        }
        assert_eq!(walked, all);

        // A marker that was not issued for this list is refused.
        let first = app.v.events(false, Some(2), None).await.unwrap();
        let issued = first.next_page_marker.expect("a second page");
        let next = app.v.events(false, Some(2), Some(&issued)).await.unwrap();
        assert_eq!(next.events[0].to_json(), all[2]);
        let (pos, tag) = issued.split_once('.').unwrap();
        let mut forged_tag: Vec<char> = tag.chars().collect();
        forged_tag[0] = if forged_tag[0] == 'A' { 'B' } else { 'A' };
        let forged_tag: String = forged_tag.into_iter().collect();
        let other_pos = if pos == "MQ" { "Mw" } else { "MQ" };
        for bad in [
            format!("{pos}.{forged_tag}"),
            format!("{other_pos}.{tag}"),
            "garbage".to_string(),
            String::new(),
        ] {
            let e = app.v.events(false, Some(2), Some(&bad)).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput, "{bad:?}: {e}");
        }
        let e = app
            .v
            .events(true, Some(2), Some(&issued))
            .await
            .unwrap_err();
        assert_eq!(
            e.code,
            ErrorCode::InvalidInput,
            "marker of another filter: {e}"
        );

        for n in [0, 1001, -1] {
            let e = app.v.events(false, Some(n), None).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput, "max_items {n}: {e}");
        }
        assert_eq!(
            app.v
                .events(false, Some(1000), None)
                .await
                .unwrap()
                .events
                .len(),
            5
        );
        app.done().await;
    }
);
