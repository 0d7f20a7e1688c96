//! The verification state machine: pure, no I/O.
//!
//! One [`Verification`] exists per email address (compared
//! case-insensitively) and is shared by every contact using that address.
//! The store loads a row, a transition here changes it, and the store writes
//! it back only if nobody else changed it meanwhile (a version check), so the
//! rules live in one place and are tested without a database.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::token::KeyId;
use super::{Bounce, ContactEmail, EmailKey, Notice};
use crate::{Error, Result};

/// CONTRACT section 1 statuses, spelled exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Status {
    NotValidated,
    Pending,
    Validated,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotValidated => "NotValidated",
            Status::Pending => "Pending",
            Status::Validated => "Validated",
            Status::Expired => "Expired",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "NotValidated" => Ok(Status::NotValidated),
            "Pending" => Ok(Status::Pending),
            "Validated" => Ok(Status::Validated),
            "Expired" => Ok(Status::Expired),
            other => Err(Error::invalid(format!(
                "status {other:?} is not one of: NotValidated, Pending, Validated, Expired"
            ))),
        }
    }

    /// Route 53 Domains' reachability view of the same status.
    pub fn reachability(self) -> &'static str {
        match self {
            Status::NotValidated | Status::Pending => "PENDING",
            Status::Validated => "DONE",
            Status::Expired => "EXPIRED",
        }
    }
}

/// The longest a delivery spends retrying the write of its outcome while
/// the database is unavailable; claims and the shutdown grace cover it.
pub const FINAL_WRITE_WINDOW: std::time::Duration = std::time::Duration::from_secs(63);

/// The verification rules taken from configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    pub key_validity: Duration,
    /// Days since the key was issued, ascending, each below the validity.
    pub reminder_days: Vec<u32>,
    pub notify_on_expiry: bool,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How long a claim keeps other sweeps off a row while its mail is sent.
    pub claim_lease: Duration,
    /// How long a domain may wait on its registrant before it is suspended;
    /// `None`: suspension is off.
    pub suspend_after: Option<Duration>,
    /// Whether a hook is configured: without one, events count as delivered
    /// when written.
    pub hooks_configured: bool,
    /// The longest one email can hold its connection: the command and data
    /// timeouts plus the retries of its outcome's write.
    pub send_bound: Duration,
    /// A bounce of a Validated address sends it back to verification.
    pub reverify_on_bounce: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            key_validity: Duration::days(60),
            reminder_days: vec![3, 7, 14, 30, 45, 55],
            notify_on_expiry: true,
            retry_initial: Duration::seconds(60),
            retry_max: Duration::seconds(3600),
            claim_lease: Duration::seconds(300),
            suspend_after: Some(Duration::days(15)),
            hooks_configured: false,
            send_bound: Duration::seconds(6 * 30 + 600 + 63),
            reverify_on_bounce: true,
        }
    }
}

impl Policy {
    /// Wait before the next attempt after `failures` failures in a row:
    /// `retry_initial` doubled per failure, capped at `retry_max`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        let secs = self
            .retry_initial
            .num_seconds()
            .saturating_mul(1i64 << doublings);
        Duration::seconds(secs.min(self.retry_max.num_seconds()))
    }
}

/// The key a verification email's link is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: KeyId,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a sweep must do for one verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The key is past its expiry: mark the verification expired.
    Expire,
    /// Mail this notice ([`Notice::Verification`] issues the key with it).
    Send(Notice),
}

/// What creating or updating a contact does to its address (CONTRACT
/// section 2): the same address changes nothing; a new contact or a new
/// address joins that address's verification (validated at once if it is);
/// the address moved away from may be left with no contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressChange {
    Created,
    Unchanged,
    Moved { from: EmailKey },
}

impl AddressChange {
    pub fn of(current: Option<&EmailKey>, new: &EmailKey) -> Self {
        match current {
            None => AddressChange::Created,
            Some(k) if k == new => AddressChange::Unchanged,
            Some(k) => AddressChange::Moved { from: k.clone() },
        }
    }

    /// Whether the contact joins the verification of its (new) address.
    pub fn joins(&self) -> bool {
        *self != AddressChange::Unchanged
    }
}

/// What becomes of an address's verification when the last contact using it
/// leaves (its email changed, or it moved away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressLeft {
    /// Validated stays validated: a contact returning to it needs no email.
    Keep,
    /// Anything else loses its key (its links stop working) and is removed.
    VoidAndDelete,
}

/// What a resend request leads to (CONTRACT section 2, Resend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendPlan {
    AlreadyVerified,
    /// Send the link of the current key again; its expiry stays.
    SameKey,
    /// Issue a fresh key (a full validity period) and send it.
    NewKey,
}

