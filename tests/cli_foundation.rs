//! Black-box tests of the commands that need no email (CONTRACT section 3),
//! run through the real binary on a fresh SQLite file and a fresh Postgres
//! database each.

mod common;

use common::{Bin, TestDb};
use serde_json::json;

both_backends!(migrate_applies_once_then_nothing, |db: TestDb| async move {
    let bin = Bin::new(&db);
    // Every migration shipped, once: as many as there are files.
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert!(shipped >= 3);
    assert_eq!(bin.run(&["migrate"]).ok(), json!({"applied": shipped}));
    assert_eq!(bin.run(&["migrate"]).ok(), json!({"applied": 0}));
    db.cleanup().await;
});

both_backends!(
    contact_add_creates_not_validated_contact_with_normalised_domains,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        let out = bin
            .run(&[
                "contact",
                "add",
                "--external-id",
                "DNA-111",
                "--email",
                "a@example.com",
                "--domain",
                "Example.COM.",
                "--domain",
                "bücher.example",
            ])
            .ok();
        // The moments depend on the wall clock: the deadline is 15 days
        // after the contact's domains started waiting, and the first email
        // is due at once.
        let mut out = out;
        let next = out["NextNotificationDate"].take();
        let deadline = out["SuspensionDate"].take();
        let t = |v: &serde_json::Value| {
            chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp")).unwrap()
        };
        assert_eq!(t(&deadline) - t(&next), chrono::Duration::days(15));
        assert_eq!(
            out,
            json!({"ExternalId": "DNA-111", "ContactEmail": "a@example.com",
               "VerificationStatus": "NotValidated", "ExpirationDate": null,
               "LastNotificationDate": null,
               "Domains": ["example.com", "xn--bcher-kva.example"],
               "ValidatedAt": null, "NextNotificationDate": null, "SuspensionDate": null,
               "SuspendedDomains": [], "Bounce": null, "Language": null})
        );
        // Keys come out in the contract's order.
        assert!(bin
            .run(&["contact", "show", "--external-id", "DNA-111"])
            .stdout
            .starts_with("{\"ExternalId\""));
        db.cleanup().await;
    }
);

both_backends!(
    re_adding_same_contact_and_email_changes_nothing,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        let first = bin
            .run(&[
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
        let again = bin
            .run(&[
                "contact",
                "add",
                "--external-id",
                "DNA-1",
                "--email",
                "A@EXAMPLE.com",
                "--domain",
                "a.com",
            ])
            .ok();
        assert_eq!(first, again);
        db.cleanup().await;
    }
);

both_backends!(
    contacts_sharing_an_address_case_insensitively_share_one_status,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        let lines = b"{\"external_id\":\"DNA-1\",\"email\":\"Alice@Example.com\",\"domains\":[\"a.com\"],\"status\":\"Validated\"}\n";
        assert_eq!(
            bin.run_with_stdin(&["contact", "import", "-"], Some(lines))
                .ok()["imported"],
            1
        );
        let second = bin
            .run(&[
                "contact",
                "add",
                "--external-id",
                "DNA-2",
                "--email",
                "alice@example.COM",
                "--domain",
                "b.com",
            ])
            .ok();
        assert_eq!(second["VerificationStatus"], "Validated", "{second}");
        assert_eq!(second["ContactEmail"], "alice@example.COM");
        assert_eq!(
            bin.run(&["domain", "reachability", "b.com"]).ok(),
            json!({"domainName": "b.com", "status": "DONE"})
        );
        db.cleanup().await;
    }
);

