//! The settle pass (CONTRACT section 2, operation flags): an open operation
//! of a registrant not yet validated carries `PENDING_CUSTOMER_ACTION`;
//! validated makes it `SUCCESSFUL`, expired `FAILED` with a message. Other
//! systems' flags are left alone (`domain::settle` decides).

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::domain::{EmailKey, Status};
use crate::store::{OpenOperation, OperationRecord, Store};
use crate::Result;

/// Each operation that changes: as read, and as it becomes.
pub(super) type SettlePlan = Vec<(OperationRecord, OperationRecord)>;

/// `expired` names addresses to treat as expired whatever the store says
/// (what a dry run would have expired).
pub(super) fn plan(
    open: Vec<OpenOperation>,
    expired: &HashSet<EmailKey>,
    now: DateTime<Utc>,
) -> SettlePlan {
    let mut plan = Vec::new();
    for open in open {
        let op = open.operation;
        let registrant = match &open.registrant_email_key {
            Some(k) if expired.contains(k) => Some(Status::Expired),
            _ => open.registrant_status,
        };
        if let Some(new) = op.settled_by(registrant, now) {
            plan.push((op, new));
        }
    }
    plan
}

/// Writes each change unless the operation changed meanwhile; returns how
/// many were written.
pub(super) async fn execute(store: &Store, plan: SettlePlan) -> Result<u64> {
    let mut updated = 0;
    for (old, new) in plan {
        if store.update_operation(&old, &new).await? {
            updated += 1;
            tracing::info!(event = "operation_updated", operation_id = %new.operation_id,
                domain = %new.domain_name, status = %new.status,
                status_flag = new.status_flag.map(|f| f.as_str()).unwrap_or("null"),
                "operation settled by its registrant's verification");
        }
    }
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ContactEmail, DomainName, OperationStatus, OperationType, StatusFlag};

    use crate::domain::testing::t0;

    fn open(registrant: Option<Status>) -> OpenOperation {
        OpenOperation {
            operation: OperationRecord {
                operation_id: "op".into(),
                status: OperationStatus::SUBMITTED,
                op_type: OperationType::REGISTER_DOMAIN,
                domain_name: DomainName::parse("example.com").unwrap(),
                message: None,
                submitted_date: t0(),
                last_updated_date: t0(),
                status_flag: Some(StatusFlag::PENDING_CUSTOMER_ACTION),
            },
            registrant_status: registrant,
            registrant_email_key: Some(ContactEmail::parse("a@example.com").unwrap().key()),
        }
    }

    #[test]
    fn a_validated_registrant_settles_and_a_pending_one_changes_nothing() {
        let later = t0() + chrono::Duration::hours(1);
        let plan = plan(
            vec![open(Some(Status::Validated)), open(Some(Status::Pending))],
            &HashSet::new(),
            later,
        );
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].1.status, OperationStatus::SUCCESSFUL);
        assert_eq!(plan[0].1.status_flag, None);
        assert_eq!(plan[0].1.last_updated_date, later);
    }

    #[test]
    fn an_address_a_dry_run_would_expire_fails_its_operations() {
        let expired: HashSet<EmailKey> =
            [ContactEmail::parse("a@example.com").unwrap().key()].into();
        let plan = plan(vec![open(Some(Status::Pending))], &expired, t0());
        assert_eq!(plan[0].1.status, OperationStatus::FAILED);
        assert!(plan[0].1.message.is_some());
    }
}
