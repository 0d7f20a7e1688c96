//! Store conformance suite: every rule the store keeps, run on SQLite and on Postgres alike.
//!
//! Each case is declared once with `both_backends!`, so the two backends are
//! held to the same behaviour: the version check of the one write path,
//! paging the sweep's due list, claims and their leases, the operation
//! compare-and-set with a NULL flag, timestamp order with whole and
//! fractional seconds, the email-change and address-left rules, and the
//! notification records. Times are fixed; nothing reads the wall clock.
//! One known disagreement is pinned, not hidden: below a microsecond
//! Postgres truncates where SQLite does not (its Postgres half is ignored).

mod common;

use chrono::{DateTime, Duration, Utc};
use common::TestDb;
use contact_verifier::config::Settings;
use contact_verifier::domain::{
    ContactEmail, DomainName, EmailKey, ExternalId, Notice, OperationStatus, OperationType, Policy,
    Status, StatusFlag, Verification,
};
use contact_verifier::store::{
    Change, Claim, ContactUpsert, NotificationRecord, NotificationStatus, OperationRecord, Outcome,
    Store, UpsertOutcome, VOID_EMAIL_CHANGED,
};

// ---------------------------------------------------------------- helpers

/// 2026-06-01T09:00:00Z, the instant every case starts from.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

fn micros(n: i64) -> Duration {
    Duration::microseconds(n)
}

fn email(addr: &str) -> ContactEmail {
    ContactEmail::parse(addr).expect("valid email")
}

fn key_of(addr: &str) -> EmailKey {
    email(addr).key()
}

fn ext(id: &str) -> ExternalId {
    ExternalId::parse(id).expect("valid external id")
}

