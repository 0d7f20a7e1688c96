//! The operator's view through the CLI and the HTTP API: paginated lists of
//! contacts and operations with opaque markers, notification history over
//! HTTP, and the command line's edges (a whole link to `contact confirm`, a
//! token starting with `-`, an import file with a byte order mark, clap's
//! suggestions, a quiet stderr, a private SQLite file).

mod common;

use common::app::{App, SECRET};
use common::daemon::{daemon_bin, free_port, Daemon};
use common::smtp::{SmtpSink, TlsMode};
use common::{Backend, Bin, TestDb};
use serde_json::{json, Value};

/// `n` contacts, each with one domain, in one import.
fn import_lines(n: usize) -> String {
    (0..n)
        .map(|i| {
            let status = if i % 2 == 0 { "Validated" } else { "NotValidated" };
            format!(
                "{{\"external_id\":\"DNA-{i:04}\",\"email\":\"r{i}@example.com\",\"domains\":[\"d{i}.example\"],\"status\":\"{status}\"}}\n"
            )
        })
        .collect()
}

/// Walks every page of a list command; returns the items' `key` values.
fn walk(bin: &Bin, args: &[&str], list: &str, key: &str, per_page: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let size = per_page.to_string();
    loop {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--max-items", size.as_str()]);
        if let Some(m) = &marker {
            a.extend(["--marker", m.as_str()]);
        }
        let page = bin.run(&a).ok();
        let items = page[list].as_array().unwrap().clone();
        assert!(items.len() <= per_page, "{page}");
        seen.extend(items.iter().map(|i| i[key].as_str().unwrap().to_string()));
        match page["NextPageMarker"].as_str() {
            Some(m) => marker = Some(m.to_string()),
            None => {
                assert!(page["NextPageMarker"].is_null(), "{page}");
                return seen;
            }
        }
    }
}

both_backends!(
    contact_list_pages_in_external_id_order_with_filters_and_refuses_forged_markers,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        let out = bin
            .run_with_stdin(
                &["contact", "import", "-"],
                Some(import_lines(250).as_bytes()),
            )
            .ok();
        assert_eq!(out["imported"], 250);
        let all = walk(&bin, &["contact", "list"], "Contacts", "ExternalId", 100);
        let expected: Vec<String> = (0..250).map(|i| format!("DNA-{i:04}")).collect();
        assert_eq!(all, expected, "every contact once, in order");
        let first = bin.run(&["contact", "list"]).ok();
        assert_eq!(
            first["Contacts"].as_array().unwrap().len(),
            100,
            "default page"
        );
        let validated = walk(
            &bin,
            &["contact", "list", "--status", "Validated"],
            "Contacts",
            "ExternalId",
            40,
        );
        assert_eq!(validated.len(), 125);
        let one = bin.run(&["contact", "list", "--domain", "d7.example"]).ok();
        assert_eq!(one["Contacts"][0]["ExternalId"], "DNA-0007");
        assert_eq!(one["Contacts"].as_array().unwrap().len(), 1);
        let none = bin.run(&["contact", "list", "--suspended"]).ok();
        assert_eq!(none, json!({"Contacts": [], "NextPageMarker": null}));
        // A marker issued for one filter is refused for another, and a
        // made-up one is refused.
        let page = bin
            .run(&[
                "contact",
                "list",
                "--status",
                "Validated",
                "--max-items",
                "10",
            ])
            .ok();
        let marker = page["NextPageMarker"].as_str().unwrap();
        bin.run(&["contact", "list", "--marker", marker])
            .err(2, "InvalidInput");
        bin.run(&[
            "contact",
            "list",
            "--marker",
            "RE5BLTAxMDA.AAAAAAAAAAAAAAAA",
        ])
        .err(2, "InvalidInput");
        bin.run(&["contact", "list", "--max-items", "1001"])
            .err(2, "InvalidInput");
        bin.run(&["contact", "list", "--status", "Lost"])
            .err(2, "InvalidInput");
        db.cleanup().await;
    }
);