/// One email address's verification: status, current key, reminder progress,
/// retry state and the claim that keeps concurrent sweeps off it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The lowercased address: the identity shared by contacts.
    pub email_key: EmailKey,
    /// The address as first written; mail goes here.
    pub email: ContactEmail,
    pub status: Status,
    pub key: Option<Key>,
    pub last_notification_at: Option<DateTime<Utc>>,
    /// The latest reminder day already covered by a reminder (0: none).
    pub reminder_day_covered: u32,
    pub expiry_notice_owed: bool,
    /// Failed sends in a row, for backoff.
    pub failures: u32,
    pub retry_at: Option<DateTime<Utc>>,
    pub claim_owner: Option<String>,
    pub claim_until: Option<DateTime<Utc>>,
    pub validated_at: Option<DateTime<Utc>>,
    /// The last hard bounce, until a new email, a resend or a validation
    /// clears it: while set, sweeps send the address nothing.
    pub bounce: Option<Bounce>,
    /// Bumped by every write; a write succeeds only on the version it read.
    pub version: i64,
}

impl Verification {
    pub fn new(email: &ContactEmail) -> Self {
        Verification {
            email_key: email.key(),
            email: email.clone(),
            status: Status::NotValidated,
            key: None,
            last_notification_at: None,
            reminder_day_covered: 0,
            expiry_notice_owed: false,
            failures: 0,
            retry_at: None,
            claim_owner: None,
            claim_until: None,
            validated_at: None,
            bounce: None,
            version: 0,
        }
    }

    pub fn is_claimed(&self, now: DateTime<Utc>) -> bool {
        matches!(self.claim_until, Some(until) if until > now)
    }

    fn backoff_over(&self, now: DateTime<Utc>) -> bool {
        self.retry_at.is_none_or(|t| t <= now)
    }

    /// The latest reminder day that has passed at `now` for a key issued at
    /// `issued_at`, if any.
    fn latest_reminder_passed(
        issued_at: DateTime<Utc>,
        now: DateTime<Utc>,
        p: &Policy,
    ) -> Option<u32> {
        p.reminder_days
            .iter()
            .copied()
            .filter(|d| issued_at + Duration::days(i64::from(*d)) <= now)
            .max()
    }

    /// What a sweep must do at `now`, if anything. Claims are the store's
    /// business; backoff after failed sends is honoured here.
    pub fn due(&self, now: DateTime<Utc>, p: &Policy) -> Option<Due> {
        let due = self.due_ignoring_bounce(now, p);
        match due {
            // A bounced address expires as any other but gets no email.
            Some(Due::Send(_)) if self.bounce.is_some() => None,
            due => due,
        }
    }

    fn due_ignoring_bounce(&self, now: DateTime<Utc>, p: &Policy) -> Option<Due> {
        match self.status {
            Status::Validated => None,
            Status::NotValidated => self
                .backoff_over(now)
                .then_some(Due::Send(Notice::Verification)),
            Status::Pending => {
                let key = self.key.as_ref()?;
                if now >= key.expires_at {
                    return Some(Due::Expire);
                }
                // Only the latest passed day counts, so a contact imported
                // long ago gets one reminder, not one per missed day.
                let day = Self::latest_reminder_passed(key.issued_at, now, p)?;
                (day > self.reminder_day_covered && self.backoff_over(now))
                    .then_some(Due::Send(Notice::Reminder { day }))
            }
            Status::Expired => (self.expiry_notice_owed && self.backoff_over(now))
                .then_some(Due::Send(Notice::ExpiryNotice)),
        }
    }

    /// The earliest moment [`Self::due`] can return something, stored and
    /// indexed so a sweep finds due rows without scanning the table.
    pub fn next_due_at(&self, now: DateTime<Utc>, p: &Policy) -> Option<DateTime<Utc>> {
        let retry = |t: DateTime<Utc>| match self.retry_at {
            Some(r) if r > t => r,
            _ => t,
        };
        match self.status {
            Status::Validated => None,
            Status::NotValidated if self.bounce.is_some() => None,
            Status::NotValidated => Some(retry(now)),
            Status::Pending if self.bounce.is_some() => self.key.as_ref().map(|k| k.expires_at),
            Status::Pending => {
                let key = self.key.as_ref()?;
                let next_reminder = self.next_reminder_day_at(key, p).map(retry);
                // Expiry is a state change, never delayed by mail backoff.
                Some(match next_reminder {
                    Some(r) if r < key.expires_at => r,
                    _ => key.expires_at,
                })
            }
            Status::Expired => self.expiry_notice_owed.then(|| retry(now)),
        }
    }

