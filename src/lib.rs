//! contact-verifier: registrant contact email verification for domain
//! registrars (ICANN Whois accuracy). The behaviour is documented for users
//! in `docs/`; this map says where each rule lives, one hop from here.
//!
//! | rule | where |
//! | --- | --- |
//! | statuses, reminders (latest passed day, no burst), expiry, backoff, resend plans, imported state | [`domain::verification`] |
//! | what an email change or a departing contact does to an address | [`domain::verification::AddressChange`], [`domain::Verification::on_address_left`] |
//! | what is mailed: template, Lightsail `operationType`, stored reason | [`domain::Notice`] |
//! | link tokens: nothing usable in the database, constant-time MAC check | [`domain::token`] |
//! | operation flags settled by the registrant's status | [`domain::settle`] (run by [`sweep`]'s settle pass) |
//! | one email: claim, render, send, record the outcome | [`delivery::Courier`] |
//! | a sweep: expire, notify, settle passes; `--dry-run` counts the plans | [`sweep`] |
//! | add, show, import, resend (daily limit), confirm, operations | [`service`], one file per concern |
//! | the contract's JSON shapes | [`service::shapes`] |
//! | persistence on SQLite and Postgres, one file per table, one write path for verifications | [`store`] |
//! | CLI commands and exit codes | [`cli`], [`error`] |
//! | HTTP API, confirmation pages, `/healthz` | [`api`] |
//! | the AWS-compatible endpoint (Route 53 Domains over AWS JSON 1.1), Signature V4 checks | `api/aws.rs`, `api/sigv4.rs` |
//! | scheduled sweeps, signals, graceful shutdown, sd_notify | [`daemon`] |
//! | configuration keys, defaults and validation | [`config`] |
//! | JSON log lines with a stable `event` | [`telemetry`] |
//! | Prometheus metrics (`/metrics`), the SMTP and database state `/healthz` reports | [`metrics`] |
//! | `stats`: counts by state, oldest pending link, last sweep | `service/stats.rs`, `store/stats.rs` |
//! | SMTP transport and templates | [`mail`] |

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod hooks;
pub mod mail;
pub mod metrics;
pub mod service;
pub mod store;
pub mod sweep;
pub mod telemetry;

pub use error::{Error, ErrorCode, Result};
