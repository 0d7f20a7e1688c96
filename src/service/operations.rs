//! Domains and their operations: GetContactReachabilityStatus, recording an
//! operation that waits on the registrant, GetOperationDetail and lists.

use super::{Reachability, Verifier};
use crate::domain::{OperationStatus, OperationType, Status, StatusFlag};
use crate::store::OperationRecord;
use crate::{Error, Result};

/// Most operations one list returns, newest first.
const MAX_LISTED_OPERATIONS: i64 = 1000;

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

    /// Records an operation that waits on the domain's registrant. It starts
    /// `SUBMITTED`; with no flag given and a registrant not yet validated it
    /// carries `PENDING_CUSTOMER_ACTION` at once, as the sweep would set it.
    pub async fn add_operation(
        &self,
        domain: &str,
        op_type: &str,
        flag: Option<&str>,
    ) -> Result<OperationRecord> {
        let domain = crate::domain::DomainName::parse(domain)?;
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
            domain_name: domain,
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
        let domain = domain.map(crate::domain::DomainName::parse).transpose()?;
        let flag = flag.map(StatusFlag::parse).transpose()?;
        self.store
            .operations(domain.as_ref(), flag, MAX_LISTED_OPERATIONS)
            .await
    }
}
