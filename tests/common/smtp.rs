//! An in-process SMTP server ("sink") for integration tests.
//!
//! It listens on `127.0.0.1:<random port>`, speaks enough ESMTP for lettre
//! (EHLO/HELO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT),
//! records every accepted message, and can inject faults (refused connections,
//! a 421 "service not available", transient/permanent RCPT failures, a
//! dropped connection after DATA) or a delay before the final reply to DATA
//! (a relay slow only to answer the final dot).
//!
//! TLS uses a self-signed certificate for `localhost` and `127.0.0.1`; hand
//! [`SmtpSink::ca_pem`] or [`SmtpSink::ca_file`] to the client as its root.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// Largest message size advertised in EHLO (and the longest line read).
const MAX_SIZE: usize = 10 * 1024 * 1024;

/// How the sink does TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text only; STARTTLS is not offered.
    None,
    /// Plain text, with STARTTLS offered before the upgrade.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// A fault the sink injects until changed with [`SmtpSink::set_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Behave normally.
    None,
    /// Accept TCP connections and close them at once, without a greeting.
    RefuseConnections,
    /// Reply `451 4.3.0` to every RCPT TO.
    Transient,
    /// Reply `550 5.1.1` to every RCPT TO.
    Permanent,
    /// Read the whole DATA content, then close the socket without replying.
    /// The message is not recorded.
    DropAfterData,
    /// `421 4.3.2` (RFC 5321 3.8: the service is not available, the channel
    /// closes): new connections get it instead of the greeting, open ones in
    /// answer to their next MAIL FROM; then the sink closes the connection.
    ServiceUnavailable,
}

/// One message the sink accepted (replied 250 to the end of DATA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The MAIL FROM address without `<` `>` (empty for the null sender).
    pub from: String,
    /// The RCPT TO addresses without `<` `>`, in order.
    pub to: Vec<String>,
    /// The raw message, headers included, dot-unstuffed, CRLF kept, without
    /// the terminating `.` line.
    pub data: String,
}

impl ReceivedMail {
    /// The value of the first header named `name` (case-insensitive), with
    /// folded continuation lines unfolded. `None` if absent.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut lines = self.data.split("\r\n").peekable();
        while let Some(line) = lines.next() {
            if line.is_empty() {
                return None;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            if !key.trim().eq_ignore_ascii_case(name) {
                continue;
            }
            let mut value = value.trim().to_string();
            while let Some(next) = lines.peek() {
                if next.starts_with(' ') || next.starts_with('\t') {
                    value.push(' ');
                    value.push_str(next.trim());
                    lines.next();
                } else {
                    break;
                }
            }
            return Some(value);
        }
        None
    }

    /// Everything after the first empty line (the raw, still encoded body).
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or("")
    }
}

/// State shared between the handle and the server tasks.
struct Shared {
    mode: TlsMode,
    acceptor: TlsAcceptor,
    fault: Mutex<Fault>,
    auth: Mutex<Option<(String, String)>>,
    delay: Mutex<Duration>,
    messages: Mutex<Vec<ReceivedMail>>,
    connections: std::sync::atomic::AtomicUsize,
    notify: Notify,
    /// Recipients refused with `550 5.1.1` whatever the fault (lowercase).
    refused: Mutex<Vec<String>>,
}

/// Lock a mutex, ignoring poisoning (a panicking test must not cascade).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Inner {
    shared: Arc<Shared>,
    port: u16,
    ca_pem: String,
    ca_file: tempfile::NamedTempFile,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<Mutex<JoinSet<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.accept_task).take() {
            task.abort();
        }
        lock(&self.connections).abort_all();
    }
}

/// A running SMTP sink. Cheap to clone; all clones share one server. The
/// server stops when [`SmtpSink::stop`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct SmtpSink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("port", &self.inner.port)
            .field("mode", &self.inner.shared.mode)
            .finish_non_exhaustive()
    }
}

