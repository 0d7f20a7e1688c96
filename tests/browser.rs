//! The registrant's side, in a real browser: headless Chromium, driven over
//! the W3C WebDriver protocol through chromedriver, opens the link from a
//! real email sent by the real daemon, looks at the page and clicks the
//! button (CONTRACT section 5, `/verify/{token}`).
//!
//! Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages
//! `chromium` and `chromium-driver`). Without them each test prints
//! `SKIPPED: ...` and passes, unless `CV_REQUIRE_BROWSER` is set (as in CI),
//! then it fails.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::app::{body, token_of, App};
use common::daemon::{daemon_bin, free_port, link_path, Daemon};
use common::smtp::{ReceivedMail, SmtpSink, TlsMode};
use common::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(20);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The W3C name of the key under which an element reference is returned.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Flags without which Chromium cannot run here: headless as root, and no
/// background connections (this machine's network refuses them).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1024,768",
];

/// A chromedriver child process on a free loopback port. Dropping it (also
/// when a test panics) asks chromedriver to quit its browsers, then kills
/// chromedriver and anything left in its process group.
struct Chromedriver {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    /// Holds the driver's log and the browser profile; removed last.
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Chromedriver {
    /// Starts chromedriver and waits until `/status` says it is ready.
    /// `None` (with `SKIPPED: ...` printed) when the browser is not installed
    /// and `CV_REQUIRE_BROWSER` is not set.
    async fn start() -> Option<Chromedriver> {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect();
        if !missing.is_empty() {
            let why = format!(
                "{} not installed (apt-get install chromium chromium-driver)",
                missing.join(" and ")
            );
            if std::env::var_os("CV_REQUIRE_BROWSER").is_some() {
                panic!("a browser is required (CV_REQUIRE_BROWSER) but {why}");
            }
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir for chromedriver");
        let log = dir.path().join("chromedriver.log");
        let port = free_port();
        let file = std::fs::File::create(&log).expect("chromedriver log file");
        let err = file.try_clone().expect("chromedriver log file");
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err));
        // Its own process group, so that a browser left behind can be found.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("start chromedriver");
        let mut driver = Chromedriver {
            child: Some(child),
            port,
            log,
            dir,
            http: reqwest::Client::builder()
                .timeout(WAIT)
                .build()
                .expect("http client"),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = driver.http.get(driver.url("/status")).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        return Some(driver);
                    }
                }
            }
            if let Some(status) = driver
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("chromedriver exited with {status}; log:\n{}", driver.logs());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready within {WAIT:?}; log:\n{}",
                driver.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A new browser session with a fresh profile. `daemon_log` is appended
    /// to every failure message.
    async fn session(&self, daemon_log: &Path) -> Browser {
        let profile = self.dir.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": {"pageLoad": 15_000, "script": 5_000, "implicit": 0},
                    "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                }
            }
        });
        let mut b = Browser {
            http: self.http.clone(),
            base: self.url(""),
            id: String::new(),
            daemon_log: daemon_log.to_path_buf(),
            driver_log: self.log.clone(),
        };
        let v = b.call(Method::POST, "/session", Some(caps)).await;
        b.id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| b.fail(&format!("no sessionId in {v}")))
            .to_string();
        b
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // `/shutdown` makes chromedriver quit every browser it started, then
        // exit. Plain blocking HTTP: there is no runtime to rely on in drop.
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(
                b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        // Whatever is left in the group chromedriver led (a browser that
        // outlived it) goes too; the group id is the child's pid.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One WebDriver session.
struct Browser {
    http: reqwest::Client,
    base: String,
    id: String,
    daemon_log: PathBuf,
    driver_log: PathBuf,
}

impl Browser {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- daemon log:\n{}\n--- chromedriver log (tail):\n{}",
            std::fs::read_to_string(&self.daemon_log).unwrap_or_default(),
            tail(
                &std::fs::read_to_string(&self.driver_log).unwrap_or_default(),
                40
            ),
        )
    }

    /// A WebDriver command; its `value`, or an error description.
    async fn try_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = r.status();
        let v: Value = r
            .json()
            .await
            .map_err(|e| format!("{method} {path}: {status}, not JSON: {e}"))?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if !status.is_success() || value.get("error").is_some() {
            return Err(format!(
                "{method} {path}: {status} {}: {}",
                value["error"], value["message"]
            ));
        }
        Ok(value)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body).await {
            Ok(v) => v,
            Err(e) => self.fail(&format!("WebDriver: {e}")),
        }
    }

    async fn session_call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.id), body)
            .await
    }

    /// Navigates and waits for the page to load.
    async fn open(&self, url: &str) {
        self.session_call(Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn title(&self) -> String {
        let v = self.session_call(Method::GET, "/title", None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn source(&self) -> String {
        let v = self.session_call(Method::GET, "/source", None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The references of every element matching a CSS selector.
    async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .session_call(
                Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .unwrap_or_else(|| self.fail(&format!("elements {css}: {v}")))
            .iter()
            .map(|e| e[ELEMENT].as_str().unwrap_or_default().to_string())
            .collect()
    }

    async fn find(&self, css: &str) -> String {
        match self.find_all(css).await.as_slice() {
            [one] => one.clone(),
            found => self.fail(&format!(
                "expected one element {css}, found {}; page:\n{}",
                found.len(),
                self.source().await
            )),
        }
    }

    /// The rendered text of an element, as a person reads it.
    async fn text(&self, element: &str) -> String {
        let v = self
            .session_call(Method::GET, &format!("/element/{element}/text"), None)
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The texts of every element matching a CSS selector.
    async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.find_all(css).await {
            out.push(self.text(&e).await);
        }
        out
    }

    /// The computed value of a CSS property of an element.
    async fn css(&self, element: &str, property: &str) -> String {
        let v = self
            .session_call(
                Method::GET,
                &format!("/element/{element}/css/{property}"),
                None,
            )
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn click(&self, element: &str) {
        self.session_call(
            Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Waits until the page's `<h1>` reads `heading` (a click's navigation
    /// may still be under way); returns the page's text.
    async fn wait_for_heading(&self, heading: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        loop {
            let path = format!("/session/{}/elements", self.id);
            let found = self
                .try_call(
                    Method::POST,
                    &path,
                    Some(json!({"using": "css selector", "value": "h1"})),
                )
                .await;
            if let Ok(Value::Array(hs)) = found {
                if let Some(h) = hs.first().and_then(|h| h[ELEMENT].as_str()) {
                    let path = format!("/session/{}/element/{h}/text", self.id);
                    if let Ok(Value::String(t)) = self.try_call(Method::GET, &path, None).await {
                        if t == heading {
                            return self.text(&self.find("body").await).await;
                        }
                        last = t;
                    }
                }
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "the page did not show {heading:?} within {WAIT:?} (last heading {last:?})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the viewport.
    async fn screenshot(&self) -> Vec<u8> {
        let v = self.session_call(Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_else(|e| self.fail(&format!("screenshot is not base64: {e}")))
    }

    /// Ends the session (the browser quits).
    async fn close(self) {
        self.call(Method::DELETE, &format!("/session/{}", self.id), None)
            .await;
    }
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn backend_name(db: &TestDb) -> String {
    format!("{:?}", db.backend).to_lowercase()
}

/// Waits for `n` emails, failing with the daemon's log.
async fn wait_for_mail(sink: &SmtpSink, d: &Daemon, n: usize) -> Vec<ReceivedMail> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = sink.messages();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} email(s) within {WAIT:?}; daemon log:\n{}",
            got.len(),
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An authorised `GET`, expecting 200 and JSON.
async fn api_get(d: &Daemon, path: &str) -> Value {
    let r = d.api(Method::GET, path).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
}

async fn status_of(d: &Daemon, external_id: &str) -> String {
    let v = api_get(d, &format!("/v1/contacts?externalId={external_id}")).await;
    v["VerificationStatus"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until the contact's status is `want`, failing with the daemon's log.
async fn wait_for_status(d: &Daemon, external_id: &str, want: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = status_of(d, external_id).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{external_id} is {got}, not {want}, after {WAIT:?}; daemon log:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where the screenshot for humans goes: `<target dir>/browser-<name>.png`.
fn save_screenshot(name: &str, png: &[u8]) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target.join(format!("browser-{name}.png"));
    let written = std::fs::create_dir_all(&target).and_then(|()| std::fs::write(&path, png));
    match written {
        Ok(()) => eprintln!("screenshot: {}", path.display()),
        Err(e) => eprintln!("screenshot not saved to {}: {e}", path.display()),
    }
}

both_backends!(
    registrant_confirms_from_the_emailed_link_in_a_real_browser,
    |db: TestDb| async move {
        let Some(driver) = Chromedriver::start().await else {
            db.cleanup().await;
            return;
        };
        let backend = backend_name(&db);
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let mut d = Daemon::start(&daemon_bin(&db, &sink, port), port).await;
        let r = d
            .api(Method::POST, "/v1/contacts")
            .json(&json!({
                "ExternalId": "DNA-1",
                "ContactEmail": "alice@example.com",
                "Domains": ["example.com"],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

        // The daemon's own sweep mails the link; the registrant takes it from the email.
        let mails = wait_for_mail(&sink, &d, 1).await;
        assert_eq!(mails[0].to, vec!["alice@example.com".to_string()]);
        let link = d.url(&link_path(&mails[0]));
        assert!(
            body(&mails[0]).contains(&link),
            "the email carries the daemon's own link {link}:\n{}",
            body(&mails[0])
        );
        wait_for_status(&d, "DNA-1", "Pending").await;

        let browser = driver.session(&d.log).await;
        browser.open(&link).await;
        let text = browser.text(&browser.find("body").await).await;
        assert_eq!(
            browser.title().await,
            "Confirm your email address",
            "{text}"
        );
        assert!(text.contains("a***@example.com"), "masked address: {text}");
        assert_eq!(browser.texts("li").await, ["example.com"], "{text}");
        let source = browser.source().await;
        assert!(
            !text.contains("alice@") && !source.contains("alice@"),
            "the full address must not be shown: {source}"
        );
        let button = browser.find("button[type=submit]").await;
        assert_eq!(browser.text(&button).await, "Confirm email address");
        // The page's own stylesheet applies: the Content-Security-Policy
        // (which allows it by hash) does not block it in a real browser.
        assert_eq!(
            browser.css(&browser.find("body").await, "max-width").await,
            "576px",
            "the page's style is blocked"
        );
        assert_eq!(
            status_of(&d, "DNA-1").await,
            "Pending",
            "looking at the page changes nothing"
        );

        browser.click(&button).await;
        let text = browser.wait_for_heading("Email address confirmed").await;
        assert!(text.contains("a***@example.com"), "{text}");
        assert!(text.contains("is confirmed"), "{text}");
        assert_eq!(browser.texts("li").await, ["example.com"], "{text}");
        assert!(!browser.source().await.contains("alice@"), "{text}");
        assert!(
            browser.find_all("button").await.is_empty(),
            "nothing more to click: {text}"
        );
        save_screenshot(&format!("confirmed-{backend}"), &browser.screenshot().await);
        assert_eq!(status_of(&d, "DNA-1").await, "Validated", "{}", d.logs());
        let reach = api_get(&d, "/v1/domains/example.com/reachability").await;
        assert_eq!(reach["status"], "DONE", "{reach}");
        d.wait_event("contact_validated", 1, WAIT).await;

        // The same link later: nothing to do, and no button.
        browser.open(&link).await;
        let text = browser
            .wait_for_heading("Email address already confirmed")
            .await;
        assert!(text.contains("a***@example.com"), "{text}");
        assert!(text.contains("already confirmed"), "{text}");
        assert!(browser.find_all("button").await.is_empty(), "{text}");
        assert_eq!(status_of(&d, "DNA-1").await, "Validated");
        assert_eq!(sink.count(), 1, "no further email");

        browser.close().await;
        drop(driver);
        let (code, _) = d.terminate();
        assert_eq!(code, 0, "{}", d.logs());
        sink.stop().await;
        db.cleanup().await;
    }
);

both_backends!(
    an_expired_link_says_so_and_how_to_get_a_new_one,
    |db: TestDb| async move {
        let Some(driver) = Chromedriver::start().await else {
            db.cleanup().await;
            return;
        };
        // Issued by a clock standing at 2026-06-01: long expired for the
        // daemon, which runs on the system clock.
        let app = App::new(db).await;
        app.add("DNA-1", "alice@example.com", &["example.com"])
            .await;
        app.sweep().await;
        let token = token_of(&app.sink.wait_for(1, WAIT).await[0]);
        let port = free_port();
        let mut d = Daemon::start(&daemon_bin(&app.db, &app.sink, port), port).await;
        let link = d.url(&format!("/verify/{token}"));

        let browser = driver.session(&d.log).await;
        browser.open(&link).await;
        let text = browser.wait_for_heading("This link has expired").await;
        assert_eq!(browser.title().await, "This link has expired");
        let lower = text.to_lowercase();
        assert!(lower.contains("expired on"), "says when: {text}");
        assert!(
            lower.contains("ask your registrar to resend"),
            "says how to get a new link: {text}"
        );
        assert!(
            browser.find_all("button").await.is_empty()
                && browser.find_all("form").await.is_empty(),
            "no confirm button on an expired link: {}",
            browser.source().await
        );
        assert!(!browser.source().await.contains("alice@"), "{text}");

        for method in [Method::GET, Method::POST] {
            let r = d.http.request(method.clone(), &link).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::GONE, "{method} {link}");
        }
        assert_ne!(app.status("DNA-1").await, "Validated", "{}", d.logs());

        browser.close().await;
        drop(driver);
        let (code, _) = d.terminate();
        assert_eq!(code, 0, "{}", d.logs());
        app.done().await;
    }
);

both_backends!(a_mangled_link_is_refused_clearly, |db: TestDb| async move {
    let Some(driver) = Chromedriver::start().await else {
        db.cleanup().await;
        return;
    };
    let sink = SmtpSink::start(TlsMode::None).await;
    let port = free_port();
    let mut d = Daemon::start(&daemon_bin(&db, &sink, port), port).await;
    // What is left of a link a mail client wrapped and cut.
    let link = d.url("/verify/q7Jx0bN-3kPz_mangled");

    let browser = driver.session(&d.log).await;
    browser.open(&link).await;
    let text = browser.wait_for_heading("This link is not valid").await;
    assert_eq!(browser.title().await, "This link is not valid");
    assert!(
        text.contains("make sure it is complete"),
        "says what to check: {text}"
    );
    assert!(
        text.contains("ask your registrar"),
        "and what else to do: {text}"
    );
    assert!(browser.find_all("button").await.is_empty(), "{text}");

    let r = d.http.get(&link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "GET {link}");

    browser.close().await;
    drop(driver);
    let (code, _) = d.terminate();
    assert_eq!(code, 0, "{}", d.logs());
    sink.stop().await;
    db.cleanup().await;
});