/// A store on the test database, migrated (a second call opens a second,
/// independent pool, as another process would).
async fn open(db: &TestDb) -> Store {
    let mut settings = Settings::default();
    settings.database.url = db.url.clone();
    let store = Store::connect(&settings.database).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

/// Creates or updates contact `id` with `addr` and one domain of its own
/// (`ID.example.com`, lowercased), as a registrant contact has.
async fn add(store: &Store, id: &str, addr: &str, now: DateTime<Utc>) -> UpsertOutcome {
    let domain =
        DomainName::parse(&format!("{}.example.com", id.to_lowercase())).expect("valid domain");
    store
        .upsert_contact(
            &ContactUpsert {
                external_id: ext(id),
                email: email(addr),
                domains: vec![domain],
                language: None,
                import: None,
            },
            now,
            &Policy::default(),
        )
        .await
        .expect("upsert contact")
}

/// The stored verification of `addr`, which must exist.
async fn read(store: &Store, addr: &str) -> Verification {
    store
        .verification(&key_of(addr))
        .await
        .expect("read verification")
        .unwrap_or_else(|| panic!("no verification for {addr}"))
}

/// A verification's state as the caller sets it, for comparing a committed
/// copy with the stored row: every field but the due time, which the store
/// computes on each write (`due_verifications` reports it and is checked
/// where it matters).
fn state(v: &Verification) -> impl PartialEq + std::fmt::Debug {
    (
        (
            v.email_key.clone(),
            v.email.clone(),
            v.status,
            v.key.clone(),
            v.version,
        ),
        (
            v.last_notification_at,
            v.reminder_day_covered,
            v.expiry_notice_owed,
            v.failures,
            v.retry_at,
        ),
        (v.claim_owner.clone(), v.claim_until, v.validated_at),
    )
}

/// The due time `due_verifications` reports for `addr` at `now`, if due.
async fn due_time(store: &Store, addr: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let key = key_of(addr);
    store
        .due_verifications(now, None, 1000)
        .await
        .expect("due verifications")
        .into_iter()
        .find(|(_, v)| v.email_key == key)
        .map(|(due, _)| due)
}

/// Gives the address a key and makes it Pending (as a delivered first email
/// does), committed at `now`; returns the stored row.
async fn make_pending(store: &Store, addr: &str, now: DateTime<Utc>) -> Verification {
    let p = Policy::default();
    let mut v = read(store, addr).await;
    let key = Verification::prepare_key(now, &p);
    v.install_key(key.clone());
    v.sent(Notice::Verification, now);
    let change = Change {
        new_key: Some(&key),
        ..Change::default()
    };
    assert!(store.commit(&mut v, &change, now, &p).await.unwrap());
    let stored = read(store, addr).await;
    assert_eq!(state(&stored), state(&v));
    stored
}

/// Email keys `due_verifications` returns at `now` (one page of 1000).
async fn due_keys(store: &Store, now: DateTime<Utc>) -> Vec<String> {
    store
        .due_verifications(now, None, 1000)
        .await
        .expect("due verifications")
        .into_iter()
        .map(|(_, v)| v.email_key.as_str().to_string())
        .collect()
}

/// Pages through everything due at `now`, `limit` rows at a time, as the
/// sweep does (the cursor is the last row's `(due_at, email_key)`).
async fn page_all(store: &Store, now: DateTime<Utc>, limit: i64) -> Vec<(DateTime<Utc>, String)> {
    let mut out = Vec::new();
    let mut cursor: Option<(DateTime<Utc>, EmailKey)> = None;
    loop {
        let page = store
            .due_verifications(now, cursor.as_ref(), limit)
            .await
            .expect("due verifications");
        assert!(
            page.len() as i64 <= limit,
            "page of {} exceeds limit {limit}",
            page.len()
        );
        let Some((due, last)) = page.last() else {
            break;
        };
        cursor = Some((*due, last.email_key.clone()));
        out.extend(
            page.into_iter()
                .map(|(due, v)| (due, v.email_key.as_str().to_string())),
        );
        assert!(
            out.len() <= 10_000,
            "paging does not terminate (limit {limit})"
        );
    }
    out
}

fn assert_strictly_increasing(rows: &[(DateTime<Utc>, String)], what: &str) {
    for pair in rows.windows(2) {
        assert!(
            pair[0] < pair[1],
            "{what}: not in strict (due_at, email_key) order: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
}

fn operation(id: &str, status: OperationStatus, flag: Option<StatusFlag>) -> OperationRecord {
    OperationRecord {
        operation_id: id.to_string(),
        status,
        op_type: OperationType::UPDATE_DOMAIN_CONTACT,
        domain_name: DomainName::parse("example.com").unwrap(),
        message: None,
        submitted_date: t0(),
        last_updated_date: t0(),
        status_flag: flag,
    }
}

// ------------------------------------------------------- 1. version check

both_backends!(
    a_commit_on_a_stale_version_returns_false_and_writes_nothing,
    |db: TestDb| async move {
        let store = open(&db).await;
        let p = Policy::default();
        add(&store, "DNA-1", "alice@example.com", t0()).await;
        let mut first = read(&store, "alice@example.com").await;
        let mut second = read(&store, "alice@example.com").await;
        assert_eq!(first, second);
        let read_version = first.version;

        // The first copy commits a failed send (backoff) at its version.
        let now = t0() + secs(10);
        first.send_failed(now, &p);
        assert!(store
            .commit(&mut first, &Change::default(), now, &p)
            .await
            .unwrap());
        assert_eq!(first.version, read_version + 1);

        // The second copy, read at the same version, tries to write a claim,
        // a new key and a notification: refused, and none of it lands.
        second.claim("owner-b", now, &p);
        let key = Verification::prepare_key(now, &p);
        second.install_key(key.clone());
        let note = NotificationRecord::started(&second.email_key, Notice::Verification, now);
        let change = Change {
            new_key: Some(&key),
            notification: Some(&note),
            ..Change::default()
        };
        assert!(!store.commit(&mut second, &change, now, &p).await.unwrap());
        assert_eq!(
            second.version, read_version,
            "a refused commit keeps the version"
        );

        let stored = read(&store, "alice@example.com").await;
        assert_eq!(
            state(&stored),
            state(&first),
            "the stored row is the first commit's"
        );
        let retry_at = first.retry_at.unwrap();
        assert_eq!(
            due_time(&store, "alice@example.com", retry_at - secs(1)).await,
            None
        );
        assert_eq!(
            due_time(&store, "alice@example.com", retry_at).await,
            Some(retry_at),
            "due again after the first commit's backoff"
        );
        assert_eq!(stored.claim_owner, None);
        assert_eq!(stored.key, None);
        assert_eq!(store.key(&key.id).await.unwrap(), None, "no key row");
        assert!(
            store
                .notifications(&second.email_key, 10)
                .await
                .unwrap()
                .is_empty(),
            "no notification row"
        );

        // Re-read, the same change goes through.
        let mut fresh = read(&store, "alice@example.com").await;
        fresh.claim("owner-b", now, &p);
        assert!(store
            .commit(&mut fresh, &Change::default(), now, &p)
            .await
            .unwrap());
        assert_eq!(
            state(&read(&store, "alice@example.com").await),
            state(&fresh)
        );
        store.close().await;
        db.cleanup().await;
    }
);

// ------------------------------------------------------------- 2. paging

both_backends!(
    paging_returns_every_row_with_an_equal_due_at_exactly_once_in_order,
    |db: TestDb| async move {
        let store = open(&db).await;
        const SAME: usize = 30;
        // Inserted out of key order, all due at t0.
        for i in 0..SAME {
            let n = (i * 7) % SAME;
            add(
                &store,
                &format!("DNA-{n}"),
                &format!("p{n:02}@example.com"),
                t0(),
            )
            .await;
        }
        // Three due earlier, two due later than the sweep's `now`.
        for (i, name) in ["early-c", "early-a", "early-b"].iter().enumerate() {
            add(
                &store,
                &format!("E-{i}"),
                &format!("{name}@example.com"),
                t0() - secs(10),
            )
            .await;
        }
        for (i, name) in ["late-b", "late-a"].iter().enumerate() {
            add(
                &store,
                &format!("L-{i}"),
                &format!("{name}@example.com"),
                t0() + secs(10),
            )
            .await;
        }

        let mut expected: Vec<(DateTime<Utc>, String)> = ["early-a", "early-b", "early-c"]
            .iter()
            .map(|n| (t0() - secs(10), format!("{n}@example.com")))
            .collect();
        expected.extend((0..SAME).map(|n| (t0(), format!("p{n:02}@example.com"))));

        for limit in [1, 3, 4, 30, 33, 34, 1000] {
            let rows = page_all(&store, t0(), limit).await;
            assert_strictly_increasing(&rows, &format!("limit {limit}"));
            assert_eq!(rows, expected, "limit {limit}");
        }

        // Once `now` reaches them, the later rows follow, after the rest.
        let rows = page_all(&store, t0() + secs(10), 4).await;
        assert_eq!(rows.len(), expected.len() + 2);
        assert_strictly_increasing(&rows, "later now");
        assert_eq!(
            rows[rows.len() - 2..],
            [
                (t0() + secs(10), "late-a@example.com".to_string()),
                (t0() + secs(10), "late-b@example.com".to_string()),
            ]
        );
        store.close().await;
        db.cleanup().await;
    }
);

// ------------------------------------------------------------- 3. claims

both_backends!(
    a_claim_excludes_the_row_from_due_and_from_a_second_owner,
    |db: TestDb| async move {
        // Two pools on one database, as two processes.
        let store_a = open(&db).await;
        let store_b = open(&db).await;
        let p = Policy::default();
        add(&store_a, "DNA-1", "alice@example.com", t0()).await;
        let addr_key = key_of("alice@example.com");
        assert_eq!(due_keys(&store_b, t0()).await, [addr_key.as_str()]);

        let mut a = read(&store_a, "alice@example.com").await;
        let stale_b = read(&store_b, "alice@example.com").await;
        a.claim("owner-a", t0(), &p);
        assert!(a.is_claimed(t0()));
        assert!(store_a
            .commit(&mut a, &Change::default(), t0(), &p)
            .await
            .unwrap());

        // While the lease runs, no sweep sees the row.
        for later in [0, 1, 150, 299] {
            assert!(
                due_keys(&store_b, t0() + secs(later)).await.is_empty(),
                "due at t0+{later}s while claimed"
            );
        }

        // Owner B claims from its read before A's commit: refused.
        let mut b = stale_b;
        b.claim("owner-b", t0() + secs(1), &p);
        assert!(!store_b
            .commit(&mut b, &Change::default(), t0() + secs(1), &p)
            .await
            .unwrap());
        let stored = read(&store_b, "alice@example.com").await;
        assert_eq!(state(&stored), state(&a));
        assert!(stored.is_claimed_by("owner-a"));
        assert_eq!(stored.claim_until, Some(t0() + p.claim_lease));

        store_a.close().await;
        store_b.close().await;
        db.cleanup().await;
    }
);

both_backends!(
    a_claim_lease_that_ran_out_frees_the_row_for_another_owner,
    |db: TestDb| async move {
        let store_a = open(&db).await;
        let store_b = open(&db).await;
        let p = Policy::default();
        add(&store_a, "DNA-1", "alice@example.com", t0()).await;
        let addr_key = key_of("alice@example.com");

        let mut a = read(&store_a, "alice@example.com").await;
        a.claim("owner-a", t0(), &p);
        assert!(store_a
            .commit(&mut a, &Change::default(), t0(), &p)
            .await
            .unwrap());
        let until = a.claim_until.unwrap();
        assert_eq!(until, t0() + p.claim_lease);

        // One second before the lease ends: still held.
        assert!(due_keys(&store_b, until - secs(1)).await.is_empty());
        // At the end of the lease (the domain's `is_claimed` is false there)
        // and after it, the row is due again.
        assert!(!a.is_claimed(until));
        for now in [until, until + secs(1), until + secs(3600)] {
            assert_eq!(
                due_keys(&store_b, now).await,
                [addr_key.as_str()],
                "due at {now}"
            );
        }

        // B re-reads and claims: accepted.
        let now = until + secs(1);
        let mut b = read(&store_b, "alice@example.com").await;
        assert_eq!(b.version, a.version);
        assert!(!b.is_claimed(now));
        b.claim("owner-b", now, &p);
        assert!(store_b
            .commit(&mut b, &Change::default(), now, &p)
            .await
            .unwrap());
        let stored = read(&store_a, "alice@example.com").await;
        assert!(stored.is_claimed_by("owner-b"));
        assert_eq!(stored.claim_until, Some(now + p.claim_lease));
        assert!(due_keys(&store_a, now).await.is_empty(), "B's claim holds");

        // A, still holding its old copy, can no longer write (e.g. a release).
        a.release();
        assert!(!store_a
            .commit(&mut a, &Change::default(), now, &p)
            .await
            .unwrap());
        assert!(read(&store_a, "alice@example.com")
            .await
            .is_claimed_by("owner-b"));

        store_a.close().await;
        store_b.close().await;
        db.cleanup().await;
    }
);

/// The claims of a sweep's chunk: each address with a fresh key and its
/// `Started` record, as the courier makes them.
fn first_email_claims(vs: Vec<Verification>, now: DateTime<Utc>, p: &Policy) -> Vec<Claim> {
    vs.into_iter()
        .map(|v| Claim {
            note: NotificationRecord::started(&v.email_key, Notice::Verification, now),
            fresh_key: Some(Verification::prepare_key(now, p)),
            notice: Notice::Verification,
            verification: v,
        })
        .collect()
}

/// What the courier records once the relay took the email of `c`.
fn accepted(c: &Claim, owner: &str, now: DateTime<Utc>) -> Outcome {
    let mut note = c.note.clone();
    note.succeed(now);
    Outcome {
        email_key: c.verification.email_key.clone(),
        claimed: c.verification.clone(),
        owner: owner.to_string(),
        notice: c.notice,
        fresh_key: c.fresh_key.clone(),
        accepted: true,
        attempted: true,
        note,
        bounce: None,
    }
}

both_backends!(
    a_chunk_claim_takes_only_the_rows_still_at_the_version_read,
    |db: TestDb| async move {
        let store = open(&db).await;
        let other = open(&db).await;
        let p = Policy::default();
        let addrs = ["a@example.com", "b@example.com", "c@example.com"];
        for (i, a) in addrs.iter().enumerate() {
            add(&store, &format!("DNA-{i}"), a, t0()).await;
        }
        let mut read_first = Vec::new();
        for a in addrs {
            read_first.push(read(&store, a).await);
        }
        // Another process claims b between the read and the chunk's claim.
        let mut b = read(&other, "b@example.com").await;
        b.claim("owner-b", t0(), &p);
        assert!(other
            .commit(&mut b, &Change::default(), t0(), &p)
            .await
            .unwrap());

        let now = t0() + secs(1);
        let won = store
            .claim_batch(first_email_claims(read_first, now, &p), "owner-a", now, &p)
            .await
            .unwrap();
        let won_keys: Vec<&str> = won
            .iter()
            .map(|c| c.verification.email_key.as_str())
            .collect();
        assert_eq!(
            won_keys,
            [
                key_of("a@example.com").as_str(),
                key_of("c@example.com").as_str()
            ]
        );
        for c in &won {
            // As written: claimed by A, at the stored version.
            let stored = read(&store, c.verification.email.as_str()).await;
            assert_eq!(state(&stored), state(&c.verification));
            assert!(stored.is_claimed_by("owner-a"));
            let notes = store
                .notifications(&c.verification.email_key, 10)
                .await
                .unwrap();
            assert_eq!(notes.len(), 1);
            assert_eq!(notes[0].status, NotificationStatus::Started);
            // The fresh key is stored before the email leaves.
            let key = c.fresh_key.as_ref().unwrap();
            assert!(store.key(&key.id).await.unwrap().is_some());
        }
        // b is untouched: still B's, no record, no key of A's.
        assert!(read(&store, "b@example.com").await.is_claimed_by("owner-b"));
        assert!(store
            .notifications(&key_of("b@example.com"), 10)
            .await
            .unwrap()
            .is_empty());

        store.close().await;
        other.close().await;
        db.cleanup().await;
    }
);

both_backends!(
    outcomes_apply_to_the_claimed_rows_and_a_row_moved_since_is_read_again,
    |db: TestDb| async move {
        let store = open(&db).await;
        let other = open(&db).await;
        let p = Policy::default();
        let addrs = [
            "a@example.com",
            "b@example.com",
            "c@example.com",
            "d@example.com",
        ];
        let mut vs = Vec::new();
        for (i, a) in addrs.iter().enumerate() {
            add(&store, &format!("DNA-{i}"), a, t0()).await;
            vs.push(read(&store, a).await);
        }
        let won = store
            .claim_batch(first_email_claims(vs, t0(), &p), "owner-a", t0(), &p)
            .await
            .unwrap();
        assert_eq!(won.len(), 4);
        // During the sends: b's claim is renewed (its row moves on a
        // version), another process writes c's row (it moves, still
        // claimed by A), and d's lease runs out and B takes it.
        let later = t0() + secs(10);
        assert!(store
            .renew_claim(&key_of("b@example.com"), "owner-a", later, &p)
            .await
            .unwrap());
        let mut c = read(&other, "c@example.com").await;
        c.failures = 0;
        assert!(other
            .commit(&mut c, &Change::default(), later, &p)
            .await
            .unwrap());
        let past_lease = t0() + p.claim_lease + secs(1);
        let mut d = read(&other, "d@example.com").await;
        d.claim("owner-b", past_lease, &p);
        assert!(other
            .commit(&mut d, &Change::default(), past_lease, &p)
            .await
            .unwrap());

        let done = past_lease + secs(1);
        let outcomes: Vec<Outcome> = won.iter().map(|c| accepted(c, "owner-a", done)).collect();
        store.record_outcomes(&outcomes, done, &p).await.unwrap();

        for (c, addr) in won.iter().zip(addrs) {
            let stored = read(&store, addr).await;
            let notes = store
                .notifications(&c.verification.email_key, 10)
                .await
                .unwrap();
            assert_eq!(notes.len(), 1, "{addr}: one record of the attempt");
            assert_eq!(notes[0].status, NotificationStatus::Succeeded, "{addr}");
            let key = store
                .key(&c.fresh_key.as_ref().unwrap().id)
                .await
                .unwrap()
                .unwrap();
            if addr == "d@example.com" {
                // No longer A's: only the record of the attempt is kept.
                assert!(stored.is_claimed_by("owner-b"), "{addr}");
                assert_eq!(stored.status, Status::NotValidated, "{addr}");
                continue;
            }
            // Claimed state, moved or not: the email is recorded on the
            // row as it is now, the claim released, the new key in use.
            assert_eq!(stored.claim_owner, None, "{addr}");
            assert_eq!(stored.status, Status::Pending, "{addr}");
            assert_eq!(stored.last_notification_at, Some(done), "{addr}");
            assert_eq!(
                stored.key.as_ref().map(|k| &k.id),
                Some(&key.key_id),
                "{addr}"
            );
            assert_eq!(key.voided_at, None, "{addr}");
        }

        store.close().await;
        other.close().await;
        db.cleanup().await;
    }
);

both_backends!(
    an_outcome_leaves_alone_a_row_removed_and_created_again_at_the_claimed_version,
    |db: TestDb| async move {
        let store = open(&db).await;
        let other = open(&db).await;
        let p = Policy::default();
        add(&store, "DNA-1", "a@example.com", t0()).await;
        let v = read(&store, "a@example.com").await;
        let won = store
            .claim_batch(first_email_claims(vec![v], t0(), &p), "owner-a", t0(), &p)
            .await
            .unwrap();
        assert_eq!(won.len(), 1);
        let claimed_version = won[0].verification.version;
        // During the send the contact leaves the address (its row is
        // removed), comes back (a new row), and B claims the new row,
        // which brings it to the version A's claim wrote.
        let later = t0() + secs(5);
        add(&other, "DNA-1", "z@example.com", later).await;
        add(&other, "DNA-1", "a@example.com", later).await;
        let mut again = read(&other, "a@example.com").await;
        again.claim("owner-b", later, &p);
        assert!(other
            .commit(&mut again, &Change::default(), later, &p)
            .await
            .unwrap());
        assert_eq!(
            again.version, claimed_version,
            "the same version, another row"
        );

        let done = later + secs(1);
        store
            .record_outcomes(&[accepted(&won[0], "owner-a", done)], done, &p)
            .await
            .unwrap();
        // B's claim and state stand; A's attempt is recorded.
        let stored = read(&store, "a@example.com").await;
        assert!(stored.is_claimed_by("owner-b"));
        assert_eq!(stored.status, Status::NotValidated);
        assert_eq!(stored.key, None);
        let notes = store
            .notifications(&key_of("a@example.com"), 10)
            .await
            .unwrap();
        assert!(notes
            .iter()
            .any(|n| n.id == won[0].note.id && n.status == NotificationStatus::Succeeded));

        store.close().await;
        other.close().await;
        db.cleanup().await;
    }
);

// --------------------------------------------------------- 5. operations

both_backends!(
    update_operation_matches_a_null_flag_and_refuses_a_stale_old,
    |db: TestDb| async move {
        let store = open(&db).await;
        let original = operation("op-1", OperationStatus::SUBMITTED, None);
        store.insert_operation(&original).await.unwrap();
        assert_eq!(
            store.operation("op-1").await.unwrap(),
            Some(original.clone())
        );

        // Stored flag NULL, `old` flag None: IS NOT DISTINCT FROM matches.
        let mut flagged = operation(
            "op-1",
            OperationStatus::SUBMITTED,
            Some(StatusFlag::PENDING_CUSTOMER_ACTION),
        );
        flagged.last_updated_date = t0() + secs(60);
        assert!(store.update_operation(&original, &flagged).await.unwrap());
        assert_eq!(
            store.operation("op-1").await.unwrap(),
            Some(flagged.clone())
        );

        // `old` no longer matches: NULL flag against a stored flag, another
        // flag, another status. Each is refused and changes nothing.
        let mut other = operation("op-1", OperationStatus::FAILED, None);
        other.message = Some("should not be written".into());
        other.last_updated_date = t0() + secs(120);
        let stale_olds = [
            original.clone(),
            operation(
                "op-1",
                OperationStatus::SUBMITTED,
                Some(StatusFlag::PENDING_SUPPORT_CASE),
            ),
            operation(
                "op-1",
                OperationStatus::IN_PROGRESS,
                Some(StatusFlag::PENDING_CUSTOMER_ACTION),
            ),
        ];
        for old in &stale_olds {
            assert!(
                !store.update_operation(old, &other).await.unwrap(),
                "old {:?}/{:?} does not match",
                old.status,
                old.status_flag
            );
            assert_eq!(
                store.operation("op-1").await.unwrap(),
                Some(flagged.clone())
            );
        }

        // Back to a NULL flag through a matching old, then NULL matches again.
        let mut done = operation("op-1", OperationStatus::SUCCESSFUL, None);
        done.message = Some("confirmed".into());
        done.last_updated_date = t0() + secs(180);
        assert!(store.update_operation(&flagged, &done).await.unwrap());
        assert_eq!(store.operation("op-1").await.unwrap(), Some(done.clone()));
        // A non-NULL flag in `old` does not match the stored NULL.
        assert!(!store.update_operation(&flagged, &other).await.unwrap());
        let mut reopened = done.clone();
        reopened.status = OperationStatus::IN_PROGRESS;
        assert!(store.update_operation(&done, &reopened).await.unwrap());
        assert_eq!(store.operation("op-1").await.unwrap(), Some(reopened));

        // An unknown id never matches.
        let ghost = operation("op-ghost", OperationStatus::SUBMITTED, None);
        assert!(!store.update_operation(&ghost, &ghost).await.unwrap());
        assert_eq!(store.operation("op-ghost").await.unwrap(), None);
        store.close().await;
        db.cleanup().await;
    }
);

// --------------------------------------------------------- 6. timestamps

both_backends!(
    due_order_and_now_comparisons_follow_time_across_whole_and_fractional_seconds,
    |db: TestDb| async move {
        let store = open(&db).await;
        let p = Policy::default();
        let base = t0() + Duration::hours(1);
        // Due times with whole seconds, milliseconds and microseconds
        // (Postgres keeps microseconds; SQLite text keeps what it is given).
        let offsets_us: [i64; 9] = [
            0, 1, 1_000, 250_000, 500_000, 999_999, 1_000_000, 1_500_000, 2_000_000,
        ];
        let n = offsets_us.len();
        // Key order is the reverse of time order, so an order by key alone
        // (or by text that does not sort as time) shows.
        let addr = |i: usize| format!("t{}@example.com", n - i);
        let due = |i: usize| base + micros(offsets_us[i]);

        // Inserted in scrambled order. Even rows are due by a retry time,
        // odd rows by a key's first reminder (issued 3 days before).
        for i in [4, 0, 7, 2, 8, 1, 6, 3, 5] {
            add(&store, &format!("DNA-{i}"), &addr(i), t0()).await;
            let mut v = read(&store, &addr(i)).await;
            if i % 2 == 0 {
                v.retry_at = Some(due(i));
                assert!(store
                    .commit(&mut v, &Change::default(), t0(), &p)
                    .await
                    .unwrap());
            } else {
                let issued = due(i) - Duration::days(3);
                let key = Verification::prepare_key(issued, &p);
                v.install_key(key.clone());
                v.sent(Notice::Verification, issued);
                let change = Change {
                    new_key: Some(&key),
                    ..Change::default()
                };
                assert!(store.commit(&mut v, &change, t0(), &p).await.unwrap());
                let stored_key = store.key(&key.id).await.unwrap().expect("key row");
                assert_eq!(
                    (stored_key.issued_at, stored_key.expires_at),
                    (key.issued_at, key.expires_at),
                    "key times round-trip exactly"
                );
            }
            assert_eq!(v.next_due_at(t0(), &p), Some(due(i)));
            assert_eq!(
                state(&read(&store, &addr(i)).await),
                state(&v),
                "row {i} round-trips exactly"
            );
        }

        let expected: Vec<(DateTime<Utc>, String)> = (0..n).map(|i| (due(i), addr(i))).collect();

        // Everything is due at base+10s: time order, exact due times.
        let all = store
            .due_verifications(base + secs(10), None, 1000)
            .await
            .unwrap();
        let got: Vec<(DateTime<Utc>, String)> = all
            .iter()
            .map(|(d, v)| (*d, v.email_key.as_str().to_string()))
            .collect();
        assert_eq!(got, expected, "due order is time order");

        // Paging with cursors on fractional due times visits each row once.
        for limit in [1, 2, 4] {
            assert_eq!(
                page_all(&store, base + secs(10), limit).await,
                expected,
                "limit {limit}"
            );
        }

        // `due_at <= now` agrees with time: probe at, just before and just
        // after every due time, at whole seconds and between them.
        let mut probes = vec![
            base - secs(1),
            base + micros(750_000),
            base + micros(1_250_000),
            base + secs(3),
        ];
        for i in 0..n {
            probes.extend([due(i) - micros(1), due(i), due(i) + micros(1)]);
        }
        for now in probes {
            let want: Vec<String> = (0..n).filter(|&i| due(i) <= now).map(addr).collect();
            assert_eq!(due_keys(&store, now).await, want, "due at {now:?}");
        }

        // `claim_until <= now` likewise, with a lease ending on a fraction.
        let claim_at = base + secs(5) + micros(250_000);
        let mut v = read(&store, &addr(0)).await;
        v.claim("owner-a", claim_at, &p);
        assert!(store
            .commit(&mut v, &Change::default(), claim_at, &p)
            .await
            .unwrap());
        let until = claim_at + p.claim_lease;
        assert_eq!(read(&store, &addr(0)).await.claim_until, Some(until));
        let claimed = addr(0);
        for (now, held) in [
            (until - secs(1), true),
            (until - micros(250_000), true),
            (until - micros(1), true),
            (until, false),
            (until + micros(1), false),
            (until + micros(750_000), false),
        ] {
            let keys = due_keys(&store, now).await;
            assert_eq!(
                !keys.contains(&claimed),
                held,
                "claim until {until:?} at now {now:?}"
            );
            assert_eq!(v.is_claimed(now), held, "domain agrees at {now:?}");
        }
        store.close().await;
        db.cleanup().await;
    }
);

// Finding: the backends disagree below a microsecond. SQLite stores the text
// sqlx writes (RFC 3339 with up to nine fractional digits), so it keeps
// nanoseconds and its text order is time order. Postgres' TIMESTAMPTZ holds
// microseconds and sqlx encodes a `DateTime<Utc>` by truncating to the
// microsecond below, so on Postgres a row due at T+999ns reads back as T, is
// due at `now` = T, and ties with T (broken by email_key). Unreachable in
// normal use (the product's clock and parsed input keep whole seconds), but
// nothing in the store enforces that.
both_backends!(
    due_order_and_now_comparisons_follow_time_below_a_microsecond,
    ignore_postgres = "Postgres truncates timestamps to microseconds: sub-microsecond due times read back truncated, sort as ties and are due up to 999 ns early (SQLite keeps nanoseconds)",
    |db: TestDb| async move {
        let store = open(&db).await;
        let p = Policy::default();
        let base = t0() + Duration::hours(1);
        // Due times that differ by nanoseconds only. The product's clock
        // keeps whole seconds, but the store takes any `DateTime<Utc>`.
        let offsets_ns: [i64; 6] = [0, 1, 500, 999, 1_000, 1_001];
        let n = offsets_ns.len();
        let addr = |i: usize| format!("n{}@example.com", n - i);
        let due = |i: usize| base + Duration::nanoseconds(offsets_ns[i]);

        let mut failures: Vec<String> = Vec::new();
        for i in [3, 0, 5, 1, 4, 2] {
            add(&store, &format!("DNA-{i}"), &addr(i), t0()).await;
            let mut v = read(&store, &addr(i)).await;
            v.retry_at = Some(due(i));
            assert!(store
                .commit(&mut v, &Change::default(), t0(), &p)
                .await
                .unwrap());
            let stored = read(&store, &addr(i)).await.retry_at;
            if stored != Some(due(i)) {
                failures.push(format!(
                    "retry_at written {:?} read back {stored:?}",
                    due(i)
                ));
            }
        }

        let expected: Vec<(DateTime<Utc>, String)> = (0..n).map(|i| (due(i), addr(i))).collect();
        let got: Vec<(DateTime<Utc>, String)> = store
            .due_verifications(base + secs(1), None, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|(d, v)| (d, v.email_key.as_str().to_string()))
            .collect();
        if got != expected {
            failures.push(format!(
                "due order: expected {expected:?}, got {got:?}"
            ));
        }
        let probes: std::collections::BTreeSet<DateTime<Utc>> = (0..n)
            .flat_map(|i| [due(i) - Duration::nanoseconds(1), due(i)])
            .collect();
        for now in probes {
            let want: Vec<String> = (0..n).filter(|&j| due(j) <= now).map(addr).collect();
            let got = due_keys(&store, now).await;
            if got != want {
                failures.push(format!("due at {now:?}: expected {want:?}, got {got:?}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} on {:?}:\n{}",
            failures.len(),
            db.backend,
            failures.join("\n")
        );
        store.close().await;
        db.cleanup().await;
    }
);

// ------------------------------------------------------ 7. email change

both_backends!(
    the_same_email_changes_nothing_and_a_new_one_moves_the_contact_and_retires_the_old_address,
    |db: TestDb| async move {
        let store = open(&db).await;
        let now = t0();
        let created = add(&store, "DNA-1", "Alice@Example.com", now).await;
        assert!(created.created && !created.email_changed);
        let alice = make_pending(&store, "alice@example.com", now).await;
        let alice_key = alice.key.clone().unwrap();

        // Same address in another case: nothing moves.
        let same = add(&store, "DNA-1", "alice@EXAMPLE.com", now + secs(60)).await;
        assert!(!same.created && !same.email_changed);
        assert_eq!(same.contact.email_key, key_of("alice@example.com"));
        let after = read(&store, "alice@example.com").await;
        assert_eq!(after, alice, "verification untouched");
        assert_eq!(
            (after.version, after.status, after.key.as_ref()),
            (alice.version, Status::Pending, Some(&alice_key))
        );
        let k = store.key(&alice_key.id).await.unwrap().unwrap();
        assert_eq!((k.voided_at, k.void_reason), (None, None));

        // Another contact already on bob's address, with state of its own.
        add(&store, "DNA-9", "bob@example.com", now).await;
        let bob = make_pending(&store, "bob@example.com", now).await;

        // DNA-1 moves to bob's address: it joins bob's verification as is,
        // and alice's (Pending, no other contact) goes, its key voided.
        let moved_at = now + secs(120);
        let moved = add(&store, "DNA-1", "Bob@example.com", moved_at).await;
        assert!(!moved.created && moved.email_changed);
        assert_eq!(moved.contact.email_key, key_of("bob@example.com"));
        assert_eq!(read(&store, "bob@example.com").await, bob);
        assert_eq!(
            store
                .verification(&key_of("alice@example.com"))
                .await
                .unwrap(),
            None,
            "old unvalidated address removed"
        );
        let k = store.key(&alice_key.id).await.unwrap().expect("key kept");
        assert_eq!(k.voided_at, Some(moved_at));
        assert_eq!(k.void_reason.as_deref(), Some(VOID_EMAIL_CHANGED));
        let bob_key = store.key(&bob.key.unwrap().id).await.unwrap().unwrap();
        assert_eq!(bob_key.voided_at, None, "the joined address's key lives");

        // A Validated old address is kept when its last contact leaves.
        add(&store, "DNA-2", "carol@example.com", now).await;
        let mut carol = make_pending(&store, "carol@example.com", now).await;
        carol.validate(now + secs(30));
        assert!(store
            .commit(
                &mut carol,
                &Change::default(),
                now + secs(30),
                &Policy::default()
            )
            .await
            .unwrap());
        let carol_key = carol.key.clone().unwrap();
        let left = add(&store, "DNA-2", "dave@example.com", now + secs(180)).await;
        assert!(left.email_changed);
        assert_eq!(
            state(&read(&store, "carol@example.com").await),
            state(&carol),
            "validated kept"
        );
        let k = store.key(&carol_key.id).await.unwrap().unwrap();
        assert_eq!((k.voided_at, k.void_reason), (None, None));
        let dave = read(&store, "dave@example.com").await;
        assert_eq!((dave.status, dave.key), (Status::NotValidated, None));
        assert!(store
            .contacts_by_email(&key_of("carol@example.com"))
            .await
            .unwrap()
            .is_empty());
        store.close().await;
        db.cleanup().await;
    }
);

// ------------------------------------------------------ 8. address left

both_backends!(
    an_address_still_used_by_another_contact_keeps_its_verification,
    |db: TestDb| async move {
        let store = open(&db).await;
        let now = t0();
        add(&store, "DNA-1", "shared@example.com", now).await;
        add(&store, "DNA-2", "SHARED@example.com", now).await;
        let shared = make_pending(&store, "shared@example.com", now).await;
        let shared_key = shared.key.clone().unwrap();

        // DNA-1 moves away; DNA-2 still uses the address.
        let out = add(&store, "DNA-1", "other@example.com", now + secs(60)).await;
        assert!(out.email_changed);
        assert_eq!(read(&store, "shared@example.com").await, shared);
        let k = store.key(&shared_key.id).await.unwrap().unwrap();
        assert_eq!((k.voided_at, k.void_reason), (None, None));
        let users: Vec<String> = store
            .contacts_by_email(&key_of("shared@example.com"))
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.external_id.as_str().to_string())
            .collect();
        assert_eq!(users, ["DNA-2"]);

        // When the last one leaves, the unvalidated address goes.
        let last = now + secs(120);
        add(&store, "DNA-2", "third@example.com", last).await;
        assert_eq!(
            store
                .verification(&key_of("shared@example.com"))
                .await
                .unwrap(),
            None
        );
        let k = store.key(&shared_key.id).await.unwrap().unwrap();
        assert_eq!(k.voided_at, Some(last));
        assert_eq!(k.void_reason.as_deref(), Some(VOID_EMAIL_CHANGED));
        store.close().await;
        db.cleanup().await;
    }
);

// ------------------------------------------------------ 9. notifications

both_backends!(
    notifications_update_in_place_list_newest_first_and_count_live_resends,
    |db: TestDb| async move {
        let store = open(&db).await;
        let alice = key_of("alice@example.com");
        let bob = key_of("bob@example.com");

        // Saved twice under one id: one row, the second state.
        let mut first = NotificationRecord::started(&alice, Notice::Verification, t0());
        store.save_notification(&first).await.unwrap();
        assert_eq!(
            store.notifications(&alice, 10).await.unwrap(),
            [first.clone()]
        );
        first.succeed(t0() + secs(5));
        store.save_notification(&first).await.unwrap();
        assert_eq!(
            store.notifications(&alice, 10).await.unwrap(),
            [first.clone()]
        );
        let mut failed_later = first.clone();
        failed_later.fail(
            t0() + secs(9),
            "MailRejected".into(),
            "550 no such user".into(),
        );
        store.save_notification(&failed_later).await.unwrap();
        assert_eq!(
            store.notifications(&alice, 10).await.unwrap(),
            [failed_later.clone()]
        );

        // Newest first, whatever the insertion order; other addresses apart.
        let reminder =
            NotificationRecord::started(&alice, Notice::Reminder { day: 3 }, t0() + secs(3600));
        let expiry = NotificationRecord::started(&alice, Notice::ExpiryNotice, t0() + secs(7200));
        let elsewhere = NotificationRecord::started(&bob, Notice::Verification, t0() + secs(1800));
        for n in [&expiry, &elsewhere, &reminder] {
            store.save_notification(n).await.unwrap();
        }
        assert_eq!(
            store.notifications(&alice, 10).await.unwrap(),
            [expiry.clone(), reminder.clone(), failed_later.clone()]
        );
        assert_eq!(
            store.notifications(&alice, 2).await.unwrap(),
            [expiry.clone(), reminder.clone()]
        );
        assert_eq!(store.notifications(&bob, 10).await.unwrap(), [elsewhere]);

        // Resends in the window that did not fail.
        let since = t0() + Duration::days(1);
        let resend = |at: DateTime<Utc>, key: &EmailKey| {
            NotificationRecord::started(key, Notice::Resend, at)
        };
        let before = resend(since - secs(60), &alice);
        let at_start = resend(since, &alice);
        let mut ok = resend(since + secs(60), &alice);
        ok.succeed(since + secs(61));
        let started = resend(since + secs(120), &alice);
        let mut failed = resend(since + secs(180), &alice);
        failed.fail(
            since + secs(181),
            "Timeout".into(),
            "relay timed out".into(),
        );
        let not_a_resend =
            NotificationRecord::started(&alice, Notice::Verification, since + secs(240));
        let other_address = resend(since + secs(300), &bob);
        for n in [
            &before,
            &at_start,
            &ok,
            &started,
            &failed,
            &not_a_resend,
            &other_address,
        ] {
            store.save_notification(n).await.unwrap();
        }
        // The window is open at its start (`created_at > since`).
        assert_eq!(store.resends_since(&alice, since).await.unwrap(), 2);
        assert_eq!(
            store.resends_since(&alice, since - secs(1)).await.unwrap(),
            3
        );
        assert_eq!(
            store
                .resends_since(&alice, since - Duration::days(1))
                .await
                .unwrap(),
            4
        );
        assert_eq!(
            store
                .resends_since(&alice, since + secs(120))
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.resends_since(&bob, since).await.unwrap(), 1);

        // A started resend that later fails stops counting.
        let mut started = started;
        started.fail(
            since + secs(400),
            "Timeout".into(),
            "relay timed out".into(),
        );
        store.save_notification(&started).await.unwrap();
        assert_eq!(store.resends_since(&alice, since).await.unwrap(), 1);
        store.close().await;
        db.cleanup().await;
    }
);

both_backends!(
    attempts_left_started_are_closed_after_the_lease_unless_their_address_is_claimed,
    |db: TestDb| async move {
        let store = open(&db).await;
        let p = Policy::default();
        add(&store, "DNA-1", "alice@example.com", t0()).await;
        add(&store, "DNA-2", "bob@example.com", t0()).await;
        let alice = key_of("alice@example.com");
        let bob = key_of("bob@example.com");
        // A process died after starting both attempts; bob's address is
        // claimed again by a live sender.
        let left = NotificationRecord::started(&alice, Notice::Verification, t0());
        let live = NotificationRecord::started(&bob, Notice::Verification, t0());
        store.save_notification(&left).await.unwrap();
        store.save_notification(&live).await.unwrap();
        let later = t0() + p.claim_lease + secs(1);
        let mut b = read(&store, "bob@example.com").await;
        b.claim("owner-b", later, &p);
        assert!(store
            .commit(&mut b, &Change::default(), later, &p)
            .await
            .unwrap());
        // Before the lease has run out nothing is closed.
        assert_eq!(
            store
                .close_interrupted(t0() + secs(10), t0() + secs(10) - p.claim_lease, t0())
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .close_interrupted(later, later - p.claim_lease, later)
                .await
                .unwrap(),
            1
        );
        let closed = &store.notifications(&alice, 10).await.unwrap()[0];
        assert_eq!(closed.status, NotificationStatus::Failed);
        assert!(closed.is_terminal);
        assert_eq!(closed.error_code.as_deref(), Some("Interrupted"));
        assert_eq!(closed.status_changed_at, later);
        let untouched = &store.notifications(&bob, 10).await.unwrap()[0];
        assert_eq!(untouched.status, NotificationStatus::Started);
        store.close().await;
        db.cleanup().await;
    }
);
