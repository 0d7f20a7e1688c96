//! Delivery status notifications fed in by `bounce` (a mail server's pipe)
//! and `POST /v1/bounces` (CONTRACT sections 7 and 10): each permanently
//! failed recipient the product knows is marked bounced.

use serde::Serialize;

use super::Verifier;
use crate::domain::{mask_addresses, mask_email, Bounce, ContactEmail, EmailKey};
use crate::mail::dsn;
use crate::Result;

/// `{"bounced":N,"ignored":N}`: per-recipient blocks that marked a known
/// address, and every other block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BounceReport {
    pub bounced: u64,
    pub ignored: u64,
}

/// The code recorded for a failed block whose Status is missing or odd.
const UNKNOWN_STATUS: &str = "5.0.0";

impl Verifier {
    /// Reads one report and records its bounces in one transaction. A
    /// message without a delivery status part is not an error (`0, 0`), so
    /// a mail server's pipe discards auto-replies; input that is no mail
    /// message at all is `InvalidInput`.
    pub async fn bounce_report(&self, raw: &[u8]) -> Result<BounceReport> {
        let report = dsn::parse(raw)?;
        if !report.has_status_part {
            tracing::info!(
                event = "bounce_ignored",
                "the message holds no delivery status report (an auto-reply?); nothing changed"
            );
            return Ok(BounceReport::default());
        }
        let now = self.now();
        // Every address a failed block names, tagged with its block.
        let mut marks: Vec<(usize, EmailKey, Bounce)> = Vec::new();
        for (i, block) in report.recipients.iter().enumerate() {
            if !block.permanent {
                continue;
            }
            let code = block
                .status
                .as_deref()
                .filter(|s| crate::domain::bounce::is_enhanced_status(s))
                .unwrap_or(UNKNOWN_STATUS);
            let detail = block.diagnostic.as_deref().unwrap_or("");
            let mut keys: Vec<EmailKey> = block
                .addresses
                .iter()
                .filter_map(|a| ContactEmail::parse(a).ok())
                .map(|e| e.key())
                .collect();
            keys.dedup();
            for key in keys {
                marks.push((i, key, Bounce::new(code, detail, now)));
            }
        }
        let pairs: Vec<(EmailKey, Bounce)> = marks
            .iter()
            .map(|(_, k, b)| (k.clone(), b.clone()))
            .collect();
        let recorded = self.store.record_bounces(&pairs, now, &self.policy).await?;
        let mut marked = vec![false; report.recipients.len()];
        for ((i, _, bounce), done) in marks.iter().zip(recorded) {
            let Some(done) = done else { continue };
            marked[*i] = true;
            let email = mask_email(done.email.as_str());
            tracing::warn!(event = "email_bounced", email = %email, code = %bounce.code,
                detail = %mask_addresses(&bounce.detail), domains = done.domains.len(),
                "a delivery status notification reports the address failed; sweeps stop mailing it");
            if done.restarted {
                tracing::info!(event = "contact_reverify", email = %email, reason = %bounce.reason(),
                    "a validated address bounced: a new verification was started");
            }
        }
        let bounced = marked.iter().filter(|m| **m).count() as u64;
        Ok(BounceReport {
            bounced,
            ignored: report.recipients.len() as u64 - bounced,
        })
    }
}
