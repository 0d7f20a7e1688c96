//! Several workers share the work: `sweep`
//! processes started at once on one database split the due addresses
//! between them, and every address gets exactly one email. This is how a
//! registrar grows past one host: more processes on one database.

mod common;
mod sending;

use std::time::{Duration, Instant};

use common::smtp::{SmtpSink, TlsMode};
use common::TestDb;

/// Due addresses shared by the three processes.
const ADDRESSES: usize = 5_000;
const PROCESSES: usize = 3;

// 3 `sweep` processes started at once over 5,000 due addresses, with
// `smtp.max_connections = 4` each: the server receives exactly one email per
// address (recipient sets compared: none missing, none twice), every process
// sends a share, and the shares add up.
both_backends!(
    three_sweep_processes_share_5000_addresses_and_mail_each_once,
    |db: TestDb| async move {
        let _machine = sending::MACHINE.write().await;
        let sink = SmtpSink::start(TlsMode::None).await;
        let bin = sending::bin(&db, &sink);
        let import = sending::import(&bin, ADDRESSES);

        let started = Instant::now();
        let children: Vec<_> = (0..PROCESSES).map(|_| sending::spawn_sweep(&bin)).collect();
        let mut summaries = Vec::new();
        for child in children {
            summaries.push(sending::finish(child).await);
        }
        let took = started.elapsed();
        // Anything still on its way would show up now.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let shares: Vec<u64> = summaries
            .iter()
            .map(|s| sending::count(s, "initial_sent"))
            .collect();
        eprintln!(
            "{:?}: import of {ADDRESSES} lines {import:?}; {PROCESSES} sweeps {took:?}; \
             shares {shares:?}; {} emails received",
            db.backend,
            sink.count()
        );
        let got = sending::per_recipient(&sink);
        let (missing, repeated) =
            sending::missing_and_repeated(&got, &sending::addresses(ADDRESSES));
        assert!(
            missing.is_empty(),
            "{} addresses got no email, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert!(
            repeated.is_empty(),
            "{} addresses got more than one email, e.g. {:?}",
            repeated.len(),
            &repeated[..repeated.len().min(10)]
        );
        assert_eq!(got.len(), ADDRESSES, "no email to anyone else");
        assert_eq!(sink.count(), ADDRESSES);
        for s in &summaries {
            assert!(
                sending::count(s, "initial_sent") > 0,
                "every process sends a share: {summaries:?}"
            );
            assert_eq!(sending::count(s, "failed"), 0, "{s}");
        }
        assert_eq!(
            shares.iter().sum::<u64>(),
            ADDRESSES as u64,
            "the summaries count every email once: {summaries:?}"
        );
        sink.stop().await;
        db.cleanup().await;
    }
);

/// Two `sweep` processes over one backlog while the relay is slow: each
/// send takes 1.5 s at the final dot (within smtp.data_timeout_secs 3;
/// smtp.timeout_secs 1, schedule.claim_lease_secs 4, the least the
/// configuration accepts). The second process starts once the first has
/// been sending for longer than the lease. Every address still gets exactly
/// one email: "two sweeps never mail one address for the same event".
async fn two_sweeps_with_a_slow_relay_mail_each_address_once(db: TestDb) {
    const N: usize = 40;
    let _machine = sending::MACHINE.write().await;
    let sink = SmtpSink::start(TlsMode::None).await;
    let bin = sending::bin(&db, &sink)
        .with_env("CONTACT_VERIFIER__SMTP__TIMEOUT_SECS", "1")
        .with_env("CONTACT_VERIFIER__SMTP__DATA_TIMEOUT_SECS", "3")
        .with_env("CONTACT_VERIFIER__SCHEDULE__CLAIM_LEASE_SECS", "4");
    sending::import(&bin, N);
    sink.set_delay(Duration::from_millis(1_500));

    let first = sending::spawn_sweep(&bin);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let at_second = sink.count();
    let second = sending::spawn_sweep(&bin);
    let (a, b) = (sending::finish(first).await, sending::finish(second).await);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let got = sending::per_recipient(&sink);
    let (missing, repeated) = sending::missing_and_repeated(&got, &sending::addresses(N));
    eprintln!(
        "{:?}: second sweep started with {at_second} received; first {a}; second {b}; \
         {} emails, {} addresses mailed twice or more: {repeated:?}",
        db.backend,
        sink.count(),
        repeated.len()
    );
    assert!(missing.is_empty(), "{missing:?}");
    assert!(
        repeated.is_empty(),
        "{} addresses mailed by both sweeps: {repeated:?}",
        repeated.len()
    );
    assert_eq!(
        sending::count(&a, "initial_sent") + sending::count(&b, "initial_sent"),
        N as u64
    );
    sink.stop().await;
    db.cleanup().await;
}

mod two_sweeps_with_a_slow_relay_mail_each_address_once {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let db = TestDb::new(common::Backend::Sqlite).await.unwrap();
        two_sweeps_with_a_slow_relay_mail_each_address_once(db).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(db) = TestDb::new(common::Backend::Postgres).await {
            two_sweeps_with_a_slow_relay_mail_each_address_once(db).await;
        }
    }
}