both_backends!(
    operation_list_pages_newest_first_and_notifications_are_served_over_http,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let bin = daemon_bin(&db, &sink, port);
        bin.run(&[
            "contact",
            "add",
            "--external-id",
            "DNA-1",
            "--email",
            "a@example.com",
            "--domain",
            "a.com",
        ])
        .ok();
        let mut ids = Vec::new();
        for _ in 0..7 {
            let op = bin
                .run(&[
                    "operation",
                    "add",
                    "--domain",
                    "a.com",
                    "--type",
                    "REGISTER_DOMAIN",
                ])
                .ok();
            ids.push(op["OperationId"].as_str().unwrap().to_string());
        }
        let listed = walk(&bin, &["operation", "list"], "Operations", "OperationId", 3);
        let mut expected = ids.clone();
        expected.sort();
        let mut got = listed.clone();
        got.sort();
        assert_eq!(got, expected, "every operation once");
        let d = Daemon::start(&bin, port).await;
        sink.wait_for(1, std::time::Duration::from_secs(15)).await;
        let page: Value = d
            .api(reqwest::Method::GET, "/v1/operations?maxItems=2")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["Operations"].as_array().unwrap().len(), 2);
        let marker = page["NextPageMarker"].as_str().unwrap();
        let next = d
            .api(
                reqwest::Method::GET,
                &format!("/v1/operations?maxItems=10&marker={marker}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(next.status(), 200);
        let next: Value = next.json().await.unwrap();
        assert_eq!(next["Operations"].as_array().unwrap().len(), 5);
        assert!(next["NextPageMarker"].is_null());
        // The relay has the message; its outcome is recorded right after.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let notes = loop {
            let notes: Value = d
                .api(
                    reqwest::Method::GET,
                    "/v1/contacts/notifications?externalId=DNA-1",
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if notes["operations"][0]["status"] != "Started" || std::time::Instant::now() > deadline
            {
                break notes;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(
            notes["operations"][0]["operationType"],
            "SendContactMethodVerification"
        );
        assert_eq!(notes["operations"][0]["status"], "Succeeded");
        let listed: Value = d
            .api(reqwest::Method::GET, "/v1/contacts?maxItems=5")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["Contacts"][0]["ExternalId"], "DNA-1");
        drop(d);
        sink.stop().await;
        db.cleanup().await;
    }
);

both_backends!(
    contact_confirm_takes_the_whole_link_and_a_token_starting_with_a_hyphen,
    |db: TestDb| async move {
        let app = App::new(db).await;
        app.add("DNA-1", "a@example.com", &["a.com"]).await;
        app.sweep().await;
        let mail = app
            .sink
            .wait_for(1, std::time::Duration::from_secs(10))
            .await;
        let token = common::app::token_of(&mail[0]);
        let link = format!("{}/{token}", common::app::LINK_BASE);
        // (The in-process service: the binary's clock is not the test's.)
        let done = app.v.confirm(&format!("  <{link}>\n")).await.unwrap();
        assert_eq!(done.details.verification_status.as_str(), "Validated");
        // A token from before tokens were kept from starting with `-` is read
        // as a token, not as an option (this one names no key: invalid).
        let old = contact_verifier::domain::TokenSecret::new(SECRET.as_bytes().to_vec())
            .unwrap()
            .token_for(
                &contact_verifier::domain::KeyId::from_hex("f8000000000000000000000000000000")
                    .unwrap(),
                &contact_verifier::domain::ContactEmail::parse("a@example.com")
                    .unwrap()
                    .key(),
            );
        assert!(old.expose().starts_with('-'));
        let line = app
            .bin()
            .run(&["contact", "confirm", old.expose()])
            .err(2, "InvalidInput");
        assert!(line.contains("not valid"), "{line}");
        app.done().await;
    }
);

both_backends!(
    an_import_file_with_a_byte_order_mark_is_read,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        let mut data = b"\xEF\xBB\xBF".to_vec();
        data.extend(import_lines(2).as_bytes());
        let path = db.dir.path().join("bom.jsonl");
        std::fs::write(&path, data).unwrap();
        let out = bin.run(&["contact", "import", path.to_str().unwrap()]).ok();
        assert_eq!(out["imported"], 2, "{out}");
        assert_eq!(out["rejected"], json!([]));
        db.cleanup().await;
    }
);

both_backends!(
    a_successful_command_prints_nothing_on_stderr_at_the_default_level,
    |db: TestDb| async move {
        // A configured secret: on SQLite a first run would otherwise say
        // (once, rightly) that it generated one.
        let bin = Bin::new(&db)
            .with_env("CONTACT_VERIFIER__LOG__LEVEL", "info")
            .with_env("CONTACT_VERIFIER__VERIFICATION__SECRET", SECRET);
        for _ in 0..2 {
            let run = bin.run(&[
                "contact",
                "add",
                "--external-id",
                "DNA-1",
                "--email",
                "a@example.com",
            ]);
            assert_eq!(run.code, 0, "{}", run.stderr);
            assert_eq!(run.stderr, "", "stderr carries only errors");
        }
        db.cleanup().await;
    }
);

#[tokio::test]
async fn a_mistyped_subcommand_keeps_clap_s_suggestion_on_one_line() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let run = Bin::new(&db).run(&["contcat", "list"]);
    let line = run.err(2, "InvalidInput");
    assert!(line.contains("contact"), "{line}");
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
}