impl SmtpSink {
    /// Bind `127.0.0.1:0` and start serving in the given TLS mode.
    pub async fn start(mode: TlsMode) -> SmtpSink {
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .expect("smtp sink: generate self-signed certificate");
        let ca_pem = certified.cert.pem();
        let cert_der: CertificateDer<'static> = certified.cert.der().clone();
        let key_der =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("smtp sink: rustls protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)
        .expect("smtp sink: rustls server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let mut ca_file = tempfile::Builder::new()
            .prefix("smtp-sink-ca-")
            .suffix(".pem")
            .tempfile()
            .expect("smtp sink: create CA temp file");
        ca_file
            .write_all(ca_pem.as_bytes())
            .and_then(|()| ca_file.flush())
            .expect("smtp sink: write CA temp file");

        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("smtp sink: bind 127.0.0.1:0");
        let port = listener.local_addr().expect("smtp sink: local addr").port();

        let shared = Arc::new(Shared {
            mode,
            acceptor,
            fault: Mutex::new(Fault::None),
            auth: Mutex::new(None),
            delay: Mutex::new(Duration::ZERO),
            messages: Mutex::new(Vec::new()),
            connections: std::sync::atomic::AtomicUsize::new(0),
            notify: Notify::new(),
            refused: Mutex::new(Vec::new()),
        });
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let accept_task = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&shared),
            Arc::clone(&connections),
        ));

        SmtpSink {
            inner: Arc::new(Inner {
                shared,
                port,
                ca_pem,
                ca_file,
                accept_task: Mutex::new(Some(accept_task)),
                connections,
            }),
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The TLS mode the sink was started with.
    pub fn mode(&self) -> TlsMode {
        self.inner.shared.mode
    }

    /// PEM of the self-signed server certificate (valid for `localhost` and
    /// `127.0.0.1`); use it as the client's root certificate.
    pub fn ca_pem(&self) -> String {
        self.inner.ca_pem.clone()
    }

    /// Path of a file holding [`SmtpSink::ca_pem`]; it lives as long as the sink.
    pub fn ca_file(&self) -> PathBuf {
        self.inner.ca_file.path().to_path_buf()
    }

    /// Refuse `addr` at RCPT TO with `550 5.1.1`, as a relay does for a
    /// mailbox that does not exist, while accepting everyone else.
    pub fn refuse_recipient(&self, addr: &str) {
        lock(&self.inner.shared.refused).push(addr.to_ascii_lowercase());
    }

    /// Accept every recipient again.
    pub fn clear_refusals(&self) {
        lock(&self.inner.shared.refused).clear();
    }

    /// Inject a fault from now on (for new commands and connections).
    pub fn set_fault(&self, f: Fault) {
        *lock(&self.inner.shared.fault) = f;
    }

    /// Require AUTH (PLAIN or LOGIN) with these credentials before MAIL FROM:
    /// otherwise MAIL gets 530, and wrong credentials get 535.
    pub fn require_auth(&self, user: &str, password: &str) {
        *lock(&self.inner.shared.auth) = Some((user.to_string(), password.to_string()));
    }

    /// Sleep this long before replying 250 to the end of DATA (the message
    /// is recorded after the sleep, just before the reply): a relay slow
    /// only to answer the final dot. The message is recorded even if the
    /// client gave up meanwhile, as a real relay would have queued it.
    pub fn set_delay(&self, d: Duration) {
        *lock(&self.inner.shared.delay) = d;
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.inner.shared.messages).clone()
    }

    /// How many messages were accepted so far.
    pub fn count(&self) -> usize {
        lock(&self.inner.shared.messages).len()
    }

    /// How many TCP connections were accepted so far (refused ones included);
    /// useful to check that a client pools its connections.
    pub fn connection_count(&self) -> usize {
        self.inner
            .shared
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forget the messages accepted so far.
    pub fn clear(&self) {
        lock(&self.inner.shared.messages).clear();
    }

    /// Wait until at least `n` messages were accepted and return them all.
    /// Panics with a description of what arrived if `timeout` passes first.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let messages = lock(&self.inner.shared.messages);
                if messages.len() >= n {
                    return messages.clone();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let messages = self.messages();
                if messages.len() >= n {
                    return messages;
                }
                let summary: Vec<String> = messages
                    .iter()
                    .map(|m| format!("from <{}> to {:?}", m.from, m.to))
                    .collect();
                panic!(
                    "SmtpSink::wait_for: timed out after {timeout:?} waiting for {n} message(s) \
                     on port {}; received {}: {summary:?}",
                    self.inner.port,
                    messages.len(),
                );
            }
        }
    }

    /// Stop listening and close every open connection. When this returns,
    /// connecting to the port is refused.
    pub async fn stop(&self) {
        let task = lock(&self.inner.accept_task).take();
        if let Some(task) = task {
            task.abort();
            // Wait until the task (and with it the listener) is gone.
            let _ = task.await;
        }
        let mut connections = std::mem::take(&mut *lock(&self.inner.connections));
        connections.shutdown().await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    connections: Arc<Mutex<JoinSet<()>>>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // e.g. EMFILE; back off a little rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if *lock(&shared.fault) == Fault::RefuseConnections {
            drop(stream);
            continue;
        }
        let shared = Arc::clone(&shared);
        let mut set = lock(&connections);
        // Reap finished connections so the set does not grow without bound.
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            // Errors (client went away, TLS failure) just end the connection.
            let _ = handle_connection(stream, shared).await;
        });
    }
}

