//! Sending mail straight to the SMTP relay with lettre: no local spool, the
//! database is the only queue. A send returns once the relay accepted or
//! refused the message, and a refusal is classified for the notification
//! record and the retry policy.

mod templates;

use std::path::Path;
use std::time::Duration;

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

pub use templates::{MailContext, Rendered, Templates};

use crate::config::{SmtpSettings, SmtpTls};
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
}

impl SendError {
    fn from_smtp(e: &lettre::transport::smtp::Error) -> SendError {
        let code = match e.status() {
            Some(c) => c.to_string(),
            None if e.is_timeout() => "Timeout".into(),
            None if e.is_tls() => "TlsError".into(),
            None => "ConnectionError".into(),
        };
        SendError {
            code,
            permanent: e.is_permanent(),
            detail: e.to_string(),
        }
    }
}

/// The SMTP relay client with its pool of connections and the templates.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    templates: Templates,
    /// Bounds the whole exchange: lettre's own timeout covers only connecting.
    timeout: Duration,
}

impl Mailer {
    pub fn new(s: &SmtpSettings, templates_dir: Option<&Path>) -> Result<Mailer> {
        let from: Mailbox = s
            .from
            .parse()
            .map_err(|e| Error::config(format!("smtp.from is not a valid mailbox: {e}")))?;
        let tls = match s.tls {
            SmtpTls::None => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(s.host.clone());
                if !s.ca_file.is_empty() {
                    let pem = std::fs::read(&s.ca_file).map_err(|e| {
                        Error::config(format!("smtp.ca_file: cannot read {}: {e}", s.ca_file))
                    })?;
                    let cert = Certificate::from_pem(&pem).map_err(|e| {
                        Error::config(format!(
                            "smtp.ca_file: {} is not a PEM certificate: {e}",
                            s.ca_file
                        ))
                    })?;
                    params = params.add_root_certificate(cert);
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| Error::config(format!("smtp.tls: cannot set up TLS: {e}")))?;
                if mode == SmtpTls::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.as_str())
            .port(s.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(s.timeout_secs)))
            .pool_config(PoolConfig::new().max_size(s.max_connections));
        if !s.username.is_empty() {
            builder = builder.credentials(Credentials::new(s.username.clone(), s.password.clone()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            templates: Templates::load(templates_dir)?,
            timeout: Duration::from_secs(s.timeout_secs),
        })
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
            detail,
        };
        let to = Mailbox::new(None, to.address().clone());
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .message_id(None)
            .header(AutoSubmitted)
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .map_err(|e| invalid(format!("cannot build the message: {e}")))?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(result) => result.map(|_| ()).map_err(|e| SendError::from_smtp(&e)),
            Err(_) => Err(SendError {
                code: "Timeout".into(),
                permanent: false,
                detail: format!("no answer from the SMTP server within {:?}", self.timeout),
            }),
        }
    }
}
