//! Exactly once on a bad day (CONTRACT: faults never mail a registrant twice
//! for the same reason): a database outage longer than the claim lease,
//! while the sender is alive, does not let a second process mail the address
//! again; a sender that is gone (its heartbeat silent) does not keep its
//! addresses forever. Two verifiers on one database play two processes, each
//! with its heartbeat as the daemon runs it; a real SMTP server on loopback;
//! SQLite and Postgres.

mod common;

use std::time::Duration as StdDuration;

use chrono::Duration;
use common::app::*;
use common::smtp::TlsMode;
use common::{DbOutage, TestDb};
use contact_verifier::service::Verifier;
use contact_verifier::sweep::StopSignal;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A verifier's heartbeat, as the daemon runs it, until the sender drops.
fn heartbeat(v: &Verifier) -> (watch::Sender<bool>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(v.liveness.clone().run(
        v.store.clone(),
        v.clock.clone(),
        v.policy.clone(),
        StopSignal::new(rx),
    ));
    (tx, task)
}

/// Ends a heartbeat started by [`heartbeat`] and waits for it.
async fn stop(tx: watch::Sender<bool>, task: JoinHandle<()>) {
    let _ = tx.send(true);
    let _ = task.await;
}

/// Starts the first process's sweep with the relay holding its answer to
/// the final dot (3 s), then takes the database away mid-send and moves
/// the clock 10 minutes on: an outage longer than the claim lease.
async fn send_into_an_outage(
    app: &App,
) -> (
    JoinHandle<contact_verifier::Result<contact_verifier::sweep::SweepSummary>>,
    DbOutage,
) {
    app.sink.set_delay(StdDuration::from_secs(3));
    let a = app.v.clone();
    let first = tokio::spawn(async move { a.sweep(false, &StopSignal::never()).await });
    tokio::time::sleep(StdDuration::from_millis(1200)).await;
    let outage = DbOutage::begin(&app.db).await;
    app.clock.advance(Duration::minutes(10));
    (first, outage)
}

/// Waits until `v` has seen the database up long enough to judge other
/// processes by their silence (`liveness::LIVE_WITHIN`).
async fn until_it_may_judge(v: &Verifier) {
    for _ in 0..100 {
        if v.liveness.may_take_others() {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(250)).await;
    }
    panic!("the heartbeat never opened the gate");
}

fn settings(s: &mut contact_verifier::config::Settings) {
    s.smtp.timeout_secs = 2;
    s.smtp.data_timeout_secs = 6;
    s.schedule.claim_lease_secs = 8;
    s.database.acquire_timeout_secs = 1;
}

both_backends!(
    an_outage_longer_than_the_lease_does_not_hand_a_sent_email_to_a_second_sender,
    |db: TestDb| async move {
        let app = App::with(db, TlsMode::None, settings).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        let b = app.second_verifier().await;
        let (stop_a, beat_a) = heartbeat(&app.v);
        let (stop_b, beat_b) = heartbeat(&b);
        until_it_may_judge(&b).await;

        // The relay holds its answer to the final dot; meanwhile the
        // database goes away for longer than the claim lease.
        let (first, outage) = send_into_an_outage(&app).await;
        tokio::time::sleep(StdDuration::from_secs(5)).await;
        outage.end().await;
        app.sink.set_delay(StdDuration::ZERO);

        // The other process sweeps again and again while the first is
        // still recording: the address is the first's until it has.
        for _ in 0..8 {
            let _ = b.sweep(false, &StopSignal::never()).await;
            tokio::time::sleep(StdDuration::from_millis(500)).await;
        }
        let first = first.await.unwrap();
        for _ in 0..4 {
            let _ = b.sweep(false, &StopSignal::never()).await;
            let _ = app.v.sweep(false, &StopSignal::never()).await;
        }
        tokio::time::sleep(StdDuration::from_millis(300)).await;

        let to_a: Vec<_> = app
            .sink
            .messages()
            .into_iter()
            .filter(|m| m.to == vec!["a@example.com".to_string()])
            .collect();
        assert_eq!(to_a.len(), 1, "mailed once; first sweep: {first:?}");
        let d = serde_json::to_value(app.v.show_contact(&by_id("DNA-1")).await.unwrap()).unwrap();
        assert_eq!(d["VerificationStatus"], "Pending", "{d}");
        assert_ne!(d["LastNotificationDate"], Value::Null, "{d}");
        // The link of the one email works: its key was recorded.
        app.v
            .confirm(&token_of(&to_a[0]))
            .await
            .expect("the link confirms");
        let notes = app.v.notifications(&by_id("DNA-1")).await.unwrap();
        let notes = serde_json::to_value(&notes).unwrap();
        assert_eq!(notes.as_array().unwrap().len(), 1, "{notes}");
        assert_eq!(notes[0]["status"], "Succeeded", "{notes}");

        stop(stop_a, beat_a).await;
        stop(stop_b, beat_b).await;
        b.store.close().await;
        app.done().await;
    }
);

