//! The AWS-compatible endpoint (CONTRACT section 11), driven by the real
//! clients: the daemon runs on each database with the SMTP sink and
//! `aws.enabled`, the data is set up through the CLI and `/v1`, then
//! `tests/aws/client_test.py` points boto3 and the AWS CLI at it.
//!
//! The clients come from a virtualenv (`$CV_AWS_VENV`, default
//! `$HOME/.venv-aws`) that `.ci/run` creates. Without it the client tests
//! skip, unless `CV_REQUIRE_AWS` is set (CI sets it), when they fail.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::daemon::{daemon_bin, free_port, Daemon};
use common::smtp::{SmtpSink, TlsMode};
use common::{Backend, Bin, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const KEY_ID: &str = "AKIDCVTEST0123456789";
/// Has `/` and `+`, as real AWS secrets do.
const SECRET: &str = "cvTestSecret/0123456789+abcdefghijklmnopq";
const REGION: &str = "eu-west-1";
const RESEND_LIMIT: u32 = 2;
/// Never fires during a test: the data stays as set up, and the one sweep
/// the setup needs is run with the CLI.
const NO_SWEEP: &str = "0 0 0 1 1 *";

/// The virtualenv with boto3 and awscli, or `None` (the test skips) when
/// it is missing and `CV_REQUIRE_AWS` is not set.
fn aws_venv() -> Option<PathBuf> {
    let dir = std::env::var_os("CV_AWS_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".venv-aws")));
    let found = dir.filter(|d| d.join("bin/python").is_file() && d.join("bin/aws").is_file());
    if found.is_none() {
        if std::env::var_os("CV_REQUIRE_AWS").is_some() {
            panic!(
                "CV_REQUIRE_AWS is set but no virtualenv with boto3 and awscli was found \
                 (CV_AWS_VENV or $HOME/.venv-aws); .ci/run creates it"
            );
        }
        eprintln!("SKIPPED (AWS clients): no virtualenv with boto3 and awscli; run .ci/run or set CV_AWS_VENV");
    }
    found
}

/// The daemon's binary with the AWS endpoint on, its secret from a file.
fn aws_bin(db: &TestDb, sink: &SmtpSink, port: u16) -> Bin {
    let secret_file = db.dir.path().join("aws-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    daemon_bin(db, sink, port)
        .with_env("CONTACT_VERIFIER__AWS__ENABLED", "true")
        .with_env("CONTACT_VERIFIER__AWS__ACCESS_KEY_ID", KEY_ID)
        .with_env(
            "CONTACT_VERIFIER__AWS__SECRET_ACCESS_KEY_FILE",
            secret_file.to_str().unwrap(),
        )
        .with_env("CONTACT_VERIFIER__AWS__REGION", REGION)
        .with_env(
            "CONTACT_VERIFIER__VERIFICATION__RESEND_LIMIT_PER_DAY",
            &RESEND_LIMIT.to_string(),
        )
        .with_env("CONTACT_VERIFIER__VERIFICATION__SUPPORTED_TLDS", "com")
        .with_env("CONTACT_VERIFIER__SCHEDULE__SWEEP", NO_SWEEP)
}

async fn call(d: &Daemon, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut req = d.api(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn mails_to(sink: &SmtpSink, address: &str) -> usize {
    sink.messages()
        .iter()
        .filter(|m| m.to.iter().any(|t| t == address))
        .count()
}

const PENDING: (&str, &str, &str) = ("DNA-1", "pending@example.com", "pending.com");
const VALIDATED: (&str, &str, &str) = ("DNA-2", "valid@example.com", "valid.com");
const LIMITED: (&str, &str, &str) = ("DNA-3", "limit@example.com", "limit.com");
const EXPIRED: (&str, &str, &str) = ("DNA-4", "expired@example.com", "expired.com");

/// Operation types per domain; none restarts or suspends on its registrant.
fn op_type(domain: &str, i: usize) -> &'static str {
    let types: &[&str] = match domain {
        "expired.com" => &["RENEW_DOMAIN", "UPDATE_NAMESERVER", "DOMAIN_LOCK"],
        _ => &[
            "REGISTER_DOMAIN",
            "RENEW_DOMAIN",
            "TRANSFER_IN_DOMAIN",
            "UPDATE_NAMESERVER",
        ],
    };
    types[i % types.len()]
}

/// Contacts in each reachability state and 25 operations in two batches a
/// second apart: SUBMITTED ones waiting on a pending registrant, SUCCESSFUL
/// ones settled by a manual verification, FAILED ones (with a Message) on an
/// expired registrant. Returns the fixture the Python test reads.
async fn set_up(bin: &Bin, d: &Daemon) -> Value {
    let (id, email, domain) = EXPIRED;
    let line = format!(
        "{{\"external_id\":\"{id}\",\"email\":\"{email}\",\"domains\":[\"{domain}\"],\"status\":\"Expired\",\"key_issued_at\":\"2025-01-01T00:00:00Z\"}}\n"
    );
    let imported = bin
        .run_with_stdin(&["contact", "import", "-"], Some(line.as_bytes()))
        .ok();
    assert_eq!(imported["imported"], 1, "{imported}");
    for (id, email, domain) in [PENDING, VALIDATED, LIMITED] {
        call(
            d,
            Method::POST,
            "/v1/contacts",
            Some(json!({"ExternalId": id, "ContactEmail": email, "Domains": [domain]})),
        )
        .await;
    }
    let domains = [PENDING.2, VALIDATED.2, EXPIRED.2];
    let mut second_batch_submitted = Value::Null;
    for i in 0..25 {
        if i == 14 {
            // The second batch starts in a later second (SubmittedSince).
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        let domain = domains[i % 3];
        let op = call(
            d,
            Method::POST,
            "/v1/operations",
            Some(json!({"DomainName": domain, "Type": op_type(domain, i / 3)})),
        )
        .await;
        if i == 14 {
            second_batch_submitted = op["SubmittedDate"].clone();
        }
    }
    // Validation settles the valid registrant's operations at once; the
    // sweep fails the expired one's and mails the new contacts.
    call(
        d,
        Method::POST,
        "/v1/contacts/verify",
        Some(json!({"ExternalId": VALIDATED.0, "Reason": "confirmed by phone", "By": "aws test"})),
    )
    .await;
    let summary = bin.run(&["sweep"]).ok();
    assert!(
        summary["operations_updated"].as_i64().unwrap() > 0,
        "{summary}"
    );
    let ops = call(d, Method::GET, "/v1/operations", None).await["Operations"].clone();
    let ops = ops.as_array().unwrap();
    assert_eq!(ops.len(), 25);
    for status in ["SUBMITTED", "SUCCESSFUL", "FAILED"] {
        assert!(
            ops.iter().any(|o| o["Status"] == status),
            "no {status}: {ops:?}"
        );
    }
    json!({
        "pending_domain": PENDING.2,
        "pending_email": PENDING.1,
        "validated_domain": VALIDATED.2,
        "expired_domain": EXPIRED.2,
        "limit_domain": LIMITED.2,
        "resend_limit": RESEND_LIMIT,
        "unknown_domain": "nobody-registered.com",
        "unsupported_domain": "pending.org",
        "operations": ops,
        "second_batch_submitted": second_batch_submitted,
    })
}

/// Runs the Python client test; panics with its output when it fails.
async fn run_client_test(venv: PathBuf, d: &Daemon, fixture: &Value, dir: &std::path::Path) {
    let fixture_path = dir.join("aws-fixture.json");
    std::fs::write(&fixture_path, fixture.to_string()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/aws/client_test.py");
    let mut cmd = std::process::Command::new(venv.join("bin/python"));
    cmd.arg(script).current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    let missing = dir.join("no-aws-config");
    cmd.env("CV_AWS_ENDPOINT", &d.base)
        .env("CV_AWS_ACCESS_KEY_ID", KEY_ID)
        .env("CV_AWS_SECRET_ACCESS_KEY", SECRET)
        .env("CV_AWS_REGION", REGION)
        .env("CV_AWS_FIXTURE", &fixture_path)
        .env("CV_AWS_CLI", venv.join("bin/aws"))
        .env("AWS_CONFIG_FILE", &missing)
        .env("AWS_SHARED_CREDENTIALS_FILE", &missing)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run python"))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/aws/client_test.py failed ({}):\n{}\n{stderr}\ndaemon log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        d.logs()
    );
    // unittest reports on stderr: "Ran N tests ... OK".
    eprintln!(
        "{}",
        stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
    );
}

both_backends!(
    boto3_and_the_aws_cli_drive_the_endpoint,
    |db: TestDb| async move {
        let Some(venv) = aws_venv() else {
            db.cleanup().await;
            return;
        };
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let bin = aws_bin(&db, &sink, port);
        let d = Daemon::start(&bin, port).await;
        let fixture = set_up(&bin, &d).await;
        let before: Vec<usize> = [PENDING.1, VALIDATED.1, LIMITED.1, EXPIRED.1]
            .iter()
            .map(|a| mails_to(&sink, a))
            .collect();

        run_client_test(venv, &d, &fixture, db.dir.path()).await;

        // Exactly the resends that were answered went out: one to the pending
        // address, the daily limit's worth to the limited one, none to the
        // validated one, none for a refused signature.
        let after: Vec<usize> = [PENDING.1, VALIDATED.1, LIMITED.1, EXPIRED.1]
            .iter()
            .map(|a| mails_to(&sink, a))
            .collect();
        assert_eq!(
            after
                .iter()
                .zip(&before)
                .map(|(a, b)| a - b)
                .collect::<Vec<_>>(),
            vec![1, 0, RESEND_LIMIT as usize, 0],
            "before {before:?} after {after:?}"
        );
        let logs = d.logs();
        assert!(!logs.contains(SECRET), "the secret is in the log");
        let refused = d.events("aws_auth_refused");
        for code in [
            "InvalidSignatureException",
            "UnrecognizedClientException",
            "MissingAuthenticationTokenException",
        ] {
            assert!(
                refused.iter().any(|e| e["code"] == code),
                "no {code} logged"
            );
        }
        drop(d);
        sink.stop().await;
        db.cleanup().await;
    }
);

both_backends!(
    the_endpoint_is_off_unless_enabled,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let d = Daemon::start(&daemon_bin(&db, &sink, port), port).await;
        let r = d
            .http
            .post(d.url("/"))
            .header("X-Amz-Target", "Route53Domains_v20140515.ListOperations")
            .header("Content-Type", "application/x-amz-json-1.1")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        drop(d);
        sink.stop().await;
        db.cleanup().await;
    }
);

both_backends!(
    requests_without_a_valid_signature_do_nothing,
    |db: TestDb| async move {
        // Without any client library: no signature, a garbled one, one with an
        // unknown key. Each is refused with 403 before the operation runs.
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let bin = aws_bin(&db, &sink, port);
        let d = Daemon::start(&bin, port).await;
        bin.add_contact("DNA-1", "a@example.com", &["a.com"]);
        let send = |auth: Option<&'static str>| {
            let mut r = d
                .http
                .post(d.url("/"))
                .header(
                    "X-Amz-Target",
                    "Route53Domains_v20140515.ResendContactReachabilityEmail",
                )
                .header("Content-Type", "application/x-amz-json-1.1")
                .header(
                    "X-Amz-Date",
                    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
                )
                .body(r#"{"domainName":"a.com"}"#);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.send()
        };
        let cases = [
        (None, "MissingAuthenticationTokenException"),
        (Some("Bearer test-api-token-5f1b2c"), "MissingAuthenticationTokenException"),
        (Some("AWS4-HMAC-SHA256 Credential=AKIDCVTEST0123456789/20260101/eu-west-1/route53domains/aws4_request"), "InvalidSignatureException"),
        (Some("AWS4-HMAC-SHA256 Credential=AKIDNOBODY/20260101/eu-west-1/route53domains/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000"), "UnrecognizedClientException"),
        (Some("AWS4-HMAC-SHA256 Credential=AKIDCVTEST0123456789/20260101/eu-west-1/route53domains/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000"), "InvalidSignatureException"),
    ];
        for (auth, code) in cases {
            let r = send(auth).await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{auth:?}");
            assert_eq!(r.headers()["content-type"], "application/x-amz-json-1.1");
            assert!(r.headers().contains_key("x-amzn-requestid"));
            assert!(r.headers().contains_key("date"));
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["__type"], code, "{auth:?}: {body}");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        assert_eq!(sink.count(), 0, "a refused request sent mail");
        drop(d);
        sink.stop().await;
        db.cleanup().await;
    }
);

#[tokio::test]
async fn configuration_requires_a_key_pair_and_masks_the_secret() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let base = Bin::new(&db)
        .with_env(
            "CONTACT_VERIFIER__VERIFICATION__SECRET",
            common::app::SECRET,
        )
        .with_env("CONTACT_VERIFIER__AWS__ENABLED", "true");
    let line = base.run(&["check-config"]).err(78, "Configuration");
    assert!(line.contains("aws.access_key_id"), "{line}");
    let with_key = base.with_env("CONTACT_VERIFIER__AWS__ACCESS_KEY_ID", KEY_ID);
    let line = with_key.run(&["check-config"]).err(78, "Configuration");
    assert!(line.contains("aws.secret_access_key"), "{line}");
    let empty = db.dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let line = with_key
        .clone_with(
            "CONTACT_VERIFIER__AWS__SECRET_ACCESS_KEY_FILE",
            empty.to_str().unwrap(),
        )
        .run(&["check-config"])
        .err(78, "Configuration");
    assert!(line.contains("aws.secret_access_key_file"), "{line}");
    let file = db.dir.path().join("aws-secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let ok = with_key
        .clone_with(
            "CONTACT_VERIFIER__AWS__SECRET_ACCESS_KEY_FILE",
            file.to_str().unwrap(),
        )
        .run(&["check-config"]);
    assert!(!ok.stdout.contains(SECRET), "{}", ok.stdout);
    let cfg = ok.ok();
    assert_eq!(
        cfg["aws"],
        json!({"enabled": true, "access_key_id": KEY_ID, "secret_access_key_file": file.to_str().unwrap(),
               "secret_access_key": "***", "region": "us-east-1"})
    );
    let line = with_key
        .clone_with("CONTACT_VERIFIER__AWS__SECRET_ACCESS_KEY", SECRET)
        .clone_with("CONTACT_VERIFIER__AWS__REGION", "EU West")
        .run(&["check-config"])
        .err(78, "Configuration");
    assert!(line.contains("aws.region"), "{line}");
    assert!(!line.contains(SECRET));
    // Off by default: no key needed.
    let off = Bin::new(&db)
        .with_env(
            "CONTACT_VERIFIER__VERIFICATION__SECRET",
            common::app::SECRET,
        )
        .run(&["check-config"])
        .ok();
    assert_eq!(off["aws"]["enabled"], false);
    assert_eq!(off["aws"]["region"], "us-east-1");
    db.cleanup().await;
}

/// `Bin::with_env` on a copy.
trait CloneWith {
    fn clone_with(&self, k: &str, v: &str) -> Bin;
}

impl CloneWith for Bin {
    fn clone_with(&self, k: &str, v: &str) -> Bin {
        Bin {
            env: self.env.clone(),
            cwd: self.cwd.clone(),
        }
        .with_env(k, v)
    }
}

both_backends!(
    operation_pages_are_cut_by_position,
    |db: TestDb| async move {
        // Store::operations_page through Verifier::operations_page: ties in
        // one second, rows added between pages, markers bound to the filter.
        use contact_verifier::domain::OperationStatus;
        use contact_verifier::store::OperationFilter;
        let app = common::app::App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        let add = |n: usize| {
            let v = app.v.clone();
            async move {
                let mut ids = Vec::new();
                for _ in 0..n {
                    let op = v
                        .add_operation("a.com", "RENEW_DOMAIN", None)
                        .await
                        .unwrap();
                    ids.push(op.operation_id);
                }
                ids
            }
        };
        // Seven operations in the same second, three in the next.
        let mut first = add(7).await;
        app.clock.advance(chrono::Duration::seconds(1));
        first.extend(add(3).await);
        for oldest_first in [false, true] {
            let filter = OperationFilter {
                oldest_first,
                ..OperationFilter::default()
            };
            let mut seen: Vec<String> = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let page = app
                    .v
                    .operations_page(&filter, marker.as_deref(), 3)
                    .await
                    .unwrap();
                assert!(page.operations.len() <= 3);
                seen.extend(page.operations.iter().map(|o| o.operation_id.clone()));
                // Newer operations arrive while the client pages through.
                app.clock.advance(chrono::Duration::seconds(1));
                add(1).await;
                match page.next_page_marker {
                    Some(m) => marker = Some(m),
                    None => break,
                }
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), seen.len(), "an operation repeated: {seen:?}");
            assert!(
                first.iter().all(|id| seen.contains(id)),
                "an operation vanished"
            );
            if !oldest_first {
                // Newest first: those added after the first page are not in it.
                assert_eq!(seen.len(), first.len());
            }
        }
        let page = app
            .v
            .operations_page(&OperationFilter::default(), None, 2)
            .await
            .unwrap();
        let marker = page.next_page_marker.unwrap();
        let other = OperationFilter {
            statuses: vec![OperationStatus::SUBMITTED],
            ..OperationFilter::default()
        };
        for (filter, m) in [
            (&other, marker.as_str()),
            (
                &OperationFilter::default(),
                "bm90LWlzc3VlZA.AAAAAAAAAAAAAAAA",
            ),
        ] {
            let e = app.v.operations_page(filter, Some(m), 2).await.unwrap_err();
            assert_eq!(e.code, contact_verifier::ErrorCode::InvalidInput, "{m}");
        }
        assert!(app
            .v
            .operations_page(&OperationFilter::default(), None, 0)
            .await
            .is_err());
        app.done().await;
    }
);
