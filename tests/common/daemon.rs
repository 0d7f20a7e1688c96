//! Runs the real binary's `run` against a test database and SMTP server, and
//! talks to it over HTTP.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::app::{LINK_BASE, SECRET};
use super::smtp::SmtpSink;
use super::{Bin, TestDb};

pub const API_TOKEN: &str = "test-api-token-5f1b2c";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Daemon {
    pub child: Option<Child>,
    pub base: String,
    pub log: PathBuf,
    pub http: reqwest::Client,
}

/// The binary configured for `db` and `sink`, sweeping every second.
pub fn daemon_bin(db: &TestDb, sink: &SmtpSink, port: u16) -> Bin {
    Bin::new(db)
        .with_env("CONTACT_VERIFIER__VERIFICATION__SECRET", SECRET)
        .with_env(
            "CONTACT_VERIFIER__VERIFICATION__LINK_BASE_URL",
            &format!("http://127.0.0.1:{port}/verify"),
        )
        .with_env("CONTACT_VERIFIER__SMTP__HOST", "127.0.0.1")
        .with_env("CONTACT_VERIFIER__SMTP__PORT", &sink.port().to_string())
        .with_env("CONTACT_VERIFIER__SMTP__TLS", "none")
        .with_env("CONTACT_VERIFIER__SMTP__TIMEOUT_SECS", "5")
        .with_env("CONTACT_VERIFIER__SMTP__RETRY_INITIAL_SECS", "1")
        .with_env("CONTACT_VERIFIER__SMTP__RETRY_MAX_SECS", "2")
        .with_env("CONTACT_VERIFIER__SCHEDULE__SWEEP", "* * * * * *")
        .with_env("CONTACT_VERIFIER__SMTP__DATA_TIMEOUT_SECS", "5")
        .with_env("CONTACT_VERIFIER__SCHEDULE__CLAIM_LEASE_SECS", "10")
        .with_env(
            "CONTACT_VERIFIER__HTTP__LISTEN",
            &format!("127.0.0.1:{port}"),
        )
        .with_env("CONTACT_VERIFIER__HTTP__API_TOKEN", API_TOKEN)
        .with_env("CONTACT_VERIFIER__LOG__FORMAT", "json")
        .with_env("CONTACT_VERIFIER__LOG__LEVEL", "info")
        .with_env("CONTACT_VERIFIER__DATABASE__ACQUIRE_TIMEOUT_SECS", "2")
}

impl Daemon {
    /// Starts `run` and waits until `/healthz` answers.
    pub async fn start(bin: &Bin, port: u16) -> Daemon {
        let log = bin.cwd.join(format!("daemon-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = bin.command(&["run"]);
        cmd.stdout(Stdio::null()).stderr(Stdio::from(file));
        let child = cmd.spawn().expect("start the daemon");
        let d = Daemon {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = d.http.get(format!("{}/healthz", d.base)).send().await {
                if r.status().is_success() {
                    return d;
                }
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not come up; log:\n{}",
                d.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The JSON log lines with `event == name`.
    pub fn events(&self, name: &str) -> Vec<serde_json::Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == name)
            .collect()
    }

    /// Waits until at least `n` log lines have `event == name`.
    pub async fn wait_event(
        &self,
        name: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.events(name);
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {n}x {name} within {timeout:?}; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and how long it took.
    pub fn terminate(&mut self) -> (i32, Duration) {
        let started = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return (s.code().unwrap_or(-1), started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("daemon did not stop within 30 s; log:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An authorised /v1 request.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(API_TOKEN)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The link's path (`/verify/TOKEN`) from a message sent by a daemon.
pub fn link_path(m: &super::smtp::ReceivedMail) -> String {
    let text = super::app::body(m);
    let start = text
        .find("/verify/")
        .unwrap_or_else(|| panic!("no link in {text}"));
    let token: String = text[start + 8..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 64);
    let _ = LINK_BASE;
    format!("/verify/{token}")
}