    /// When the next reminder not yet covered falls due, if one falls
    /// before the key expires (before any retry wait).
    fn next_reminder_day_at(&self, key: &Key, p: &Policy) -> Option<DateTime<Utc>> {
        p.reminder_days
            .iter()
            .copied()
            .filter(|d| *d > self.reminder_day_covered)
            .map(|d| key.issued_at + Duration::days(i64::from(d)))
            .filter(|t| *t < key.expires_at)
            .min()
    }

    /// Takes the row for one delivery; other sweeps skip it until the lease
    /// runs out (a crash mid-send frees it then).
    pub fn claim(&mut self, owner: &str, now: DateTime<Utc>, p: &Policy) {
        self.claim_owner = Some(owner.to_string());
        self.claim_until = Some(now + p.claim_lease);
    }

    pub fn release(&mut self) {
        self.claim_owner = None;
        self.claim_until = None;
    }

    pub fn is_claimed_by(&self, owner: &str) -> bool {
        self.claim_owner.as_deref() == Some(owner)
    }

    /// A fresh key valid for the policy's period from `now`, not yet in use:
    /// it is installed only once the email carrying it was accepted.
    pub fn prepare_key(now: DateTime<Utc>, p: &Policy) -> Key {
        Key {
            id: KeyId::generate(),
            issued_at: now,
            expires_at: now + p.key_validity,
        }
    }

    /// Makes `key` the current key (its reminders start over). Returns the key
    /// it replaces, which the caller voids.
    pub fn install_key(&mut self, key: Key) -> Option<Key> {
        self.reminder_day_covered = 0;
        self.expiry_notice_owed = false;
        self.key.replace(key)
    }

    /// Records a delivered email.
    pub fn sent(&mut self, notice: Notice, now: DateTime<Utc>) {
        match notice {
            Notice::Verification | Notice::Resend => {
                // The first email (or a resend) makes a non-validated address
                // pending on the current key.
                if self.status != Status::Validated {
                    self.status = Status::Pending;
                }
            }
            Notice::Reminder { day } => {
                self.reminder_day_covered = self.reminder_day_covered.max(day);
            }
            Notice::ExpiryNotice => self.expiry_notice_owed = false,
        }
        self.last_notification_at = Some(now);
        self.failures = 0;
        self.retry_at = None;
    }

    /// Applies the outcome of one email this process claimed the address
    /// for: accepted -> a fresh key (if it carried one) becomes current and
    /// the notice counts as sent; refused -> the state stays, a fresh key is
    /// discarded, and the next attempt waits (except after a resend). Returns
    /// which keys to void: `(others_superseded_by, undelivered)`.
    pub fn record_outcome(
        &mut self,
        notice: Notice,
        fresh_key: Option<&Key>,
        accepted: bool,
        now: DateTime<Utc>,
        p: &Policy,
    ) -> (Option<KeyId>, Option<KeyId>) {
        self.release();
        if accepted {
            let mut superseding = None;
            if let Some(k) = fresh_key.filter(|_| self.status != Status::Validated) {
                self.install_key(k.clone());
                superseding = Some(k.id.clone());
            }
            self.sent(notice, now);
            // A resend the relay took is the registrar's (or registrant's)
            // answer to a bounce: the address is worth mailing again.
            if notice == Notice::Resend {
                self.bounce = None;
            }
            (superseding, None)
        } else {
            if notice.backs_off_on_failure() {
                self.send_failed(now, p);
            }
            (None, fresh_key.map(|k| k.id.clone()))
        }
    }

