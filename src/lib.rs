//! contact-verifier: registrant contact email verification for domain
//! registrars (ICANN Whois accuracy). See README.md and the contract in
//! CONTRACT.md for the behaviour this crate implements.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod mail;
pub mod service;
pub mod store;
pub mod sweep;
pub mod telemetry;

pub use error::{Error, ErrorCode, Result};
