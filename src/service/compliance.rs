//! The operator's compliance commands (CONTRACT sections 7, 8 and 10):
//! manual verification, re-verification, evidence and its export, and the
//! list of hook events.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;

use super::markers::page_size;
use super::{ContactDetails, ContactSelector, Verifier, RACE_ATTEMPTS};
use crate::domain::evidence::{parse_by, parse_reason};
use crate::domain::{mask_email, parse_timestamp, Evidence, Proof, Status, Verification};
use crate::store::{EventRecord, Validated};
use crate::{Error, Result};

/// Evidence records read per page of an export.
const EXPORT_PAGE: i64 = 1000;
const MAX_LISTED_EVIDENCE: i64 = 1000;
/// The export's default upper bound: after every real record, and a
/// timestamp that compares as text the same way it compares as time.
const END_OF_TIME: &str = "9999-12-31T23:59:59Z";

/// One page of `events list`.
#[derive(Debug, Clone)]
pub struct EventsPage {
    pub events: Vec<EventRecord>,
    pub next_page_marker: Option<String>,
}

impl EventsPage {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "Events": self.events.iter().map(EventRecord::to_json).collect::<Vec<_>>(),
            "NextPageMarker": self.next_page_marker,
        })
    }
}

impl Verifier {
    /// `contact verify`: an operator makes the address Validated, with the
    /// same effects as a confirmed link, recording who and why.
    pub async fn verify_manually(
        &self,
        selector: &ContactSelector,
        reason: &str,
        by: Option<&str>,
    ) -> Result<ContactDetails> {
        let reason = parse_reason(reason)?;
        let by = by.map(parse_by).transpose()?;
        for attempt in 0..RACE_ATTEMPTS {
            if attempt > 0 {
                // Lost a race with another writer: let it finish first.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            // Read afresh each time: the contact may have moved to another
            // address meanwhile, and that is the address to verify.
            let contact = self.find_contact(selector).await?;
            let Some(mut v) = self.store.verification(&contact.email_key).await? else {
                continue;
            };
            if v.status == Status::Validated {
                return self.details(&contact).await;
            }
            let now = self.now();
            v.validate(now);
            let proof = Proof::Manual {
                reason: reason.clone(),
                by: by.clone(),
            };
            if let Some(done) = self
                .store
                .validate(&mut v, proof, now, &self.policy)
                .await?
            {
                tracing::info!(event = "contact_verified_manually", email = %mask_email(v.email.as_str()),
                    external_id = %contact.external_id, by = by.as_deref().unwrap_or(""), reason = %reason,
                    "an operator verified the email address");
                self.log_validated(&v, &done);
                return self.details(&contact).await;
            }
        }
        Err(Error::unavailable(
            "the verification kept changing; try again",
        ))
    }

    /// `contact reverify`: a Validated address goes back to verification
    /// (the registrar has evidence it no longer works): NotValidated, old
    /// keys void, its domains start waiting.
    pub async fn reverify(
        &self,
        selector: &ContactSelector,
        reason: &str,
    ) -> Result<ContactDetails> {
        let reason = parse_reason(reason)?;
        for attempt in 0..RACE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            let contact = self.find_contact(selector).await?;
            let Some(mut v) = self.store.verification(&contact.email_key).await? else {
                continue;
            };
            if v.status != Status::Validated {
                return Err(Error::invalid(format!(
                    "the email address of {} is {}, not Validated: it is already in verification \
                     (use contact resend to mail it again)",
                    contact.external_id,
                    v.status.as_str()
                )));
            }
            v.restart();
            if self
                .store
                .restart_verification(&mut v, self.now(), &self.policy)
                .await?
            {
                tracing::info!(event = "contact_reverify", email = %mask_email(v.email.as_str()),
                    external_id = %contact.external_id, reason = %reason,
                    "the email address was sent back to verification");
                return self.details(&contact).await;
            }
        }
        Err(Error::unavailable(
            "the verification kept changing; try again",
        ))
    }

    /// `contact evidence`: the address's evidence, newest first.
    pub async fn evidence(&self, selector: &ContactSelector) -> Result<Vec<Evidence>> {
        let contact = self.find_contact(selector).await?;
        self.store
            .evidence_of(&contact.email_key, MAX_LISTED_EVIDENCE)
            .await
    }