both_backends!(
    the_claims_of_a_process_that_went_silent_are_taken_after_its_silence,
    |db: TestDb| async move {
        let app = App::with(db, TlsMode::None, settings).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        let b = app.second_verifier().await;
        let (stop_b, beat_b) = heartbeat(&b);

        // The first process claims and dies mid-send (its task and its
        // heartbeat end, as with kill -9).
        let (stop_a, beat_a) = heartbeat(&app.v);
        app.sink.set_delay(StdDuration::from_secs(30));
        let a = app.v.clone();
        let first = tokio::spawn(async move { a.sweep(false, &StopSignal::never()).await });
        tokio::time::sleep(StdDuration::from_millis(1500)).await;
        first.abort();
        beat_a.abort();
        drop(stop_a);
        app.sink.set_delay(StdDuration::ZERO);
        app.sink.clear();

        // Within the lease: nobody else may take it.
        let s = b.sweep(false, &StopSignal::never()).await.unwrap();
        assert_eq!(s.initial_sent, 0, "{s:?}");
        // Past the lease and past its silence, once the second process has
        // seen the database up long enough: the address is mailed.
        app.clock.advance(Duration::minutes(2));
        until_it_may_judge(&b).await;
        let s = b.sweep(false, &StopSignal::never()).await.unwrap();
        assert_eq!(s.initial_sent, 1, "{s:?}");
        assert_eq!(
            app.sink.wait_for(1, StdDuration::from_secs(10)).await.len(),
            1
        );

        stop(stop_b, beat_b).await;
        b.store.close().await;
        app.done().await;
    }
);

both_backends!(
    an_outage_longer_than_the_write_retries_holds_the_outcome_until_the_database_returns,
    |db: TestDb| async move {
        let app = App::with(db, TlsMode::None, settings).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        let b = app.second_verifier().await;
        let (stop_a, beat_a) = heartbeat(&app.v);
        let (stop_b, beat_b) = heartbeat(&b);

        let (first, outage) = send_into_an_outage(&app).await;
        // The sender gives up retrying the write (about a minute) while the
        // database is still away: its sweep fails, the outcome is held.
        let first = tokio::time::timeout(StdDuration::from_secs(120), first)
            .await
            .expect("the first sweep ends")
            .unwrap();
        assert!(first.is_err(), "the write could not land: {first:?}");
        assert_eq!(app.v.liveness.held_keys().len(), 1, "the outcome is held");
        outage.end().await;
        app.sink.set_delay(StdDuration::ZERO);

        // Its heartbeat writes the held outcome; the other process never
        // takes the address meanwhile.
        for _ in 0..10 {
            let _ = b.sweep(false, &StopSignal::never()).await;
            tokio::time::sleep(StdDuration::from_millis(500)).await;
        }
        assert!(
            app.v.liveness.held_keys().is_empty(),
            "written once the database answered"
        );
        for _ in 0..3 {
            let _ = b.sweep(false, &StopSignal::never()).await;
        }
        let to_a = app.sink.messages().len();
        assert_eq!(to_a, 1, "mailed once");
        let d = serde_json::to_value(app.v.show_contact(&by_id("DNA-1")).await.unwrap()).unwrap();
        assert_eq!(d["VerificationStatus"], "Pending", "{d}");
        let notes =
            serde_json::to_value(app.v.notifications(&by_id("DNA-1")).await.unwrap()).unwrap();
        assert_eq!(notes.as_array().unwrap().len(), 1, "{notes}");
        assert_eq!(notes[0]["status"], "Succeeded", "{notes}");

        stop(stop_a, beat_a).await;
        stop(stop_b, beat_b).await;
        b.store.close().await;
        app.done().await;
    }
);