both_backends!(
    changing_email_restarts_verification_as_not_validated,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        let lines = b"{\"external_id\":\"DNA-1\",\"email\":\"a@example.com\",\"domains\":[\"a.com\"],\"status\":\"Pending\",\"key_issued_at\":\"2026-11-01T00:00:00Z\"}\n";
        bin.run_with_stdin(&["contact", "import", "-"], Some(lines))
            .ok();
        assert_eq!(
            bin.run(&["contact", "show", "--external-id", "DNA-1"]).ok()["VerificationStatus"],
            "Pending"
        );
        let moved = bin
            .run(&[
                "contact",
                "add",
                "--external-id",
                "DNA-1",
                "--email",
                "b@example.com",
            ])
            .ok();
        assert_eq!(moved["VerificationStatus"], "NotValidated");
        assert_eq!(moved["ContactEmail"], "b@example.com");
        assert_eq!(moved["ExpirationDate"], serde_json::Value::Null);
        assert_eq!(moved["Domains"], json!(["a.com"]));
        // The old address is gone with its contact.
        bin.run(&["contact", "show", "--email", "a@example.com"])
            .err(3, "NotFound");
        db.cleanup().await;
    }
);

both_backends!(
    bad_contact_input_exits_2_and_writes_nothing,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        let cases: &[(&[&str], &str)] = &[
            (
                &["--external-id", "DNA-1", "--email", "not-an-address"],
                "email",
            ),
            (
                &["--external-id", "DNA-1", "--email", "a@localhost"],
                "fully qualified",
            ),
            (
                &["--external-id", "", "--email", "a@example.com"],
                "external id",
            ),
            (
                &["--external-id", "DNA 1", "--email", "a@example.com"],
                "external id",
            ),
            (
                &[
                    "--external-id",
                    "DNA-1",
                    "--email",
                    "a@example.com",
                    "--domain",
                    "ok.com",
                    "--domain",
                    "bad_domain.com",
                ],
                "domain name",
            ),
            (
                &[
                    "--external-id",
                    "DNA-1",
                    "--email",
                    "a@example.com",
                    "--domain",
                    "nodot",
                ],
                "two labels",
            ),
        ];
        for (args, needle) in cases {
            let mut full = vec!["contact", "add"];
            full.extend_from_slice(args);
            let line = bin.run(&full).err(2, "InvalidInput");
            assert!(line.contains(needle), "{line} should mention {needle}");
        }
        bin.run(&["contact", "show", "--external-id", "DNA-1"])
            .err(3, "NotFound");
        bin.run(&["domain", "reachability", "ok.com"])
            .err(3, "NotFound");
        db.cleanup().await;
    }
);

both_backends!(unsupported_tld_exits_5, |db: TestDb| async move {
    let bin = Bin::new(&db).with_env("CONTACT_VERIFIER__VERIFICATION__SUPPORTED_TLDS", "com,net");
    bin.add_contact("DNA-1", "a@example.org", &["a.com"]);
    let line = bin
        .run(&[
            "contact",
            "add",
            "--external-id",
            "DNA-2",
            "--email",
            "b@example.org",
            "--domain",
            "b.org",
        ])
        .err(5, "UnsupportedTLD");
    assert!(line.contains(".org"), "{line}");
    bin.run(&["contact", "show", "--external-id", "DNA-2"])
        .err(3, "NotFound");
    bin.run(&["domain", "reachability", "b.org"])
        .err(5, "UnsupportedTLD");
    db.cleanup().await;
});

both_backends!(
    show_by_unknown_handle_or_address_exits_3,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        bin.run(&["contact", "show", "--external-id", "DNA-404"])
            .err(3, "NotFound");
        bin.run(&["contact", "show", "--email", "nobody@example.com"])
            .err(3, "NotFound");
        bin.run(&["domain", "reachability", "unknown.com"])
            .err(3, "NotFound");
        db.cleanup().await;
    }
);

both_backends!(show_needs_exactly_one_selector, |db: TestDb| async move {
    let bin = Bin::new(&db);
    bin.run(&["contact", "show"]).err(2, "InvalidInput");
    bin.run(&[
        "contact",
        "show",
        "--external-id",
        "A",
        "--email",
        "a@example.com",
    ])
    .err(2, "InvalidInput");
    bin.run(&["contact", "frobnicate"]).err(2, "InvalidInput");
    db.cleanup().await;
});

