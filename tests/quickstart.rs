//! The README's quick start, followed as a newcomer would: the daemon on
//! `config/quickstart.toml` (SQLite, a generated secret, mail as .eml
//! files), then from a second shell: add a contact, read the email from the
//! outbox, open the link, confirm. Only the port is moved off 8080, so that
//! tests running side by side do not collide.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::free_port;

fn quickstart_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/quickstart.toml")
}

/// The binary as the README's alias runs it, in `dir`, on `port`.
fn cv(dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_contact-verifier"));
    cmd.arg("--config")
        .arg(quickstart_config())
        .current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("CONTACT_VERIFIER") {
            cmd.env_remove(k);
        }
    }
    cmd.env(
        "CONTACT_VERIFIER__HTTP__LISTEN",
        format!("127.0.0.1:{port}"),
    )
    .env(
        "CONTACT_VERIFIER__VERIFICATION__LINK_BASE_URL",
        format!("http://127.0.0.1:{port}/verify"),
    );
    cmd
}

fn json_of(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().expect("run contact-verifier");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON result")
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

/// The first link in the outbox's messages, quoted-printable soft breaks
/// undone (as the README's `sed` does).
fn link_in_outbox(outbox: &Path, port: u16) -> Option<String> {
    let prefix = format!("http://127.0.0.1:{port}/verify/");
    for entry in std::fs::read_dir(outbox).ok()? {
        let text = std::fs::read_to_string(entry.ok()?.path()).ok()?;
        let text = text.replace("=\r\n", "");
        if let Some(at) = text.find(&prefix) {
            let token: String = text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            return Some(format!("{prefix}{token}"));
        }
    }
    None
}

#[tokio::test]
async fn the_readme_quick_start_gets_a_newcomer_to_a_confirmed_contact() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let daemon = Running(
        cv(dir.path(), port)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon"),
    );
    let http = reqwest::Client::new();
    let up = Instant::now();
    while http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(
            up.elapsed() < Duration::from_secs(20),
            "the daemon did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The secret was generated next to the database, readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    let secret = dir.path().join("contact-verifier.secret");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let added = json_of(cv(dir.path(), port).args([
        "contact",
        "add",
        "--external-id",
        "DNA-111",
        "--email",
        "you@example.com",
        "--domain",
        "example.com",
    ]));
    assert_eq!(added["VerificationStatus"], "NotValidated");

    // Within the 10-second sweep, the email is in the outbox.
    let outbox = dir.path().join("outbox");
    let waited = Instant::now();
    let link = loop {
        if let Some(link) = link_in_outbox(&outbox, port) {
            break link;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(25),
            "no email in {outbox:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Opening the link shows a page with a button and changes nothing ...
    let page = http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<button"));
    let shown = json_of(cv(dir.path(), port).args(["contact", "show", "--external-id", "DNA-111"]));
    assert_eq!(shown["VerificationStatus"], "Pending");
    // ... and confirming from the command line with the whole link works.
    let confirmed = json_of(cv(dir.path(), port).args(["contact", "confirm", &link]));
    assert_eq!(confirmed["VerificationStatus"], "Validated");
    drop(daemon);
}
