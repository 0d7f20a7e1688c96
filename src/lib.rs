//! contact-verifier: registrant contact email verification for domain
//! registrars (ICANN Whois accuracy). See README.md and the contract in
//! CONTRACT.md for the behaviour this crate implements.

pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod service;
pub mod store;
pub mod telemetry;

pub use error::{Error, ErrorCode, Result};
