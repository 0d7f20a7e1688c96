//! Sending under faults, with the real binary, a real SMTP server on
//! loopback and both databases: a sweep
//! killed with -9 in the middle, a relay answering 421 / 451 or refusing
//! connections for a while, a relay slow only to answer the final dot, and
//! no log level printing a secret, a link token or an unmasked address.

mod common;
mod sending;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::Utc;
use common::app::{token_of, SECRET};
use common::smtp::{Fault, SmtpSink, TlsMode};
use common::{Bin, TestDb};

const WAIT: Duration = Duration::from_secs(60);
/// `schedule.claim_lease_secs` of [`sending::bin`].
const LEASE: Duration = Duration::from_secs(12);
/// How long after a kill -9 the killed process's claims are free to take:
/// their lease has run out and its last heartbeat is older than
/// `liveness::LIVE_WITHIN` (it beat at most just before the kill).
fn abandoned_after_kill() -> Duration {
    let live = contact_verifier::liveness::LIVE_WITHIN.to_std().unwrap();
    LEASE.max(live) + Duration::from_secs(2)
}
/// `smtp.max_connections` of [`sending::bin`]: the sends in flight at once.
const IN_FLIGHT: usize = 4;

// kill -9 in the middle of a 10,000-email sweep (once the server has
// received 500), then, after the claim lease, a sweep again: every address
// has an email (none lost), and the addresses mailed twice are at most the
// sends that were in flight at the kill (one per connection: 4).
both_backends!(
    kill_9_mid_sweep_loses_nothing_and_repeats_at_most_the_sends_in_flight,
    |db: TestDb| async move {
        const N: usize = 10_000;
        let _machine = sending::MACHINE.write().await;
        let sink = SmtpSink::start(TlsMode::None).await;
        let bin = sending::bin(&db, &sink);
        let import = sending::import(&bin, N);

        let started = Instant::now();
        let child = sending::spawn_sweep(&bin);
        sink.wait_for(500, WAIT).await;
        let status = sending::kill_9(child);
        let killed_after = started.elapsed();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "the sweep was killed, not finished: {status}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let at_kill = sink.count();
        assert!(at_kill < N, "the kill came in the middle: {at_kill}");

        // The claims of the killed sweep run out; then the rest is sent.
        tokio::time::sleep(abandoned_after_kill()).await;
        let again = Instant::now();
        let summary = sending::sweep(&bin).await;
        let second = again.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;

        let got = sending::per_recipient(&sink);
        let (missing, repeated) = sending::missing_and_repeated(&got, &sending::addresses(N));
        eprintln!(
            "{:?}: import {import:?}; killed after {killed_after:?} with {at_kill} received; \
             second sweep {second:?}: {summary}; duplicates {}: {repeated:?}",
            db.backend,
            repeated.len()
        );
        assert!(
            missing.is_empty(),
            "{} addresses lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert!(
            repeated.iter().all(|(_, n)| *n == 2),
            "none more than twice: {repeated:?}"
        );
        assert!(
            repeated.len() <= IN_FLIGHT,
            "{} addresses mailed twice, more than the {IN_FLIGHT} sends in flight: {repeated:?}",
            repeated.len()
        );
        assert_eq!(got.len(), N);
        assert_eq!(
            sending::count(&summary, "initial_sent") as usize,
            sink.count() - at_kill,
            "the second sweep counts what it sent"
        );
        assert_eq!(sending::count(&summary, "failed"), 0, "{summary}");
        sink.stop().await;
        db.cleanup().await;
    }
);

