//! The operations the CLI and the HTTP API share: each parses its input into
//! typed values, applies the contract's rules and answers in the contract's
//! shapes. Transports only translate.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

use crate::clock::Clock;
use crate::config::Settings;
use crate::delivery::{Delivery, Job};
use crate::domain::verification::Status;
use crate::domain::verification::{ResendPlan, Sent};
use crate::domain::{mask_email, TokenSecret, VerificationToken};
use crate::domain::{
    parse_timestamp, ts_serde, ContactEmail, DomainName, ExternalId, OperationStatus,
    OperationType, Policy, StatusFlag,
};
use crate::mail::{MailKind, Mailer};
use crate::store::{operation_type, reason, NotificationRecord};
use crate::store::{ContactRecord, ContactUpsert, ImportedState, OperationRecord, Store};
use crate::{Error, ErrorCode, Result};

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

/// The reseller ContactApi's GetDetails object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContactDetails {
    pub external_id: String,
    pub contact_email: String,
    pub verification_status: Status,
    #[serde(serialize_with = "ts_serde::option")]
    pub expiration_date: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ts_serde::option")]
    pub last_notification_date: Option<DateTime<Utc>>,
    pub domains: Vec<String>,
}

/// GetContactReachabilityStatus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reachability {
    pub domain_name: String,
    pub status: &'static str,
}

/// One line of `contact import` (CONTRACT section 3).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    external_id: String,
    email: String,
    #[serde(default)]
    domains: Vec<String>,
    status: Option<String>,
    key_issued_at: Option<String>,
    last_notification_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportRejection {
    pub line: u64,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub imported: u64,
    pub rejected: Vec<ImportRejection>,
    /// All rejected lines, also those past the listed ones.
    pub rejected_count: u64,
}

impl ImportReport {
    fn reject(&mut self, line: u64, e: &Error) {
        self.rejected_count += 1;
        if self.rejected.len() < MAX_LISTED_REJECTIONS {
            self.rejected.push(ImportRejection {
                line,
                error: format!("{}: {}", e.code.as_str(), e.message),
            });
        }
    }
}

/// Reads and drops the rest of an overlong line without holding it.
async fn skip_rest_of_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<()> {
    let mut sink = Vec::new();
    loop {
        sink.clear();
        let m = (&mut *reader)
            .take(MAX_IMPORT_LINE)
            .read_until(b'\n', &mut sink)
            .await
            .map_err(|e| Error::invalid(format!("cannot read import input: {e}")))?;
        if m == 0 || sink.last() == Some(&b'\n') {
            return Ok(());
        }
    }
}

/// Lines written per transaction by an import.
const IMPORT_BATCH: usize = 500;
/// Longest accepted import line; a longer one is rejected, not buffered.
const MAX_IMPORT_LINE: u64 = 64 * 1024;
/// Rejections listed in an import report; the count covers the rest.
const MAX_LISTED_REJECTIONS: usize = 10_000;
/// Most operations one list returns, newest first.
const MAX_LISTED_OPERATIONS: i64 = 1000;

/// The contact-verification service over one store.
#[derive(Clone)]
pub struct Verifier {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub policy: Policy,
    pub clock: Clock,
    mailer: Option<Arc<Mailer>>,
    secret: Option<TokenSecret>,
}

impl Verifier {
    /// A verifier that can read and write the store but not send or confirm.
    pub fn new(store: Store, settings: Arc<Settings>, clock: Clock) -> Self {
        let policy = settings.policy();
        Verifier {
            store,
            settings,
            policy,
            clock,
            mailer: None,
            secret: None,
        }
    }

    /// Adds the SMTP client and the link secret, for the commands that send
    /// or confirm. Fails with a configuration error naming the missing key.
    pub fn with_mail(mut self) -> Result<Self> {
        self.secret = Some(self.settings.token_secret()?);
        let dir = &self.settings.templates.dir;
        let dir = (!dir.is_empty()).then(|| std::path::Path::new(dir));
        self.mailer = Some(Arc::new(Mailer::new(&self.settings.smtp, dir)?));
        Ok(self)
    }

    /// Adds only the link secret (confirming needs no SMTP).
    pub fn with_secret(mut self) -> Result<Self> {
        self.secret = Some(self.settings.token_secret()?);
        Ok(self)
    }