both_backends!(
    import_takes_good_lines_and_reports_bad_ones_by_number,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        let input = concat!(
        "{\"external_id\":\"DNA-1\",\"email\":\"a@example.com\",\"domains\":[\"a.com\"]}\n",
        "this is not json\n",
        "\n",
        "{\"external_id\":\"DNA-2\",\"email\":\"b@example.com\",\"status\":\"Pending\"}\n",
        "{\"external_id\":\"DNA-3\",\"email\":\"c@example.com\",\"status\":\"Pending\",\"key_issued_at\":\"2026-11-20T00:00:00Z\",\"last_notification_at\":\"2026-11-20T00:00:00Z\"}\n",
        "{\"external_id\":\"DNA-4\",\"email\":\"d@example.com\",\"status\":\"Expired\",\"key_issued_at\":\"2026-01-01T00:00:00Z\",\"domains\":[\"d.com\"]}\n",
        "{\"external_id\":\"DNA-5\",\"email\":\"e@example.com\",\"status\":\"Maybe\"}\n",
        "{\"external_id\":\"DNA-6\",\"email\":\"f@example.com\",\"status\":\"Pending\",\"key_issued_at\":\"last week\"}\n",
        "{\"external_id\":\"DNA-7\",\"email\":\"g@example.com\",\"domains\":[\"ok.com\",\"-bad.com\"]}\n",
        "{\"external_id\":\"DNA-8\",\"email\":\"h@example.com\",\"colour\":\"blue\"}\n",
        "{\"external_id\":\"DNA-9\",\"email\":\"i@example.com\",\"status\":\"Validated\",\"domains\":[\"i.com\"]}",
    );
        let file = db.dir.path().join("contacts.jsonl");
        std::fs::write(&file, input).unwrap();
        let report = bin.run(&["contact", "import", file.to_str().unwrap()]).ok();
        assert_eq!(report["imported"], 4, "{report}");
        let rejected: Vec<(u64, String)> = report["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["line"].as_u64().unwrap(),
                    r["error"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let lines: Vec<u64> = rejected.iter().map(|r| r.0).collect();
        assert_eq!(lines, vec![2, 4, 7, 8, 9, 10], "{report}");
        assert!(rejected[1].1.contains("key_issued_at"), "{:?}", rejected[1]);
        assert!(rejected[2].1.contains("Maybe"), "{:?}", rejected[2]);
        assert!(rejected[5].1.contains("colour"), "{:?}", rejected[5]);
        // Rejected lines left nothing behind.
        for id in ["DNA-2", "DNA-5", "DNA-6", "DNA-7", "DNA-8"] {
            bin.run(&["contact", "show", "--external-id", id])
                .err(3, "NotFound");
        }
        bin.run(&["domain", "reachability", "ok.com"])
            .err(3, "NotFound");
        let pending = bin.run(&["contact", "show", "--external-id", "DNA-3"]).ok();
        assert_eq!(pending["VerificationStatus"], "Pending");
        assert_eq!(pending["ExpirationDate"], "2027-01-19T00:00:00Z");
        assert_eq!(pending["LastNotificationDate"], "2026-11-20T00:00:00Z");
        assert_eq!(
            bin.run(&["domain", "reachability", "d.com"]).ok()["status"],
            "EXPIRED"
        );
        assert_eq!(
            bin.run(&["domain", "reachability", "i.com"]).ok()["status"],
            "DONE"
        );
        assert_eq!(
            bin.run(&["domain", "reachability", "a.com"]).ok()["status"],
            "PENDING"
        );
        // Importing the same file again changes nothing and rejects the same lines.
        let again = bin.run(&["contact", "import", file.to_str().unwrap()]).ok();
        assert_eq!(again, report);
        assert_eq!(
            bin.run(&["contact", "show", "--external-id", "DNA-3"]).ok(),
            pending
        );
        db.cleanup().await;
    }
);

both_backends!(import_of_missing_file_exits_2, |db: TestDb| async move {
    let bin = Bin::new(&db);
    bin.run(&["contact", "import", "/nonexistent/contacts.jsonl"])
        .err(2, "InvalidInput");
    db.cleanup().await;
});

both_backends!(
    operations_are_recorded_shown_and_listed,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        bin.add_contact("DNA-1", "a@example.com", &["a.com"]);
        bin.run_with_stdin(&["contact", "import", "-"], Some(b"{\"external_id\":\"DNA-2\",\"email\":\"b@example.com\",\"domains\":[\"b.com\"],\"status\":\"Validated\"}\n")).ok();
        let op = bin
            .run(&[
                "operation",
                "add",
                "--domain",
                "A.com",
                "--type",
                "REGISTER_DOMAIN",
            ])
            .ok();
        assert_eq!(op["Status"], "SUBMITTED");
        assert_eq!(op["Type"], "REGISTER_DOMAIN");
        assert_eq!(op["DomainName"], "a.com");
        assert_eq!(op["StatusFlag"], "PENDING_CUSTOMER_ACTION");
        assert_eq!(op["Message"], serde_json::Value::Null);
        assert_eq!(op["SubmittedDate"], op["LastUpdatedDate"]);
        let id = op["OperationId"].as_str().unwrap().to_string();
        assert_eq!(bin.run(&["operation", "show", &id]).ok(), op);
        let foreign = bin
            .run(&[
                "operation",
                "add",
                "--domain",
                "b.com",
                "--type",
                "TRANSFER_IN_DOMAIN",
                "--status-flag",
                "PENDING_PAYMENT_VERIFICATION",
            ])
            .ok();
        assert_eq!(foreign["StatusFlag"], "PENDING_PAYMENT_VERIFICATION");
        let validated = bin
            .run(&[
                "operation",
                "add",
                "--domain",
                "b.com",
                "--type",
                "UPDATE_DOMAIN_CONTACT",
            ])
            .ok();
        assert_eq!(validated["StatusFlag"], serde_json::Value::Null);

        let all = bin.run(&["operation", "list"]).ok();
        assert_eq!(all["Operations"].as_array().unwrap().len(), 3);
        let for_a = bin.run(&["operation", "list", "--domain", "a.com"]).ok();
        assert_eq!(for_a["Operations"], json!([op]));
        let flagged = bin
            .run(&[
                "operation",
                "list",
                "--status-flag",
                "PENDING_PAYMENT_VERIFICATION",
            ])
            .ok();
        assert_eq!(flagged["Operations"], json!([foreign]));
        let both = bin
            .run(&[
                "operation",
                "list",
                "--domain",
                "b.com",
                "--status-flag",
                "PENDING_CUSTOMER_ACTION",
            ])
            .ok();
        assert_eq!(both["Operations"], json!([]));
        db.cleanup().await;
    }
);

