//! Self-test of the in-process SMTP sink in `tests/common/smtp.rs`, driven by
//! lettre (the client the daemon uses) and by a raw TCP client.

mod common;

use std::time::{Duration, Instant};

use common::smtp::*;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type Transport = AsyncSmtpTransport<Tokio1Executor>;

const WAIT: Duration = Duration::from_secs(10);

fn message(to: &str, subject: &str, body: &str) -> Message {
    Message::builder()
        .from("Verifier <noreply@registrar.test>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .unwrap()
}

fn plain(sink: &SmtpSink) -> Transport {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.port())
        .timeout(Some(Duration::from_secs(5)))
        .build()
}

fn tls_params(sink: &SmtpSink) -> TlsParameters {
    let pem = sink.ca_pem();
    TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(pem.as_bytes()).unwrap())
        .build_rustls()
        .unwrap()
}

fn with_tls(sink: &SmtpSink, tls: Tls) -> Transport {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.port())
        .timeout(Some(Duration::from_secs(5)))
        .tls(tls)
        .build()
}

fn assert_mail(mail: &ReceivedMail, to: &str, subject: &str, body: &str) {
    assert_eq!(mail.from, "noreply@registrar.test");
    assert_eq!(mail.to, vec![to.to_string()]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some(subject),
        "{}",
        mail.data
    );
    assert!(
        mail.data.contains(&format!("To: {to}\r\n")),
        "{}",
        mail.data
    );
    assert!(mail.body().contains(body), "{}", mail.data);
    assert!(!mail.data.ends_with("\r\n.\r\n"), "{}", mail.data);
}

