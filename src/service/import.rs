//! `contact import`: JSON Lines streamed in, validated line by line at the
//! edge, written in batches; every bad line is reported by number and reason
//! and the good ones are imported all the same.

use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

use super::{ImportRejection, ImportReport, Verifier};
use crate::domain::{parse_timestamp, ContactEmail, ExternalId, Status};
use crate::store::{ContactUpsert, ImportedState};
use crate::{Error, ErrorCode, Result};

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
    /// The ICANN deadline of the line's domains (CONTRACT section 7).
    suspension_date: Option<String>,
    /// The contact's language tag (CONTRACT section 9).
    language: Option<String>,
}

/// Lines written per transaction by an import.
const IMPORT_BATCH: usize = 2000;
/// Longest accepted import line; a longer one is rejected, not buffered.
const MAX_IMPORT_LINE: u64 = 64 * 1024;
/// Rejections listed in an import report; the count covers the rest.
const MAX_LISTED_REJECTIONS: usize = 10_000;

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

impl Verifier {
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
        // With suspension off no domain gets a deadline, so the line's is
        // ignored (after it was checked to be a timestamp).
        let suspension_date = line
            .suspension_date
            .as_deref()
            .map(|s| parse_timestamp("suspension_date", s))
            .transpose()?
            .filter(|_| self.policy.suspend_after.is_some());
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
            language: line
                .language
                .as_deref()
                .map(crate::domain::Language::parse)
                .transpose()?,
            import: Some(ImportedState {
                status,
                key_issued_at,
                last_notification_at,
                suspension_date,
            }),
        })
    }

    /// `contact import`: JSON Lines streamed from `reader`. Good lines are
    /// written `IMPORT_BATCH` to a transaction; a batch the database refuses
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
                // A file saved with a UTF-8 byte order mark starts with one.
                let text = if line_no == 1 {
                    buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&buf)
                } else {
                    &buf
                };
                match std::str::from_utf8(text) {
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
            .import_batch(&inputs, self.now(), &self.policy)
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
}