    /// `evidence export`: every record with `since <= ValidatedAt < until`
    /// as CSV with a header row, produced page by page (flat memory).
    pub fn evidence_csv(
        &self,
        since: Option<&str>,
        until: Option<&str>,
    ) -> Result<impl Stream<Item = Result<Bytes>> + Send + 'static> {
        let since = match since {
            Some(s) => parse_timestamp("since", s)?,
            None => DateTime::<Utc>::UNIX_EPOCH,
        };
        let until = match until {
            Some(s) => parse_timestamp("until", s)?,
            None => parse_timestamp("until", END_OF_TIME)?,
        };
        if until < since {
            return Err(Error::invalid("until is before since: nothing would match"));
        }
        let store = self.store.clone();
        struct Cursor {
            after: Option<(DateTime<Utc>, String)>,
            header: bool,
            done: bool,
        }
        let start = Cursor {
            after: None,
            header: true,
            done: false,
        };
        Ok(futures::stream::try_unfold(start, move |mut c| {
            let store = store.clone();
            async move {
                if c.done {
                    return Ok(None);
                }
                let mut w = csv::Writer::from_writer(Vec::new());
                if c.header {
                    c.header = false;
                    w.write_record(CSV_HEADER).map_err(csv_error)?;
                }
                let page = store
                    .evidence_page(since, until, c.after.as_ref(), EXPORT_PAGE)
                    .await?;
                c.done = (page.len() as i64) < EXPORT_PAGE;
                if let Some(last) = page.last() {
                    c.after = Some((last.validated_at, last.id.clone()));
                }
                for e in &page {
                    w.write_record(csv_row(e)).map_err(csv_error)?;
                }
                let bytes = w.into_inner().map_err(|e| csv_error(e.into_error()))?;
                Ok(Some((Bytes::from(bytes), c)))
            }
        }))
    }

    /// `events list`: hook events, oldest first, a page at a time.
    pub async fn events(
        &self,
        pending_only: bool,
        max_items: Option<i64>,
        marker: Option<&str>,
    ) -> Result<EventsPage> {
        let limit = page_size(max_items)?;
        let filter = format!("pending={pending_only}");
        let after = match marker {
            Some(m) => self
                .markers
                .read("events", &filter, m)?
                .parse::<i64>()
                .map_err(|_| Error::invalid("the marker does not name a position"))?,
            None => 0,
        };
        let mut events = self.store.events(pending_only, after, limit + 1).await?;
        let more = events.len() as i64 > limit;
        events.truncate(limit as usize);
        let next_page_marker = match events.last() {
            Some(last) if more => {
                Some(self.markers.issue("events", &filter, &last.seq.to_string()))
            }
            _ => None,
        };
        Ok(EventsPage {
            events,
            next_page_marker,
        })
    }

    /// Logs what a validation did: the address, its released domains and its
    /// settled operations.
    pub(crate) fn log_validated(&self, v: &Verification, done: &Validated) {
        let email = mask_email(v.email.as_str());
        let ids: Vec<&str> = done
            .evidence
            .external_ids
            .iter()
            .map(|i| i.as_str())
            .collect();
        tracing::info!(event = "contact_validated", email = %email, external_ids = %ids.join(","),
            method = done.evidence.method.as_str(), "the email address is verified");
        if !done.unsuspended.is_empty() {
            let names: Vec<&str> = done.unsuspended.iter().map(|d| d.as_str()).collect();
            tracing::info!(event = "domain_unsuspended", email = %email, domains = %names.join(","),
                "suspended domains released: the registrant's email address is verified");
        }
        for op in &done.settled {
            tracing::info!(event = "operation_updated", operation_id = %op.operation_id,
                domain = %op.domain_name, status = %op.status, status_flag = "null",
                "operation settled by its registrant's verification");
        }
    }
}

const CSV_HEADER: [&str; 11] = [
    "ContactEmail",
    "ExternalIds",
    "Domains",
    "ValidatedAt",
    "Method",
    "KeyId",
    "KeyIssuedAt",
    "ClientIp",
    "UserAgent",
    "Reason",
    "By",
];

/// One CSV row; lists are space-separated (handles and domain names hold no
/// spaces).
fn csv_row(e: &Evidence) -> [String; 11] {
    let join = |items: Vec<&str>| items.join(" ");
    let ts = |t: &Option<DateTime<Utc>>| {
        t.as_ref()
            .map(crate::domain::format_timestamp)
            .unwrap_or_default()
    };
    [
        e.contact_email.to_string(),
        join(e.external_ids.iter().map(|i| i.as_str()).collect()),
        join(e.domains.iter().map(|d| d.as_str()).collect()),
        crate::domain::format_timestamp(&e.validated_at),
        e.method.as_str().to_string(),
        e.key_id.as_ref().map(|k| k.to_hex()).unwrap_or_default(),
        ts(&e.key_issued_at),
        e.client_ip.clone().unwrap_or_default(),
        e.user_agent.clone().unwrap_or_default(),
        e.reason.clone().unwrap_or_default(),
        e.by.clone().unwrap_or_default(),
    ]
}

fn csv_error(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("cannot write CSV: {e}"))
}
