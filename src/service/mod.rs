//! The operations the CLI, the HTTP API and the confirmation pages share:
//! each parses its input into typed values, applies the contract's rules and
//! answers in the contract's shapes (`shapes.rs`). Transports only translate.
//!
//! By concern: `contacts.rs` (add, show, notification history),
//! `import.rs`, `resend.rs`, `confirm.rs` (links and the pages' questions),
//! `operations.rs` (reachability and domain operations). Mail leaves through
//! the [`Courier`]; sweeps run in [`Sweeper`].

mod bounces;
mod compliance;
mod confirm;
mod contacts;
mod import;
mod link_resend;
mod markers;
mod operations;
mod resend;
pub mod shapes;
mod stats;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::config::Settings;
use crate::delivery::Courier;
use crate::domain::{ContactEmail, DomainName, ExternalId, Policy, TokenSecret};
use crate::hooks::{Hooks, Round};
use crate::liveness::Liveness;
use crate::mail::Mailer;
use crate::store::{ContactRecord, Store};
use crate::sweep::{StopSignal, SweepSummary, Sweeper};
use crate::{Error, ErrorCode, Result};
pub use bounces::BounceReport;
pub use compliance::EventsPage;
pub use confirm::ClientInfo;
pub use contacts::ContactsPage;
pub use link_resend::{LinkFacts, LinkResend};
use markers::Markers;
pub use operations::OperationsPage;
pub use shapes::*;
pub use stats::{ContactCounts, LastSweep, Stats};

/// How a caller names a contact: by handle or by address.
#[derive(Debug, Clone)]
pub enum ContactSelector {
    ExternalId(ExternalId),
    Email(ContactEmail),
}

impl ContactSelector {
    /// From the CLI's or API's two optional fields, exactly one of which must be given.
    pub fn from_parts(external_id: Option<&str>, email: Option<&str>) -> Result<Self> {
        match (external_id, email) {
            (Some(id), None) => Ok(ContactSelector::ExternalId(ExternalId::parse(id)?)),
            (None, Some(e)) => Ok(ContactSelector::Email(ContactEmail::parse(e)?)),
            _ => Err(Error::invalid("give exactly one of external id or email")),
        }
    }
}

/// Resends and confirmations retry this often when racing another writer.
const RACE_ATTEMPTS: u32 = 25;

/// The contact-verification service over one store.
#[derive(Clone)]
pub struct Verifier {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub policy: Policy,
    pub clock: Clock,
    courier: Option<Courier>,
    secret: Option<TokenSecret>,
    markers: Markers,
    hooks: Option<Hooks>,
    /// This process's standing as a claim owner.
    pub liveness: Liveness,
}

impl Verifier {
    /// A verifier that can read and write the store but not send or confirm.
    pub fn new(store: Store, settings: Arc<Settings>, clock: Clock) -> Self {
        let policy = settings.policy();
        let markers = Markers::new(&settings.verification.secret);
        Verifier {
            store,
            settings,
            policy,
            clock,
            courier: None,
            secret: None,
            markers,
            hooks: None,
            liveness: Liveness::new(),
        }
    }

    /// Adds the SMTP client and the link secret, for the commands that send
    /// or confirm. Fails with a configuration error naming the missing key.
    pub fn with_mail(mut self) -> Result<Self> {
        let secret = self.settings.token_secret()?;
        let dir = &self.settings.templates.dir;
        let dir = (!dir.is_empty()).then(|| std::path::Path::new(dir));
        let mailer = Arc::new(Mailer::new(&self.settings.smtp, dir)?);
        self.courier = Some(
            Courier::new(
                self.store.clone(),
                mailer,
                secret.clone(),
                self.policy.clone(),
                self.clock.clone(),
                &self.settings.verification.link_base_url,
                self.liveness.clone(),
            )
            .with_branding(crate::config::BrandingSettings {
                name: self.settings.registrar_name(),
                ..self.settings.branding.clone()
            }),
        );
        self.secret = Some(secret);
        self.hooks = Hooks::new(&self.settings.hooks, self.store.clone(), self.clock.clone())?;
        Ok(self)
    }

    /// The configured hook, for the daemon's delivery loop.
    pub fn hooks(&self) -> Option<&Hooks> {
        self.hooks.as_ref()
    }

    /// Delivers the events pending now, in order (a one-shot sweep does this
    /// before it exits); nothing when no hook is configured.
    pub async fn deliver_events(&self) -> Result<Round> {
        match &self.hooks {
            Some(h) => h.deliver_pending().await,
            None => Ok(Round::default()),
        }
    }

    /// Adds only the link secret (confirming needs no SMTP).
    pub fn with_secret(mut self) -> Result<Self> {
        self.secret = Some(self.settings.token_secret()?);
        Ok(self)
    }

    fn courier(&self) -> Result<&Courier> {
        self.courier
            .as_ref()
            .ok_or_else(|| Error::internal("this command was started without the SMTP client"))
    }

    fn secret(&self) -> Result<&TokenSecret> {
        self.secret
            .as_ref()
            .ok_or_else(|| Error::internal("this command was started without the link secret"))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Runs one sweep (see [`Sweeper`]); a dry run needs no SMTP client.
    pub async fn sweep(&self, dry_run: bool, stop: &StopSignal) -> Result<SweepSummary> {
        Sweeper::new(
            self.store.clone(),
            self.courier.clone(),
            self.policy.clone(),
            self.clock.clone(),
            self.settings.smtp.max_connections as usize,
            self.liveness.clone(),
        )
        .run(dry_run, stop)
        .await
    }

    /// Refuses a domain whose TLD is not in `verification.supported_tlds`.
    pub fn check_tld(&self, domain: &DomainName) -> Result<()> {
        let tlds = &self.settings.verification.supported_tlds;
        if tlds.is_empty() || tlds.iter().any(|t| t == domain.tld()) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::UnsupportedTLD,
                format!("the TLD .{} of {domain} is not supported", domain.tld()),
            ))
        }
    }

    /// A domain name from a caller, parsed and within the supported TLDs.
    fn parse_domain(&self, name: &str) -> Result<DomainName> {
        let d = DomainName::parse(name)?;
        self.check_tld(&d)?;
        Ok(d)
    }

    fn parse_domains(&self, names: &[String]) -> Result<Vec<DomainName>> {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let d = self.parse_domain(name)?;
            if !out.contains(&d) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Finds a contact; by address, the first of the contacts using it.
    pub async fn find_contact(&self, selector: &ContactSelector) -> Result<ContactRecord> {
        match selector {
            ContactSelector::ExternalId(id) => self
                .store
                .contact(id)
                .await?
                .ok_or_else(|| Error::not_found(format!("no contact with external id {id}"))),
            ContactSelector::Email(email) => self
                .store
                .contacts_by_email(&email.key())
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| Error::not_found(format!("no contact with email {email}"))),
        }
    }

    /// The registrant of a domain, or NotFound.
    pub async fn registrant(&self, domain: &DomainName) -> Result<ContactRecord> {
        self.store
            .registrant(domain)
            .await?
            .ok_or_else(|| Error::not_found(format!("no contact is registrant of {domain}")))
    }
}
