//! Suspension deadlines (CONTRACT section 7, the RAA's 15 days): when a
//! waiting domain is suspended, how long it has left, and which operations
//! start a new verification or suspend at once. Pure; the store keeps the
//! dates and the sweep's suspend pass acts on them.

use chrono::{DateTime, Duration, Utc};

use super::OperationType;

/// The deadline of a domain that starts waiting at `since`: `after` later,
/// or the date an import line carries; none when suspension is off.
pub fn deadline(
    since: DateTime<Utc>,
    after: Option<Duration>,
    imported: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let after = after?;
    Some(imported.unwrap_or(since + after))
}

/// Whole days left until `deadline`, rounded up; 0 once it has passed.
pub fn days_to_suspend(now: DateTime<Utc>, deadline: DateTime<Utc>) -> i64 {
    let secs = (deadline - now).num_seconds().max(0);
    (secs + 86_399) / 86_400
}

/// Operations after which an Expired registrant is verified anew instead of
/// failing the operation: a registration, a transfer in, a change of
/// registrant (the RAA's triggers).
pub fn restarts_verification(t: OperationType) -> bool {
    matches!(
        t,
        OperationType::REGISTER_DOMAIN
            | OperationType::TRANSFER_IN_DOMAIN
            | OperationType::CHANGE_DOMAIN_OWNER
            | OperationType::UPDATE_DOMAIN_CONTACT
    )
}

/// A restored name (ICANN Restored Names Accuracy Policy) whose registrant
/// is not validated is suspended at once, with no new grace period.
pub fn suspends_at_once(t: OperationType) -> bool {
    t == OperationType::RESTORE_DOMAIN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::t0;

    #[test]
    fn the_deadline_is_the_start_plus_the_grace_or_the_imported_date_and_none_when_off() {
        let d15 = Some(Duration::days(15));
        assert_eq!(deadline(t0(), d15, None), Some(t0() + Duration::days(15)));
        let imported = t0() + Duration::days(3);
        assert_eq!(deadline(t0(), d15, Some(imported)), Some(imported));
        assert_eq!(deadline(t0(), None, Some(imported)), None);
    }

    #[test]
    fn days_to_suspend_round_up_and_stop_at_zero() {
        let d = t0() + Duration::days(15);
        assert_eq!(days_to_suspend(t0(), d), 15);
        assert_eq!(days_to_suspend(t0() + Duration::hours(1), d), 15);
        assert_eq!(days_to_suspend(d - Duration::seconds(1), d), 1);
        assert_eq!(days_to_suspend(d, d), 0);
        assert_eq!(days_to_suspend(d + Duration::days(2), d), 0);
    }

    #[test]
    fn only_the_raas_triggers_restart_and_only_restores_suspend_at_once() {
        let restart: Vec<_> = OperationType::ALL
            .iter()
            .filter(|t| restarts_verification(**t))
            .collect();
        assert_eq!(restart.len(), 4);
        assert!(!restarts_verification(OperationType::RENEW_DOMAIN));
        assert!(suspends_at_once(OperationType::RESTORE_DOMAIN));
        assert!(!suspends_at_once(OperationType::REGISTER_DOMAIN));
    }
}