type IoResult<T> = std::io::Result<T>;

async fn handle_connection(stream: TcpStream, shared: Arc<Shared>) -> IoResult<()> {
    let _ = stream.set_nodelay(true);
    let mut session = Session::default();
    match shared.mode {
        TlsMode::Implicit => {
            let tls = shared.acceptor.accept(stream).await?;
            session.tls = true;
            let mut io = BufReader::new(tls);
            if !greet(&mut io, &shared).await? {
                return Ok(());
            }
            serve(&mut io, &shared, &mut session).await?;
        }
        TlsMode::None | TlsMode::StartTls => {
            let mut io = BufReader::new(stream);
            if !greet(&mut io, &shared).await? {
                return Ok(());
            }
            if serve(&mut io, &shared, &mut session).await? == Outcome::StartTls {
                // Anything the client pipelined after STARTTLS is discarded,
                // as RFC 3207 requires.
                let stream = io.into_inner();
                let tls = shared.acceptor.accept(stream).await?;
                session = Session {
                    tls: true,
                    ..Session::default()
                };
                let mut io = BufReader::new(tls);
                serve(&mut io, &shared, &mut session).await?;
            }
        }
    }
    Ok(())
}

/// The greeting: 220, or 421 and the end of the connection (false) while
/// [`Fault::ServiceUnavailable`] is on.
async fn greet<S: AsyncWrite + Unpin>(io: &mut S, shared: &Shared) -> IoResult<bool> {
    if *lock(&shared.fault) == Fault::ServiceUnavailable {
        reply(io, SERVICE_UNAVAILABLE).await?;
        let _ = io.shutdown().await;
        return Ok(false);
    }
    reply(io, "220 localhost ESMTP test sink ready").await?;
    Ok(true)
}

const SERVICE_UNAVAILABLE: &str = "421 4.3.2 Service not available, closing transmission channel";

/// Per-connection protocol state.
#[derive(Default)]
struct Session {
    tls: bool,
    greeted: bool,
    authenticated: bool,
    from: Option<String>,
    to: Vec<String>,
}

impl Session {
    fn reset_transaction(&mut self) {
        self.from = None;
        self.to.clear();
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The connection is over (QUIT, EOF, or a deliberate drop).
    Closed,
    /// The client asked for STARTTLS and got 220; upgrade now.
    StartTls,
}

async fn reply<S: AsyncWrite + Unpin>(io: &mut S, line: &str) -> IoResult<()> {
    io.write_all(line.as_bytes()).await?;
    io.write_all(b"\r\n").await?;
    io.flush().await
}

/// Read one line including its terminator; `None` on EOF.
async fn read_line<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> IoResult<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = (&mut *io)
        .take(MAX_SIZE as u64 + 1024)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(line))
}

/// Read one command line as text without its CRLF; `None` on EOF.
async fn read_command<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> IoResult<Option<String>> {
    Ok(read_line(io).await?.map(|line| {
        let text = String::from_utf8_lossy(&line);
        text.trim_end_matches(['\r', '\n']).to_string()
    }))
}

