//! The Route 53 Domains operation vocabulary: types, statuses and flags, each
//! parsed from and printed as the exact contract spelling.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Declares an enum whose variants are spelled in the contract exactly as the
/// Rust identifiers, with parsing that names the allowed set on error.
macro_rules! contract_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, [$($v:ident),+ $(,)?]) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub enum $name { $($v),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => stringify!($v)),+ }
            }

            pub fn parse(s: &str) -> Result<Self> {
                match s.trim() {
                    $(stringify!($v) => Ok($name::$v),)+
                    other => Err(Error::invalid(format!(
                        "{} {:?} is not one of: {}",
                        $what,
                        other,
                        [$(stringify!($v)),+].join(", ")
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

contract_enum!(
    /// GetOperationDetail `Type`.
    OperationType,
    "operation type",
    [
        REGISTER_DOMAIN,
        DELETE_DOMAIN,
        TRANSFER_IN_DOMAIN,
        UPDATE_DOMAIN_CONTACT,
        UPDATE_NAMESERVER,
        CHANGE_PRIVACY_PROTECTION,
        DOMAIN_LOCK,
        ENABLE_AUTORENEW,
        DISABLE_AUTORENEW,
        ADD_DNSSEC,
        REMOVE_DNSSEC,
        EXPIRE_DOMAIN,
        TRANSFER_OUT_DOMAIN,
        CHANGE_DOMAIN_OWNER,
        RENEW_DOMAIN,
        PUSH_DOMAIN,
        INTERNAL_TRANSFER_OUT_DOMAIN,
        INTERNAL_TRANSFER_IN_DOMAIN,
        TRANSFER_ON_RENEW,
        RESTORE_DOMAIN,
    ]
);

contract_enum!(
    /// GetOperationDetail `Status`.
    OperationStatus,
    "operation status",
    [SUBMITTED, IN_PROGRESS, ERROR, SUCCESSFUL, FAILED]
);

contract_enum!(
    /// GetOperationDetail `StatusFlag`. Only `PENDING_CUSTOMER_ACTION` is ours;
    /// the others belong to other systems and are never touched.
    StatusFlag,
    "status flag",
    [
        PENDING_ACCEPTANCE,
        PENDING_CUSTOMER_ACTION,
        PENDING_AUTHORIZATION,
        PENDING_PAYMENT_VERIFICATION,
        PENDING_SUPPORT_CASE,
    ]
);

impl OperationStatus {
    /// An operation still waiting, which the sweep may settle.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OperationStatus::SUBMITTED | OperationStatus::IN_PROGRESS
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_spelling() {
        for t in OperationType::ALL {
            assert_eq!(OperationType::parse(t.as_str()).unwrap(), *t);
        }
        assert_eq!(OperationType::ALL.len(), 20);
    }

    #[test]
    fn unknown_flag_is_rejected_listing_the_allowed_set() {
        let e = StatusFlag::parse("PENDING_LUNCH").unwrap_err();
        assert!(
            e.message.contains("PENDING_CUSTOMER_ACTION"),
            "{}",
            e.message
        );
    }

    #[test]
    fn spelling_is_case_sensitive_as_in_route53() {
        assert!(OperationType::parse("register_domain").is_err());
    }
}

/// The message an operation gets when it fails for an unverified registrant.
pub const EXPIRED_MESSAGE: &str =
    "The registrant did not confirm the contact email address before the verification link expired.";
/// The message an operation gets when its registrant confirmed.
pub const VALIDATED_MESSAGE: &str = "The registrant confirmed the contact email address.";

/// What an open operation becomes given its registrant's verification
/// (CONTRACT section 2, operation flags); `None` when nothing changes.
/// Operations carrying another system's flag are never touched.
pub fn settle(
    status: OperationStatus,
    flag: Option<StatusFlag>,
    registrant: Option<super::Status>,
) -> Option<(OperationStatus, Option<StatusFlag>, Option<&'static str>)> {
    use super::Status;
    if !status.is_open() || flag.is_some_and(|f| f != StatusFlag::PENDING_CUSTOMER_ACTION) {
        return None;
    }
    match registrant? {
        Status::Validated => Some((OperationStatus::SUCCESSFUL, None, Some(VALIDATED_MESSAGE))),
        Status::Expired => Some((OperationStatus::FAILED, None, Some(EXPIRED_MESSAGE))),
        Status::NotValidated | Status::Pending => (flag
            != Some(StatusFlag::PENDING_CUSTOMER_ACTION))
        .then_some((status, Some(StatusFlag::PENDING_CUSTOMER_ACTION), None)),
    }
}

#[cfg(test)]
mod settle_tests {
    use super::*;
    use crate::domain::Status;

    const PCA: Option<StatusFlag> = Some(StatusFlag::PENDING_CUSTOMER_ACTION);

    #[test]
    fn open_operation_of_unvalidated_registrant_gets_pending_customer_action() {
        for s in [OperationStatus::SUBMITTED, OperationStatus::IN_PROGRESS] {
            for r in [Status::NotValidated, Status::Pending] {
                assert_eq!(settle(s, None, Some(r)), Some((s, PCA, None)));
                assert_eq!(settle(s, PCA, Some(r)), None, "already flagged: no change");
            }
        }
    }

    #[test]
    fn validated_registrant_makes_operation_successful_without_flag() {
        assert_eq!(
            settle(OperationStatus::IN_PROGRESS, PCA, Some(Status::Validated)),
            Some((OperationStatus::SUCCESSFUL, None, Some(VALIDATED_MESSAGE)))
        );
    }

    #[test]
    fn expired_registrant_fails_operation_with_a_reason() {
        assert_eq!(
            settle(OperationStatus::SUBMITTED, None, Some(Status::Expired)),
            Some((OperationStatus::FAILED, None, Some(EXPIRED_MESSAGE)))
        );
    }

    #[test]
    fn other_systems_flags_and_closed_operations_are_left_alone() {
        for f in StatusFlag::ALL
            .iter()
            .filter(|f| **f != StatusFlag::PENDING_CUSTOMER_ACTION)
        {
            for r in [Status::NotValidated, Status::Validated, Status::Expired] {
                assert_eq!(settle(OperationStatus::SUBMITTED, Some(*f), Some(r)), None);
            }
        }
        for s in [
            OperationStatus::ERROR,
            OperationStatus::SUCCESSFUL,
            OperationStatus::FAILED,
        ] {
            assert_eq!(settle(s, PCA, Some(Status::Validated)), None);
        }
        assert_eq!(settle(OperationStatus::SUBMITTED, None, None), None);
    }
}
