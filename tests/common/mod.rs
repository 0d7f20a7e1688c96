//! Test support: a fresh database per test on both backends, and a runner for
//! the real binary.
#![allow(dead_code)]

pub mod app;
pub mod daemon;
pub mod smtp;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// Where the local Postgres server is; each test creates its own database.
pub fn pg_admin_url() -> String {
    std::env::var("CV_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test: a SQLite file in a temporary
/// directory, or a new database on the local Postgres server.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    /// `None` (with the reason printed) when Postgres is not reachable and
    /// `CV_REQUIRE_POSTGRES` is not set; CI sets it so a skip cannot hide.
    pub async fn new(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("cv.db").display());
                Some(TestDb {
                    backend,
                    url,
                    dir,
                    pg_name: None,
                })
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let admin = format!("{}/postgres", pg_admin_url());
                let mut conn = match sqlx::PgConnection::connect(&admin).await {
                    Ok(c) => c,
                    Err(e) => {
                        if std::env::var("CV_REQUIRE_POSTGRES").is_ok() {
                            panic!("Postgres is required (CV_REQUIRE_POSTGRES) but unreachable at {admin}: {e}");
                        }
                        eprintln!("SKIPPED (Postgres variant): no server at {admin}: {e}");
                        return None;
                    }
                };
                let name = format!("cv_test_{}", uuid::Uuid::new_v4().simple());
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let url = format!("{}/{name}", pg_admin_url());
                Some(TestDb {
                    backend,
                    url,
                    dir,
                    pg_name: Some(name),
                })
            }
        }
    }

    /// Drops a Postgres test database (a failed test leaves it for inspection).
    pub async fn cleanup(self) {
        if let Some(name) = &self.pg_name {
            use sqlx::Connection;
            if let Ok(mut conn) =
                sqlx::PgConnection::connect(&format!("{}/postgres", pg_admin_url())).await
            {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}

/// Declares a test that runs once on SQLite and once on Postgres:
/// `both_backends!(name, |db: TestDb| async move { ... })`.
///
/// `both_backends!(name, ignore_postgres = "reason", |db: TestDb| ...)` marks
/// the Postgres variant `#[ignore = "reason"]`, for a known disagreement
/// between the backends that the test keeps pinned.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, ignore_postgres = $reason:literal, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::common::TestDb::new($crate::common::Backend::Sqlite)
                    .await
                    .unwrap();
                ($body)(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = $reason]
            async fn postgres() {
                if let Some(db) =
                    $crate::common::TestDb::new($crate::common::Backend::Postgres).await
                {
                    ($body)(db).await;
                }
            }
        }
    };
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::common::TestDb::new($crate::common::Backend::Sqlite)
                    .await
                    .unwrap();
                ($body)(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) =
                    $crate::common::TestDb::new($crate::common::Backend::Postgres).await
                {
                    ($body)(db).await;
                }
            }
        }
    };
}

/// The binary under test, with its database and extra environment.
pub struct Bin {
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts success and returns the JSON result.
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "expected success; stderr: {}", self.stderr);
        self.json()
    }

    /// Asserts the exit code and the error line's code; returns the line.
    pub fn err(&self, exit: i32, code: &str) -> String {
        assert_eq!(
            self.code, exit,
            "stdout: {} stderr: {}",
            self.stdout, self.stderr
        );
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no error line in stderr: {}", self.stderr))
            .to_string();
        assert!(line.starts_with(&format!("error: {code}: ")), "{line}");
        assert!(
            self.stdout.trim().is_empty(),
            "stdout on error: {}",
            self.stdout
        );
        line
    }
}

impl Bin {
    pub fn new(db: &TestDb) -> Bin {
        Bin {
            env: vec![
                ("CONTACT_VERIFIER__DATABASE__URL".into(), db.url.clone()),
                ("CONTACT_VERIFIER__LOG__LEVEL".into(), "warn".into()),
            ],
            cwd: db.dir.path().to_path_buf(),
        }
    }

    pub fn with_env(mut self, k: &str, v: &str) -> Bin {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_contact-verifier"));
        cmd.args(args).current_dir(&self.cwd);
        for (k, _) in std::env::vars() {
            if k.starts_with("CONTACT_VERIFIER") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        use std::io::Write;
        use std::process::Stdio;
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().expect("spawn contact-verifier");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            let data = input.to_vec();
            std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            });
        }
        let out: Output = child.wait_with_output().expect("wait");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Every text value in the verification-related tables, for checking what a
/// copy of the database would reveal. Key ids appear as `key_id=HEX`.
pub async fn dump_database(url: &str) -> String {
    use sqlx::Row;
    let mut out = String::new();
    let queries = [
        "SELECT 'key_id=' || key_id || ' ' || email_key || ' ' || COALESCE(void_reason, '') AS t FROM verification_keys",
        "SELECT email_key || ' ' || email || ' ' || status || ' ' || COALESCE(key_id, '') || ' ' || COALESCE(claim_owner, '') AS t FROM verifications",
        "SELECT id || ' ' || operation_type || ' ' || reason || ' ' || COALESCE(error_details, '') AS t FROM notifications",
        "SELECT external_id || ' ' || email AS t FROM contacts",
    ];
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("open sqlite");
        for q in queries {
            for row in sqlx::query(q).fetch_all(&pool).await.expect("dump") {
                out.push_str(&row.get::<String, _>("t"));
                out.push('\n');
            }
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("open postgres");
        for q in queries {
            for row in sqlx::query(q).fetch_all(&pool).await.expect("dump") {
                out.push_str(&row.get::<String, _>("t"));
                out.push('\n');
            }
        }
        pool.close().await;
    }
    out
}

/// Makes a test database unavailable until [`DbOutage::end`]: on Postgres the
/// database refuses connections and its sessions are terminated (as in a
/// restart); on SQLite another process holds the write lock.
pub enum DbOutage {
    Sqlite(sqlx::SqliteConnection),
    Postgres(String),
}

impl DbOutage {
    pub async fn begin(db: &TestDb) -> DbOutage {
        use sqlx::Connection;
        match db.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&db.url)
                    .await
                    .expect("open sqlite");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .expect("take the write lock");
                DbOutage::Sqlite(conn)
            }
            Backend::Postgres => {
                let name = db.pg_name.clone().expect("postgres test database");
                let mut admin =
                    sqlx::PgConnection::connect(&format!("{}/postgres", pg_admin_url()))
                        .await
                        .unwrap();
                sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                )
                .bind(&name)
                .execute(&mut admin)
                .await
                .unwrap();
                DbOutage::Postgres(name)
            }
        }
    }

    pub async fn end(self) {
        use sqlx::Connection;
        match self {
            DbOutage::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            DbOutage::Postgres(name) => {
                let mut admin =
                    sqlx::PgConnection::connect(&format!("{}/postgres", pg_admin_url()))
                        .await
                        .unwrap();
                sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
            }
        }
    }
}

/// JSON Lines for `n` contacts `DNA-i` with addresses `ri@example.com` and
/// domains `di.com`.
pub fn numbered_contacts(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"external_id\":\"DNA-{i}\",\"email\":\"r{i}@example.com\",\"domains\":[\"d{i}.com\"]}}\n"))
        .collect()
}

impl Bin {
    /// `contact add`, asserting success; returns the GetDetails object.
    pub fn add_contact(&self, id: &str, email: &str, domains: &[&str]) -> Value {
        let mut args = vec!["contact", "add", "--external-id", id, "--email", email];
        for d in domains {
            args.extend(["--domain", d]);
        }
        self.run(&args).ok()
    }
}
