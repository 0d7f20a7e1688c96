//! Support for the sending tests under load and faults (tests/workers.rs,
//! tests/faults.rs): the real binary configured for a loopback SMTP server,
//! contacts imported in bulk, `sweep` processes, what the server received per
//! recipient, and the notification records read straight from the database.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::common::app::{LINK_BASE, SECRET};
use crate::common::smtp::SmtpSink;
use crate::common::{numbered_contacts, Backend, Bin, TestDb};

/// Tests that start many processes or send thousands of emails take this
/// for writing; the others for reading. On 2 shared cores, a load test next
/// to a timing test would make both measure the machine, not the product.
pub static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The binary, sending to `sink` in plain text: commands answered within
/// 2 s, the final dot within 5 s, claims leased for 12 s, 4 connections,
/// retries after 1 s then 2 s.
pub fn bin(db: &TestDb, sink: &SmtpSink) -> Bin {
    Bin::new(db)
        .with_env("CONTACT_VERIFIER__VERIFICATION__SECRET", SECRET)
        .with_env("CONTACT_VERIFIER__VERIFICATION__LINK_BASE_URL", LINK_BASE)
        .with_env("CONTACT_VERIFIER__SMTP__HOST", "127.0.0.1")
        .with_env("CONTACT_VERIFIER__SMTP__PORT", &sink.port().to_string())
        .with_env("CONTACT_VERIFIER__SMTP__TLS", "none")
        .with_env("CONTACT_VERIFIER__SMTP__TIMEOUT_SECS", "2")
        .with_env("CONTACT_VERIFIER__SMTP__DATA_TIMEOUT_SECS", "5")
        .with_env("CONTACT_VERIFIER__SCHEDULE__CLAIM_LEASE_SECS", "12")
        .with_env("CONTACT_VERIFIER__SMTP__MAX_CONNECTIONS", "4")
        .with_env("CONTACT_VERIFIER__SMTP__RETRY_INITIAL_SECS", "1")
        .with_env("CONTACT_VERIFIER__SMTP__RETRY_MAX_SECS", "2")
}

/// The addresses of [`numbered_contacts`]`(n)`.
pub fn addresses(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}@example.com")).collect()
}

/// Imports `n` numbered contacts (one domain each, so none is dormant) with
/// `contact import FILE`; returns how long it took.
pub fn import(bin: &Bin, n: usize) -> Duration {
    let path = bin.cwd.join(format!("contacts-{n}.jsonl"));
    std::fs::write(&path, numbered_contacts(n)).expect("write the import file");
    let started = Instant::now();
    let report = bin.run(&["contact", "import", path.to_str().unwrap()]).ok();
    let took = started.elapsed();
    assert_eq!(report["imported"], n, "{report}");
    took
}

/// Starts `contact-verifier sweep` with its output piped.
pub fn spawn_sweep(bin: &Bin) -> Child {
    let mut cmd = bin.command(&["sweep"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().expect("start a sweep")
}

/// Waits (off the runtime's threads) for a sweep to exit 0; returns its
/// summary.
pub async fn finish(child: Child) -> Value {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("wait for the sweep");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sweep failed ({}): {stderr}",
        out.status
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the sweep's stdout is not JSON ({e}): {:?}; stderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// One `sweep`, to the end.
pub async fn sweep(bin: &Bin) -> Value {
    finish(spawn_sweep(bin)).await
}

/// SIGKILL, and reap the process.
pub fn kill_9(mut child: Child) -> std::process::ExitStatus {
    child.kill().expect("SIGKILL the sweep");
    child.wait().expect("reap the sweep")
}

pub fn count(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {summary}"))
}

/// How many messages the server accepted for each recipient.
pub fn per_recipient(sink: &SmtpSink) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for m in sink.messages() {
        assert_eq!(m.to.len(), 1, "one recipient per message: {:?}", m.to);
        *out.entry(m.to[0].clone()).or_insert(0) += 1;
    }
    out
}

/// Compares what the server received with `want` (each exactly `once`):
/// the addresses that got nothing, and those that got more than one.
pub fn missing_and_repeated(
    got: &BTreeMap<String, usize>,
    want: &[String],
) -> (Vec<String>, Vec<(String, usize)>) {
    let missing = want
        .iter()
        .filter(|a| !got.contains_key(*a))
        .cloned()
        .collect();
    let repeated = got
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(a, n)| (a.clone(), *n))
        .collect();
    (missing, repeated)
}

/// One row of the `notifications` table.
#[derive(Debug, Clone)]
pub struct Note {
    pub id: String,
    pub email_key: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub error_code: Option<String>,
}

/// Every notification record, straight from the database.
pub async fn notes(db: &TestDb) -> Vec<Note> {
    const SQL: &str =
        "SELECT id, email_key, status, created_at, error_code FROM notifications ORDER BY created_at";
    type Row = (String, String, String, DateTime<Utc>, Option<String>);
    let rows: Vec<Row> = match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url)
                .await
                .expect("open sqlite");
            let rows = sqlx::query_as(SQL).fetch_all(&pool).await.expect("notes");
            pool.close().await;
            rows
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.expect("open postgres");
            let rows = sqlx::query_as(SQL).fetch_all(&pool).await.expect("notes");
            pool.close().await;
            rows
        }
    };
    rows.into_iter()
        .map(|(id, email_key, status, created_at, error_code)| Note {
            id,
            email_key,
            status,
            created_at,
            error_code,
        })
        .collect()
}
