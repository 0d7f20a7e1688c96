//! The OpenAPI document of `/v1` (docs/http-api.md): the committed
//! `docs/openapi.json` is what the code generates, it is valid OpenAPI 3.1
//! (`openapi-spec-validator`), the daemon serves it without the token, and
//! a live daemon on SQLite holds to it under `schemathesis`.
//!
//! The validators come from a virtualenv (`$CV_API_VENV`, default
//! `$HOME/.venv-api`) that `.ci/run` creates. Without it those tests skip,
//! unless `CV_REQUIRE_API_TOOLS` is set (CI sets it), when they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::daemon::{daemon_bin, free_port, Daemon, API_TOKEN};
use common::smtp::{SmtpSink, TlsMode};
use common::{Backend, TestDb};

const REGENERATE: &str = "cargo run --bin contact-verifier-docs -- openapi docs/openapi.json";

/// Generated examples per operation and phase: enough to hit every status
/// the inputs can reach, bounded so the run stays well under 3 minutes.
const MAX_EXAMPLES: &str = "25";

fn committed() -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    (path, text)
}

/// The virtualenv with openapi-spec-validator and schemathesis, or `None`
/// (the test skips) when it is missing and `CV_REQUIRE_API_TOOLS` is unset.
fn api_venv() -> Option<PathBuf> {
    let dir = std::env::var_os("CV_API_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".venv-api")));
    let found = dir.filter(|d| {
        d.join("bin/openapi-spec-validator").is_file() && d.join("bin/schemathesis").is_file()
    });
    if found.is_none() {
        if std::env::var_os("CV_REQUIRE_API_TOOLS").is_some() {
            panic!(
                "CV_REQUIRE_API_TOOLS is set but no virtualenv with openapi-spec-validator and \
                 schemathesis was found (CV_API_VENV or $HOME/.venv-api); .ci/run creates it"
            );
        }
        eprintln!(
            "SKIPPED (OpenAPI tools): no virtualenv with openapi-spec-validator and schemathesis; \
             run .ci/run or set CV_API_VENV"
        );
    }
    found
}

#[test]
fn committed_document_is_what_the_code_generates() {
    let (path, text) = committed();
    let generated = contact_verifier::api::openapi_document();
    assert!(
        text == generated,
        "{} differs from the document the code generates; regenerate it with\n    {REGENERATE}\nand commit it",
        path.display()
    );
}

#[test]
fn document_is_valid_openapi_3_1() {
    let Some(venv) = api_venv() else { return };
    let (path, _) = committed();
    let out = Command::new(venv.join("bin/openapi-spec-validator"))
        .arg(&path)
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        out.status.success(),
        "openapi-spec-validator rejects {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_serves_the_document_and_holds_to_it() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let sink = SmtpSink::start(TlsMode::None).await;
    let port = free_port();
    let bin = daemon_bin(&db, &sink, port)
        // Schemathesis drives the API; sweeps would only add noise.
        .with_env("CONTACT_VERIFIER__SCHEDULE__SWEEP", "0 0 0 1 1 *");
    let d = Daemon::start(&bin, port).await;

    // Served without the token, exactly as committed.
    let r = d.http.get(d.url("/v1/openapi.json")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served = r.text().await.unwrap();
    assert_eq!(served, contact_verifier::api::openapi_document());

    // Something to find: a contact with a domain and an operation.
    let r = d
        .api(reqwest::Method::POST, "/v1/contacts")
        .json(&serde_json::json!({
            "ExternalId": "c-1", "ContactEmail": "alice@example.com", "Domains": ["example.com"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());

    let Some(venv) = api_venv() else { return };
    let (path, _) = committed();
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(venv.join("bin/schemathesis"))
        .current_dir(work.path())
        .args(["run", path.to_str().unwrap(), "--url", &d.base])
        .args(["--header", &format!("Authorization: Bearer {API_TOKEN}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--workers", "2", "--request-timeout", "10"])
        .args(["--generation-database", "none"])
        .args(["--no-color"])
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "schemathesis found the daemon breaking docs/openapi.json:\n{stdout}{}\n--- daemon log (tail) ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(&d.logs(), 60)
    );
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