// The relay answers 421 / 451 or refuses connections for a while, then
// recovers: every attempt meanwhile is a Failed notification record (with
// the relay's code), no email; after the recovery sweeps deliver every
// address exactly once.
async fn relay_down_for_a_while_then_everything_once(db: TestDb, fault: Fault, code: &str) {
    const N: usize = 40;
    let _machine = sending::MACHINE.read().await;
    let sink = SmtpSink::start(TlsMode::None).await;
    let bin = sending::bin(&db, &sink);
    sending::import(&bin, N);
    let want = sending::addresses(N);

    sink.set_fault(fault);
    let mut failed = 0;
    for round in 0..2 {
        if round > 0 {
            // Past the retry wait (retry_initial_secs 1, retry_max_secs 2).
            tokio::time::sleep(Duration::from_millis(2_500)).await;
        }
        let s = sending::sweep(&bin).await;
        assert_eq!(
            (
                sending::count(&s, "initial_sent"),
                sending::count(&s, "failed")
            ),
            (0, N as u64),
            "{fault:?}, round {round}: {s}"
        );
        failed += N as u64;
    }
    assert_eq!(sink.count(), 0, "nothing accepted while {fault:?}");

    sink.set_fault(Fault::None);
    let recovered = Instant::now();
    let mut sent = 0;
    while per_address_done(&sink, &want) < N {
        assert!(
            recovered.elapsed() < Duration::from_secs(30),
            "{fault:?}: not everything delivered 30 s after the recovery: {:?}",
            sending::per_recipient(&sink)
        );
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let s = sending::sweep(&bin).await;
        sent += sending::count(&s, "initial_sent");
        failed += sending::count(&s, "failed");
    }
    // A last sweep after every retry time: nothing more goes out.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let last = sending::sweep(&bin).await;
    assert_eq!(sending::count(&last, "initial_sent"), 0, "{last}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let got = sending::per_recipient(&sink);
    let (missing, repeated) = sending::missing_and_repeated(&got, &want);
    assert!(
        missing.is_empty() && repeated.is_empty(),
        "{fault:?}: missing {missing:?}, repeated {repeated:?}"
    );
    assert_eq!(sink.count(), N);
    assert_eq!(sent, N as u64);

    let notes = sending::notes(&db).await;
    for a in &want {
        let of: Vec<_> = notes.iter().filter(|n| &n.email_key == a).collect();
        let succeeded = of.iter().filter(|n| n.status == "Succeeded").count();
        let refused: Vec<_> = of.iter().filter(|n| n.status == "Failed").collect();
        assert_eq!(succeeded, 1, "{a}: {of:?}");
        assert!(
            refused.len() >= 2,
            "{a}: both refused attempts on record: {of:?}"
        );
        assert!(
            refused
                .iter()
                .all(|n| n.error_code.as_deref() == Some(code)),
            "{a}: refusals recorded as {code}: {of:?}"
        );
        assert!(of.iter().all(|n| n.status != "Started"), "{a}: {of:?}");
    }
    assert_eq!(
        notes.iter().filter(|n| n.status == "Failed").count() as u64,
        failed,
        "one Failed record per attempt the summaries counted"
    );
    sink.stop().await;
    db.cleanup().await;
}

/// How many of `want` the server has a message for.
fn per_address_done(sink: &SmtpSink, want: &[String]) -> usize {
    let got = sending::per_recipient(sink);
    want.iter().filter(|a| got.contains_key(*a)).count()
}

both_backends!(
    relay_answering_451_for_a_while_then_everything_once,
    |db: TestDb| relay_down_for_a_while_then_everything_once(db, Fault::Transient, "451")
);

both_backends!(
    relay_answering_421_for_a_while_then_everything_once,
    |db: TestDb| relay_down_for_a_while_then_everything_once(db, Fault::ServiceUnavailable, "421")
);

both_backends!(
    relay_refusing_connections_for_a_while_then_everything_once,
    |db: TestDb| relay_down_for_a_while_then_everything_once(
        db,
        Fault::RefuseConnections,
        "ConnectionError"
    )
);

// A relay slow only to answer the final dot: 4 s, longer than
// smtp.timeout_secs (2) and shorter than smtp.data_timeout_secs (8). Each
// message is delivered once and recorded Succeeded, not Timeout then sent
// again.
both_backends!(
    relay_slow_to_answer_the_final_dot_gets_each_message_once,
    |db: TestDb| async move {
        const N: usize = 8;
        let _machine = sending::MACHINE.read().await;
        let sink = SmtpSink::start(TlsMode::None).await;
        let bin = sending::bin(&db, &sink)
            .with_env("CONTACT_VERIFIER__SMTP__TIMEOUT_SECS", "2")
            .with_env("CONTACT_VERIFIER__SMTP__DATA_TIMEOUT_SECS", "8")
            .with_env("CONTACT_VERIFIER__SCHEDULE__CLAIM_LEASE_SECS", "10");
        sending::import(&bin, N);
        sink.set_delay(Duration::from_secs(4));

        let started = Instant::now();
        let s = sending::sweep(&bin).await;
        let took = started.elapsed();
        eprintln!(
            "{:?}: sweep with a 4 s final dot: {took:?}: {s}",
            db.backend
        );
        assert_eq!(
            (
                sending::count(&s, "initial_sent"),
                sending::count(&s, "failed")
            ),
            (N as u64, 0),
            "{s}"
        );
        // A resend waits for the dot as well.
        let resent = bin
            .run(&["contact", "resend", "--external-id", "DNA-0"])
            .ok();
        assert_eq!(resent["Notification"]["status"], "Succeeded", "{resent}");

        // Had a send been recorded as a Timeout, its retry would be due now.
        sink.set_delay(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let again = sending::sweep(&bin).await;
        assert_eq!(
            sending::count(&again, "initial_sent") + sending::count(&again, "failed"),
            0,
            "{again}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;

        let got = sending::per_recipient(&sink);
        let mut want = sending::addresses(N);
        let (missing, _) = sending::missing_and_repeated(&got, &want);
        assert!(missing.is_empty(), "{missing:?}");
        want.remove(0);
        for a in &want {
            assert_eq!(got[a], 1, "{a} got {} emails: {got:?}", got[a]);
        }
        assert_eq!(got["r0@example.com"], 2, "the sweep's email and the resend");
        let notes = sending::notes(&db).await;
        assert_eq!(notes.len(), N + 1, "{notes:?}");
        assert!(
            notes
                .iter()
                .all(|n| n.status == "Succeeded" && n.error_code.is_none()),
            "every attempt Succeeded: {notes:?}"
        );
        sink.stop().await;
        db.cleanup().await;
    }
);

const RELAY_USER: &str = "relay-user-3f9a";
const RELAY_PASSWORD: &str = "relay-pw-Zq8rT2vK";

// No log level prints a secret: a full flow (contact add, a sweep through a
// relay that requires AUTH, `contact confirm` with the emailed token,
// resends) with the log at trace, by `log.level` (JSON lines, STARTTLS) and
// by RUST_LOG (human-readable lines, plain text). The stderr of every
// command holds no SMTP password (plain or in base64, as AUTH sends it), no
// link token or its MAC half, no link secret and no unmasked address.
both_backends!(
    no_log_level_prints_a_secret_a_token_or_an_address,
    |db: TestDb| async move {
        let _machine = sending::MACHINE.read().await;
        for pass in 0..2 {
            let mode = if pass == 0 {
                TlsMode::StartTls
            } else {
                TlsMode::None
            };
            let sink = SmtpSink::start(mode).await;
            sink.require_auth(RELAY_USER, RELAY_PASSWORD);
            let mut bin = sending::bin(&db, &sink)
                .with_env("CONTACT_VERIFIER__SMTP__USERNAME", RELAY_USER)
                .with_env("CONTACT_VERIFIER__SMTP__PASSWORD", RELAY_PASSWORD)
                .with_env("CONTACT_VERIFIER__LOG__LEVEL", "trace");
            if pass == 0 {
                bin = bin
                    .with_env("CONTACT_VERIFIER__SMTP__TLS", "starttls")
                    .with_env("CONTACT_VERIFIER__SMTP__HOST", "localhost")
                    .with_env(
                        "CONTACT_VERIFIER__SMTP__CA_FILE",
                        sink.ca_file().to_str().unwrap(),
                    )
                    .with_env("CONTACT_VERIFIER__LOG__FORMAT", "json");
            } else {
                bin = bin
                    .with_env("RUST_LOG", "trace")
                    .with_env("CONTACT_VERIFIER__LOG__FORMAT", "pretty");
            }
            let mut logs = Logs::default();
            let alice = format!("Alice.Pass{pass}@Example.com");
            let bob = format!("bob.pass{pass}@example.com");
            let (a, b) = (format!("DNA-A{pass}"), format!("DNA-B{pass}"));
            let (da, db_) = (format!("alice{pass}.com"), format!("bob{pass}.com"));
            for (id, email, domain) in [(&a, &alice, &da), (&b, &bob, &db_)] {
                logs.run(
                    &bin,
                    &[
                        "contact",
                        "add",
                        "--external-id",
                        id,
                        "--email",
                        email,
                        "--domain",
                        domain,
                    ],
                );
            }
            let s = logs.run(&bin, &["sweep"]);
            assert_eq!(s["initial_sent"], 2, "{s}");
            let mails = sink.wait_for(2, WAIT).await;
            let to_alice = mails.iter().find(|m| m.to[0] == alice).unwrap();
            let token = token_of(to_alice);
            let confirmed = logs.run(&bin, &["contact", "confirm", &token]);
            assert_eq!(confirmed["VerificationStatus"], "Validated");
            let resent = logs.run(&bin, &["contact", "resend", "--email", &bob]);
            assert_eq!(resent["Notification"]["status"], "Succeeded", "{resent}");
            logs.run(&bin, &["contact", "resend", "--external-id", &a]);
            logs.run(&bin, &["domain", "resend", &db_]);
            logs.run(&bin, &["contact", "notifications", "--email", &bob]);
            logs.run(&bin, &["contact", "show", "--email", &alice]);
            let mails = sink.wait_for(4, WAIT).await;

            // The log really is verbose: the sends are there, and debug or
            // trace lines besides.
            assert!(
                logs.text.contains("email_sent")
                    && (logs.text.contains("DEBUG") || logs.text.contains("TRACE")),
                "pass {pass}: the log is not at trace: {}",
                context(&logs.text, 0)
            );
            let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
            let mut forbidden = vec![
                ("the SMTP password".to_string(), RELAY_PASSWORD.to_string()),
                ("the password in base64".into(), b64(RELAY_PASSWORD)),
                (
                    "the AUTH PLAIN line".into(),
                    b64(&format!("\0{RELAY_USER}\0{RELAY_PASSWORD}")),
                ),
                ("the link secret".into(), SECRET.to_string()),
                ("an address".into(), alice.to_lowercase()),
                ("an address".into(), bob.to_lowercase()),
            ];
            let tokens: BTreeSet<String> = mails.iter().map(token_of).collect();
            for t in &tokens {
                forbidden.push(("a link token".into(), t.clone()));
                forbidden.push(("a token's MAC half".into(), t[22..].to_string()));
            }
            let haystack = logs.text.to_lowercase();
            for (what, needle) in &forbidden {
                let at = haystack.find(&needle.to_lowercase());
                assert!(
                    at.is_none(),
                    "pass {pass}: the log holds {what} ({needle}): ...{}...",
                    context(&logs.text, at.unwrap_or(0))
                );
            }
            eprintln!(
                "{:?} pass {pass}: {} bytes of trace log, {} lines, clean",
                db.backend,
                logs.text.len(),
                logs.text.lines().count()
            );
            sink.stop().await;
        }
        db.cleanup().await;
    }
);

/// The stderr of every command run.
#[derive(Default)]
struct Logs {
    text: String,
}

impl Logs {
    fn run(&mut self, bin: &Bin, args: &[&str]) -> serde_json::Value {
        let mut cmd = bin.command(args);
        // Only what the test sets: no RUST_LOG from the environment running it.
        if !bin.env.iter().any(|(k, _)| k == "RUST_LOG") {
            cmd.env_remove("RUST_LOG");
        }
        let out = cmd.output().expect("run contact-verifier");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{args:?} failed ({}): {}",
            out.status,
            context(&stderr, stderr.len())
        );
        self.text.push_str(&stderr);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

/// About 300 characters of `text` around byte `at`.
fn context(text: &str, at: usize) -> String {
    let mut start = at.saturating_sub(150);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + 150).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    text[start..end].to_string()
}

// A sweep killed with -9 leaves the notification records of its claimed
// sends at `Started`. After the lease a later sweep mails those addresses
// again and closes the old records (Failed, code Interrupted: the relay may
// or may not have taken the message), so no record of an address it mailed
// again stays `Started` older than the lease.
both_backends!(
    a_later_sweep_closes_the_started_records_of_a_killed_one,
    |db: TestDb| async move {
        const N: usize = 200;
        let _machine = sending::MACHINE.write().await;
        let sink = SmtpSink::start(TlsMode::None).await;
        let bin = sending::bin(&db, &sink);
        sending::import(&bin, N);
        // Slow enough that the kill finds sends in flight.
        sink.set_delay(Duration::from_millis(200));
        let child = sending::spawn_sweep(&bin);
        sink.wait_for(20, WAIT).await;
        sending::kill_9(child);
        let started: Vec<sending::Note> = sending::notes(&db)
            .await
            .into_iter()
            .filter(|n| n.status == "Started")
            .collect();
        let open: BTreeSet<String> = started.iter().map(|n| n.email_key.clone()).collect();
        assert!(!open.is_empty(), "the kill leaves records at Started");

        tokio::time::sleep(abandoned_after_kill()).await;
        sink.set_delay(Duration::ZERO);
        sink.clear();
        sending::sweep(&bin).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mailed_again: BTreeSet<String> = sending::per_recipient(&sink).into_keys().collect();
        let reclaimed: Vec<&String> = open.intersection(&mailed_again).collect();
        assert!(
            !reclaimed.is_empty(),
            "the later sweep mails the addresses of the killed sends"
        );
        let old = Utc::now() - chrono::Duration::from_std(LEASE).unwrap();
        let notes = sending::notes(&db).await;
        let stuck: Vec<_> = notes
            .iter()
            .filter(|n| {
                n.status == "Started" && n.created_at < old && mailed_again.contains(&n.email_key)
            })
            .collect();
        eprintln!(
            "{:?}: {} records at Started after the kill; {} of their addresses mailed again; \
             {} still Started afterwards",
            db.backend,
            open.len(),
            reclaimed.len(),
            stuck.len()
        );
        assert!(
            stuck.is_empty(),
            "{} records older than the lease still Started for addresses mailed again: {:?}",
            stuck.len(),
            &stuck[..stuck.len().min(5)]
        );
        // Closed as failed with an unknown outcome: the relay may or may not
        // have taken the message.
        for left in &started {
            let now = notes.iter().find(|n| n.id == left.id).unwrap();
            assert_eq!(
                (now.status.as_str(), now.error_code.as_deref()),
                ("Failed", Some("Interrupted")),
                "{now:?}"
            );
        }
        sink.stop().await;
        db.cleanup().await;
    }
);