async fn serve<S>(
    io: &mut BufReader<S>,
    shared: &Shared,
    session: &mut Session,
) -> IoResult<Outcome>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(line) = read_command(io).await? {
        let (verb, args) = match line.split_once(' ') {
            Some((verb, args)) => (verb.to_ascii_uppercase(), args.trim()),
            None => (line.trim().to_ascii_uppercase(), ""),
        };
        let auth_required = lock(&shared.auth).is_some();
        let starttls_pending = shared.mode == TlsMode::StartTls && !session.tls;
        match verb.as_str() {
            "EHLO" => {
                session.greeted = true;
                session.reset_transaction();
                let mut lines = vec!["250-localhost", "250-8BITMIME", "250-SMTPUTF8"];
                if starttls_pending {
                    lines.push("250-STARTTLS");
                }
                if auth_required && !starttls_pending {
                    lines.push("250-AUTH PLAIN LOGIN");
                }
                lines.push("250 SIZE 10485760");
                let mut text = lines.join("\r\n");
                text.push_str("\r\n");
                io.write_all(text.as_bytes()).await?;
                io.flush().await?;
            }
            "HELO" => {
                session.greeted = true;
                session.reset_transaction();
                reply(io, "250 localhost").await?;
            }
            "STARTTLS" => {
                if session.tls {
                    reply(io, "503 5.5.1 TLS already active").await?;
                } else if shared.mode != TlsMode::StartTls {
                    reply(io, "502 5.5.1 STARTTLS not offered").await?;
                } else {
                    reply(io, "220 2.0.0 Ready to start TLS").await?;
                    return Ok(Outcome::StartTls);
                }
            }
            "AUTH" => handle_auth(io, shared, session, args).await?,
            "MAIL" => {
                let Some(from) = parse_path(args, "FROM:") else {
                    reply(io, "501 5.5.4 Syntax: MAIL FROM:<address>").await?;
                    continue;
                };
                if *lock(&shared.fault) == Fault::ServiceUnavailable {
                    reply(io, SERVICE_UNAVAILABLE).await?;
                    let _ = io.shutdown().await;
                    return Ok(Outcome::Closed);
                }
                if !session.greeted {
                    reply(io, "503 5.5.1 Send EHLO/HELO first").await?;
                } else if auth_required && !session.authenticated {
                    reply(io, "530 5.7.0 Authentication required").await?;
                } else if session.from.is_some() {
                    reply(io, "503 5.5.1 Sender already given").await?;
                } else {
                    session.from = Some(from);
                    reply(io, "250 2.1.0 Ok").await?;
                }
            }
            "RCPT" => {
                let Some(to) = parse_path(args, "TO:") else {
                    reply(io, "501 5.5.4 Syntax: RCPT TO:<address>").await?;
                    continue;
                };
                if session.from.is_none() {
                    reply(io, "503 5.5.1 Need MAIL before RCPT").await?;
                    continue;
                }
                let fault = *lock(&shared.fault);
                if lock(&shared.refused).contains(&to.to_ascii_lowercase()) {
                    reply(io, "550 5.1.1 <x>: Recipient address rejected: User unknown in virtual mailbox table").await?;
                    continue;
                }
                match fault {
                    Fault::Transient => {
                        reply(io, "451 4.3.0 Temporary failure, try again later").await?
                    }
                    Fault::Permanent => {
                        reply(io, "550 5.1.1 Recipient address rejected: no such user").await?
                    }
                    _ => {
                        session.to.push(to);
                        reply(io, "250 2.1.5 Ok").await?;
                    }
                }
            }
            "DATA" => {
                if session.from.is_none() || session.to.is_empty() {
                    reply(io, "503 5.5.1 Need MAIL and RCPT before DATA").await?;
                    continue;
                }
                reply(io, "354 End data with <CR><LF>.<CR><LF>").await?;
                let Some(data) = read_data(io).await? else {
                    return Ok(Outcome::Closed);
                };
                if *lock(&shared.fault) == Fault::DropAfterData {
                    session.reset_transaction();
                    return Ok(Outcome::Closed);
                }
                let delay = *lock(&shared.delay);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let mail = ReceivedMail {
                    from: session.from.take().unwrap_or_default(),
                    to: std::mem::take(&mut session.to),
                    data,
                };
                lock(&shared.messages).push(mail);
                shared.notify.notify_waiters();
                reply(io, "250 2.0.0 Ok: queued").await?;
            }
            "RSET" => {
                session.reset_transaction();
                reply(io, "250 2.0.0 Ok").await?;
            }
            "NOOP" => reply(io, "250 2.0.0 Ok").await?,
            "QUIT" => {
                reply(io, "221 2.0.0 Bye").await?;
                let _ = io.shutdown().await;
                return Ok(Outcome::Closed);
            }
            _ => reply(io, "500 5.5.2 Command not recognized").await?,
        }
    }
    Ok(Outcome::Closed)
}

