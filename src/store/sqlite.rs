//! SQLite specifics: connection options (WAL, busy timeout, foreign keys) and
//! the dialect pieces the shared queries need.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::config::DatabaseSettings;
use crate::{Error, Result};

/// SQLite has one writer: take the write lock up front so a transaction that
/// reads before it writes cannot fail to upgrade when another process wrote
/// in between (a busy timeout does not help there).
pub const BEGIN: &str = "BEGIN IMMEDIATE";
/// Row locks do not exist in SQLite; `BEGIN IMMEDIATE` already serialises writers.
pub const FOR_UPDATE: &str = "";

/// SQLite compares text byte by byte already.
pub const BYTE_ORDER: &str = "";

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Opens the database: the readers' pool (read-only connections, up to
/// `database.max_connections`) and the one connection that writes. SQLite
/// takes one writer at a time; queueing for the write connection in the pool
/// costs a wake-up where contending for SQLite's lock costs the busy
/// handler's sleeps, and a write sent to a reader by mistake fails at once
/// instead of waiting on the lock.
pub async fn connect(s: &DatabaseSettings) -> Result<(SqlitePool, SqlitePool)> {
    let wait = Duration::from_secs(s.acquire_timeout_secs);
    let options = SqliteConnectOptions::from_str(&s.url)
        .map_err(|e| Error::config(format!("database.url is not a SQLite URL: {e}")))?
        .busy_timeout(wait)
        .foreign_keys(true);
    let writes = options
        .clone()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL is durable across application crashes in WAL mode; only an
        // OS crash can lose the last transactions.
        .synchronous(SqliteSynchronous::Normal);
    create_private(writes.get_filename())?;
    let unavailable =
        |e: sqlx::Error| Error::unavailable(format!("cannot open SQLite database {}: {e}", s.url));
    // The writer first: it creates the file and puts it in WAL mode, which
    // the readers need.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        // A ping before every acquire doubled the round trips of a sweep.
        .test_before_acquire(false)
        .acquire_timeout(wait)
        .connect_with(writes)
        .await
        .map_err(unavailable)?;
    // Readers open on first use: an idle daemon only writes its heartbeat.
    let readers = SqlitePoolOptions::new()
        .max_connections(s.max_connections)
        .test_before_acquire(false)
        .acquire_timeout(wait)
        .connect_lazy_with(options.read_only(true));
    Ok((readers, writer))
}

/// Creates a missing database file readable by its owner only (0600): it
/// holds registrants' addresses. SQLite gives its -wal and -shm files the
/// same mode.
fn create_private(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str().is_empty() || path.to_str() == Some(":memory:") || path.exists() {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::unavailable(format!(
            "cannot create the SQLite database {}: {e}",
            path.display()
        ))),
    }
}
