//! Postgres specifics: the pool and the dialect pieces the shared queries need.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::{mask_url_password, DatabaseSettings};
use crate::{Error, Result};

pub const BEGIN: &str = "BEGIN";
/// Rows a transaction reads before writing are locked, so concurrent writers
/// queue instead of overwriting each other.
pub const FOR_UPDATE: &str = " FOR UPDATE";

/// Compares text byte by byte, as SQLite does, whatever the database's
/// collation: lists keep one order on both backends.
pub const BYTE_ORDER: &str = " COLLATE \"C\"";

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub async fn connect(s: &DatabaseSettings) -> Result<PgPool> {
    // One direct connection first: a refused or unknown server is reported
    // at once as what it is, not after the pool's acquire timeout as
    // "pool timed out".
    let options: PgConnectOptions = s.url.parse().map_err(|e| {
        Error::config(format!(
            "database.url is not a usable Postgres URL ({}): {e}",
            mask_url_password(&s.url)
        ))
    })?;
    let probe = tokio::time::timeout(
        Duration::from_secs(s.acquire_timeout_secs),
        PgConnection::connect_with(&options),
    )
    .await;
    match probe {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
        }
        Ok(Err(e)) => {
            return Err(Error::unavailable(format!(
                "cannot connect to Postgres at {}: {e}",
                mask_url_password(&s.url)
            )))
        }
        Err(_) => {
            return Err(Error::unavailable(format!(
                "cannot connect to Postgres at {}: no answer within {} s \
                 (database.acquire_timeout_secs)",
                mask_url_password(&s.url),
                s.acquire_timeout_secs
            )))
        }
    }
    PgPoolOptions::new()
        .max_connections(s.max_connections)
        // A ping before every acquire doubled the round trips of a sweep; a
        // dead connection fails its query and is replaced.
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(s.acquire_timeout_secs))
        .connect(&s.url)
        .await
        .map_err(|e| match e {
            sqlx::Error::Configuration(_) => Error::config(format!(
                "database.url is not a usable Postgres URL ({}): {e}",
                mask_url_password(&s.url)
            )),
            e => Error::unavailable(format!(
                "cannot connect to Postgres at {}: {e}",
                mask_url_password(&s.url)
            )),
        })
}