    pub(crate) fn mailer(&self) -> Result<&Mailer> {
        self.mailer
            .as_deref()
            .ok_or_else(|| Error::internal("this command was started without the SMTP client"))
    }

    pub(crate) fn secret(&self) -> Result<&TokenSecret> {
        self.secret
            .as_ref()
            .ok_or_else(|| Error::internal("this command was started without the link secret"))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
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

    fn parse_domains(&self, names: &[String]) -> Result<Vec<DomainName>> {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let d = DomainName::parse(name)?;
            self.check_tld(&d)?;
            if !out.contains(&d) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// `contact add` / `POST /v1/contacts`: create or update a contact.
    pub async fn add_contact(
        &self,
        external_id: &str,
        email: &str,
        domains: &[String],
    ) -> Result<ContactDetails> {
        let input = ContactUpsert {
            external_id: ExternalId::parse(external_id)?,
            email: ContactEmail::parse(email)?,
            domains: self.parse_domains(domains)?,
            import: None,
        };
        let outcome = self
            .store
            .upsert_contact(&input, self.now(), &self.policy)
            .await?;
        if outcome.email_changed {
            tracing::info!(
                event = "contact_email_changed",
                external_id = %outcome.contact.external_id,
                email = %crate::domain::mask_email(&outcome.contact.email),
                "contact moved to a new email address; links sent to the old one no longer confirm it"
            );
        }
        self.details(&outcome.contact).await
    }

    fn parse_import_line(&self, text: &str) -> Result<ContactUpsert> {
        let line: ImportLine = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("not a valid import object: {e}")))?;
        let status = line
            .status
            .as_deref()
            .map(Status::parse)
            .transpose()?
            .unwrap_or(Status::NotValidated);
        let key_issued_at = line
            .key_issued_at
            .as_deref()
            .map(|s| parse_timestamp("key_issued_at", s))
            .transpose()?;
        let last_notification_at = line
            .last_notification_at
            .as_deref()
            .map(|s| parse_timestamp("last_notification_at", s))
            .transpose()?;
        if key_issued_at.is_some_and(|t| t > self.now()) {
            return Err(Error::invalid("key_issued_at is in the future"));
        }
        if matches!(status, Status::Pending | Status::Expired) && key_issued_at.is_none() {
            return Err(Error::invalid(format!(
                "key_issued_at is required for status {}",
                status.as_str()
            )));
        }
        Ok(ContactUpsert {
            external_id: ExternalId::parse(&line.external_id)?,
            email: ContactEmail::parse(&line.email)?,
            domains: self.parse_domains(&line.domains)?,
            import: Some(ImportedState {
                status,
                key_issued_at,
                last_notification_at,
            }),
        })
    }

    /// `contact import`: JSON Lines streamed from `reader`. Good lines are
    /// written [`IMPORT_BATCH`] to a transaction; a batch the database refuses
    /// is replayed line by line, so every bad line is reported by number and
    /// reason and the good ones are imported all the same. The database going
    /// away stops the import with an error (committed batches stay).
    pub async fn import<R: AsyncBufRead + Unpin>(&self, mut reader: R) -> Result<ImportReport> {
        let mut report = ImportReport::default();
        let mut batch: Vec<(u64, ContactUpsert)> = Vec::with_capacity(IMPORT_BATCH);
        let mut buf = Vec::with_capacity(1024);
        let mut line_no = 0u64;
        loop {
            buf.clear();
            let n = (&mut reader)
                .take(MAX_IMPORT_LINE + 1)
                .read_until(b'\n', &mut buf)
                .await
                .map_err(|e| Error::invalid(format!("cannot read import input: {e}")))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let parsed = if buf.len() as u64 > MAX_IMPORT_LINE && buf.last() != Some(&b'\n') {
                skip_rest_of_line(&mut reader).await?;
                Err(Error::invalid(format!(
                    "line is longer than {MAX_IMPORT_LINE} bytes"
                )))
            } else {
                match std::str::from_utf8(&buf) {
                    Err(_) => Err(Error::invalid("line is not UTF-8")),
                    Ok(text) if text.trim().is_empty() => continue,
                    Ok(text) => self.parse_import_line(text.trim()),
                }
            };
            match parsed {
                Ok(input) => batch.push((line_no, input)),
                Err(e) => report.reject(line_no, &e),
            }
            if batch.len() >= IMPORT_BATCH {
                self.write_import_batch(&mut batch, &mut report).await?;
            }
        }
        self.write_import_batch(&mut batch, &mut report).await?;
        report.rejected.sort_by_key(|r| r.line);
        Ok(report)
    }

