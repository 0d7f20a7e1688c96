//! Our own pool of SMTP connections, on lettre's connection API
//! (`AsyncSmtpConnection::connect_with_transport`): each connection is a
//! tokio `TcpStream` with TCP_NODELAY, because lettre writes the message and
//! the final `.` separately and, with Nagle's algorithm on, every message
//! waited for the relay's delayed ACK (about 40 ms). STARTTLS and AUTH go
//! through lettre; implicit TLS wraps the socket with tokio-rustls first.
//!
//! Every command is bounded by `smtp.timeout_secs`; the reply to the final
//! dot has its own `smtp.data_timeout_secs` (RFC 5321 4.5.3.2.6 gives it 10
//! minutes), because a relay that accepted a message but answered late must
//! not have it sent again. A connection that failed is dropped; an idle one
//! is closed after a minute; one used in the last few seconds is reused
//! without a NOOP.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::SendError;

/// A connection used this recently is reused without a NOOP first.
const FRESH: Duration = Duration::from_secs(5);
/// An idle connection older than this is closed instead of reused.
const IDLE_MAX: Duration = Duration::from_secs(60);

/// How the pool reaches the relay.
pub(crate) enum Security {
    None,
    /// STARTTLS, required: a relay that does not offer it is refused.
    StartTls(TlsParameters),
    /// TLS from the first byte (SMTPS).
    Implicit(TlsConnector, ServerName<'static>),
}

pub(crate) struct PoolConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<Credentials>,
    pub max_connections: usize,
    pub timeout: Duration,
    pub data_timeout: Duration,
}

pub(crate) struct Pool {
    cfg: PoolConfig,
    client_id: ClientId,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    slots: Arc<Semaphore>,
}

