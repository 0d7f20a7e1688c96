//! Throughput and memory of the bulk paths, printed as numbers:
//!
//!   cargo bench --bench throughput
//!
//! - `contact import`: lines per second and the peak resident memory added
//!   while streaming a generated JSON Lines file (CV_BENCH_IMPORT_LINES,
//!   default 200000; the memory must not grow with the file).
//! - `sweep`: initial emails per second to the in-process SMTP server
//!   (CV_BENCH_SWEEP_CONTACTS, default 3000; CV_BENCH_SMTP_CONNECTIONS, default 4).
//!
//! SQLite always; Postgres too when CV_TEST_PG_URL's server answers.

#[path = "../tests/common/smtp.rs"]
#[allow(dead_code)]
mod smtp;

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use contact_verifier::clock::Clock;
use contact_verifier::config::{Settings, SmtpTls};
use contact_verifier::service::Verifier;
use contact_verifier::store::Store;
use contact_verifier::sweep::StopSignal;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size of this process so far, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

async fn verifier(url: &str, smtp_port: u16) -> Verifier {
    let mut s = Settings::default();
    s.database.url = url.to_string();
    s.verification.secret = "bench-secret-0123456789-0123456789-abc".into();
    s.smtp.host = "127.0.0.1".into();
    s.smtp.port = smtp_port;
    s.smtp.tls = SmtpTls::None;
    s.smtp.max_connections = env_usize("CV_BENCH_SMTP_CONNECTIONS", 4) as u32;
    let store = Store::connect(&s.database).await.expect("connect");
    store.migrate().await.expect("migrate");
    Verifier::new(store, Arc::new(s), Clock::system())
        .with_mail()
        .expect("mail")
}

async fn bench(label: &str, url: &str) {
    let lines = env_usize("CV_BENCH_IMPORT_LINES", 200_000);
    let contacts = env_usize("CV_BENCH_SWEEP_CONTACTS", 3_000);
    let sink = smtp::SmtpSink::start(smtp::TlsMode::None).await;
    let v = verifier(url, sink.port()).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contacts.jsonl");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..lines {
            writeln!(
                f,
                "{{\"external_id\":\"IMP-{i}\",\"email\":\"user{i}@example.com\",\"domains\":[\"domain{i}.com\"],\"status\":\"Validated\"}}"
            )
            .unwrap();
        }
    }
    let file_mib = std::fs::metadata(&path).unwrap().len() as f64 / 1048576.0;
    let rss_before = peak_rss_kib();
    let t = Instant::now();
    let f = tokio::fs::File::open(&path).await.unwrap();
    let report = v
        .import(tokio::io::BufReader::new(f))
        .await
        .expect("import");
    let secs = t.elapsed().as_secs_f64();
    let rss_added = peak_rss_kib().saturating_sub(rss_before);
    assert_eq!(report.imported as usize, lines);
    println!(
        "{label:8} import: {lines} lines ({file_mib:.1} MiB) in {secs:.1} s = {:.0} lines/s; peak RSS grew {:.1} MiB",
        lines as f64 / secs,
        rss_added as f64 / 1024.0
    );

    for i in 0..contacts {
        v.add_contact(
            &format!("SWP-{i}"),
            &format!("sweep{i}@example.net"),
            &[format!("s{i}.net")],
        )
        .await
        .unwrap();
    }
    let t = Instant::now();
    let summary = v.sweep(false, &StopSignal::never()).await.expect("sweep");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(summary.initial_sent as usize, contacts);
    println!(
        "{label:8} sweep:  {contacts} initial emails in {secs:.1} s = {:.0} emails/s (smtp.max_connections = {}), {} addresses in the table",
        contacts as f64 / secs,
        v.settings.smtp.max_connections,
        lines + contacts
    );
    v.store.close().await;
    sink.stop().await;
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    bench("sqlite", &sqlite).await;

    let admin = std::env::var("CV_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    use sqlx::Connection;
    match sqlx::PgConnection::connect(&format!("{admin}/postgres")).await {
        Ok(mut c) => {
            let name = format!("cv_bench_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .await
                .unwrap();
            bench("postgres", &format!("{admin}/{name}")).await;
            let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .execute(&mut c)
                .await;
        }
        Err(e) => println!("postgres: skipped, no server at {admin}: {e}"),
    }
}
