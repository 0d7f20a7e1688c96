//! CONTRACT section 9, languages: `Language` on contacts through the CLI,
//! the API and import, malformed tags refused, and each address's emails in
//! its language (English when it has none or no template exists for it),
//! from a real sweep to a real SMTP server, on SQLite and Postgres.

mod common;

use std::time::Duration;

use common::app::*;
use common::daemon::{daemon_bin, free_port, Daemon, API_TOKEN};
use common::smtp::{SmtpSink, TlsMode};
use common::TestDb;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

both_backends!(
    language_is_set_by_cli_and_import_and_malformed_tags_are_refused,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let bin = app.bin();
        let d = bin
            .run(&[
                "contact",
                "add",
                "--external-id",
                "DNA-1",
                "--email",
                "a@example.com",
                "--domain",
                "a.com",
                "--language",
                "DE",
            ])
            .ok();
        assert_eq!(d["Language"], "de", "{d}");
        // Omitted keeps it; given replaces it.
        let d = bin
            .run(&[
                "contact",
                "add",
                "--external-id",
                "DNA-1",
                "--email",
                "a@example.com",
            ])
            .ok();
        assert_eq!(d["Language"], "de", "{d}");
        let d = bin
            .run(&[
                "contact",
                "add",
                "--external-id",
                "DNA-1",
                "--email",
                "a@example.com",
                "--language",
                "pt_br",
            ])
            .ok();
        assert_eq!(d["Language"], "pt-BR", "{d}");
        for bad in ["english", "d", "de-", "<b>"] {
            let line = bin
                .run(&[
                    "contact",
                    "add",
                    "--external-id",
                    "DNA-9",
                    "--email",
                    "z@example.com",
                    "--language",
                    bad,
                ])
                .err(2, "InvalidInput");
            assert!(line.contains("language"), "{line}");
        }
        let none = bin.run(&["contact", "show", "--external-id", "DNA-9"]);
        none.err(3, "NotFound");

        let lines = format!(
            "{}\n{}\n",
            json!({"external_id": "DNA-2", "email": "b@example.com", "domains": ["b.com"], "language": "fr"}),
            json!({"external_id": "DNA-3", "email": "c@example.com", "domains": ["c.com"], "language": "klingon!"}),
        );
        let report = bin
            .run_with_stdin(&["contact", "import", "-"], Some(lines.as_bytes()))
            .ok();
        assert_eq!(report["imported"], 1, "{report}");
        let rejected = report["rejected"].to_string();
        assert!(rejected.contains("language"), "{report}");
        let d = bin.run(&["contact", "show", "--external-id", "DNA-2"]).ok();
        assert_eq!(d["Language"], "fr", "{d}");
        app.done().await;
    }
);

both_backends!(
    each_address_is_mailed_in_its_language_and_english_without_one,
    |db: TestDb| async move {
        let app = App::new(db).await;
        let add = |id: &'static str, email: &'static str, lang: Option<&'static str>| {
            let v = app.v.clone();
            async move {
                v.add_contact(id, email, &[format!("{}.com", id.to_lowercase())], lang)
                    .await
                    .unwrap();
            }
        };
        add("DE", "de@example.com", Some("de")).await;
        add("FR", "fr@example.com", Some("fr")).await;
        add("ES", "es@example.com", Some("es")).await;
        add("EN", "en@example.com", None).await;
        // No template for Italian: English.
        add("IT", "it@example.com", Some("it")).await;
        app.sweep().await;
        let mail = app.sink.wait_for(5, WAIT).await;
        let subject = |addr: &str| {
            let m = mail
                .iter()
                .find(|m| m.to == vec![addr.to_string()])
                .unwrap();
            // Decoded (RFC 2047) as a mail client shows it.
            mail_parser::MessageParser::default()
                .parse(m.data.as_bytes())
                .and_then(|p| p.subject().map(str::to_string))
                .unwrap_or_else(|| subject_of(m))
        };
        assert!(
            subject("de@example.com").starts_with("Bitte bestätigen Sie"),
            "{}",
            subject("de@example.com")
        );
        assert!(
            subject("en@example.com").starts_with("Action required"),
            "{}",
            subject("en@example.com")
        );
        assert!(
            subject("it@example.com").starts_with("Action required"),
            "{}",
            subject("it@example.com")
        );
        for addr in ["fr@example.com", "es@example.com"] {
            let s = subject(addr);
            assert!(!s.starts_with("Action required"), "{addr}: {s}");
        }
        let text = body(
            mail.iter()
                .find(|m| m.to == vec!["de@example.com".to_string()])
                .unwrap(),
        );
        assert!(text.contains("de.com"), "{text}");
        app.done().await;
    }
);

both_backends!(
    api_takes_language_and_refuses_a_malformed_one,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let bin = daemon_bin(&db, &sink, port);
        let d = Daemon::start(&bin, port).await;
        let post = |body: Value| {
            d.http
                .post(format!("{}/v1/contacts", d.base))
                .bearer_auth(API_TOKEN)
                .json(&body)
                .send()
        };
        let r = post(json!({"ExternalId": "DNA-1", "ContactEmail": "a@example.com", "Domains": ["a.com"], "Language": "es"}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["Language"], "es");
        let r = post(
            json!({"ExternalId": "DNA-2", "ContactEmail": "b@example.com", "Language": "spanish"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 400);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["__type"], "InvalidInput", "{e}");
        assert!(e["message"].as_str().unwrap().contains("spanish"), "{e}");
        drop(d);
        sink.stop().await;
        db.cleanup().await;
    }
);
