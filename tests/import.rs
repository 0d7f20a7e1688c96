//! The set-based import gives every line exactly the state the one-contact
//! path gives it: the same contacts, verifications, deadlines, evidence and
//! events, on SQLite and Postgres.

mod common;

use chrono::Duration;
use common::app::{by_id, t0, App};
use common::TestDb;
use contact_verifier::domain::{ContactEmail, DomainName, ExternalId, Status};
use contact_verifier::store::{ContactUpsert, ImportedState};
use serde_json::Value;

/// A mix of every imported state, with and without a deadline of its own.
fn lines() -> Vec<ContactUpsert> {
    let states = [
        (Status::NotValidated, None, None),
        (Status::Validated, None, None),
        (Status::Pending, Some(61), Some(61)),
        (Status::Pending, Some(4), Some(4)),
        (Status::Expired, Some(70), Some(10)),
    ];
    (0..40)
        .map(|i| {
            let (status, issued, notified) = states[i % states.len()];
            ContactUpsert {
                external_id: ExternalId::parse(&format!("DNA-{i:03}")).unwrap(),
                email: ContactEmail::parse(&format!("r{i}@example.com")).unwrap(),
                domains: vec![DomainName::parse(&format!("d{i}.example")).unwrap()],
                language: None,
                import: Some(ImportedState {
                    status,
                    key_issued_at: issued.map(|d| t0() - Duration::days(d)),
                    last_notification_at: notified.map(|d| t0() - Duration::days(d)),
                    suspension_date: (i % 3 == 0).then(|| t0() + Duration::days(2)),
                }),
            }
        })
        .collect()
}

/// What a contact looks like from outside: GetDetails, its domain, its
/// evidence (without the record's own id and time, which differ by run).
async fn view(app: &App, i: usize) -> Value {
    let id = format!("DNA-{i:03}");
    let details = serde_json::to_value(app.v.show_contact(&by_id(&id)).await.unwrap()).unwrap();
    let domain = serde_json::to_value(
        app.v
            .domain_details(&format!("d{i}.example"))
            .await
            .unwrap(),
    )
    .unwrap();
    let evidence: Vec<String> = app
        .v
        .evidence(&by_id(&id))
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{:?} {:?} {:?}", e.method, e.external_ids, e.domains))
        .collect();
    serde_json::json!({"details": details, "domain": domain, "evidence": evidence})
}

both_backends!(
    a_set_based_import_writes_what_the_one_contact_path_writes,
    |db: TestDb| async move {
        let bulk = App::new(db).await;
        let other = TestDb::new(bulk.db.backend).await.unwrap();
        let single = App::new(other).await;
        let now = bulk.clock.now();
        let policy = bulk.v.policy.clone();
        bulk.v
            .store
            .import_batch(&lines(), now, &policy)
            .await
            .unwrap();
        for line in lines() {
            single
                .v
                .store
                .upsert_contact(&line, now, &policy)
                .await
                .unwrap();
        }
        for i in 0..40 {
            assert_eq!(view(&bulk, i).await, view(&single, i).await, "line {i}");
        }
        let kinds = |page: &contact_verifier::service::EventsPage| -> Vec<String> {
            page.events.iter().map(|e| e.kind.clone()).collect()
        };
        let a = bulk.v.events(false, Some(1000), None).await.unwrap();
        let b = single.v.events(false, Some(1000), None).await.unwrap();
        assert_eq!(kinds(&a), kinds(&b));
        assert_eq!(
            a.events.len(),
            8,
            "one contact_validated per Validated line"
        );
        // Both are due for the same work: the same sweep summary.
        let (s1, s2) = (bulk.sweep().await, single.sweep().await);
        assert_eq!(
            (
                s1.initial_sent,
                s1.reminders_sent,
                s1.expired,
                s1.expiry_notices_sent
            ),
            (
                s2.initial_sent,
                s2.reminders_sent,
                s2.expired,
                s2.expiry_notices_sent
            )
        );
        assert!(
            s1.initial_sent > 0 && s1.reminders_sent > 0 && s1.expired > 0,
            "{s1:?}"
        );
        single.done().await;
        bulk.done().await;
    }
);

both_backends!(
    a_batch_mixing_new_and_known_contacts_imports_both_in_line_order,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-000", "old@example.com", &["d0.example"]).await;
        let now = app.clock.now();
        let policy = app.v.policy.clone();
        // Line 0 moves a known contact to a new address and keeps its domain;
        // the others are new. Both kinds land in one transaction.
        app.v
            .store
            .import_batch(&lines()[..10], now, &policy)
            .await
            .unwrap();
        let moved = app.v.show_contact(&by_id("DNA-000")).await.unwrap();
        assert_eq!(moved.contact_email.as_str(), "r0@example.com");
        assert_eq!(
            moved.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            ["d0.example"]
        );
        for i in 1..10 {
            let d = app
                .v
                .show_contact(&by_id(&format!("DNA-{i:03}")))
                .await
                .unwrap();
            assert_eq!(d.contact_email.as_str(), format!("r{i}@example.com"));
        }
        app.done().await;
    }
);