both_backends!(
    bad_operation_input_gets_the_right_exit_code,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        bin.add_contact("DNA-1", "a@example.com", &["a.com"]);
        let line = bin
            .run(&[
                "operation",
                "add",
                "--domain",
                "a.com",
                "--type",
                "BUY_LUNCH",
            ])
            .err(2, "InvalidInput");
        assert!(line.contains("REGISTER_DOMAIN"), "{line}");
        bin.run(&[
            "operation",
            "add",
            "--domain",
            "a.com",
            "--type",
            "REGISTER_DOMAIN",
            "--status-flag",
            "PENDING",
        ])
        .err(2, "InvalidInput");
        bin.run(&[
            "operation",
            "add",
            "--domain",
            "unknown.com",
            "--type",
            "REGISTER_DOMAIN",
        ])
        .err(3, "NotFound");
        bin.run(&[
            "operation",
            "add",
            "--domain",
            "bad..com",
            "--type",
            "REGISTER_DOMAIN",
        ])
        .err(2, "InvalidInput");
        bin.run(&["operation", "show", "not-a-uuid"])
            .err(2, "InvalidInput");
        bin.run(&["operation", "show", "7d6a4abb-3fad-4eeb-866a-8c530234ed20"])
            .err(3, "NotFound");
        bin.run(&["operation", "list", "--status-flag", "NOPE"])
            .err(2, "InvalidInput");
        assert_eq!(
            bin.run(&["operation", "list"]).ok(),
            json!({"Operations": [], "NextPageMarker": null})
        );
        db.cleanup().await;
    }
);

