//! Sending mail straight to the SMTP relay with lettre: no local spool, the
//! database is the only queue. A send returns once the relay accepted or
//! refused the message, and a refusal is classified for the notification
//! record and the retry policy.

pub mod dsn;
mod pool;
mod templates;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::{Address, AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use pool::{Pool, PoolConfig, Security};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

pub use templates::{MailContext, Rendered, Templates};

use crate::config::{MailTransport, SmtpSettings, SmtpTls};
use crate::domain::{ContactEmail, Notice};
use crate::{Error, Result};

/// `Auto-Submitted: auto-generated` (RFC 3834), so vacation responders and
/// ticket systems do not answer our mail.
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_string())
    }
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// The SMTP reply code (`550`, `451`) or a class when there was no reply
    /// (`ConnectionError`, `Timeout`, `TlsError`, `InvalidMessage`).
    pub code: String,
    /// A 5xx reply: the relay will not take this message as it is.
    pub permanent: bool,
    pub detail: String,
    /// The relay refused this recipient or this message for good (a 5xx
    /// reply to RCPT TO, DATA or the message): its reply, `code text`. A
    /// 5xx to MAIL FROM or AUTH is the relay's setup, not the address's.
    pub refused: Option<(String, String)>,
}

impl SendError {
    /// Classifies lettre's error, naming the relay and the cause (the OS
    /// error of a refused connection, the relay's reply).
    fn from_smtp(e: &lettre::transport::smtp::Error, relay: &str) -> SendError {
        let code = match e.status() {
            Some(c) => c.to_string(),
            None if e.is_timeout() => "Timeout".into(),
            None if e.is_tls() => "TlsError".into(),
            None => "ConnectionError".into(),
        };
        let mut detail = format!("{relay}: {e}");
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            detail.push_str(&format!(": {s}"));
            source = s.source();
        }
        SendError {
            code,
            permanent: e.is_permanent(),
            refused: None,
            detail,
        }
    }

    /// As [`SendError::from_smtp`], for a reply about the recipient or the
    /// message: a permanent one is a refusal of the address.
    pub(crate) fn from_smtp_recipient(
        e: &lettre::transport::smtp::Error,
        relay: &str,
    ) -> SendError {
        let mut err = SendError::from_smtp(e, relay);
        if let (true, Some(code)) = (err.permanent, e.status()) {
            // lettre shows "permanent error (550): <the relay's text>".
            let shown = e.to_string();
            let text = shown
                .split_once("): ")
                .map(|(_, t)| t.to_string())
                .unwrap_or(shown);
            err.refused = Some((code.to_string(), text));
        }
        err
    }
}

/// The certificates of `smtp.ca_file`, for a relay with a private CA.
fn extra_roots(s: &SmtpSettings) -> Result<Vec<CertificateDer<'static>>> {
    if s.ca_file.is_empty() {
        return Ok(Vec::new());
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&s.ca_file)
        .map_err(|e| Error::config(format!("smtp.ca_file: cannot read {}: {e}", s.ca_file)))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            Error::config(format!(
                "smtp.ca_file: {} is not a PEM certificate: {e}",
                s.ca_file
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "smtp.ca_file: {} holds no PEM certificate",
            s.ca_file
        )));
    }
    Ok(certs)
}

/// Where messages go: the relay, or files for development.
enum Transport {
    Smtp(Pool),
    File(AsyncFileTransport<Tokio1Executor>, String),
}

/// The SMTP relay client with its pool of connections and the templates.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    /// The envelope sender: where the relay returns bounces.
    return_path: Address,
    templates: Templates,
}