    /// Records a failed send: the state stays as it was, and the next attempt
    /// waits out the backoff.
    pub fn send_failed(&mut self, now: DateTime<Utc>, p: &Policy) {
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + p.backoff(self.failures));
    }

    /// A pending key past its expiry: the verification is expired and, unless
    /// configured otherwise, owes one expiry notice.
    pub fn expire(&mut self, p: &Policy) {
        self.status = Status::Expired;
        self.expiry_notice_owed = p.notify_on_expiry && self.bounce.is_none();
        self.failures = 0;
        self.retry_at = None;
    }

    /// The registrant confirmed.
    pub fn validate(&mut self, now: DateTime<Utc>) {
        self.status = Status::Validated;
        self.validated_at = Some(now);
        self.bounce = None;
        self.expiry_notice_owed = false;
        self.failures = 0;
        self.retry_at = None;
    }

    /// Starts a new verification (CONTRACT section 7): `contact reverify` of a
    /// Validated address, or a registration, transfer or registrant change
    /// on an Expired one. The address is `NotValidated` with no key (the
    /// caller voids the old ones); the next sweep sends a fresh key.
    pub fn restart(&mut self) {
        self.status = Status::NotValidated;
        self.key = None;
        self.validated_at = None;
        self.reminder_day_covered = 0;
        self.expiry_notice_owed = false;
        self.failures = 0;
        self.retry_at = None;
    }

    /// When this address is next due an email, after any retry wait (the
    /// expiry itself sends nothing unless a notice is owed for it); `None`
    /// when no email will be due. `due_since` is when the store last marked
    /// it due, so that "due now" does not move with the clock.
    pub fn next_notification_at(
        &self,
        now: DateTime<Utc>,
        due_since: Option<DateTime<Utc>>,
        p: &Policy,
    ) -> Option<DateTime<Utc>> {
        let retry = |t: DateTime<Utc>| match self.retry_at {
            Some(r) if r > t => r,
            _ => t,
        };
        // Due "now" means since the stored due time, so the answer does not
        // move with the clock.
        let since = due_since.filter(|t| *t <= now).unwrap_or(now);
        if self.bounce.is_some() {
            return None;
        }
        match self.status {
            Status::Validated => None,
            Status::NotValidated => Some(retry(since)),
            Status::Pending => {
                let key = self.key.as_ref()?;
                self.next_reminder_day_at(key, p)
                    .map(retry)
                    .filter(|t| *t < key.expires_at)
                    .or_else(|| p.notify_on_expiry.then_some(key.expires_at))
            }
            Status::Expired => self.expiry_notice_owed.then(|| retry(since)),
        }
    }

    /// Records a hard bounce (a later one replaces an earlier one). A
    /// Validated address goes back to verification when `reverify` (the
    /// RAA's answer to evidence that it no longer works); returns whether it
    /// did, so the caller voids its keys and starts its domains waiting.
    pub fn bounced(&mut self, bounce: Bounce, reverify: bool) -> bool {
        self.bounce = Some(bounce);
        self.failures = 0;
        self.retry_at = None;
        self.expiry_notice_owed = false;
        if reverify && self.status == Status::Validated {
            self.restart();
            return true;
        }
        false
    }

    /// CONTRACT section 2: the last contact left this address.
    pub fn on_address_left(&self) -> AddressLeft {
        match self.status {
            Status::Validated => AddressLeft::Keep,
            Status::NotValidated | Status::Pending | Status::Expired => AddressLeft::VoidAndDelete,
        }
    }

    /// An import line's state applies only to an address with no
    /// verification of its own yet: one created by this very line, or one
    /// that never got a key.
    pub fn takes_import(&self, created_now: bool) -> bool {
        created_now || (self.status == Status::NotValidated && self.key.is_none())
    }

    pub fn resend_plan(&self, now: DateTime<Utc>) -> ResendPlan {
        match (self.status, &self.key) {
            (Status::Validated, _) => ResendPlan::AlreadyVerified,
            (Status::Pending, Some(k)) if k.expires_at > now => ResendPlan::SameKey,
            _ => ResendPlan::NewKey,
        }
    }

    /// Applies an imported state (CONTRACT section 3, import line) to a
    /// verification that had none of its own.
    pub fn apply_import(
        &mut self,
        status: Status,
        key_issued_at: Option<DateTime<Utc>>,
        last_notification_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        p: &Policy,
    ) -> Result<()> {
        self.status = status;
        self.last_notification_at = last_notification_at;
        match status {
            Status::NotValidated => {}
            Status::Validated => {
                self.validated_at = Some(key_issued_at.or(last_notification_at).unwrap_or(now));
            }
            Status::Pending | Status::Expired => {
                let issued = key_issued_at.ok_or_else(|| {
                    Error::invalid(format!(
                        "key_issued_at is required for status {}",
                        status.as_str()
                    ))
                })?;
                if issued > now {
                    return Err(Error::invalid("key_issued_at is in the future"));
                }
                self.key = Some(Key {
                    id: KeyId::generate(),
                    issued_at: issued,
                    expires_at: issued + p.key_validity,
                });
                // Reminders the previous system already sent (up to its last
                // notification) count as covered, so the first sweep after an
                // import does not repeat them.
                if let Some(last) = last_notification_at {
                    self.reminder_day_covered =
                        Self::latest_reminder_passed(issued, last, p).unwrap_or(0);
                }
                // An address imported as Expired was told by the previous system.
                self.expiry_notice_owed = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::testing::t0;

    fn days(n: i64) -> Duration {
        Duration::days(n)
    }

    fn fresh() -> Verification {
        Verification::new(&ContactEmail::parse("a@example.com").unwrap())
    }

    /// A verification whose first email went out at `t0`.
    fn pending(p: &Policy) -> Verification {
        let mut v = fresh();
        v.install_key(Verification::prepare_key(t0(), p));
        v.sent(Notice::Verification, t0());
        v
    }

    fn bounce() -> Bounce {
        Bounce::new("5.1.1", "550 5.1.1 user unknown", t0())
    }

    #[test]
    fn a_bounced_address_is_due_no_email_but_still_expires() {
        let p = Policy::default();
        let mut v = fresh();
        assert!(!v.bounced(bounce(), true));
        assert_eq!(v.due(t0(), &p), None);
        assert_eq!(v.next_due_at(t0(), &p), None);
        assert_eq!(v.next_notification_at(t0(), None, &p), None);

        let mut v = pending(&p);
        v.bounced(bounce(), true);
        let expiry = t0() + p.key_validity;
        assert_eq!(v.due(t0() + days(20), &p), None, "no reminder");
        assert_eq!(v.next_due_at(t0(), &p), Some(expiry));
        assert_eq!(v.due(expiry, &p), Some(Due::Expire));
        v.expire(&p);
        assert!(!v.expiry_notice_owed, "no expiry notice to a dead address");
        assert_eq!(v.due(expiry, &p), None);
    }

    #[test]
    fn a_bounce_of_a_validated_address_restarts_it_only_when_configured() {
        let mut v = fresh();
        v.validate(t0());
        assert!(!v.bounced(bounce(), false));
        assert_eq!(v.status, Status::Validated);
        assert!(v.bounce.is_some());

        let mut v = fresh();
        v.validate(t0());
        assert!(v.bounced(bounce(), true));
        assert_eq!(v.status, Status::NotValidated);
        assert!(
            v.bounce.is_some(),
            "re-verification waits for the bounce to clear"
        );
        assert_eq!(v.due(t0(), &Policy::default()), None);
    }

    #[test]
    fn a_validation_or_an_accepted_resend_clears_the_bounce() {
        let p = Policy::default();
        let mut v = pending(&p);
        v.bounced(bounce(), true);
        v.validate(t0());
        assert_eq!(v.bounce, None);

        let mut v = pending(&p);
        v.bounced(bounce(), true);
        v.record_outcome(Notice::Reminder { day: 3 }, None, true, t0(), &p);
        assert!(v.bounce.is_some(), "only a resend clears it");
        v.record_outcome(Notice::Resend, None, false, t0(), &p);
        assert!(v.bounce.is_some(), "a refused resend does not");
        v.record_outcome(Notice::Resend, None, true, t0(), &p);
        assert_eq!(v.bounce, None);
        assert!(v.due(t0() + days(7), &p).is_some(), "reminders resume");
    }

    #[test]
    fn new_contact_is_not_validated_and_due_for_the_initial_email() {
        let p = Policy::default();
        let v = fresh();
        assert_eq!(v.status, Status::NotValidated);
        assert_eq!(v.due(t0(), &p), Some(Due::Send(Notice::Verification)));
        assert_eq!(v.next_due_at(t0(), &p), Some(t0()));
    }

    #[test]
    fn initial_send_makes_pending_with_a_key_valid_sixty_days() {
        let p = Policy::default();
        let v = pending(&p);
        assert_eq!(v.status, Status::Pending);
        let k = v.key.clone().unwrap();
        assert_eq!(k.expires_at - k.issued_at, days(60));
        assert_eq!(v.last_notification_at, Some(t0()));
    }

    #[test]
    fn pending_is_not_due_before_the_first_reminder_day() {
        let p = Policy::default();
        let v = pending(&p);
        assert_eq!(v.due(t0() + days(3) - Duration::seconds(1), &p), None);
        assert_eq!(v.next_due_at(t0(), &p), Some(t0() + days(3)));
    }

    #[test]
    fn every_reminder_day_is_sent_once_in_order_when_sweeps_are_on_time() {
        let p = Policy::default();
        let mut v = pending(&p);
        for day in [3u32, 7, 14, 30, 45, 55] {
            let at = t0() + days(i64::from(day));
            assert_eq!(v.next_due_at(at, &p), Some(at), "day {day}");
            assert_eq!(v.due(at, &p), Some(Due::Send(Notice::Reminder { day })));
            v.sent(Notice::Reminder { day }, at);
            assert_eq!(v.due(at, &p), None, "second sweep same day {day}");
        }
        assert_eq!(v.next_due_at(t0() + days(55), &p), Some(t0() + days(60)));
    }

    #[test]
    fn a_late_sweep_sends_one_reminder_for_the_latest_day_only() {
        let p = Policy::default();
        let mut v = pending(&p);
        let at = t0() + days(20);
        assert_eq!(v.due(at, &p), Some(Due::Send(Notice::Reminder { day: 14 })));
        v.sent(Notice::Reminder { day: 14 }, at);
        assert_eq!(v.due(at, &p), None);
        assert_eq!(v.next_due_at(at, &p), Some(t0() + days(30)));
    }

    #[test]
    fn no_reminder_burst_on_old_imports() {
        let p = Policy::default();
        let mut v = fresh();
        let now = t0() + days(50);
        v.apply_import(Status::Pending, Some(t0()), None, now, &p)
            .unwrap();
        assert_eq!(
            v.due(now, &p),
            Some(Due::Send(Notice::Reminder { day: 45 }))
        );
        v.sent(Notice::Reminder { day: 45 }, now);
        assert_eq!(v.due(now, &p), None);
        assert_eq!(v.due(now + days(4), &p), None);
        assert_eq!(
            v.due(now + days(5), &p),
            Some(Due::Send(Notice::Reminder { day: 55 }))
        );
    }

    #[test]
    fn import_counts_reminders_sent_before_its_last_notification_as_covered() {
        let p = Policy::default();
        let mut v = fresh();
        let now = t0() + days(20);
        v.apply_import(Status::Pending, Some(t0()), Some(t0() + days(15)), now, &p)
            .unwrap();
        assert_eq!(v.reminder_day_covered, 14);
        assert_eq!(v.due(now, &p), None);
        assert_eq!(v.next_due_at(now, &p), Some(t0() + days(30)));
    }

    #[test]
    fn import_of_pending_needs_key_issued_at() {
        let p = Policy::default();
        for status in [Status::Pending, Status::Expired] {
            let e = fresh()
                .apply_import(status, None, None, t0(), &p)
                .unwrap_err();
            assert!(e.message.contains("key_issued_at"), "{}", e.message);
        }
    }

    #[test]
    fn import_with_key_in_the_future_is_rejected() {
        let p = Policy::default();
        assert!(fresh()
            .apply_import(Status::Pending, Some(t0() + days(1)), None, t0(), &p)
            .is_err());
    }

    #[test]
    fn imported_validated_and_expired_owe_nothing() {
        let p = Policy::default();
        let now = t0() + days(90);
        let mut v = fresh();
        v.apply_import(Status::Validated, None, None, now, &p)
            .unwrap();
        assert_eq!(v.due(now, &p), None);
        assert_eq!(v.next_due_at(now, &p), None);
        let mut v = fresh();
        v.apply_import(Status::Expired, Some(t0()), None, now, &p)
            .unwrap();
        assert_eq!(v.due(now, &p), None);
        assert_eq!(v.next_due_at(now, &p), None);
    }

    #[test]
    fn key_past_expiry_expires_then_owes_one_notice() {
        let p = Policy::default();
        let mut v = pending(&p);
        let at = t0() + days(60);
        assert_eq!(
            v.due(at - Duration::seconds(1), &p),
            Some(Due::Send(Notice::Reminder { day: 55 }))
        );
        assert_eq!(v.due(at, &p), Some(Due::Expire));
        v.expire(&p);
        assert_eq!(v.status, Status::Expired);
        assert_eq!(v.due(at, &p), Some(Due::Send(Notice::ExpiryNotice)));
        v.sent(Notice::ExpiryNotice, at);
        assert_eq!(v.due(at + days(365), &p), None);
        assert_eq!(v.next_due_at(at, &p), None);
    }

    #[test]
    fn expiry_owes_no_notice_when_notify_on_expiry_is_off() {
        let p = Policy {
            notify_on_expiry: false,
            ..Policy::default()
        };
        let mut v = pending(&p);
        v.expire(&p);
        assert_eq!(v.due(t0() + days(61), &p), None);
    }

    #[test]
    fn expiry_is_never_delayed_by_mail_backoff() {
        let p = Policy::default();
        let mut v = pending(&p);
        let at = t0() + days(60) - Duration::seconds(10);
        v.send_failed(at, &p);
        assert_eq!(v.next_due_at(at, &p), Some(t0() + days(60)));
        assert_eq!(v.due(t0() + days(60), &p), Some(Due::Expire));
    }

    #[test]
    fn failed_send_keeps_state_and_backs_off_doubling_to_the_cap() {
        let p = Policy::default();
        let mut v = fresh();
        let mut at = t0();
        for (n, wait) in [(1, 60), (2, 120), (3, 240), (4, 480), (7, 3600), (40, 3600)] {
            while v.failures < n {
                v.send_failed(at, &p);
            }
            assert_eq!(v.status, Status::NotValidated);
            assert_eq!(
                v.retry_at,
                Some(at + Duration::seconds(wait)),
                "failure {n}"
            );
            assert_eq!(v.due(at + Duration::seconds(wait - 1), &p), None);
            assert_eq!(
                v.due(at + Duration::seconds(wait), &p),
                Some(Due::Send(Notice::Verification))
            );
            assert_eq!(v.next_due_at(at, &p), Some(at + Duration::seconds(wait)));
            at += days(1);
        }
        v.sent(Notice::Verification, at);
        assert_eq!(v.failures, 0);
        assert_eq!(v.retry_at, None);
    }

    #[test]
    fn failed_reminder_is_retried_after_backoff() {
        let p = Policy::default();
        let mut v = pending(&p);
        let at = t0() + days(3);
        v.send_failed(at, &p);
        assert_eq!(v.due(at + Duration::seconds(59), &p), None);
        assert_eq!(
            v.due(at + Duration::seconds(60), &p),
            Some(Due::Send(Notice::Reminder { day: 3 }))
        );
        assert_eq!(v.next_due_at(at, &p), Some(at + Duration::seconds(60)));
    }

    #[test]
    fn validated_is_never_due() {
        let p = Policy::default();
        let mut v = pending(&p);
        v.validate(t0() + days(1));
        assert_eq!(v.due(t0() + days(100), &p), None);
        assert_eq!(v.next_due_at(t0(), &p), None);
    }

    #[test]
    fn validation_clears_an_owed_expiry_notice() {
        let p = Policy::default();
        let mut v = pending(&p);
        v.expire(&p);
        v.validate(t0() + days(61));
        assert!(!v.expiry_notice_owed);
    }

    #[test]
    fn resend_plans_follow_the_status() {
        let p = Policy::default();
        let now = t0() + days(1);
        assert_eq!(fresh().resend_plan(now), ResendPlan::NewKey);
        let mut v = pending(&p);
        assert_eq!(v.resend_plan(now), ResendPlan::SameKey);
        assert_eq!(v.resend_plan(t0() + days(60)), ResendPlan::NewKey);
        v.expire(&p);
        assert_eq!(v.resend_plan(now), ResendPlan::NewKey);
        v.validate(now);
        assert_eq!(v.resend_plan(now), ResendPlan::AlreadyVerified);
    }

    #[test]
    fn installing_a_key_returns_the_old_one_and_restarts_reminders() {
        let p = Policy::default();
        let mut v = pending(&p);
        v.sent(Notice::Reminder { day: 7 }, t0() + days(7));
        let old = v.key.clone();
        let later = t0() + days(70);
        let key = Verification::prepare_key(later, &p);
        let replaced = v.install_key(key.clone());
        assert_eq!(replaced, old);
        assert_ne!(Some(key.clone()), old);
        assert_eq!(v.key.as_ref(), Some(&key));
        assert_eq!(v.reminder_day_covered, 0);
        assert_eq!(v.key.as_ref().unwrap().expires_at, later + days(60));
    }

    #[test]
    fn claim_holds_for_the_lease_only() {
        let p = Policy::default();
        let mut v = fresh();
        v.claim("sweep-1", t0(), &p);
        assert!(v.is_claimed(t0() + Duration::seconds(299)));
        assert!(!v.is_claimed(t0() + Duration::seconds(300)));
        assert!(v.is_claimed_by("sweep-1"));
        v.release();
        assert!(!v.is_claimed(t0()));
    }

    #[test]
    fn reachability_maps_statuses_as_route53_does() {
        assert_eq!(Status::NotValidated.reachability(), "PENDING");
        assert_eq!(Status::Pending.reachability(), "PENDING");
        assert_eq!(Status::Validated.reachability(), "DONE");
        assert_eq!(Status::Expired.reachability(), "EXPIRED");
    }

    #[test]
    fn status_parse_rejects_unknown_names() {
        assert_eq!(Status::parse("Pending").unwrap(), Status::Pending);
        assert!(Status::parse("pending").is_err());
    }

    #[test]
    fn reminder_days_at_or_past_validity_are_never_due() {
        let p = Policy {
            key_validity: days(10),
            reminder_days: vec![3, 10, 20],
            ..Policy::default()
        };
        let mut v = pending(&p);
        v.sent(Notice::Reminder { day: 3 }, t0() + days(3));
        assert_eq!(v.next_due_at(t0() + days(3), &p), Some(t0() + days(10)));
        assert_eq!(v.due(t0() + days(10), &p), Some(Due::Expire));
    }
}

#[cfg(test)]
mod membership_tests {
    use super::*;

    use crate::domain::testing::t0;

    fn fresh() -> Verification {
        Verification::new(&ContactEmail::parse("a@example.com").unwrap())
    }

    #[test]
    fn same_address_changes_nothing_and_another_moves_the_contact() {
        let a = ContactEmail::parse("A@example.com").unwrap().key();
        let b = ContactEmail::parse("b@example.com").unwrap().key();
        assert_eq!(AddressChange::of(None, &a), AddressChange::Created);
        let same = ContactEmail::parse("a@EXAMPLE.com").unwrap().key();
        assert_eq!(AddressChange::of(Some(&a), &same), AddressChange::Unchanged);
        assert!(!AddressChange::of(Some(&a), &same).joins());
        let moved = AddressChange::of(Some(&a), &b);
        assert_eq!(moved, AddressChange::Moved { from: a });
        assert!(moved.joins());
    }

    #[test]
    fn a_restarted_verification_is_not_validated_without_a_key_and_due_now() {
        let p = Policy::default();
        let mut v = fresh();
        v.install_key(Verification::prepare_key(t0(), &p));
        v.sent(Notice::Verification, t0());
        v.validate(t0());
        v.restart();
        assert_eq!(v.status, Status::NotValidated);
        assert!(v.key.is_none() && v.validated_at.is_none());
        assert_eq!(v.due(t0(), &p), Some(Due::Send(Notice::Verification)));
    }

    #[test]
    fn the_next_notification_is_the_next_reminder_then_the_expiry_notice() {
        let p = Policy::default();
        let mut v = fresh();
        assert_eq!(v.next_notification_at(t0(), None, &p), Some(t0()));
        v.send_failed(t0(), &p);
        assert_eq!(
            v.next_notification_at(t0(), None, &p),
            Some(t0() + Duration::seconds(60)),
            "after the retry wait"
        );
        v.install_key(Verification::prepare_key(t0(), &p));
        v.sent(Notice::Verification, t0());
        assert_eq!(
            v.next_notification_at(t0(), None, &p),
            Some(t0() + Duration::days(3))
        );
        v.sent(Notice::Reminder { day: 55 }, t0() + Duration::days(55));
        assert_eq!(
            v.next_notification_at(t0() + Duration::days(55), None, &p),
            Some(t0() + Duration::days(60)),
            "the expiry notice"
        );
        let quiet = Policy {
            notify_on_expiry: false,
            ..Policy::default()
        };
        assert_eq!(
            v.next_notification_at(t0() + Duration::days(55), None, &quiet),
            None
        );
        v.validate(t0() + Duration::days(56));
        assert_eq!(
            v.next_notification_at(t0() + Duration::days(56), None, &p),
            None
        );
    }

    #[test]
    fn an_accepted_email_installs_its_fresh_key_and_a_refused_one_voids_it() {
        let p = Policy::default();
        let key = Verification::prepare_key(t0(), &p);
        let mut v = fresh();
        v.claim("me", t0(), &p);
        let (supersede, void) = v.record_outcome(Notice::Verification, Some(&key), true, t0(), &p);
        assert_eq!((supersede, void), (Some(key.id.clone()), None));
        assert_eq!(v.status, Status::Pending);
        assert!(v.claim_owner.is_none());
        let mut w = fresh();
        w.claim("me", t0(), &p);
        let (supersede, void) = w.record_outcome(Notice::Verification, Some(&key), false, t0(), &p);
        assert_eq!((supersede, void), (None, Some(key.id.clone())));
        assert_eq!((w.status, w.failures), (Status::NotValidated, 1));
        let mut r = fresh();
        r.record_outcome(Notice::Resend, Some(&key), false, t0(), &p);
        assert_eq!(r.failures, 0, "a failed resend does not delay the sweep");
    }

    #[test]
    fn a_validated_address_is_kept_when_its_last_contact_leaves() {
        let mut v = fresh();
        v.validate(t0());
        assert_eq!(v.on_address_left(), AddressLeft::Keep);
    }

    #[test]
    fn an_unvalidated_address_is_voided_and_removed_when_its_last_contact_leaves() {
        let p = Policy::default();
        let mut v = fresh();
        assert_eq!(v.on_address_left(), AddressLeft::VoidAndDelete);
        v.install_key(Verification::prepare_key(t0(), &p));
        v.sent(Notice::Verification, t0());
        assert_eq!(v.on_address_left(), AddressLeft::VoidAndDelete);
        v.expire(&p);
        assert_eq!(v.on_address_left(), AddressLeft::VoidAndDelete);
    }

    #[test]
    fn an_import_applies_only_to_an_address_without_state_of_its_own() {
        let p = Policy::default();
        let mut v = fresh();
        assert!(v.takes_import(false));
        assert!(v.takes_import(true));
        v.install_key(Verification::prepare_key(t0(), &p));
        assert!(!v.takes_import(false));
        let mut w = fresh();
        w.validate(t0());
        assert!(!w.takes_import(false));
    }
}