both_backends!(
    check_config_prints_effective_config_with_secrets_masked,
    |db: TestDb| async move {
        let secret_file = db.dir.path().join("secret");
        std::fs::write(&secret_file, "0123456789abcdef0123456789abcdef-secret\n").unwrap();
        let bin = Bin::new(&db)
            .with_env(
                "CONTACT_VERIFIER__VERIFICATION__SECRET_FILE",
                secret_file.to_str().unwrap(),
            )
            .with_env("CONTACT_VERIFIER__SMTP__PASSWORD", "hunter2-password")
            .with_env("CONTACT_VERIFIER__SMTP__USERNAME", "relay-user")
            .with_env("CONTACT_VERIFIER__SMTP__PORT", "2525")
            .with_env("CONTACT_VERIFIER__HTTP__API_TOKEN", "api-token-value");
        let run = bin.run(&["check-config"]);
        let cfg = run.ok();
        assert_eq!(cfg["smtp"]["port"], 2525);
        assert_eq!(cfg["smtp"]["password"], "***");
        assert_eq!(cfg["verification"]["secret"], "***");
        assert_eq!(cfg["http"]["api_token"], "***");
        assert_eq!(
            cfg["verification"]["reminder_days"],
            json!([3, 7, 14, 30, 45, 55])
        );
        for secret in ["0123456789abcdef", "hunter2", "api-token-value"] {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "{secret} leaked"
            );
        }
        db.cleanup().await;
    }
);

both_backends!(
    wrong_configuration_exits_78_naming_the_key,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        let cfg = db.dir.path().join("bad.toml");
        std::fs::write(&cfg, "[smtp]\nport = \"twenty-five\"\n").unwrap();
        let line = bin
            .run(&["--config", cfg.to_str().unwrap(), "check-config"])
            .err(78, "Configuration");
        assert!(line.contains("port"), "{line}");
        std::fs::write(&cfg, "[verification]\nreminder_days = [7, 3]\n").unwrap();
        let line = bin
            .run(&[
                "--config",
                cfg.to_str().unwrap(),
                "contact",
                "show",
                "--external-id",
                "X",
            ])
            .err(78, "Configuration");
        assert!(line.contains("verification.reminder_days"), "{line}");
        std::fs::write(&cfg, "[smtp]\nprot = 25\n").unwrap();
        let line = bin
            .run(&["--config", cfg.to_str().unwrap(), "check-config"])
            .err(78, "Configuration");
        assert!(line.contains("prot"), "{line}");
        let line = bin
            .with_env("CONTACT_VERIFIER__SCHEDULE__SWEEP", "sometimes")
            .run(&["check-config"])
            .err(78, "Configuration");
        assert!(line.contains("schedule.sweep"), "{line}");
        let bin = Bin::new(&db);
        bin.run(&["--config", "/nonexistent.toml", "check-config"])
            .err(78, "Configuration");
        let line = bin
            .with_env(
                "CONTACT_VERIFIER__SMTP__PASSWORD_FILE",
                "/nonexistent/password",
            )
            .run(&["check-config"])
            .err(78, "Configuration");
        assert!(line.contains("smtp.password_file"), "{line}");
        db.cleanup().await;
    }
);

