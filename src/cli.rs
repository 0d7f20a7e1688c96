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
    },
    /// Import contacts from JSON Lines (`-` reads stdin).
    Import { file: PathBuf },
    /// GetDetails.
    Show(SelectorArgs),
    /// ResendContactVerificationNotice: send the verification email now.
    Resend(SelectorArgs),
    /// Confirm with a link's token, as the link does.
    Confirm { token: String },
    /// The contact's notification records, newest first.
    Notifications(SelectorArgs),
}

#[derive(Debug, Subcommand)]
pub enum DomainCommand {
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
    /// List operations, newest first.
    List {
        #[arg(long, value_name = "NAME")]
        domain: Option<String>,
        #[arg(long, value_name = "FLAG")]
        status_flag: Option<String>,
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
    if let Command::CheckConfig = cli.command {
        return Ok(Some(settings.masked()));
    }
    if let Command::Migrate = cli.command {
        let store = Store::connect(&settings.database).await?;
        let applied = store.migrate().await?;
        store.close().await;
        return Ok(Some(json!({ "applied": applied })));
    }
    let store = open_store(&settings).await?;
    let mut verifier = Verifier::new(store.clone(), settings, Clock::system());
    if needs_mail(&cli.command) {
        verifier = verifier.with_mail()?;
    } else if let Command::Contact(ContactCommand::Confirm { .. }) = cli.command {
        verifier = verifier.with_secret()?;
    }
    let is_run = matches!(cli.command, Command::Run);
    let result = dispatch(&verifier, cli.command).await;
    store.close().await;
    // The daemon prints nothing on stdout: its output is its logs.
    result.map(|v| (!is_run).then_some(v))
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
            let summary = v.sweep(dry_run, &StopSignal::new(rx)).await;
            signals.abort();
            to_json(&summary?)
        }
        Command::Contact(c) => match c {
            ContactCommand::Add {
                external_id,
                email,
                domains,
            } => to_json(&v.add_contact(&external_id, &email, &domains).await?),
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
        },
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
            } => {
                let ops = v
                    .operations(domain.as_deref(), status_flag.as_deref())
                    .await?;
                Ok(json!({ "Operations": ops }))
            }
        },
    }
}