    async fn write_import_batch(
        &self,
        batch: &mut Vec<(u64, ContactUpsert)>,
        report: &mut ImportReport,
    ) -> Result<()> {
        let Some(first) = batch.first().map(|(line, _)| *line) else {
            return Ok(());
        };
        let stopped = |e: Error, report: &ImportReport| {
            Error::unavailable(format!(
                "import stopped at line {first} ({} lines imported before it): {}",
                report.imported, e.message
            ))
        };
        let inputs: Vec<ContactUpsert> = batch.iter().map(|(_, i)| i.clone()).collect();
        match self
            .store
            .upsert_contacts(&inputs, self.now(), &self.policy)
            .await
        {
            Ok(()) => report.imported += inputs.len() as u64,
            Err(e) if e.code == ErrorCode::Unavailable => return Err(stopped(e, report)),
            Err(_) => {
                for (line, input) in batch.iter() {
                    match self
                        .store
                        .upsert_contact(input, self.now(), &self.policy)
                        .await
                    {
                        Ok(_) => report.imported += 1,
                        Err(e) if e.code == ErrorCode::Unavailable => {
                            return Err(stopped(e, report))
                        }
                        Err(e) => report.reject(*line, &e),
                    }
                }
            }
        }
        batch.clear();
        Ok(())
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

    /// GetDetails for a contact.
    pub async fn details(&self, contact: &ContactRecord) -> Result<ContactDetails> {
        let v = self
            .store
            .verification(&contact.email_key)
            .await?
            .ok_or_else(|| Error::internal("contact has no verification record"))?;
        let domains = self.store.contact_domains(&contact.external_id).await?;
        let expiration_date = match v.status {
            Status::Pending | Status::Expired => v.key.as_ref().map(|k| k.expires_at),
            Status::NotValidated | Status::Validated => None,
        };
        Ok(ContactDetails {
            external_id: contact.external_id.clone(),
            contact_email: contact.email.clone(),
            verification_status: v.status,
            expiration_date,
            last_notification_date: v.last_notification_at,
            domains,
        })
    }

    pub async fn show_contact(&self, selector: &ContactSelector) -> Result<ContactDetails> {
        let contact = self.find_contact(selector).await?;
        self.details(&contact).await
    }

    /// The registrant of a domain, or NotFound.
    pub async fn registrant(&self, domain: &DomainName) -> Result<ContactRecord> {
        self.store
            .registrant(domain)
            .await?
            .ok_or_else(|| Error::not_found(format!("no contact is registrant of {domain}")))
    }

    /// GetContactReachabilityStatus.
    pub async fn reachability(&self, name: &str) -> Result<Reachability> {
        let domain = DomainName::parse(name)?;
        self.check_tld(&domain)?;
        let contact = self.registrant(&domain).await?;
        let details = self.details(&contact).await?;
        Ok(Reachability {
            domain_name: domain.to_string(),
            status: details.verification_status.reachability(),
        })
    }

    /// Records an operation that waits on the domain's registrant. It starts
    /// `SUBMITTED`; with no flag given and a registrant not yet validated it
    /// carries `PENDING_CUSTOMER_ACTION` at once, as the sweep would set it.
    pub async fn add_operation(
        &self,
        domain: &str,
        op_type: &str,
        flag: Option<&str>,
    ) -> Result<OperationRecord> {
        let domain = DomainName::parse(domain)?;
        let op_type = OperationType::parse(op_type)?;
        let flag = flag.map(StatusFlag::parse).transpose()?;
        self.check_tld(&domain)?;
        let contact = self.registrant(&domain).await?;
        let status = self
            .store
            .verification(&contact.email_key)
            .await?
            .map(|v| v.status);
        let flag = match (flag, status) {
            (Some(f), _) => Some(f),
            (None, Some(Status::Validated)) => None,
            (None, _) => Some(StatusFlag::PENDING_CUSTOMER_ACTION),
        };
        let now = self.now();
        let op = OperationRecord {
            operation_id: uuid::Uuid::new_v4().to_string(),
            status: OperationStatus::SUBMITTED,
            op_type,
            domain_name: domain.to_string(),
            message: None,
            submitted_date: now,
            last_updated_date: now,
            status_flag: flag,
        };
        self.store.insert_operation(&op).await?;
        Ok(op)
    }

    /// GetOperationDetail.
    pub async fn operation(&self, id: &str) -> Result<OperationRecord> {
        let id = uuid::Uuid::parse_str(id.trim())
            .map_err(|_| Error::invalid(format!("operation id {id:?} is not a UUID")))?;
        self.store
            .operation(&id.to_string())
            .await?
            .ok_or_else(|| Error::not_found(format!("no operation with id {id}")))
    }

    /// Operations, newest first, filtered by domain and/or flag.
    pub async fn operations(
        &self,
        domain: Option<&str>,
        flag: Option<&str>,
    ) -> Result<Vec<OperationRecord>> {
        let domain = domain.map(DomainName::parse).transpose()?;
        let flag = flag.map(StatusFlag::parse).transpose()?;
        self.store
            .operations(domain.as_ref(), flag, MAX_LISTED_OPERATIONS)
            .await
    }

    /// ResendContactVerificationNotice: delivered now, not queued. Already
    /// validated -> no email; pending -> the current link again; otherwise a
    /// fresh key. More than the daily limit -> OperationLimitExceeded.
    pub async fn resend(&self, selector: &ContactSelector) -> Result<ResendOutcome> {
        let contact = self.find_contact(selector).await?;
        let owner = format!("resend-{}", uuid::Uuid::new_v4().simple());
        for _ in 0..RESEND_ATTEMPTS {
            let now = self.now();
            let v = self
                .store
                .verification(&contact.email_key)
                .await?
                .ok_or_else(|| Error::internal("contact has no verification record"))?;
            let plan = v.resend_plan(now);
            if plan == ResendPlan::AlreadyVerified {
                return Ok(ResendOutcome {
                    details: self.details(&contact).await?,
                    notification: None,
                });
            }
            let limit = i64::from(self.settings.verification.resend_limit_per_day);
            let recent = self
                .store
                .resends_since(&contact.email_key, now - chrono::Duration::hours(24))
                .await?;
            if recent >= limit {
                return Err(Error::new(
                    ErrorCode::OperationLimitExceeded,
                    format!("{recent} verification emails were resent to this address in the last 24 hours (limit {limit}); try again later"),
                ));
            }
            if v.is_claimed(now) {
                // A sweep is mailing this address right now; wait for it.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
            let job = Job {
                kind: MailKind::Verification,
                operation_type: operation_type::VERIFICATION,
                reason: reason::RESEND.to_string(),
                new_key: plan == ResendPlan::NewKey,
                backoff_on_failure: false,
                sent: Sent::Verification,
            };
            match self.deliver(&v, &job, &owner).await? {
                Delivery::Skipped => continue,
                Delivery::Sent(note) => {
                    return Ok(ResendOutcome {
                        details: self.details(&contact).await?,
                        notification: Some(note),
                    })
                }
                Delivery::Failed(_, e) => {
                    return Err(Error::unavailable(format!(
                        "the SMTP server did not accept the message ({}): {}",
                        e.code, e.detail
                    )))
                }
            }
        }
        Err(Error::unavailable(
            "another delivery to this address is in progress; try again shortly",
        ))
    }

    /// ResendContactReachabilityEmail for a domain's registrant.
    pub async fn resend_for_domain(&self, name: &str) -> Result<DomainResend> {
        let domain = DomainName::parse(name)?;
        self.check_tld(&domain)?;
        let contact = self.registrant(&domain).await?;
        let id = ExternalId::parse(&contact.external_id)?;
        let outcome = self.resend(&ContactSelector::ExternalId(id)).await?;
        Ok(DomainResend {
            domain_name: domain.to_string(),
            email_address: contact.email,
            is_already_verified: outcome.notification.is_none(),
        })
    }

    /// Checks a link without changing anything (the GET page; mail scanners
    /// fetch links): genuine, not voided, current, and either confirmable or
    /// already confirmed. Expired links are an `Expired` error.
    pub async fn check_link(&self, token: &str) -> Result<LinkCheck> {
        let secret = self.secret()?;
        let token = VerificationToken::parse(token)?;
        let invalid = || {
            Error::invalid(
                "this verification link is not valid; check that it was copied completely",
            )
        };
        let key = self
            .store
            .key(&token.key_id().to_hex())
            .await?
            .ok_or_else(invalid)?;
        if !secret.verify(&token, &key.email_key) {
            return Err(invalid());
        }
        let void = |reason: &str| {
            Error::invalid(format!("this verification link no longer works: {reason}"))
        };
        if let Some(reason) = &key.void_reason {
            return Err(void(reason));
        }
        // A key not voided is the current one, or one whose email is being
        // delivered right now: either way its holder received our link.
        let v = self
            .store
            .verification(&key.email_key)
            .await?
            .ok_or_else(|| void(crate::store::VOID_EMAIL_CHANGED))?;
        let contact = self
            .store
            .contacts_by_email(&key.email_key)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| void("no contact uses the address any more"))?;
        if v.status != Status::Validated && self.now() >= key.expires_at {
            return Err(Error::new(
                ErrorCode::Expired,
                format!(
                    "this verification link expired on {}; ask your registrar to send a new one",
                    crate::domain::format_timestamp(&key.expires_at)
                ),
            ));
        }
        Ok(LinkCheck {
            already_confirmed: v.status == Status::Validated,
            verification: v,
            contact,
        })
    }

    /// What the emailed link does: validates the address the token was
    /// issued for, if the token is genuine, current and unexpired.
    /// Confirming again is a success that changes nothing.
    pub async fn confirm(&self, token: &str) -> Result<Confirmation> {
        for _ in 0..RESEND_ATTEMPTS {
            let check = self.check_link(token).await?;
            let mut v = check.verification;
            if !check.already_confirmed {
                let now = self.now();
                v.validate(now);
                let change = crate::store::Change::default();
                if !self
                    .store
                    .commit(&mut v, &change, now, &self.policy)
                    .await?
                {
                    continue;
                }
                tracing::info!(event = "contact_validated", email = %mask_email(&v.email),
                    external_id = %check.contact.external_id, "registrant confirmed the email address");
            }
            return Ok(Confirmation {
                details: self.details(&check.contact).await?,
                already_confirmed: check.already_confirmed,
                email: v.email,
            });
        }
        Err(Error::unavailable(
            "the verification kept changing; try again",
        ))
    }

    /// A contact's notification records (its address's), newest first.
    pub async fn notifications(
        &self,
        selector: &ContactSelector,
    ) -> Result<Vec<NotificationRecord>> {
        let contact = self.find_contact(selector).await?;
        self.store
            .notifications(&contact.email_key, MAX_LISTED_NOTIFICATIONS)
            .await
    }
}

/// Resends and confirmations retry this often when racing another writer.
const RESEND_ATTEMPTS: u32 = 25;
const MAX_LISTED_NOTIFICATIONS: i64 = 1000;

/// ResendContactVerificationNotice's answer: GetDetails plus the record of
/// the email sent (`None` when the address was already verified).
#[derive(Debug, Clone)]
pub struct ResendOutcome {
    pub details: ContactDetails,
    pub notification: Option<NotificationRecord>,
}

impl ResendOutcome {
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.details).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.insert(
                "Notification".into(),
                serde_json::to_value(&self.notification).unwrap_or_default(),
            );
        }
        v
    }
}

/// ResendContactReachabilityEmail's answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainResend {
    pub domain_name: String,
    pub email_address: String,
    pub is_already_verified: bool,
}

/// A link that checked out: whose it is and whether it was used already.
#[derive(Debug, Clone)]
pub struct LinkCheck {
    pub verification: crate::domain::Verification,
    pub contact: ContactRecord,
    pub already_confirmed: bool,
}

#[derive(Debug, Clone)]
pub struct Confirmation {
    pub details: ContactDetails,
    pub already_confirmed: bool,
    /// The confirmed address, for the result page.
    pub email: String,
}