#[tokio::test]
async fn plain_mode_receives_message_and_pools_connections() {
    let sink = SmtpSink::start(TlsMode::None).await;
    let mailer = plain(&sink);
    mailer
        .send(message("alice@example.com", "Please verify", "Hello Alice"))
        .await
        .unwrap();
    // Second and third messages reuse the pooled connection (RSET between).
    // lettre returns a connection to its pool in a spawned task, so give
    // that task a moment; back-to-back sends may open a second connection.
    tokio::time::sleep(Duration::from_millis(50)).await;
    mailer
        .send(message("bob@example.com", "Second", "Hello Bob"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    mailer
        .send(message("carol@example.com", "Third", "Hello Carol"))
        .await
        .unwrap();
    let mails = sink.wait_for(3, WAIT).await;
    assert_eq!(mails.len(), 3);
    assert_mail(
        &mails[0],
        "alice@example.com",
        "Please verify",
        "Hello Alice",
    );
    assert_mail(&mails[1], "bob@example.com", "Second", "Hello Bob");
    assert_mail(&mails[2], "carol@example.com", "Third", "Hello Carol");
    assert_eq!(sink.count(), 3);
    assert_eq!(
        sink.connection_count(),
        1,
        "lettre should reuse its pooled connection"
    );
    sink.clear();
    assert_eq!(sink.count(), 0);
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn dot_stuffed_lines_are_unstuffed() {
    let sink = SmtpSink::start(TlsMode::None).await;
    let body = "first line\r\n.leading dot\r\n..two dots\r\n.\r\nlast";
    plain(&sink)
        .send(message("dots@example.com", "Dots", body))
        .await
        .unwrap();
    let mails = sink.wait_for(1, WAIT).await;
    assert!(
        mails[0]
            .data
            .contains("first line\r\n.leading dot\r\n..two dots\r\n.\r\nlast"),
        "{}",
        mails[0].data
    );
}

#[tokio::test]
async fn concurrent_connections() {
    let sink = SmtpSink::start(TlsMode::None).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        // Separate transports: separate connections.
        let mailer = plain(&sink);
        tasks.spawn(async move {
            mailer
                .send(message(
                    &format!("user{i}@example.com"),
                    &format!("Mail {i}"),
                    "x",
                ))
                .await
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    let mails = sink.wait_for(8, WAIT).await;
    let mut to: Vec<String> = mails.iter().map(|m| m.to[0].clone()).collect();
    to.sort();
    let mut expected: Vec<String> = (0..8).map(|i| format!("user{i}@example.com")).collect();
    expected.sort();
    assert_eq!(to, expected);
}

#[tokio::test]
async fn starttls_required() {
    let sink = SmtpSink::start(TlsMode::StartTls).await;
    let mailer = with_tls(&sink, Tls::Required(tls_params(&sink)));
    mailer
        .send(message("tls@example.com", "Over STARTTLS", "secret body"))
        .await
        .unwrap();
    mailer
        .send(message("tls2@example.com", "Again", "second body"))
        .await
        .unwrap();
    let mails = sink.wait_for(2, WAIT).await;
    assert_mail(&mails[0], "tls@example.com", "Over STARTTLS", "secret body");
    assert_mail(&mails[1], "tls2@example.com", "Again", "second body");
}

#[tokio::test]
async fn starttls_rejects_unknown_certificate() {
    let sink = SmtpSink::start(TlsMode::StartTls).await;
    let other = SmtpSink::start(TlsMode::None).await;
    // Trust another sink's certificate: the handshake must fail.
    let mailer = with_tls(&sink, Tls::Required(tls_params(&other)));
    let err = mailer
        .send(message("tls@example.com", "x", "y"))
        .await
        .unwrap_err();
    assert!(
        err.is_tls() || err.to_string().contains("certificate"),
        "{err:?}"
    );
    assert_eq!(sink.count(), 0);
}

#[tokio::test]
async fn implicit_tls_wrapper() {
    let sink = SmtpSink::start(TlsMode::Implicit).await;
    let mailer = with_tls(&sink, Tls::Wrapper(tls_params(&sink)));
    mailer
        .send(message("smtps@example.com", "Over SMTPS", "wrapped body"))
        .await
        .unwrap();
    let mails = sink.wait_for(1, WAIT).await;
    assert_mail(&mails[0], "smtps@example.com", "Over SMTPS", "wrapped body");
}

#[tokio::test]
async fn ca_file_holds_the_pem() {
    let sink = SmtpSink::start(TlsMode::Implicit).await;
    let path = sink.ca_file();
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert_eq!(on_disk, sink.ca_pem());
    assert!(on_disk.starts_with("-----BEGIN CERTIFICATE-----"));
    // The file works as a root for lettre too.
    let params = TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(&std::fs::read(&path).unwrap()).unwrap())
        .build_rustls()
        .unwrap();
    with_tls(&sink, Tls::Wrapper(params))
        .send(message("file@example.com", "CA file", "z"))
        .await
        .unwrap();
    sink.wait_for(1, WAIT).await;
}

#[tokio::test]
async fn auth_plain_and_login() {
    let sink = SmtpSink::start(TlsMode::None).await;
    sink.require_auth("mailer", "s3cret");

    // No credentials: MAIL FROM gets 530.
    let err = plain(&sink)
        .send(message("a@example.com", "x", "y"))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(
        err.to_string().contains("530") || format!("{err:?}").contains("530"),
        "{err:?}"
    );

    // Wrong credentials: 535.
    let wrong = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.port())
        .credentials(Credentials::new("mailer".into(), "nope".into()))
        .build();
    let err = wrong
        .send(message("a@example.com", "x", "y"))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(sink.count(), 0);

    // Right credentials, PLAIN (lettre's first choice) and LOGIN.
    for mechanism in [Mechanism::Plain, Mechanism::Login] {
        let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(sink.port())
            .credentials(Credentials::new("mailer".into(), "s3cret".into()))
            .authentication(vec![mechanism])
            .build();
        mailer
            .send(message(
                "auth@example.com",
                &format!("Auth {mechanism}"),
                "ok",
            ))
            .await
            .unwrap();
    }
    let mails = sink.wait_for(2, WAIT).await;
    assert_mail(&mails[0], "auth@example.com", "Auth PLAIN", "ok");
    assert_mail(&mails[1], "auth@example.com", "Auth LOGIN", "ok");
}

#[tokio::test]
async fn auth_after_starttls() {
    let sink = SmtpSink::start(TlsMode::StartTls).await;
    sink.require_auth("mailer", "s3cret");
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.port())
        .tls(Tls::Required(tls_params(&sink)))
        .credentials(Credentials::new("mailer".into(), "s3cret".into()))
        .build();
    mailer
        .send(message("auth@example.com", "Auth over TLS", "ok"))
        .await
        .unwrap();
    let mails = sink.wait_for(1, WAIT).await;
    assert_mail(&mails[0], "auth@example.com", "Auth over TLS", "ok");
}

#[tokio::test]
async fn transient_and_permanent_faults() {
    let sink = SmtpSink::start(TlsMode::None).await;
    let mailer = plain(&sink);

    sink.set_fault(Fault::Transient);
    let err = mailer
        .send(message("t@example.com", "x", "y"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(!err.is_permanent(), "{err:?}");

    sink.set_fault(Fault::Permanent);
    let err = mailer
        .send(message("p@example.com", "x", "y"))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(!err.is_transient(), "{err:?}");
    assert_eq!(sink.count(), 0);

    sink.set_fault(Fault::None);
    mailer
        .send(message("ok@example.com", "Recovered", "y"))
        .await
        .unwrap();
    let mails = sink.wait_for(1, WAIT).await;
    assert_mail(&mails[0], "ok@example.com", "Recovered", "y");
}

#[tokio::test]
async fn refuse_connections_and_drop_after_data() {
    let sink = SmtpSink::start(TlsMode::None).await;

    sink.set_fault(Fault::RefuseConnections);
    let err = plain(&sink)
        .send(message("r@example.com", "x", "y"))
        .await
        .unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");

    sink.set_fault(Fault::DropAfterData);
    let err = plain(&sink)
        .send(message("d@example.com", "x", "y"))
        .await
        .unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
    assert_eq!(sink.count(), 0);

    sink.set_fault(Fault::None);
    plain(&sink)
        .send(message("ok@example.com", "Fine again", "y"))
        .await
        .unwrap();
    sink.wait_for(1, WAIT).await;
}

#[tokio::test]
async fn delay_before_data_reply() {
    let sink = SmtpSink::start(TlsMode::None).await;
    sink.set_delay(Duration::from_millis(400));
    let started = Instant::now();
    plain(&sink)
        .send(message("slow@example.com", "Slow", "y"))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));

    // The reply really is held back: a caller-side timeout shorter than the
    // delay expires (lettre's own timeout covers only the connect).
    sink.set_delay(Duration::from_secs(2));
    let pending = tokio::time::timeout(
        Duration::from_millis(300),
        plain(&sink).send(message("slow@example.com", "Too slow", "y")),
    )
    .await;
    assert!(pending.is_err(), "send finished despite the delay");
}

#[tokio::test]
async fn stop_refuses_connections() {
    let sink = SmtpSink::start(TlsMode::None).await;
    let mailer = plain(&sink);
    mailer
        .send(message("before@example.com", "Before stop", "y"))
        .await
        .unwrap();
    sink.wait_for(1, WAIT).await;

    sink.stop().await;
    let err = TcpStream::connect(("127.0.0.1", sink.port()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    // Also through the pooled transport whose connection the sink closed.
    assert!(mailer
        .send(message("after@example.com", "After stop", "y"))
        .await
        .is_err());
    assert!(plain(&sink)
        .send(message("after@example.com", "After stop", "y"))
        .await
        .is_err());
    assert_eq!(sink.count(), 1);
    // Stopping twice is harmless.
    sink.stop().await;
}

#[tokio::test]
#[should_panic(expected = "timed out")]
async fn wait_for_panics_on_timeout() {
    let sink = SmtpSink::start(TlsMode::None).await;
    sink.wait_for(1, Duration::from_millis(100)).await;
}

/// Read one (possibly multi-line) reply; return its lines.
async fn read_reply(reader: &mut BufReader<TcpStream>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        assert!(!line.is_empty(), "connection closed; got so far {lines:?}");
        let line = line.trim_end().to_string();
        let last = line.as_bytes().get(3) != Some(&b'-');
        lines.push(line);
        if last {
            return lines;
        }
    }
}

async fn expect(reader: &mut BufReader<TcpStream>, code: &str) -> Vec<String> {
    let reply = read_reply(reader).await;
    assert!(
        reply.last().unwrap().starts_with(code),
        "expected {code}, got {reply:?}"
    );
    reply
}

#[tokio::test]
async fn raw_protocol_pipelined_commands_and_auth_continuation() {
    let sink = SmtpSink::start(TlsMode::None).await;
    sink.require_auth("u", "p");
    let stream = TcpStream::connect(("127.0.0.1", sink.port()))
        .await
        .unwrap();
    let mut reader = BufReader::new(stream);
    expect(&mut reader, "220").await;

    reader
        .get_mut()
        .write_all(b"EHLO client\r\n")
        .await
        .unwrap();
    let ehlo = expect(&mut reader, "250").await;
    assert_eq!(
        ehlo,
        vec![
            "250-localhost",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-AUTH PLAIN LOGIN",
            "250 SIZE 10485760"
        ]
    );

    reader
        .get_mut()
        .write_all(b"MAIL FROM:<a@b.test>\r\nAUTH PLAIN\r\n")
        .await
        .unwrap();
    expect(&mut reader, "530").await;
    expect(&mut reader, "334").await;
    // "\0u\0p"
    reader.get_mut().write_all(b"AHUAcA==\r\n").await.unwrap();
    expect(&mut reader, "235").await;

    // Several commands in one write, ESMTP parameters, two recipients,
    // a dot-stuffed line, then a second transaction after RSET.
    reader
        .get_mut()
        .write_all(
            b"MAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME SMTPUTF8\r\n\
              RCPT TO:<x@y.test>\r\n\
              RCPT TO:<z@y.test> NOTIFY=NEVER\r\n\
              NOOP\r\n\
              DATA\r\n",
        )
        .await
        .unwrap();
    expect(&mut reader, "250").await;
    expect(&mut reader, "250").await;
    expect(&mut reader, "250").await;
    expect(&mut reader, "250").await;
    expect(&mut reader, "354").await;
    reader
        .get_mut()
        .write_all(b"Subject: raw\r\n\r\n..dot\r\nend\r\n.\r\nRSET\r\nFROB\r\nMAIL FROM:<>\r\n")
        .await
        .unwrap();
    expect(&mut reader, "250").await;
    expect(&mut reader, "250").await;
    expect(&mut reader, "500").await;
    expect(&mut reader, "250").await;
    reader
        .get_mut()
        .write_all(b"DATA\r\nRCPT TO:<q@y.test>\r\nQUIT\r\n")
        .await
        .unwrap();
    expect(&mut reader, "503").await;
    expect(&mut reader, "250").await;
    expect(&mut reader, "221").await;

    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].from, "a@b.test");
    assert_eq!(mails[0].to, vec!["x@y.test", "z@y.test"]);
    assert_eq!(mails[0].data, "Subject: raw\r\n\r\n.dot\r\nend\r\n");
    assert_eq!(mails[0].header("subject").as_deref(), Some("raw"));
}

#[tokio::test]
async fn raw_protocol_starttls_advertising() {
    let sink = SmtpSink::start(TlsMode::StartTls).await;
    sink.require_auth("u", "p");
    let stream = TcpStream::connect(("127.0.0.1", sink.port()))
        .await
        .unwrap();
    let mut reader = BufReader::new(stream);
    expect(&mut reader, "220").await;
    reader
        .get_mut()
        .write_all(b"EHLO client\r\n")
        .await
        .unwrap();
    let ehlo = expect(&mut reader, "250").await;
    assert!(ehlo.contains(&"250-STARTTLS".to_string()), "{ehlo:?}");
    assert!(!ehlo.iter().any(|l| l.contains("AUTH")), "{ehlo:?}");
    reader
        .get_mut()
        .write_all(b"AUTH PLAIN AHUAcA==\r\nQUIT\r\n")
        .await
        .unwrap();
    expect(&mut reader, "530").await;
    expect(&mut reader, "221").await;
}