both_backends!(
    config_file_named_by_environment_is_used,
    |db: TestDb| async move {
        let cfg = db.dir.path().join("cv.toml");
        std::fs::write(
            &cfg,
            format!(
                "[database]\nurl = \"{}\"\n[verification]\nresend_limit_per_day = 9\n",
                db.url
            ),
        )
        .unwrap();
        let bin = Bin::new(&db).with_env("CONTACT_VERIFIER_CONFIG", cfg.to_str().unwrap());
        assert_eq!(
            bin.run(&["check-config"]).ok()["verification"]["resend_limit_per_day"],
            9
        );
        db.cleanup().await;
    }
);

#[tokio::test]
async fn unreachable_postgres_exits_69() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Bin {
        env: vec![
            (
                "CONTACT_VERIFIER__DATABASE__URL".into(),
                "postgres://postgres@127.0.0.1:1/none".into(),
            ),
            (
                "CONTACT_VERIFIER__DATABASE__ACQUIRE_TIMEOUT_SECS".into(),
                "2".into(),
            ),
        ],
        cwd: dir.path().to_path_buf(),
    };
    bin.run(&["contact", "show", "--external-id", "DNA-1"])
        .err(69, "Unavailable");
}

#[tokio::test]
async fn unopenable_sqlite_file_exits_69() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Bin {
        env: vec![(
            "CONTACT_VERIFIER__DATABASE__URL".into(),
            "sqlite:///nonexistent-dir/x/cv.db".into(),
        )],
        cwd: dir.path().to_path_buf(),
    };
    bin.run(&["migrate"]).err(69, "Unavailable");
}

both_backends!(
    import_rejects_an_overlong_line_and_goes_on,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        let mut input = String::new();
        input.push_str("{\"external_id\":\"DNA-1\",\"email\":\"a@example.com\"}\n");
        input.push_str(&format!(
            "{{\"external_id\":\"DNA-2\",\"email\":\"b@example.com\",\"domains\":[\"{}\"]}}\n",
            "x".repeat(200_000)
        ));
        input.push_str("{\"external_id\":\"DNA-3\",\"email\":\"c@example.com\"}\n");
        input.push_str("{\"external_id\":\"DNA-4\",\"email\":\"d@example.com\",\"status\":\"Pending\",\"key_issued_at\":\"2999-01-01T00:00:00Z\"}\n");
        let report = bin
            .run_with_stdin(&["contact", "import", "-"], Some(input.as_bytes()))
            .ok();
        assert_eq!(report["imported"], 2, "{report}");
        assert_eq!(report["rejected"][0]["line"], 2);
        assert!(
            report["rejected"][0]["error"]
                .as_str()
                .unwrap()
                .contains("longer than"),
            "{report}"
        );
        assert_eq!(report["rejected"][1]["line"], 4);
        assert!(
            report["rejected"][1]["error"]
                .as_str()
                .unwrap()
                .contains("future"),
            "{report}"
        );
        bin.run(&["contact", "show", "--external-id", "DNA-3"]).ok();
        db.cleanup().await;
    }
);

both_backends!(
    import_of_many_lines_spans_batches_and_keeps_every_line,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        let mut input = String::new();
        for i in 0..1234 {
            if i % 400 == 7 {
                input.push_str("{\"external_id\":\"broken\"\n");
            } else {
                input.push_str(&format!("{{\"external_id\":\"DNA-{i}\",\"email\":\"u{}@example.com\",\"domains\":[\"d{i}.com\"]}}\n", i % 1000));
            }
        }
        let report = bin
            .run_with_stdin(&["contact", "import", "-"], Some(input.as_bytes()))
            .ok();
        let bad: Vec<u64> = report["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["line"].as_u64().unwrap())
            .collect();
        assert_eq!(bad, vec![8, 408, 808, 1208]);
        assert_eq!(report["imported"], 1230);
        // Lines 1000.. share addresses with 0..: one verification per address.
        let shared = bin
            .run(&["contact", "show", "--external-id", "DNA-1001"])
            .ok();
        assert_eq!(shared["ContactEmail"], "u1@example.com");
        assert_eq!(shared["Domains"], json!(["d1001.com"]));
        db.cleanup().await;
    }
);
