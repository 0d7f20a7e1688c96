//! The service as an operator runs it: the real binary's `run`, driven over
//! HTTP (CONTRACT section 5), watched through its JSON logs (section 6),
//! stopped with SIGTERM mid-sweep, and surviving its database and SMTP
//! server going away.

mod common;

use std::time::Duration;

use common::app::{token_of, App};
use common::daemon::{daemon_bin, free_port, link_path, Daemon, API_TOKEN};
use common::smtp::{Fault, SmtpSink, TlsMode};
use common::{Bin, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

async fn start(db: &TestDb) -> (SmtpSink, Daemon) {
    let sink = SmtpSink::start(TlsMode::None).await;
    let port = free_port();
    let d = Daemon::start(&daemon_bin(db, &sink, port), port).await;
    (sink, d)
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

fn assert_error(got: (StatusCode, Value), status: u16, code: &str) {
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    assert_eq!(got.1["__type"], code, "{}", got.1);
    assert!(
        got.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        got.1
    );
}

/// Polls GetDetails until the contact has `status` (the relay accepts a
/// message a moment before the daemon records it).
async fn wait_status(d: &Daemon, id: &str, status: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, v) = call(
            d,
            Method::GET,
            &format!("/v1/contacts?externalId={id}"),
            None,
        )
        .await;
        if v["VerificationStatus"] == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never became {status}: {v}\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_backends!(api_drives_the_whole_verification, |db: TestDb| async move {
    let (sink, d) = start(&db).await;
    let (s, created) = call(
        &d,
        Method::POST,
        "/v1/contacts",
        Some(json!({"ExternalId": "DNA-1", "ContactEmail": "a@example.com", "Domains": ["a.com"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{created}");
    assert_eq!(created["VerificationStatus"], "NotValidated");
    let (s, op) = call(
        &d,
        Method::POST,
        "/v1/operations",
        Some(json!({"DomainName": "a.com", "Type": "REGISTER_DOMAIN"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(op["StatusFlag"], "PENDING_CUSTOMER_ACTION");
    let id = op["OperationId"].as_str().unwrap().to_string();
    // The scheduled sweep mails the contact.
    let mail = sink.wait_for(1, WAIT).await.remove(0);
    wait_status(&d, "DNA-1", "Pending").await;
    assert_eq!(
        call(&d, Method::GET, "/v1/domains/a.com/reachability", None)
            .await
            .1,
        json!({"domainName": "a.com", "status": "PENDING"})
    );
    // Looking at the link changes nothing; posting confirms.
    let page = d.http.get(d.url(&link_path(&mail))).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("a***@example.com") && !html.contains("a@example.com"),
        "{html}"
    );
    assert!(html.contains("<form method=\"post\">"), "{html}");
    assert_eq!(
        call(&d, Method::GET, "/v1/contacts?email=A@example.com", None)
            .await
            .1["VerificationStatus"],
        "Pending"
    );
    let confirmed = d.http.post(d.url(&link_path(&mail))).send().await.unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(confirmed
        .text()
        .await
        .unwrap()
        .contains("Email address confirmed"));
    let again = d.http.post(d.url(&link_path(&mail))).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.text().await.unwrap().contains("already confirmed"));
    assert_eq!(
        call(&d, Method::GET, "/v1/domains/a.com/reachability", None)
            .await
            .1["status"],
        "DONE"
    );
    // The next sweep settles the operation.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, op) = call(&d, Method::GET, &format!("/v1/operations/{id}"), None).await;
        if op["Status"] == "SUCCESSFUL" {
            assert_eq!(op["StatusFlag"], Value::Null);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "operation not settled: {op}\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, list) = call(&d, Method::GET, "/v1/operations?domain=a.com", None).await;
    assert_eq!(list["Operations"].as_array().unwrap().len(), 1);
    let (_, none) = call(
        &d,
        Method::GET,
        "/v1/operations?statusFlag=PENDING_CUSTOMER_ACTION",
        None,
    )
    .await;
    assert_eq!(none["Operations"], json!([]));
    // Resend to a validated address: no email, Notification null.
    let (s, r) = call(
        &d,
        Method::POST,
        "/v1/contacts/resend-verification",
        Some(json!({"ExternalId": "DNA-1"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["Notification"], Value::Null);
    let (_, r) = call(
        &d,
        Method::POST,
        "/v1/domains/a.com/reachability/resend",
        None,
    )
    .await;
    assert_eq!(
        r,
        json!({"domainName": "a.com", "emailAddress": "a@example.com", "isAlreadyVerified": true})
    );
    assert_eq!(sink.count(), 1);
    drop(d);
    db.cleanup().await;
});

both_backends!(
    api_refuses_without_the_bearer_token,
    |db: TestDb| async move {
        let (_sink, d) = start(&db).await;
        let url = d.url("/v1/contacts?externalId=DNA-1");
        let r = d.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let r = d
            .http
            .get(&url)
            .bearer_auth("wrong-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = d
            .http
            .get(&url)
            .bearer_auth(&API_TOKEN[..API_TOKEN.len() - 1])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = d
            .http
            .get(&url)
            .header("Authorization", format!("Basic {API_TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = d
            .http
            .get(&url)
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        // /healthz and /verify need no token.
        assert_eq!(
            d.http.get(d.url("/healthz")).send().await.unwrap().status(),
            StatusCode::OK
        );
        assert_eq!(
            d.http
                .get(d.url("/verify/x"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::BAD_REQUEST
        );
        drop(d);
        db.cleanup().await;
    }
);

both_backends!(
    api_without_a_configured_token_refuses_everyone,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let d = Daemon::start(
            &daemon_bin(&db, &sink, port).with_env("CONTACT_VERIFIER__HTTP__API_TOKEN", ""),
            port,
        )
        .await;
        let r = d
            .http
            .get(d.url("/v1/operations"))
            .bearer_auth("")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = d.api(Method::GET, "/v1/operations").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(d.events("api_disabled").len(), 1);
        drop(d);
        db.cleanup().await;
    }
);

both_backends!(
    api_errors_have_the_contract_shape_and_status,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let bin = daemon_bin(&db, &sink, port)
            .with_env("CONTACT_VERIFIER__VERIFICATION__SUPPORTED_TLDS", "com")
            .with_env("CONTACT_VERIFIER__VERIFICATION__RESEND_LIMIT_PER_DAY", "1")
            .with_env("CONTACT_VERIFIER__HTTP__MAX_BODY_BYTES", "1024");
        let d = Daemon::start(&bin, port).await;
        // Malformed and mistyped bodies are 400 InvalidInput, never 500.
        for body in [
            "{\"ExternalId\":",
            "[]",
            "{\"ExternalId\":1,\"ContactEmail\":\"a@example.com\"}",
            "null",
        ] {
            let r = d
                .api(Method::POST, "/v1/contacts")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            assert_error((status, v), 400, "InvalidInput");
        }
        let r = d
            .api(Method::POST, "/v1/contacts")
            .body("ExternalId=1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "missing content type");
        assert_error(call(&d, Method::POST, "/v1/contacts", Some(json!({"ExternalId": "DNA-1", "ContactEmail": "a@example.com", "Domain": ["a.com"]}))).await, 400, "InvalidInput");
        assert_error(
            call(
                &d,
                Method::POST,
                "/v1/contacts",
                Some(json!({"ExternalId": "DNA-1", "ContactEmail": "nope"})),
            )
            .await,
            400,
            "InvalidInput",
        );
        assert_error(call(&d, Method::POST, "/v1/contacts", Some(json!({"ExternalId": "DNA-1", "ContactEmail": "a@example.com", "Domains": ["a.org"]}))).await, 400, "UnsupportedTLD");
        let big = json!({"ExternalId": "DNA-1", "ContactEmail": "a@example.com", "Domains": vec!["x".repeat(50); 40]});
        let r = d
            .api(Method::POST, "/v1/contacts")
            .json(&big)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_error(
            call(&d, Method::GET, "/v1/contacts?externalId=DNA-404", None).await,
            404,
            "NotFound",
        );
        // Without externalId or email it is `contact list` (CONTRACT
        // section 10); a bad page size is refused in the contract's shape.
        assert_error(
            call(&d, Method::GET, "/v1/contacts?maxItems=0", None).await,
            400,
            "InvalidInput",
        );
        assert_error(
            call(&d, Method::GET, "/v1/contacts?colour=blue", None).await,
            400,
            "InvalidInput",
        );
        assert_error(
            call(&d, Method::GET, "/v1/domains/a.org/reachability", None).await,
            400,
            "UnsupportedTLD",
        );
        assert_error(
            call(
                &d,
                Method::GET,
                "/v1/domains/unknown.com/reachability",
                None,
            )
            .await,
            404,
            "NotFound",
        );
        assert_error(
            call(&d, Method::GET, "/v1/operations/not-a-uuid", None).await,
            400,
            "InvalidInput",
        );
        assert_error(
            call(&d, Method::GET, "/v1/operations?statusFlag=NOPE", None).await,
            400,
            "InvalidInput",
        );
        assert_error(
            call(
                &d,
                Method::POST,
                "/v1/operations",
                Some(json!({"DomainName": "unknown.com", "Type": "REGISTER_DOMAIN"})),
            )
            .await,
            404,
            "NotFound",
        );
        assert_error(
            call(&d, Method::GET, "/v1/nothing-here", None).await,
            404,
            "NotFound",
        );
        // Rate limit: 429. SMTP refusing: 503 and nothing changed.
        call(&d, Method::POST, "/v1/contacts", Some(json!({"ExternalId": "DNA-1", "ContactEmail": "a@example.com", "Domains": ["a.com"]}))).await;
        sink.wait_for(1, WAIT).await;
        let (s, _) = call(
            &d,
            Method::POST,
            "/v1/contacts/resend-verification",
            Some(json!({"ContactEmail": "a@example.com"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_error(
            call(
                &d,
                Method::POST,
                "/v1/contacts/resend-verification",
                Some(json!({"ExternalId": "DNA-1"})),
            )
            .await,
            429,
            "OperationLimitExceeded",
        );
        call(
            &d,
            Method::POST,
            "/v1/contacts",
            Some(json!({"ExternalId": "DNA-2", "ContactEmail": "b@example.com"})),
        )
        .await;
        // The relay refuses (pooled connections stay open, so refuse the recipient).
        sink.set_fault(Fault::Transient);
        let before = call(&d, Method::GET, "/v1/contacts?externalId=DNA-2", None)
            .await
            .1;
        let failed = call(
            &d,
            Method::POST,
            "/v1/contacts/resend-verification",
            Some(json!({"ExternalId": "DNA-2"})),
        )
        .await;
        assert_error(failed, 503, "Unavailable");
        let after = call(&d, Method::GET, "/v1/contacts?externalId=DNA-2", None)
            .await
            .1;
        assert_eq!(after["VerificationStatus"], before["VerificationStatus"]);
        drop(d);
        db.cleanup().await;
    }
);

both_backends!(
    expired_and_invalid_links_get_their_pages,
    |db: TestDb| async move {
        // A key issued by a clock standing at 2026-06-01 is long expired for the daemon.
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sweep().await;
        let token = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        let port = free_port();
        let d = Daemon::start(&daemon_bin(&app.db, &app.sink, port), port).await;
        for method in [Method::GET, Method::POST] {
            let r = d
                .http
                .request(method.clone(), d.url(&format!("/verify/{token}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::GONE, "{method}");
            let html = r.text().await.unwrap();
            assert!(
                html.contains("expired") && html.contains("Send me a new link"),
                "{html}"
            );
            assert!(
                !html.contains("Confirm my email address")
                    && html.contains(&format!("action=\"{token}/resend\"")),
                "no confirm button on an expired link, only the new-link one: {html}"
            );
        }
        let mut tampered = token.clone();
        tampered.replace_range(10..11, if &token[10..11] == "A" { "B" } else { "A" });
        let r = d
            .http
            .post(d.url(&format!("/verify/{tampered}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("not valid"));
        wait_status(&d, "DNA-1", "Expired").await;
        drop(d);
        app.done().await;
    }
);

both_backends!(
    sigterm_mid_sweep_finishes_in_flight_mail_and_loses_nothing,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let bin =
            daemon_bin(&db, &sink, port).with_env("CONTACT_VERIFIER__SMTP__MAX_CONNECTIONS", "2");
        let lines = common::numbered_contacts(40);
        bin.run_with_stdin(&["contact", "import", "-"], Some(lines.as_bytes()))
            .ok();
        sink.set_delay(Duration::from_millis(150));
        let mut d = Daemon::start(&bin, port).await;
        sink.wait_for(4, WAIT).await;
        let (code, took) = d.terminate();
        assert_eq!(code, 0, "{}", d.logs());
        assert!(took < Duration::from_secs(10), "took {took:?}");
        eprintln!("SIGTERM mid-sweep: exited 0 in {took:?}");
        assert_eq!(d.events("daemon_stopped").len(), 1, "{}", d.logs());
        assert!(
            d.events("daemon_stopped")[0].get("clean").is_none(),
            "{}",
            d.logs()
        );
        let sent_before = sink.count();
        assert!(sent_before < 40, "the sweep was interrupted: {sent_before}");
        // Every email the relay accepted is recorded, and nothing is left half-done.
        let check: &Bin = &bin;
        let mut pending = 0;
        for i in 0..40 {
            let id = format!("DNA-{i}");
            let shown = check.run(&["contact", "show", "--external-id", &id]).ok();
            let notes = check
                .run(&["contact", "notifications", "--external-id", &id])
                .ok();
            let notes = notes["operations"].as_array().unwrap().clone();
            assert!(
                notes.iter().all(|n| n["status"] != "Started"),
                "{id}: {notes:?}"
            );
            let got_mail = sink
                .messages()
                .iter()
                .any(|m| m.to[0] == format!("r{i}@example.com"));
            if got_mail {
                pending += 1;
                assert_eq!(shown["VerificationStatus"], "Pending", "{id}");
                assert_eq!(notes.len(), 1, "{id}");
                assert_eq!(notes[0]["status"], "Succeeded", "{id}");
            } else {
                assert_eq!(shown["VerificationStatus"], "NotValidated", "{id}");
            }
        }
        assert_eq!(pending, sent_before);
        // A later sweep mails the rest, and nobody twice.
        sink.set_delay(Duration::ZERO);
        let summary = check.run(&["sweep"]).ok();
        assert_eq!(
            summary["initial_sent"].as_u64().unwrap() as usize,
            40 - sent_before,
            "{summary}"
        );
        let mails = sink.wait_for(40, WAIT).await;
        let mut to: Vec<String> = mails.iter().map(|m| m.to[0].clone()).collect();
        to.sort();
        to.dedup();
        assert_eq!((mails.len(), to.len()), (40, 40));
        db.cleanup().await;
    }
);

both_backends!(
    daemon_survives_smtp_and_database_outages,
    |db: TestDb| async move {
        let (sink, d) = start(&db).await;
        sink.set_fault(Fault::RefuseConnections);
        call(&d, Method::POST, "/v1/contacts", Some(json!({"ExternalId": "DNA-1", "ContactEmail": "a@example.com", "Domains": ["a.com"]}))).await;
        d.wait_event("email_failed", 1, WAIT).await;
        sink.set_fault(Fault::None);
        sink.wait_for(1, WAIT).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            sink.count(),
            1,
            "exactly one email after the relay came back"
        );

        // An address waits for a retry while the database goes away.
        sink.set_fault(Fault::Transient);
        call(&d, Method::POST, "/v1/contacts", Some(json!({"ExternalId": "DNA-2", "ContactEmail": "b@example.com", "Domains": ["b.com"]}))).await;
        d.wait_event("email_failed", 2, WAIT).await;
        let outage = common::DbOutage::begin(&db).await;
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let r = d.http.get(d.url("/healthz")).send().await.unwrap();
            if r.status() == StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "healthz never noticed the outage\n{}",
                d.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let refused = call(
            &d,
            Method::POST,
            "/v1/contacts",
            Some(json!({"ExternalId": "DNA-3", "ContactEmail": "c@example.com"})),
        )
        .await;
        assert_error(refused, 503, "Unavailable");
        d.wait_event("sweep_failed", 1, WAIT).await;
        sink.set_fault(Fault::None);
        outage.end().await;
        let deadline = std::time::Instant::now() + WAIT;
        while d.http.get(d.url("/healthz")).send().await.unwrap().status() != StatusCode::OK {
            assert!(
                std::time::Instant::now() < deadline,
                "no recovery\n{}",
                d.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mails = sink.wait_for(2, WAIT).await;
        assert_eq!(mails[1].to, vec!["b@example.com".to_string()]);
        let (s, _) = call(
            &d,
            Method::POST,
            "/v1/contacts",
            Some(json!({"ExternalId": "DNA-3", "ContactEmail": "c@example.com", "Domains": ["c.com"]})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "the API works again");
        sink.wait_for(3, WAIT).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(sink.count(), 3, "one email per address, none twice");
        drop(d);
        db.cleanup().await;
    }
);

both_backends!(
    logs_are_json_events_without_secrets_or_addresses,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let bin = daemon_bin(&db, &sink, port)
            .with_env("CONTACT_VERIFIER__SMTP__USERNAME", "relay-user")
            .with_env("CONTACT_VERIFIER__SMTP__PASSWORD", "relay-password-77");
        sink.require_auth("relay-user", "relay-password-77");
        let mut d = Daemon::start(&bin, port).await;
        call(&d, Method::POST, "/v1/contacts", Some(json!({"ExternalId": "DNA-1", "ContactEmail": "alice.secret@example.com", "Domains": ["a.com"]}))).await;
        call(
            &d,
            Method::POST,
            "/v1/operations",
            Some(json!({"DomainName": "a.com", "Type": "REGISTER_DOMAIN"})),
        )
        .await;
        let mail = sink.wait_for(1, WAIT).await.remove(0);
        let link = link_path(&mail);
        d.http.post(d.url(&link)).send().await.unwrap();
        sink.set_fault(Fault::Transient);
        call(
            &d,
            Method::POST,
            "/v1/contacts",
            Some(json!({"ExternalId": "DNA-2", "ContactEmail": "bob.secret@example.com", "Domains": ["b.com"]})),
        )
        .await;
        d.wait_event("operation_updated", 1, WAIT).await;
        d.wait_event("email_failed", 1, WAIT).await;
        let (code, _) = d.terminate();
        assert_eq!(code, 0);
        let logs = d.logs();
        for line in logs.lines() {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"));
            assert!(
                v["timestamp"].is_string() && v["level"].is_string(),
                "{line}"
            );
        }
        let sent = &d.events("email_sent")[0];
        assert_eq!(sent["email"], "a***@example.com");
        let finished = d.events("sweep_finished");
        assert!(finished.iter().any(|e| e["initial_sent"] == 1), "{logs}");
        for key in [
            "expired",
            "initial_sent",
            "reminders_sent",
            "expiry_notices_sent",
            "failed",
            "operations_updated",
            "duration_ms",
        ] {
            assert!(finished[0].get(key).is_some(), "sweep_finished lacks {key}");
        }
        for event in [
            "sweep_started",
            "email_sent",
            "email_failed",
            "contact_validated",
            "operation_updated",
            "daemon_started",
            "daemon_stopped",
        ] {
            assert!(!d.events(event).is_empty(), "no {event} in:\n{logs}");
        }
        let token = &link["/verify/".len()..];
        for secret in [
            token,
            &token[22..],
            API_TOKEN,
            common::app::SECRET,
            "relay-password-77",
            "alice.secret@",
            "bob.secret@",
        ] {
            assert!(
                !logs.contains(secret),
                "{secret} appears in the logs:\n{logs}"
            );
        }
        db.cleanup().await;
    }
);

both_backends!(
    a_slow_sweep_makes_the_next_tick_skip_and_mails_once,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let bin =
            daemon_bin(&db, &sink, port).with_env("CONTACT_VERIFIER__SMTP__MAX_CONNECTIONS", "1");
        let lines = common::numbered_contacts(4);
        bin.run_with_stdin(&["contact", "import", "-"], Some(lines.as_bytes()))
            .ok();
        // Each email takes 0.7 s, so the first sweep spans several one-second ticks.
        sink.set_delay(Duration::from_millis(700));
        let d = Daemon::start(&bin, port).await;
        d.wait_event("sweep_skipped", 1, WAIT).await;
        sink.wait_for(4, WAIT).await;
        d.wait_event("sweep_finished", 2, WAIT).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(sink.count(), 4, "each address once");
        let started = d.events("sweep_started").len();
        let finished = d.events("sweep_finished").len();
        assert!(
            started - finished <= 1,
            "sweeps never overlap: {started} started, {finished} finished"
        );
        drop(d);
        db.cleanup().await;
    }
);

both_backends!(
    systemd_hears_ready_watchdog_and_stopping,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let socket_path = db.dir.path().join("notify.sock");
        let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
        let bin = daemon_bin(&db, &sink, port)
            .with_env("NOTIFY_SOCKET", socket_path.to_str().unwrap())
            .with_env("WATCHDOG_USEC", "400000");
        let mut d = Daemon::start(&bin, port).await;
        let mut heard: Vec<String> = Vec::new();
        let mut buf = vec![0u8; 512];
        let deadline = std::time::Instant::now() + WAIT;
        while heard.iter().filter(|m| m.contains("WATCHDOG=1")).count() < 2 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let n = tokio::time::timeout(left, socket.recv(&mut buf))
                .await
                .expect("notifications")
                .unwrap();
            heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(
            heard.iter().filter(|m| m.contains("READY=1")).count(),
            1,
            "{heard:?}"
        );
        let (code, _) = d.terminate();
        assert_eq!(code, 0);
        let mut stopping = false;
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await
        {
            stopping |= String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
        }
        assert!(stopping, "no STOPPING=1 after {heard:?}");
        db.cleanup().await;
    }
);