/// Parse `FROM:<addr> PARAMS` / `TO:<addr> PARAMS`: the address without the
/// angle brackets, ESMTP parameters ignored. `None` on a syntax error.
fn parse_path(args: &str, keyword: &str) -> Option<String> {
    let head = args.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = args[keyword.len()..].trim_start();
    if let Some(rest) = rest.strip_prefix('<') {
        let end = rest.find('>')?;
        Some(rest[..end].to_string())
    } else {
        let addr = rest.split_whitespace().next()?;
        Some(addr.to_string())
    }
}

/// Read DATA content up to the lone `.` line; dot-unstuff, keep line endings.
/// `None` if the client went away first.
async fn read_data<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> IoResult<Option<String>> {
    let mut data = Vec::new();
    loop {
        let Some(line) = read_line(io).await? else {
            return Ok(None);
        };
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(line);
    }
    Ok(Some(String::from_utf8_lossy(&data).into_owned()))
}

fn b64_decode(s: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

fn b64_encode(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Send a 334 challenge and read the client's answer: `None` if the client
/// cancelled with `*`, an error if it went away.
async fn challenge<S>(io: &mut BufReader<S>, text: &str) -> IoResult<Option<String>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    reply(io, &format!("334 {}", b64_encode(text))).await?;
    match read_command(io).await? {
        None => Err(std::io::ErrorKind::UnexpectedEof.into()),
        Some(answer) if answer.trim() == "*" => Ok(None),
        Some(answer) => Ok(Some(answer)),
    }
}

async fn handle_auth<S>(
    io: &mut BufReader<S>,
    shared: &Shared,
    session: &mut Session,
    args: &str,
) -> IoResult<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !session.greeted {
        return reply(io, "503 5.5.1 Send EHLO first").await;
    }
    if session.authenticated {
        return reply(io, "503 5.5.1 Already authenticated").await;
    }
    if session.from.is_some() {
        return reply(io, "503 5.5.1 AUTH not allowed during a mail transaction").await;
    }
    if shared.mode == TlsMode::StartTls && !session.tls {
        return reply(io, "530 5.7.0 Must issue a STARTTLS command first").await;
    }
    let (mechanism, initial) = match args.split_once(' ') {
        Some((m, initial)) => (m.to_ascii_uppercase(), Some(initial.trim().to_string())),
        None => (args.to_ascii_uppercase(), None),
    };
    let credentials = match mechanism.as_str() {
        "PLAIN" => {
            let encoded = match initial {
                // "=" is an empty initial response.
                Some(initial) if initial != "=" => initial,
                _ => match challenge(io, "").await? {
                    Some(answer) => answer,
                    None => return reply(io, "501 5.7.0 Authentication cancelled").await,
                },
            };
            let Some(decoded) = b64_decode(&encoded) else {
                return reply(io, "501 5.5.2 Invalid base64").await;
            };
            let mut parts = decoded.split('\0');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(_authzid), Some(user), Some(password), None) => {
                    (user.to_string(), password.to_string())
                }
                _ => return reply(io, "501 5.5.2 Malformed AUTH PLAIN response").await,
            }
        }
        "LOGIN" => {
            let user_b64 = match initial {
                Some(initial) => initial,
                None => match challenge(io, "Username:").await? {
                    Some(answer) => answer,
                    None => return reply(io, "501 5.7.0 Authentication cancelled").await,
                },
            };
            let Some(user) = b64_decode(&user_b64) else {
                return reply(io, "501 5.5.2 Invalid base64").await;
            };
            let Some(password_b64) = challenge(io, "Password:").await? else {
                return reply(io, "501 5.7.0 Authentication cancelled").await;
            };
            let Some(password) = b64_decode(&password_b64) else {
                return reply(io, "501 5.5.2 Invalid base64").await;
            };
            (user, password)
        }
        _ => return reply(io, "504 5.5.4 Unrecognized authentication mechanism").await,
    };
    let expected = lock(&shared.auth).clone();
    // Without require_auth any credentials are accepted.
    let ok = expected.is_none_or(|expected| expected == credentials);
    if ok {
        session.authenticated = true;
        reply(io, "235 2.7.0 Authentication successful").await
    } else {
        reply(io, "535 5.7.8 Authentication credentials invalid").await
    }
}