impl Mailer {
    pub fn new(s: &SmtpSettings, templates_dir: Option<&Path>) -> Result<Mailer> {
        let from: Mailbox = s
            .from
            .parse()
            .map_err(|e| Error::config(format!("smtp.from is not a valid mailbox: {e}")))?;
        let return_path = if s.return_path.is_empty() {
            from.email.clone()
        } else {
            s.return_path.parse().map_err(|e| {
                Error::config(format!("smtp.return_path is not an email address: {e}"))
            })?
        };
        let security = match s.tls {
            SmtpTls::None => Security::None,
            SmtpTls::Starttls => {
                let mut params = TlsParameters::builder(s.host.clone());
                for cert in extra_roots(s)? {
                    params = params.add_root_certificate(
                        Certificate::from_der(cert.to_vec())
                            .map_err(|e| Error::config(format!("smtp.ca_file: {e}")))?,
                    );
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| Error::config(format!("smtp.tls: cannot set up TLS: {e}")))?;
                Security::StartTls(params)
            }
            SmtpTls::Tls => {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                for cert in extra_roots(s)? {
                    roots
                        .add(cert)
                        .map_err(|e| Error::config(format!("smtp.ca_file: {e}")))?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| Error::config(format!("smtp.tls: cannot set up TLS: {e}")))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = ServerName::try_from(s.host.clone()).map_err(|e| {
                    Error::config(format!(
                        "smtp.host {:?} is not a TLS server name: {e}",
                        s.host
                    ))
                })?;
                Security::Implicit(TlsConnector::from(Arc::new(config)), name)
            }
        };
        let credentials = (!s.username.is_empty())
            .then(|| Credentials::new(s.username.clone(), s.password.clone()));
        if s.transport == MailTransport::File {
            std::fs::create_dir_all(&s.file_dir).map_err(|e| {
                Error::config(format!("smtp.file_dir: cannot create {}: {e}", s.file_dir))
            })?;
            return Ok(Mailer {
                transport: Transport::File(
                    AsyncFileTransport::new(&s.file_dir),
                    s.file_dir.clone(),
                ),
                from,
                return_path,
                templates: Templates::load(templates_dir)?,
            });
        }
        let pool = Pool::new(PoolConfig {
            host: s.host.clone(),
            port: s.port,
            security,
            credentials,
            max_connections: s.max_connections as usize,
            timeout: Duration::from_secs(s.timeout_secs),
            data_timeout: Duration::from_secs(s.data_timeout_secs),
        });
        Ok(Mailer {
            transport: Transport::Smtp(pool),
            from,
            return_path,
            templates: Templates::load(templates_dir)?,
        })
    }

    /// Closes the idle connections to the relay (QUIT).
    pub async fn close(&self) {
        if let Transport::Smtp(pool) = &self.transport {
            pool.close_idle().await;
        }
    }

    /// The sender's display name, for the templates.
    pub fn sender_name(&self) -> String {
        self.from
            .name
            .clone()
            .unwrap_or_else(|| self.from.email.domain().to_string())
    }

    pub fn render(&self, notice: Notice, ctx: &MailContext) -> Result<Rendered> {
        self.templates.render(notice, ctx)
    }

    /// Sends one rendered email to `to`; returns once the relay answered.
    pub async fn send(
        &self,
        to: &ContactEmail,
        mail: Rendered,
    ) -> std::result::Result<(), SendError> {
        let invalid = |detail: String| SendError {
            code: "InvalidMessage".into(),
            permanent: true,
            refused: None,
            detail,
        };
        let to_mailbox = Mailbox::new(None, to.address().clone());
        let message = Message::builder()
            .from(self.from.clone())
            .to(to_mailbox)
            .subject(mail.subject)
            .message_id(None)
            .header(AutoSubmitted)
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .map_err(|e| invalid(format!("cannot build the message: {e}")))?;
        let envelope = Envelope::new(Some(self.return_path.clone()), vec![to.address().clone()])
            .map_err(|e| invalid(format!("cannot build the envelope: {e}")))?;
        match &self.transport {
            Transport::Smtp(pool) => pool.send(&envelope, &message.formatted()).await,
            Transport::File(files, dir) => files
                .send_raw(&envelope, &message.formatted())
                .await
                .map(|_| ())
                .map_err(|e| SendError {
                    code: "FileError".into(),
                    permanent: false,
                    refused: None,
                    detail: format!("cannot write the message into {dir}: {e}"),
                }),
        }
    }
}
