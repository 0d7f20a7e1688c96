//! The registrant's side, in a real browser: headless Chromium, driven over
//! the W3C WebDriver protocol through chromedriver, opens the link from a
//! real email sent by the real daemon, looks at the page and clicks the
//! button (CONTRACT section 5, `/verify/{token}`), asks for a new link from
//! an expired one, and looks at the email and every page on a desktop and a
//! phone screen in each built-in language (section 9). Screenshots go to the
//! test's temporary directory, and also to `$CV_SCREENSHOT_DIR` when set.
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
use common::app::{body, by_email, token_of, App};
use common::daemon::{daemon_bin, free_port, link_path, Daemon};
use common::smtp::{ReceivedMail, SmtpSink, TlsMode};
use common::{Bin, TestDb};
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
    "--hide-scrollbars",
    "--window-size=1280,900",
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

    /// A new browser session with a fresh profile, whose requests carry
    /// `Accept-Language: <accept_language>`. `daemon_log` is appended to
    /// every failure message.
    async fn session(&self, daemon_log: &Path, accept_language: &str) -> Browser {
        let profile = self
            .dir
            .path()
            .join(format!("profile-{}", uuid::Uuid::new_v4().simple()));
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--lang={accept_language}"));
        args.push(format!("--accept-lang={accept_language}"));
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": {"pageLoad": 15_000, "script": 5_000, "implicit": 0},
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": args,
                        "prefs": {"intl.accept_languages": accept_language},
                    },
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

    /// Runs a script in the page; its return value.
    async fn execute(&self, script: &str) -> Value {
        self.session_call(
            Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Makes the viewport `width` CSS pixels wide (a desktop, or a phone at
    /// 390), whatever the window's own limits.
    async fn viewport(&self, width: u32, height: u32) {
        self.session_call(
            Method::POST,
            "/goog/cdp/execute",
            Some(
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                    "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false,
                }}),
            ),
        )
        .await;
        let inner = self.execute("return window.innerWidth").await;
        if inner != json!(width) {
            self.fail(&format!("the viewport is {inner} px wide, not {width}"));
        }
    }

    /// Looks at the page open now at 1280 and 390 px: saves a screenshot of
    /// each into `shots` as `<name>-<width>.png`, and fails if anything is
    /// wider than the screen (a horizontal scrollbar on a phone) or an image
    /// did not load or sticks out.
    async fn look(&self, shots: &Path, name: &str) {
        for (width, height) in [(1280, 900), (390, 844)] {
            self.viewport(width, height).await;
            let v = self
                .execute(
                    "return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth, \
                     images: Array.from(document.images).map(i => ({src: i.src, loaded: i.complete && i.naturalWidth > 0, right: i.getBoundingClientRect().right}))}",
                )
                .await;
            let png = self.screenshot().await;
            save_screenshot(shots, &format!("{name}-{width}"), &png);
            let (scroll, inner) = (
                v["scroll"].as_i64().unwrap_or(i64::MAX),
                v["inner"].as_i64().unwrap_or(0),
            );
            if scroll > inner {
                self.fail(&format!(
                    "{name} at {width} px overflows: scrollWidth {scroll} > innerWidth {inner}; page:\n{}",
                    self.source().await
                ));
            }
            for img in v["images"].as_array().cloned().unwrap_or_default() {
                if img["loaded"] != true || img["right"].as_f64().unwrap_or(f64::MAX) > inner as f64
                {
                    self.fail(&format!("{name} at {width} px: image {img}"));
                }
            }
        }
        self.viewport(1280, 900).await;
    }

    /// The `lang` of the page's `<html>`.
    async fn lang(&self) -> String {
        self.execute("return document.documentElement.lang")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
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

/// Waits until a message to `to` matching `pick` has arrived; returns it.
async fn wait_for_mail_to(
    sink: &SmtpSink,
    d: &Daemon,
    to: &str,
    pick: impl Fn(&ReceivedMail) -> bool,
) -> ReceivedMail {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(m) = sink
            .messages()
            .into_iter()
            .find(|m| m.to == [to.to_string()] && pick(m))
        {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no such email to {to} within {WAIT:?}; daemon log:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many verification emails (not reminders or expiry notices, which
/// the daemon's own sweeps may send meanwhile) went to `to`.
fn links_mailed_to(sink: &SmtpSink, to: &str) -> usize {
    sink.messages()
        .iter()
        .filter(|m| m.to == [to.to_string()] && is_verification(m))
        .count()
}

fn is_verification(m: &ReceivedMail) -> bool {
    m.header("Subject")
        .is_some_and(|s| s.starts_with("Action required"))
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

/// Writes a screenshot into `dir` (the test's temporary directory), and
/// into `$CV_SCREENSHOT_DIR` when set, for a person to look at.
fn save_screenshot(dir: &Path, name: &str, png: &[u8]) {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(keep) = std::env::var_os("CV_SCREENSHOT_DIR") {
        dirs.push(PathBuf::from(keep));
    }
    for dir in dirs {
        let path = dir.join(format!("{name}.png"));
        let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, png));
        if let Err(e) = written {
            panic!("screenshot not saved to {}: {e}", path.display());
        }
    }
}

/// One MIME part of a received message, decoded: the `text/html` or
/// `text/plain` alternative, as the registrant's mail client shows it.
fn mime_part(m: &ReceivedMail, content_type: &str) -> String {
    let boundary = m
        .header("Content-Type")
        .and_then(|ct| {
            ct.split(';')
                .find_map(|p| p.trim().strip_prefix("boundary=").map(str::to_string))
        })
        .unwrap_or_else(|| panic!("not multipart: {}", m.data))
        .trim_matches('"')
        .to_string();
    for part in m.body().split(&format!("--{boundary}")) {
        let Some((headers, body)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let headers = headers.to_ascii_lowercase();
        if !headers.contains(&format!("content-type: {content_type}")) {
            continue;
        }
        let bytes = if headers.contains("content-transfer-encoding: base64") {
            let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(clean)
                .expect("base64 part")
        } else if headers.contains("content-transfer-encoding: quoted-printable") {
            quoted_printable(body)
        } else {
            body.as_bytes().to_vec()
        };
        return String::from_utf8(bytes)
            .expect("UTF-8 part")
            .trim_end_matches("\r\n")
            .to_string();
    }
    panic!("no {content_type} part in {}", m.data)
}

/// RFC 2045 quoted-printable: soft line breaks joined, `=XX` decoded.
fn quoted_printable(body: &str) -> Vec<u8> {
    let joined = body.replace("=\r\n", "");
    let raw = joined.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'=' && i + 2 < raw.len() {
            let hex = std::str::from_utf8(&raw[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// A logo as wide as a desktop screen (so a phone must shrink it), served
/// over HTTP on loopback as a registrar's CDN would.
const LOGO_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="640" height="80" viewBox="0 0 640 80"><rect width="640" height="80" rx="12" fill="#0f766e"/><text x="24" y="54" font-family="sans-serif" font-size="40" fill="#ffffff">Example Registrar</text></svg>"##;

/// Serves [`LOGO_SVG`] for any path; returns its URL.
async fn serve_logo() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: image/svg+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    LOGO_SVG.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(LOGO_SVG.as_bytes()).await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/brand/logo.svg")
}

const REGISTRAR: &str = "Example Registrar";
const SUPPORT_EMAIL: &str = "help@registrar.example";
const SUPPORT_URL: &str = "https://registrar.example/help";

/// The daemon with the registrar's branding (CONTRACT section 9).
fn branded(bin: Bin, logo_url: &str) -> Bin {
    bin.with_env("CONTACT_VERIFIER__BRANDING__NAME", REGISTRAR)
        .with_env("CONTACT_VERIFIER__BRANDING__SUPPORT_EMAIL", SUPPORT_EMAIL)
        .with_env("CONTACT_VERIFIER__BRANDING__SUPPORT_URL", SUPPORT_URL)
        .with_env("CONTACT_VERIFIER__BRANDING__LOGO_URL", logo_url)
}

/// What each built-in language calls things, to find them on the screen.
struct Words {
    lang: &'static str,
    confirm_title: &'static str,
    confirm_button: &'static str,
    confirmed_title: &'static str,
    expired_title: &'static str,
    new_link_button: &'static str,
    replaced_title: &'static str,
    invalid_title: &'static str,
    /// The expiry of a key issued at 2026-06-01 09:00 UTC, as written.
    expired_on: &'static str,
}

const LANGUAGES: [Words; 4] = [
    Words {
        lang: "en",
        confirm_title: "Confirm your email address",
        confirm_button: "Confirm my email address",
        confirmed_title: "Email address confirmed",
        expired_title: "This link has expired",
        new_link_button: "Send me a new link",
        replaced_title: "This link has been replaced",
        invalid_title: "This link is not valid",
        expired_on: "31 July 2026, 09:00 UTC",
    },
    Words {
        lang: "de",
        confirm_title: "Bestätigen Sie Ihre E-Mail-Adresse",
        confirm_button: "E-Mail-Adresse bestätigen",
        confirmed_title: "E-Mail-Adresse bestätigt",
        expired_title: "Dieser Link ist abgelaufen",
        new_link_button: "Neuen Link zusenden",
        replaced_title: "Dieser Link wurde ersetzt",
        invalid_title: "Dieser Link ist ungültig",
        expired_on: "31. Juli 2026, 09:00 UTC",
    },
    Words {
        lang: "fr",
        confirm_title: "Confirmez votre adresse e-mail",
        confirm_button: "Confirmer mon adresse e-mail",
        confirmed_title: "Adresse e-mail confirmée",
        expired_title: "Ce lien a expiré",
        new_link_button: "M'envoyer un nouveau lien",
        replaced_title: "Ce lien a été remplacé",
        invalid_title: "Ce lien n'est pas valide",
        expired_on: "31 juillet 2026, 09:00 UTC",
    },
    Words {
        lang: "es",
        confirm_title: "Confirme su dirección de correo electrónico",
        confirm_button: "Confirmar mi dirección de correo",
        confirmed_title: "Dirección de correo confirmada",
        expired_title: "Este enlace ha caducado",
        new_link_button: "Enviarme un enlace nuevo",
        replaced_title: "Este enlace ha sido sustituido",
        invalid_title: "Este enlace no es válido",
        expired_on: "31 de julio de 2026, 09:00 UTC",
    },
];

/// Every page answered under `/verify` is HTML with the page headers.
async fn assert_page(r: reqwest::Response, status: StatusCode, what: &str) -> String {
    assert_eq!(r.status(), status, "{what}");
    let h = r.headers().clone();
    let header = |n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8", "{what}");
    assert_eq!(header("cache-control"), "no-store", "{what}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert!(
        header("content-security-policy").contains("style-src 'sha256-"),
        "{what}"
    );
    let html = r.text().await.unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("<h1>"),
        "{what}: {html}"
    );
    html
}

both_backends!(
    registrant_confirms_from_the_emailed_link_in_a_real_browser,
    |db: TestDb| async move {
        let Some(driver) = Chromedriver::start().await else {
            db.cleanup().await;
            return;
        };
        let shots = db.dir.path().join("screenshots");
        let logo = serve_logo().await;
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let mut d = Daemon::start(&branded(daemon_bin(&db, &sink, port), &logo), port).await;
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
        let mail = wait_for_mail_to(&sink, &d, "alice@example.com", |_| true).await;
        let link = d.url(&link_path(&mail));
        let text = mime_part(&mail, "text/plain");
        assert!(
            text.lines().any(|l| l == link),
            "the text part carries the link in full on its own line:\n{text}"
        );
        assert!(
            text.lines()
                .all(|l| l.chars().count() <= 72 || !l.contains(' ')),
            "{text}"
        );
        wait_for_status(&d, "DNA-1", "Pending").await;

        // The email as the registrant's mail client shows it.
        let html = mime_part(&mail, "text/html");
        let file = db.dir.path().join("verification-en.html");
        std::fs::write(&file, &html).unwrap();
        let browser = driver.session(&d.log, "en").await;
        browser.open(&format!("file://{}", file.display())).await;
        assert_eq!(browser.lang().await, "en");
        let button = browser.find("a[target=_blank]").await;
        assert_eq!(browser.text(&button).await, "Confirm my email address");
        assert_eq!(
            browser
                .execute("return document.querySelector('img').alt")
                .await,
            REGISTRAR
        );
        browser.look(&shots, "email-verification-en").await;

        browser.open(&link).await;
        let text = browser.text(&browser.find("body").await).await;
        assert_eq!(
            browser.title().await,
            "Confirm your email address",
            "{text}"
        );
        assert!(text.contains("a***@example.com"), "masked address: {text}");
        assert!(
            text.starts_with(REGISTRAR),
            "the registrar heads the page: {text}"
        );
        assert!(
            text.contains(&format!(
                "Need help? Write to {SUPPORT_EMAIL} or visit {SUPPORT_URL}."
            )),
            "{text}"
        );
        assert_eq!(browser.texts("li").await, ["example.com"], "{text}");
        let source = browser.source().await;
        assert!(
            !text.contains("alice@") && !source.contains("alice@"),
            "the full address must not be shown: {source}"
        );
        let button = browser.find("button[type=submit]").await;
        assert_eq!(browser.text(&button).await, "Confirm my email address");
        // The page's own stylesheet applies and the logo loads: the
        // Content-Security-Policy (style by hash, images from the logo's
        // origin) blocks neither in a real browser.
        assert_eq!(
            browser.css(&browser.find("body").await, "max-width").await,
            "576px",
            "the page's style is blocked"
        );
        browser.look(&shots, "confirm-en").await;
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
        browser.look(&shots, "confirmed-en").await;
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
        assert!(browser.find_all("button").await.is_empty(), "{text}");
        assert_eq!(status_of(&d, "DNA-1").await, "Validated");

        // A path under /verify that is no link is a page too, not JSON.
        browser.open(&d.url("/verify/")).await;
        let text = browser.wait_for_heading("Page not found").await;
        assert!(text.contains("verification email"), "{text}");
        assert_eq!(
            links_mailed_to(&sink, "alice@example.com"),
            1,
            "no further email"
        );

        browser.close().await;
        drop(driver);
        let (code, _) = d.terminate();
        assert_eq!(code, 0, "{}", d.logs());
        sink.stop().await;
        db.cleanup().await;
    }
);

both_backends!(
    the_email_and_every_page_fit_a_desktop_and_a_phone_in_each_language,
    |db: TestDb| async move {
        let Some(driver) = Chromedriver::start().await else {
            db.cleanup().await;
            return;
        };
        let shots = db.dir.path().join("screenshots");
        let logo = serve_logo().await;
        // Links made by a clock standing at 2026-06-01, long expired for the
        // daemon: per language one expired, and one replaced by a newer key.
        let app = App::new(db).await;
        for w in &LANGUAGES {
            for who in ["expired", "replaced"] {
                app.v
                    .add_contact(
                        &format!("{who}-{}", w.lang),
                        &format!("{who}-{}@example.com", w.lang),
                        &[format!("{who}-{}.example", w.lang)],
                        Some(w.lang),
                    )
                    .await
                    .unwrap();
            }
        }
        app.sweep().await;
        let first = app.sink.wait_for(8, WAIT).await;
        let token_to = |to: &str| -> String {
            token_of(first.iter().find(|m| m.to == [to.to_string()]).unwrap())
        };
        app.advance_days(61);
        app.sweep().await;
        for w in &LANGUAGES {
            app.v
                .resend(&by_email(&format!("replaced-{}@example.com", w.lang)))
                .await
                .unwrap();
        }
        let port = free_port();
        let mut d =
            Daemon::start(&branded(daemon_bin(&app.db, &app.sink, port), &logo), port).await;

        for w in &LANGUAGES {
            let lang = w.lang;
            let fresh = format!("fresh-{lang}@example.com");
            // The address's language, set through the API like a panel would.
            let r = d
                .api(Method::POST, "/v1/contacts")
                .json(&json!({
                    "ExternalId": format!("fresh-{lang}"),
                    "ContactEmail": fresh,
                    "Domains": [format!("fresh-{lang}.example"), format!("a-rather-long-second-domain-name-for-{lang}.example")],
                    "Language": lang,
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
            let mail = wait_for_mail_to(&app.sink, &d, &fresh, |_| true).await;
            let link = d.url(&link_path(&mail));
            // The browser asks for another language than the address's: the
            // address's language wins wherever the page knows the address.
            let other = if lang == "fr" { "es" } else { "fr" };
            let browser = driver.session(&d.log, other).await;

            let file = app.db.dir.path().join(format!("verification-{lang}.html"));
            std::fs::write(&file, mime_part(&mail, "text/html")).unwrap();
            browser.open(&format!("file://{}", file.display())).await;
            assert_eq!(browser.lang().await, lang);
            let button = browser.find("a[target=_blank]").await;
            assert_eq!(browser.text(&button).await, w.confirm_button, "{lang}");
            browser
                .look(&shots, &format!("email-verification-{lang}"))
                .await;

            browser.open(&link).await;
            browser.wait_for_heading(w.confirm_title).await;
            assert_eq!(browser.lang().await, lang);
            browser.look(&shots, &format!("confirm-{lang}")).await;
            let button = browser.find("button[type=submit]").await;
            assert_eq!(browser.text(&button).await, w.confirm_button);
            browser.click(&button).await;
            browser.wait_for_heading(w.confirmed_title).await;
            browser.look(&shots, &format!("confirmed-{lang}")).await;

            let expired = token_to(&format!("expired-{lang}@example.com"));
            browser.open(&d.url(&format!("/verify/{expired}"))).await;
            let text = browser.wait_for_heading(w.expired_title).await;
            assert!(text.contains(w.expired_on), "{lang}: {text}");
            assert!(text.contains("e***@example.com"), "{lang}: {text}");
            let button = browser.find("button[type=submit]").await;
            assert_eq!(browser.text(&button).await, w.new_link_button);
            browser.look(&shots, &format!("expired-{lang}")).await;

            let replaced = token_to(&format!("replaced-{lang}@example.com"));
            browser.open(&d.url(&format!("/verify/{replaced}"))).await;
            let text = browser.wait_for_heading(w.replaced_title).await;
            assert!(text.contains("r***@example.com"), "{lang}: {text}");
            let button = browser.find("button[type=submit]").await;
            assert_eq!(browser.text(&button).await, w.new_link_button);
            browser.look(&shots, &format!("replaced-{lang}")).await;
            browser.close().await;

            // A link that names no address: the browser's language decides.
            let browser = driver.session(&d.log, &format!("{lang},en;q=0.5")).await;
            browser.open(&d.url("/verify/q7Jx0bN-3kPz_mangled")).await;
            browser.wait_for_heading(w.invalid_title).await;
            assert_eq!(browser.lang().await, lang);
            assert!(browser.find_all("button").await.is_empty());
            browser.look(&shots, &format!("invalid-{lang}")).await;
            browser.close().await;
        }
        let taken: Vec<_> = std::fs::read_dir(&shots).unwrap().collect();
        assert_eq!(
            taken.len(),
            4 * 6 * 2,
            "a screenshot per page, language and width"
        );

        drop(driver);
        let (code, _) = d.terminate();
        assert_eq!(code, 0, "{}", d.logs());
        app.done().await;
    }
);

both_backends!(
    send_me_a_new_link_from_an_expired_link_mails_the_same_address,
    |db: TestDb| async move {
        let Some(driver) = Chromedriver::start().await else {
            db.cleanup().await;
            return;
        };
        let shots = db.dir.path().join("screenshots");
        // Issued by a clock standing at 2026-06-01: long expired for the
        // daemon, which runs on the system clock.
        let app = App::new(db).await;
        app.add("DNA-1", "alice@example.com", &["example.com"])
            .await;
        app.add("DNA-2", "bob@example.com", &["example.org"]).await;
        app.sweep().await;
        let mails = app.sink.wait_for(2, WAIT).await;
        let token = |to: &str| token_of(mails.iter().find(|m| m.to == [to.to_string()]).unwrap());
        let (alice, bob) = (token("alice@example.com"), token("bob@example.com"));
        let port = free_port();
        let mut d = Daemon::start(
            &daemon_bin(&app.db, &app.sink, port)
                .with_env("CONTACT_VERIFIER__VERIFICATION__RESEND_LIMIT_PER_DAY", "1"),
            port,
        )
        .await;
        let link = d.url(&format!("/verify/{alice}"));

        // A link whose MAC does not check offers nothing and mails nothing.
        let mut tampered = alice.clone();
        tampered.replace_range(10..11, if &alice[10..11] == "A" { "B" } else { "A" });
        let before = links_mailed_to(&app.sink, "alice@example.com");
        let r = d
            .http
            .post(d.url(&format!("/verify/{tampered}/resend")))
            .send()
            .await
            .unwrap();
        let html = assert_page(r, StatusCode::BAD_REQUEST, "tampered resend").await;
        assert!(
            html.contains("not valid") && !html.contains("<form"),
            "{html}"
        );
        let r = d
            .http
            .get(d.url(&format!("/verify/{tampered}")))
            .send()
            .await
            .unwrap();
        let html = assert_page(r, StatusCode::BAD_REQUEST, "tampered link").await;
        assert!(!html.contains("<form") && !html.contains("a***@"), "{html}");

        let browser = driver.session(&d.log, "en").await;
        browser.open(&link).await;
        let text = browser.wait_for_heading("This link has expired").await;
        assert_eq!(browser.title().await, "This link has expired");
        assert!(
            text.contains("expired on 31 July 2026, 09:00 UTC"),
            "says when: {text}"
        );
        assert!(text.contains("a***@example.com"), "{text}");
        assert!(
            text.contains("Need help? Please contact Registrar."),
            "where to get help without branding: {text}"
        );
        let button = browser.find("button[type=submit]").await;
        assert_eq!(browser.text(&button).await, "Send me a new link");
        assert!(
            browser.source().await.matches("<form").count() == 1
                && !browser.source().await.contains("alice@"),
            "only the new-link button: {}",
            browser.source().await
        );
        for method in [Method::GET, Method::POST] {
            let r = d.http.request(method.clone(), &link).send().await.unwrap();
            assert_page(r, StatusCode::GONE, &format!("{method} {link}")).await;
        }
        assert_eq!(
            links_mailed_to(&app.sink, "alice@example.com"),
            before,
            "looking, confirming and a tampered resend mail nothing"
        );
        assert_ne!(app.status("DNA-1").await, "Validated", "{}", d.logs());

        browser.click(&button).await;
        let text = browser.wait_for_heading("A new link is on its way").await;
        assert!(
            text.contains("a***@example.com"),
            "names where it went: {text}"
        );
        browser.look(&shots, "resent-en").await;
        let resent = wait_for_mail_to(&app.sink, &d, "alice@example.com", |m| {
            is_verification(m) && !body(m).contains(&alice)
        })
        .await;
        assert!(
            app.sink
                .messages()
                .iter()
                .all(|m| m.to == ["alice@example.com".to_string()]
                    || m.to == ["bob@example.com".to_string()]),
            "no other address was mailed"
        );
        let new_link = d.url(&link_path(&resent));
        assert_ne!(new_link, link, "an expired key gets a fresh one");
        browser.open(&new_link).await;
        browser.wait_for_heading("Confirm your email address").await;
        browser
            .click(&browser.find("button[type=submit]").await)
            .await;
        browser.wait_for_heading("Email address confirmed").await;
        assert_eq!(status_of(&d, "DNA-1").await, "Validated", "{}", d.logs());

        // The old link was replaced by the new key; its button now finds the
        // address confirmed and mails nothing.
        let mailed = links_mailed_to(&app.sink, "alice@example.com");
        browser.open(&link).await;
        browser
            .wait_for_heading("This link has been replaced")
            .await;
        browser
            .click(&browser.find("button[type=submit]").await)
            .await;
        let text = browser
            .wait_for_heading("Email address already confirmed")
            .await;
        assert!(text.contains("a***@example.com"), "{text}");
        assert_eq!(links_mailed_to(&app.sink, "alice@example.com"), mailed);

        // The daily limit (1 here) counts these resends too, and the page
        // says when to try again.
        browser.open(&d.url(&format!("/verify/{bob}"))).await;
        browser.wait_for_heading("This link has expired").await;
        browser
            .click(&browser.find("button[type=submit]").await)
            .await;
        browser.wait_for_heading("A new link is on its way").await;
        wait_for_mail_to(&app.sink, &d, "bob@example.com", |m| {
            is_verification(m) && !body(m).contains(&bob)
        })
        .await;
        let mailed = links_mailed_to(&app.sink, "bob@example.com");
        browser.open(&d.url(&format!("/verify/{bob}"))).await;
        browser
            .wait_for_heading("This link has been replaced")
            .await;
        browser
            .click(&browser.find("button[type=submit]").await)
            .await;
        let text = browser.wait_for_heading("Please try again later").await;
        let tomorrow = chrono::Utc::now() + chrono::Duration::hours(24);
        assert!(
            text.contains(&format!("from {}", tomorrow.format("%-d %B %Y"))),
            "says when: {text}"
        );
        browser.look(&shots, "limited-en").await;
        let r = d
            .http
            .post(d.url(&format!("/verify/{bob}/resend")))
            .send()
            .await
            .unwrap();
        let retry: i64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((86_000..=86_400).contains(&retry), "Retry-After {retry}");
        assert_page(r, StatusCode::TOO_MANY_REQUESTS, "over the limit").await;
        assert_eq!(
            links_mailed_to(&app.sink, "bob@example.com"),
            mailed,
            "no email over the limit"
        );

        browser.close().await;
        drop(driver);
        let (code, _) = d.terminate();
        assert_eq!(code, 0, "{}", d.logs());
        app.done().await;
    }
);

both_backends!(
    a_mangled_link_and_every_other_path_get_a_page,
    |db: TestDb| async move {
        let Some(driver) = Chromedriver::start().await else {
            db.cleanup().await;
            return;
        };
        let sink = SmtpSink::start(TlsMode::None).await;
        let port = free_port();
        let mut d = Daemon::start(&daemon_bin(&db, &sink, port), port).await;
        // What is left of a link a mail client wrapped and cut.
        let link = d.url("/verify/q7Jx0bN-3kPz_mangled");

        let browser = driver.session(&d.log, "en").await;
        browser.open(&link).await;
        let text = browser.wait_for_heading("This link is not valid").await;
        assert_eq!(browser.title().await, "This link is not valid");
        assert!(
            text.contains("make sure it is complete"),
            "says what to check: {text}"
        );
        assert!(
            text.contains("ask Registrar to send you a new verification email"),
            "and what else to do: {text}"
        );
        assert!(browser.find_all("button").await.is_empty(), "{text}");
        browser.close().await;

        let r = d.http.get(&link).send().await.unwrap();
        assert_page(r, StatusCode::BAD_REQUEST, "GET mangled").await;
        for (method, path, status) in [
            (Method::GET, "/verify", StatusCode::NOT_FOUND),
            (Method::GET, "/verify/", StatusCode::NOT_FOUND),
            (Method::POST, "/verify/", StatusCode::NOT_FOUND),
            (Method::GET, "/verify/a/b", StatusCode::NOT_FOUND),
            (Method::GET, "/verify/a/b/c", StatusCode::NOT_FOUND),
            (Method::PUT, "/verify/x", StatusCode::METHOD_NOT_ALLOWED),
            (Method::DELETE, "/verify/x", StatusCode::METHOD_NOT_ALLOWED),
            (
                Method::GET,
                "/verify/x/resend",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (Method::POST, "/verify/x/resend", StatusCode::BAD_REQUEST),
        ] {
            let r = d
                .http
                .request(method.clone(), d.url(path))
                .send()
                .await
                .unwrap();
            let html = assert_page(r, status, &format!("{method} {path}")).await;
            assert!(html.contains("<html lang=\"en\">"), "{html}");
        }
        let r = d.http.get(d.url("/verify/x/resend")).send().await.unwrap();
        assert_eq!(r.headers()["allow"], "POST", "the new-link URL only acts");
        let r = d.http.put(d.url("/verify/x")).send().await.unwrap();
        assert_eq!(r.headers()["allow"], "GET, HEAD, POST");
        // The browser's language, when the link names no address.
        let r = d
            .http
            .get(d.url("/verify/a/b"))
            .header("Accept-Language", "it;q=0.9, de;q=0.8, en;q=0.1")
            .send()
            .await
            .unwrap();
        let html = assert_page(r, StatusCode::NOT_FOUND, "German 404").await;
        assert!(
            html.contains("<html lang=\"de\">") && html.contains("Seite nicht gefunden"),
            "{html}"
        );
        assert_eq!(sink.count(), 0);

        drop(driver);
        let (code, _) = d.terminate();
        assert_eq!(code, 0, "{}", d.logs());
        sink.stop().await;
        db.cleanup().await;
    }
);