#[tokio::test]
async fn the_sqlite_file_is_created_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    Bin::new(&db).run(&["migrate"]).ok();
    let path = db.dir.path().join("cv.db");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{path:?} is {mode:o}");
}

/// A copy of `bin` with one more variable.
fn with(bin: &Bin, key: &str, value: &str) -> Bin {
    Bin {
        env: bin.env.clone(),
        cwd: bin.cwd.clone(),
    }
    .with_env(key, value)
}

/// Runs `args`, which must fail on the configuration; returns the error line.
fn config_error(bin: &Bin, args: &[&str]) -> String {
    bin.run(args).err(78, "Configuration")
}

#[tokio::test]
async fn configuration_errors_name_the_key_where_it_came_from_and_what_is_allowed() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let bin = Bin::new(&db);
    let line = config_error(
        &with(&bin, "CONTACT_VERIFIER__SMTP__PROT", "25"),
        &["check-config"],
    );
    assert!(
        line.contains("smtp.prot") && line.contains("CONTACT_VERIFIER__SMTP__PROT"),
        "{line}"
    );
    assert!(line.contains("port"), "the known keys are listed: {line}");
    let line = config_error(
        &with(&bin, "CONTACT_VERIFIER__SMTP__TLS", "ssl"),
        &["check-config"],
    );
    assert!(line.contains("starttls, tls, none"), "{line}");
    let line = config_error(
        &with(&bin, "CONTACT_VERIFIER__SCHEDULE__SWEEP", "*/5 * * * *"),
        &["check-config"],
    );
    assert!(
        line.contains("six") && line.contains("0 */5 * * * *"),
        "{line}"
    );
    let line = config_error(
        &with(&bin, "CONTACT_VERIFIER__LOG__LEVEL", "nonsense[=["),
        &["check-config"],
    );
    assert!(line.contains("log.level"), "{line}");
    let file = db.dir.path().join("bad.toml");
    for (toml, key) in [
        (
            "[verification]\nkey_validity_days = 1.5\n",
            "verification.key_validity_days",
        ),
        ("[smtp]\nport = 25.7\n", "smtp.port"),
    ] {
        std::fs::write(&file, toml).unwrap();
        let line = config_error(&bin, &["--config", file.to_str().unwrap(), "check-config"]);
        assert!(
            line.contains(key) && line.contains("whole number") && line.contains("bad.toml"),
            "{line}"
        );
    }
    let ok = with(&bin, "CONTACT_VERIFIER__HTTP__LISTEN", "localhost:8080")
        .run(&["check-config"])
        .ok();
    assert_eq!(ok["http"]["listen"], "localhost:8080");
}

#[tokio::test]
async fn postgres_refusing_connections_is_said_as_such_at_once() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let port = free_port();
    let bin = Bin::new(&db).with_env(
        "CONTACT_VERIFIER__DATABASE__URL",
        &format!("postgres://postgres@127.0.0.1:{port}/nothing"),
    );
    let started = std::time::Instant::now();
    let line = bin
        .run(&["contact", "show", "--external-id", "DNA-1"])
        .err(69, "Unavailable");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(line.to_lowercase().contains("refused"), "{line}");
    assert!(line.contains(&port.to_string()), "{line}");
}

#[tokio::test]
async fn sigterm_while_waiting_for_the_database_at_start_exits_0_at_once() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    // A "database" that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let bin = Bin::new(&db)
        .with_env(
            "CONTACT_VERIFIER__DATABASE__URL",
            &format!("postgres://postgres@127.0.0.1:{port}/db"),
        )
        .with_env("CONTACT_VERIFIER__DATABASE__ACQUIRE_TIMEOUT_SECS", "60")
        .with_env("CONTACT_VERIFIER__VERIFICATION__SECRET", SECRET);
    let mut child = bin
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let asked = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "exits 0, not by the signal");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    drop(silent);
}

#[tokio::test]
async fn every_json_log_line_has_an_event_at_every_level() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let bin = Bin::new(&db)
        .with_env("CONTACT_VERIFIER__LOG__LEVEL", "trace")
        .with_env("CONTACT_VERIFIER__LOG__FORMAT", "json")
        .with_env("CONTACT_VERIFIER__VERIFICATION__SECRET", SECRET);
    let run = bin.run(&[
        "contact",
        "add",
        "--external-id",
        "DNA-1",
        "--email",
        "a@example.com",
        "--domain",
        "a.com",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(!lines.is_empty(), "trace level logs the driver's work");
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(v["event"].is_string(), "{line}");
    }
}