impl Pool {
    pub(crate) fn new(cfg: PoolConfig) -> Pool {
        Pool {
            slots: Arc::new(Semaphore::new(cfg.max_connections.max(1))),
            cfg,
            client_id: ClientId::default(),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn relay(&self) -> String {
        format!("{}:{}", self.cfg.host, self.cfg.port)
    }

    /// Sends one message; returns once the relay answered the final dot.
    pub(crate) async fn send(&self, envelope: &Envelope, body: &[u8]) -> Result<(), SendError> {
        // At most max_connections transactions at once, each on its own connection.
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| connection_error(&self.relay(), "the SMTP pool is closed"))?;
        let mut conn = match self.checkout().await {
            Some(c) => c,
            None => self.connect().await?,
        };
        match self.transact(&mut conn, envelope, body).await {
            Ok(()) => {
                self.checkin(conn);
                Ok(())
            }
            Err(e) => {
                // Whatever state it is in, it is not trusted with another message.
                let _ = tokio::time::timeout(Duration::from_secs(1), conn.abort()).await;
                Err(e)
            }
        }
    }

    fn checkin(&self, conn: AsyncSmtpConnection) {
        if !conn.has_broken() {
            self.lock_idle().push((conn, Instant::now()));
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<(AsyncSmtpConnection, Instant)>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection that still works, if there is one.
    async fn checkout(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let (mut conn, since) = self.lock_idle().pop()?;
            let age = since.elapsed();
            if age > IDLE_MAX {
                continue;
            }
            if age <= FRESH {
                return Some(conn);
            }
            let alive = tokio::time::timeout(self.cfg.timeout, conn.test_connected()).await;
            if matches!(alive, Ok(true)) {
                return Some(conn);
            }
        }
    }

    /// Closes idle connections politely (QUIT), e.g. at shutdown.
    pub(crate) async fn close_idle(&self) {
        let idle: Vec<_> = std::mem::take(&mut *self.lock_idle());
        for (mut conn, _) in idle {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.quit()).await;
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let relay = self.relay();
        let within = |what: &'static str| {
            let relay = relay.clone();
            let secs = self.cfg.timeout.as_secs();
            move |_| timeout_error(&relay, &format!("{what}: no answer within {secs} s"))
        };
        let tcp = tokio::time::timeout(
            self.cfg.timeout,
            TcpStream::connect((self.cfg.host.as_str(), self.cfg.port)),
        )
        .await
        .map_err(within("connecting"))?
        .map_err(|e| connection_error(&relay, &format!("cannot connect: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| connection_error(&relay, &format!("cannot set TCP_NODELAY: {e}")))?;
        let stream: Box<dyn AsyncTokioStream> = match &self.cfg.security {
            Security::Implicit(connector, name) => {
                let tls =
                    tokio::time::timeout(self.cfg.timeout, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(within("TLS handshake"))?
                        .map_err(|e| SendError {
                            code: "TlsError".into(),
                            permanent: false,
                            refused: None,
                            detail: format!("{relay}: TLS handshake failed: {e}"),
                        })?;
                Box::new(TlsStream(tls))
            }
            Security::None | Security::StartTls(_) => Box::new(tcp),
        };
        let hello = async {
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(stream, &self.client_id).await?;
            if let Security::StartTls(params) = &self.cfg.security {
                if !conn.server_info().supports_feature(Extension::StartTls) {
                    return Ok(Err(SendError {
                        code: "TlsError".into(),
                        permanent: false,
                        refused: None,
                        detail: format!(
                            "{relay} does not offer STARTTLS; set smtp.tls = \"tls\" for a relay \
                             that speaks TLS from the first byte (port 465), or \"none\" for a \
                             relay on this host"
                        ),
                    }));
                }
                conn.starttls(params.clone(), &self.client_id).await?;
            }
            if let Some(credentials) = &self.cfg.credentials {
                conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                    .await?;
            }
            Ok::<_, lettre::transport::smtp::Error>(Ok(conn))
        };
        tokio::time::timeout(self.cfg.timeout, hello)
            .await
            .map_err(within("greeting, STARTTLS and AUTH"))?
            .map_err(|e| SendError::from_smtp(&e, &relay))?
    }

    /// MAIL, RCPT, DATA on the command timer; the message and its final dot
    /// on the data timer.
    async fn transact(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<(), SendError> {
        let relay = self.relay();
        let mut params = Vec::new();
        let ascii = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
        if !envelope.to().iter().all(ascii) || envelope.from().is_some_and(|a| !ascii(a)) {
            params.push(MailParameter::SmtpUtfEight);
        }
        if !body.is_ascii() {
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let t = self.cfg.timeout;
        let command_timeout = |what: &str| {
            timeout_error(
                &relay,
                &format!("no answer to {what} within {} s", t.as_secs()),
            )
        };
        let smtp = |e: lettre::transport::smtp::Error| SendError::from_smtp(&e, &relay);
        tokio::time::timeout(t, conn.command(Mail::new(envelope.from().cloned(), params)))
            .await
            .map_err(|_| command_timeout("MAIL FROM"))?
            .map_err(smtp)?;
        let refused =
            |e: lettre::transport::smtp::Error| SendError::from_smtp_recipient(&e, &relay);
        for to in envelope.to() {
            tokio::time::timeout(t, conn.command(Rcpt::new(to.clone(), vec![])))
                .await
                .map_err(|_| command_timeout("RCPT TO"))?
                .map_err(refused)?;
        }
        tokio::time::timeout(t, conn.command(Data))
            .await
            .map_err(|_| command_timeout("DATA"))?
            .map_err(refused)?;
        let d = self.cfg.data_timeout;
        tokio::time::timeout(d, conn.message(body))
            .await
            .map_err(|_| {
                timeout_error(
                    &relay,
                    &format!(
                        "no answer to the end of the message within {} s",
                        d.as_secs()
                    ),
                )
            })?
            .map_err(refused)?;
        Ok(())
    }
}

fn connection_error(relay: &str, what: &str) -> SendError {
    SendError {
        code: "ConnectionError".into(),
        permanent: false,
        refused: None,
        detail: format!("{relay}: {what}"),
    }
}

fn timeout_error(relay: &str, what: &str) -> SendError {
    SendError {
        code: "Timeout".into(),
        permanent: false,
        refused: None,
        detail: format!("{relay}: {what}"),
    }
}

/// A TLS stream lettre can drive as if it were a plain socket.
#[derive(Debug)]
struct TlsStream(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
