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
//! | suspension deadlines, the operations that restart verification or suspend at once | [`domain::suspension`] |
//! | evidence of a validation; hook events | [`domain::evidence`], [`domain::event`] |
//! | validation's effects (release, settle, evidence, events) in one transaction | `store/compliance.rs` |
//! | delivering events to the hook: order, retries, signatures | [`hooks`] |
//! | emails: claims in chunks within one lease, sends, group-committed outcomes | [`delivery::Courier`] |
//! | the SMTP pool: TCP_NODELAY, TLS, AUTH, command and final-dot timeouts | `mail/pool.rs` |
//! | a sweep: expire, notify, suspend, settle passes; `--dry-run` counts the plans | [`sweep`] |
//! | set-based import | `store/import.rs` |
//! | paginated lists and their opaque markers | `service/markers.rs` |
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
//! | languages: dates, plurals, `Accept-Language`, localized templates | [`i18n`] |
//! | the registrant's pages, "send me a new link" | `api/pages.rs`, `service/link_resend.rs` |

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod hooks;
pub mod i18n;
pub mod liveness;
pub mod mail;
pub mod metrics;
pub mod page_templates;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod sweep;
pub mod telemetry;

pub use error::{Error, ErrorCode, Result};
