//! The command line of CONTRACT section 3: parsing with clap, and each
//! command's JSON result. Errors become one `error: Code: message` line and
//! the contract's exit code in `main`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::config::Settings;
use crate::service::{ContactSelector, Verifier};
use crate::store::Store;
use crate::sweep::StopSignal;
use crate::{telemetry, Error, Result};

#[derive(Debug, Parser)]
#[command(
    name = "contact-verifier",
    version,
    about = "Registrant contact email verification for domain registrars"
)]
pub struct Cli {
    /// Configuration file (TOML); default: $CONTACT_VERIFIER_CONFIG, else built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: scheduled sweeps and the HTTP API, until SIGTERM/SIGINT.
    Run,
    /// One sweep now, then exit.
    Sweep {
        /// Count what would be done; change and send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Apply database migrations.
    Migrate,
    /// Load and validate the configuration; print it with secrets masked.
    CheckConfig,
    /// Contacts and their verification.
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Domains (Route 53 Domains' reachability calls).
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Domain operations waiting on their registrant.
    #[command(subcommand)]
    Operation(OperationCommand),
    /// Evidence of validations, for ICANN audits.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Hook events (suspensions, releases, validations, expiries).
    #[command(subcommand)]
    Events(EventsCommand),
    /// Counts for dashboards: contacts by status, bounced addresses, domains
    /// waiting and suspended, the oldest pending link, the last sweep.
    Stats,
    /// Read one delivery status notification (RFC 3464) from FILE or stdin,
    /// as a mail server's pipe hands it over, and mark the addresses it
    /// reports failed as bounced. Exits 75 when the database is unavailable,
    /// so the mail server keeps the report and retries.
    Bounce {
        /// The message file; stdin when absent or `-`.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Every evidence record with since <= ValidatedAt < until, as CSV.
    Export {
        /// RFC 3339, inclusive (default: the beginning).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// RFC 3339, exclusive (default: no end).
        #[arg(long, value_name = "T")]
        until: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Hook events, oldest first, with their delivery state.
    List {
        /// Only events not delivered yet.
        #[arg(long)]
        pending: bool,
        /// Items per page (1-1000, default 100).
        #[arg(long, value_name = "N")]
        max_items: Option<i64>,
        /// The NextPageMarker of the previous page.
        #[arg(long, value_name = "M")]
        marker: Option<String>,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SelectorArgs {
    #[arg(long, value_name = "ID")]
    pub external_id: Option<String>,
    #[arg(long, value_name = "ADDR")]
    pub email: Option<String>,
}

impl SelectorArgs {
    fn selector(&self) -> Result<ContactSelector> {
        ContactSelector::from_parts(self.external_id.as_deref(), self.email.as_deref())
    }
}

#[derive(Debug, Subcommand)]
pub enum ContactCommand {
    /// Create or update a contact.
    Add {
        #[arg(long, value_name = "ID")]
        external_id: String,
        #[arg(long, value_name = "ADDR")]
        email: String,
        /// A domain the contact is registrant of (repeatable).
        #[arg(long = "domain", value_name = "NAME")]
        domains: Vec<String>,
        /// The contact's language tag (en, de, fr, es, ...); emails and
        /// pages use it. Absent keeps the contact's.
        #[arg(long, value_name = "TAG")]
        language: Option<String>,
    },
    /// Import contacts from JSON Lines (`-` reads stdin).
    Import { file: PathBuf },
    /// GetDetails.
    Show(SelectorArgs),
    /// ResendContactVerificationNotice: send the verification email now.
    Resend(SelectorArgs),
    /// Confirm with a link's token, as the link does.
    Confirm {
        /// The token, or the whole link as copied from the email (older
        /// tokens may start with `-`).
        #[arg(allow_hyphen_values = true)]
        token: String,
    },
    /// The contact's notification records, newest first.
    Notifications(SelectorArgs),
    /// Manual verification: make the address Validated, recording who and why.
    Verify {
        #[command(flatten)]
        who: SelectorArgs,
        /// Why (1-500 characters), kept as evidence.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Who verified.
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Send a Validated address back to verification (e.g. it bounces).
    Reverify {
        #[command(flatten)]
        who: SelectorArgs,
        /// Why (1-500 characters).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// The address's evidence records, newest first.
    Evidence(SelectorArgs),
    /// Contacts in ExternalId order, a page at a time.
    List {
        /// Only contacts whose address has this status.
        #[arg(long, value_name = "S")]
        status: Option<String>,
        /// Only the registrant of this domain.
        #[arg(long, value_name = "NAME")]
        domain: Option<String>,
        /// Only contacts with a suspended domain.
        #[arg(long)]
        suspended: bool,
        /// Only contacts whose address bounced.
        #[arg(long)]
        bounced: bool,
        /// Items per page (1-1000, default 100).
        #[arg(long, value_name = "N")]
        max_items: Option<i64>,
        /// The NextPageMarker of the previous page.
        #[arg(long, value_name = "M")]
        marker: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// The domain's verification and suspension.
    Show { name: String },
    /// GetContactReachabilityStatus.
    Reachability { name: String },
    /// ResendContactReachabilityEmail.
    Resend { name: String },
}

#[derive(Debug, Subcommand)]
pub enum OperationCommand {
    /// Record a domain operation that waits on its registrant.
    Add {
        #[arg(long, value_name = "NAME")]
        domain: String,
        #[arg(long = "type", value_name = "TYPE")]
        op_type: String,
        #[arg(long, value_name = "FLAG")]
        status_flag: Option<String>,
    },
    /// GetOperationDetail.
    Show { id: String },
    /// List operations, newest first, a page at a time.
    List {
        #[arg(long, value_name = "NAME")]
        domain: Option<String>,
        #[arg(long, value_name = "FLAG")]
        status_flag: Option<String>,
        /// Items per page (1-1000, default 100).
        #[arg(long, value_name = "N")]
        max_items: Option<i64>,
        /// The NextPageMarker of the previous page.
        #[arg(long, value_name = "M")]
        marker: Option<String>,
    },
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::internal(format!("cannot encode result: {e}")))
}

/// Opens the configured database and brings its schema up to date.
pub async fn open_store(settings: &Settings) -> Result<Store> {
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    Ok(store)
}

/// Runs one command; `Some(json)` is printed on stdout.
pub async fn execute(cli: Cli) -> Result<Option<Value>> {
    let settings = Arc::new(Settings::load(cli.config.as_deref())?);
    telemetry::init(&settings.log);
    if let Some(path) = &settings.verification.secret_generated {
        tracing::warn!(event = "secret_generated", path = %path.display(),
            "no verification.secret is configured: generated one for the SQLite database (keep it; links stop working without it)");
    }
    if let Command::CheckConfig = cli.command {
        return Ok(Some(settings.masked()));
    }
    if let Command::Migrate = cli.command {
        let store = Store::connect(&settings.database).await?;
        let applied = store.migrate().await?;
        store.close().await;
        return Ok(Some(json!({ "applied": applied })));
    }
    let store = if matches!(cli.command, Command::Run | Command::Sweep { .. }) {
        // SIGTERM/SIGINT stop these cleanly from the start, also while they
        // wait for the database or migrate (a migration's transaction is
        // rolled back with its connection).
        tokio::select! {
            store = open_store(&settings) => store?,
            _ = crate::daemon::wait_for_signal() => {
                tracing::info!(event = "daemon_stopped", "stop requested before the start completed");
                return Ok(None);
            }
        }
    } else {
        open_store(&settings).await?
    };
    let mut verifier = Verifier::new(store.clone(), settings, Clock::system());
    if needs_mail(&cli.command) {
        verifier = verifier.with_mail()?;
    } else if let Command::Contact(ContactCommand::Confirm { .. }) = cli.command {
        verifier = verifier.with_secret()?;
    }
    let result = dispatch(&verifier, cli.command).await;
    store.close().await;
    // The daemon prints nothing on stdout (its output is its logs), and an
    // export has written its CSV already.
    result.map(|v| (!v.is_null()).then_some(v))
}

/// The largest report `bounce` reads: real ones carry at most the headers
/// of the returned message, though some return it whole.
const MAX_REPORT_BYTES: u64 = 20 * 1024 * 1024;

/// One report from a file or stdin, whole.
async fn read_report(file: Option<&std::path::Path>) -> Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    let read = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            let f = tokio::fs::File::open(path)
                .await
                .map_err(|e| Error::invalid(format!("cannot open {}: {e}", path.display())))?;
            f.take(MAX_REPORT_BYTES + 1).read_to_end(&mut raw).await
        }
        None => {
            tokio::io::stdin()
                .take(MAX_REPORT_BYTES + 1)
                .read_to_end(&mut raw)
                .await
        }
    };
    read.map_err(|e| Error::invalid(format!("cannot read the report: {e}")))?;
    if raw.len() as u64 > MAX_REPORT_BYTES {
        return Err(Error::invalid(format!(
            "the report is larger than {MAX_REPORT_BYTES} bytes; pass one delivery status \
             notification at a time"
        )));
    }
    Ok(raw)
}

fn needs_mail(command: &Command) -> bool {
    matches!(
        command,
        Command::Run
            | Command::Sweep { dry_run: false }
            | Command::Contact(ContactCommand::Resend(_))
            | Command::Domain(DomainCommand::Resend { .. })
    )
}

async fn dispatch(v: &Verifier, command: Command) -> Result<Value> {
    match command {
        Command::Migrate | Command::CheckConfig => {
            unreachable!("handled before the database opens")
        }
        Command::Run => {
            crate::daemon::run(v.clone()).await?;
            Ok(Value::Null)
        }
        Command::Sweep { dry_run } => {
            // SIGTERM/SIGINT stop a one-shot sweep as they stop the daemon's:
            // emails in flight finish and are recorded, no new ones start.
            let (tx, rx) = tokio::sync::watch::channel(false);
            let signals = tokio::spawn(async move {
                crate::daemon::wait_for_signal().await;
                let _ = tx.send(true);
            });
            // A long sweep keeps its claims its own while it beats.
            let (beat_tx, beat_rx) = tokio::sync::watch::channel(false);
            let heartbeat = (!dry_run).then(|| {
                tokio::spawn(v.liveness.clone().run(
                    v.store.clone(),
                    v.clock.clone(),
                    v.policy.clone(),
                    StopSignal::new(beat_rx),
                ))
            });
            let summary = v.sweep(dry_run, &StopSignal::new(rx)).await;
            signals.abort();
            let _ = beat_tx.send(true);
            if let Some(h) = heartbeat {
                let _ = h.await;
            }
            let summary = summary?;
            // A one-shot sweep delivers the events pending before it exits
            // (CONTRACT section 8); one that fails stays pending for later.
            if !dry_run {
                v.deliver_events().await?;
            }
            to_json(&summary)
        }
        Command::Contact(c) => match c {
            ContactCommand::Add {
                external_id,
                email,
                domains,
                language,
            } => to_json(
                &v.add_contact(&external_id, &email, &domains, language.as_deref())
                    .await?,
            ),
            ContactCommand::Import { file } => {
                let report = if file.as_os_str() == "-" {
                    v.import(tokio::io::BufReader::new(tokio::io::stdin()))
                        .await?
                } else {
                    let f = tokio::fs::File::open(&file).await.map_err(|e| {
                        Error::invalid(format!("cannot open {}: {e}", file.display()))
                    })?;
                    v.import(tokio::io::BufReader::new(f)).await?
                };
                to_json(&report)
            }
            ContactCommand::Show(sel) => to_json(&v.show_contact(&sel.selector()?).await?),
            ContactCommand::Resend(sel) => Ok(v.resend(&sel.selector()?).await?.to_json()),
            ContactCommand::Confirm { token } => to_json(&v.confirm(&token).await?.details),
            ContactCommand::Notifications(sel) => {
                let records = v.notifications(&sel.selector()?).await?;
                Ok(json!({ "operations": records }))
            }
            ContactCommand::Verify { who, reason, by } => to_json(
                &v.verify_manually(&who.selector()?, &reason, by.as_deref())
                    .await?,
            ),
            ContactCommand::Reverify { who, reason } => {
                to_json(&v.reverify(&who.selector()?, &reason).await?)
            }
            ContactCommand::List {
                status,
                domain,
                suspended,
                bounced,
                max_items,
                marker,
            } => Ok(v
                .list_contacts(
                    status.as_deref(),
                    domain.as_deref(),
                    suspended,
                    bounced,
                    max_items,
                    marker.as_deref(),
                )
                .await?
                .to_json()),
            ContactCommand::Evidence(sel) => {
                let records = v.evidence(&sel.selector()?).await?;
                Ok(json!({ "Evidence": records }))
            }
        },
        Command::Domain(DomainCommand::Show { name }) => to_json(&v.domain_details(&name).await?),
        Command::Evidence(EvidenceCommand::Export { since, until }) => {
            export_csv(v, since.as_deref(), until.as_deref()).await?;
            Ok(Value::Null)
        }
        Command::Events(EventsCommand::List {
            pending,
            max_items,
            marker,
        }) => Ok(v
            .events(pending, max_items, marker.as_deref())
            .await?
            .to_json()),
        Command::Stats => to_json(&v.stats().await?),
        Command::Bounce { file } => {
            let raw = read_report(file.as_deref()).await?;
            to_json(&v.bounce_report(&raw).await?)
        }
        Command::Domain(DomainCommand::Reachability { name }) => {
            to_json(&v.reachability(&name).await?)
        }
        Command::Domain(DomainCommand::Resend { name }) => {
            to_json(&v.resend_for_domain(&name).await?)
        }
        Command::Operation(o) => match o {
            OperationCommand::Add {
                domain,
                op_type,
                status_flag,
            } => to_json(
                &v.add_operation(&domain, &op_type, status_flag.as_deref())
                    .await?,
            ),
            OperationCommand::Show { id } => to_json(&v.operation(&id).await?),
            OperationCommand::List {
                domain,
                status_flag,
                max_items,
                marker,
            } => Ok(v
                .operations(
                    domain.as_deref(),
                    status_flag.as_deref(),
                    max_items,
                    marker.as_deref(),
                )
                .await?
                .to_json()),
        },
    }
}

/// Streams the evidence CSV to stdout, page by page.
async fn export_csv(v: &Verifier, since: Option<&str>, until: Option<&str>) -> Result<()> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let mut out = tokio::io::stdout();
    let mut pages = std::pin::pin!(v.evidence_csv(since, until)?);
    while let Some(chunk) = pages.next().await {
        out.write_all(&chunk?)
            .await
            .map_err(|e| Error::internal(format!("cannot write to stdout: {e}")))?;
    }
    out.flush()
        .await
        .map_err(|e| Error::internal(format!("cannot write to stdout: {e}")))
}
