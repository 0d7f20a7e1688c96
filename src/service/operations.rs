//! Domains and their operations: GetContactReachabilityStatus, `domain
//! show`, recording an operation that waits on the registrant (with what it
//! does to a registrant, CONTRACT section 7), GetOperationDetail and lists.

use super::{DomainDetails, Reachability, Verifier};
use crate::domain::suspension::{days_to_suspend, restarts_verification, suspends_at_once};
use crate::domain::{mask_email, DomainName, OperationStatus, OperationType, Status, StatusFlag};
use crate::store::{OperationCursor, OperationEffect, OperationFilter, OperationRecord};
use crate::{Error, Result};

impl Verifier {
    /// GetContactReachabilityStatus.
    pub async fn reachability(&self, name: &str) -> Result<Reachability> {
        let domain = self.parse_domain(name)?;
        let contact = self.registrant(&domain).await?;
        let details = self.details(&contact).await?;
        Ok(Reachability {
            domain_name: domain,
            status: details.verification_status.reachability(),
        })
    }

    /// `domain show`: the domain's verification and suspension.
    pub async fn domain_details(&self, name: &str) -> Result<DomainDetails> {
        let name = self.parse_domain(name)?;
        let domain = self
            .store
            .domain(&name)
            .await?
            .ok_or_else(|| Error::not_found(format!("no contact is registrant of {name}")))?;
        let contact = self.registrant(&name).await?;
        let v = self
            .store
            .verification(&contact.email_key)
            .await?
            .ok_or_else(|| Error::internal("contact has no verification record"))?;
        // With suspension off no domain has a deadline, whatever is stored.
        let waiting = domain.waiting_since.is_some() && self.policy.suspend_after.is_some();
        let now = self.now();
        Ok(DomainDetails {
            domain_name: domain.name,
            registrant_external_id: contact.external_id,
            contact_email: contact.email,
            reachability_status: v.status.reachability(),
            suspension_date: domain.suspension_date.filter(|_| waiting),
            days_to_suspend: domain
                .suspension_date
                .filter(|_| waiting)
                .map(|d| days_to_suspend(now, d)),
            suspended: domain.suspended,
            suspended_at: domain.suspended_at,
        })
    }

    /// Records an operation that waits on the domain's registrant. It starts
    /// `SUBMITTED`; with no flag given and a registrant not yet validated it
    /// carries `PENDING_CUSTOMER_ACTION` at once, as the sweep would set it.
    /// A registration, transfer or registrant change on an Expired registrant
    /// starts a new verification; a restored name whose registrant is not
    /// Validated is suspended at once.
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
        let mut registrant = self.store.verification(&contact.email_key).await?;
        let status = registrant.as_ref().map(|v| v.status);
        let effect = match status {
            Some(Status::Expired) if restarts_verification(op_type) => OperationEffect::Restarted,
            Some(s)
                if s != Status::Validated
                    && suspends_at_once(op_type)
                    && self.policy.suspend_after.is_some() =>
            {
                OperationEffect::Suspended
            }
            _ => OperationEffect::None,
        };
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
            domain_name: domain,
            message: None,
            submitted_date: now,
            last_updated_date: now,
            status_flag: flag,
        };
        let done = self
            .store
            .add_operation(&op, registrant.as_mut(), effect, now, &self.policy)
            .await?;
        let email = mask_email(contact.email.as_str());
        match done {
            OperationEffect::Restarted => {
                tracing::info!(event = "contact_reverify", email = %email,
                operation_id = %op.operation_id, reason = %format!("{op_type} on an expired registrant"),
                "a new verification of the registrant's email address was started")
            }
            OperationEffect::Suspended => {
                tracing::warn!(event = "domain_suspended", email = %email,
                domains = %op.domain_name, "restored name suspended: the registrant's email address is not verified")
            }
            OperationEffect::None => {}
        }
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

    /// `operation list`: newest first, filtered by domain and/or flag, a
    /// page at a time (default 100, at most 1000).
    pub async fn operations(
        &self,
        domain: Option<&str>,
        flag: Option<&str>,
        max_items: Option<i64>,
        marker: Option<&str>,
    ) -> Result<OperationsPage> {
        let filter = OperationFilter {
            domain: domain.map(DomainName::parse).transpose()?,
            status_flag: flag.map(StatusFlag::parse).transpose()?,
            ..OperationFilter::default()
        };
        let limit = super::markers::page_size(max_items)?;
        self.operations_page(&filter, marker, limit).await
    }
}

/// One page of operations and the marker of the next (`None` on the last).
#[derive(Debug, Clone, utoipa::ToSchema)]
#[schema(rename_all = "PascalCase")]
pub struct OperationsPage {
    pub operations: Vec<OperationRecord>,
    /// Null on the last page.
    #[schema(required = true)]
    pub next_page_marker: Option<String>,
}

impl OperationsPage {
    /// `{"Operations":[...],"NextPageMarker":...}` (null on the last page).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "Operations": self.operations,
            "NextPageMarker": self.next_page_marker,
        })
    }
}

/// The list name page markers of operations are issued under.
const OPERATIONS_LIST: &str = "operations";

impl Verifier {
    /// Operations a page at a time (ListOperations): in `filter`'s order, at
    /// most `limit`, after where the page that issued `marker` ended. A
    /// marker is bound to the filter it was issued for; any other (forged,
    /// garbled, from another filter) is InvalidInput.
    pub async fn operations_page(
        &self,
        filter: &OperationFilter,
        marker: Option<&str>,
        limit: i64,
    ) -> Result<OperationsPage> {
        if limit < 1 {
            return Err(Error::invalid("a page holds at least one operation"));
        }
        let key = filter_key(filter);
        let after = marker
            .map(|m| {
                let position = self.markers.read(OPERATIONS_LIST, &key, m)?;
                parse_cursor(&position)
            })
            .transpose()?;
        let mut operations = self
            .store
            .operations_page(filter, after.as_ref(), limit + 1)
            .await?;
        let more = operations.len() as i64 > limit;
        operations.truncate(limit as usize);
        let next_page_marker = match operations.last() {
            Some(last) if more => {
                let position = format!(
                    "{}/{}",
                    last.submitted_date.timestamp_micros(),
                    last.operation_id
                );
                Some(self.markers.issue(OPERATIONS_LIST, &key, &position))
            }
            _ => None,
        };
        Ok(OperationsPage {
            operations,
            next_page_marker,
        })
    }
}

/// The filter as the text a marker's MAC covers: the same filter in any
/// spelling (statuses in another order, repeated) gives the same text.
fn filter_key(f: &OperationFilter) -> String {
    let mut statuses: Vec<&str> = f.statuses.iter().map(|s| s.as_str()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    let mut types: Vec<&str> = f.types.iter().map(|t| t.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    format!(
        "domain={};flag={};status={};type={};since={};order={}",
        f.domain.as_ref().map(DomainName::as_str).unwrap_or(""),
        f.status_flag.map(StatusFlag::as_str).unwrap_or(""),
        statuses.join(","),
        types.join(","),
        f.submitted_since
            .map(|t| t.timestamp_micros().to_string())
            .unwrap_or_default(),
        if f.oldest_first { "asc" } else { "desc" },
    )
}

/// `MICROS/ID`, as [`Verifier::operations_page`] issues it.
fn parse_cursor(position: &str) -> Result<OperationCursor> {
    let bad = || Error::invalid("the marker does not name a position");
    let (micros, id) = position.split_once('/').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    Ok(OperationCursor {
        submitted_at: chrono::DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
        id: id.to_string(),
    })
}
