//! Event delivery end to end (CONTRACT section 8): the real binary delivers
//! the events its state changes write to a real webhook receiver on loopback
//! (signed posts) and to real hook programs (the event on stdin, exit 0 =
//! delivered): in order, a failure holding back the later ones, retried after
//! 10 s, a hanging hook cut off at `hooks.timeout_secs`, nothing lost when the
//! process is killed, and `examples/hooks/epp-hold.sh` mapping suspensions to
//! EPP clientHold.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::app::{LINK_BASE, SECRET};
use common::daemon::{daemon_bin, free_port, Daemon};
use common::smtp::{SmtpSink, TlsMode};
use common::{Backend, Bin, TestDb};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

const HOOK_SECRET: &str = "hook-secret-for-the-receiver-7c2e";
const WAIT: Duration = Duration::from_secs(20);
/// The first retry wait (CONTRACT section 8) and a margin.
const RETRY_WAIT: Duration = Duration::from_millis(11_000);

// ---------------------------------------------------------------------------
// A webhook receiver: a real HTTP server on loopback, on its own thread and
// runtime so that a test blocked on the binary cannot starve it.

#[derive(Debug, Clone)]
struct Post {
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

#[derive(Clone)]
struct Shared {
    posts: Arc<Mutex<Vec<Post>>>,
    status: Arc<std::sync::atomic::AtomicU16>,
}

struct Receiver {
    url: String,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn receive(
    axum::extract::State(s): axum::extract::State<Shared>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    s.posts.lock().unwrap().push(Post {
        path: uri.path().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    axum::http::StatusCode::from_u16(s.status.load(std::sync::atomic::Ordering::SeqCst)).unwrap()
}

impl Receiver {
    /// Answers every POST to `/hook` with `status`.
    fn start(status: u16) -> Receiver {
        let shared = Shared {
            posts: Arc::default(),
            status: Arc::new(status.into()),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new()
                    .route("/hook", axum::routing::post(receive))
                    .with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Receiver {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn posts(&self) -> Vec<Post> {
        self.shared.posts.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Post> {
        let deadline = Instant::now() + timeout;
        loop {
            let posts = self.posts();
            if posts.len() >= n {
                return posts;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver got {} posts, not {n}, within {timeout:?}",
                posts.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(
        s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "not hex: {s}"
    );
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// What a receiver does with a post: checks `X-Contact-Verifier-Signature`
/// (`t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`) under `secret` and that
/// `t` is recent; returns the parsed event.
fn verify_post(p: &Post, secret: &str) -> Value {
    assert_eq!(p.path, "/hook");
    assert_eq!(
        p.headers.get("content-type").map(String::as_str),
        Some("application/json"),
        "{p:?}"
    );
    let sig = p
        .headers
        .get("x-contact-verifier-signature")
        .unwrap_or_else(|| panic!("no signature header: {p:?}"));
    let (t, v1) = sig
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature {sig:?} is not t=<unix>,v1=<hex>"));
    let t: i64 = t.parse().unwrap_or_else(|_| panic!("t in {sig:?}"));
    let now = chrono::Utc::now().timestamp();
    assert!((now - t).abs() < 300, "t={t} is not recent (now {now})");
    let mac = |key: &str| {
        let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        m.update(format!("{t}.").as_bytes());
        m.update(p.body.as_bytes());
        m
    };
    mac(secret)
        .verify_slice(&unhex(v1))
        .unwrap_or_else(|_| panic!("the signature does not verify under the hook secret: {p:?}"));
    // The check is not vacuous: another key or another body fails it.
    assert!(mac("another-secret").verify_slice(&unhex(v1)).is_err());
    let mut tampered = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    tampered.update(format!("{t}.{} ", p.body).as_bytes());
    assert!(tampered.verify_slice(&unhex(v1)).is_err());

    let event: Value = serde_json::from_str(&p.body).expect("the body is JSON");
    assert_eq!(
        p.headers.get("x-contact-verifier-event"),
        event["id"].as_str().map(str::to_string).as_ref(),
        "X-Contact-Verifier-Event names the event: {p:?}"
    );
    event
}

/// The event's shape (CONTRACT section 8), nothing more.
fn assert_event_shape(e: &Value) {
    let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "at",
            "contactEmail",
            "domains",
            "externalIds",
            "id",
            "reason",
            "type"
        ],
        "{e}"
    );
    assert!(
        uuid::Uuid::parse_str(e["id"].as_str().unwrap()).is_ok(),
        "{e}"
    );
    let at = chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap())
        .unwrap_or_else(|_| panic!("at is not RFC 3339: {e}"));
    let age = chrono::Utc::now().signed_duration_since(at);
    assert!(age.num_seconds().abs() < 300, "at is not recent: {e}");
    assert!(!e["reason"].as_str().unwrap().is_empty(), "{e}");
}

// ---------------------------------------------------------------------------
// The binary and the events it writes.

/// The binary for `db`, mailing to `sink` (a sweep sends mail).
fn base_bin(db: &TestDb, sink: &SmtpSink) -> Bin {
    Bin::new(db)
        .with_env("CONTACT_VERIFIER__VERIFICATION__SECRET", SECRET)
        .with_env("CONTACT_VERIFIER__VERIFICATION__LINK_BASE_URL", LINK_BASE)
        .with_env("CONTACT_VERIFIER__SMTP__HOST", "127.0.0.1")
        .with_env("CONTACT_VERIFIER__SMTP__PORT", &sink.port().to_string())
        .with_env("CONTACT_VERIFIER__SMTP__TLS", "none")
        .with_env("CONTACT_VERIFIER__SMTP__TIMEOUT_SECS", "5")
}

fn with_webhook(bin: Bin, url: &str) -> Bin {
    bin.with_env("CONTACT_VERIFIER__HOOKS__URL", url)
        .with_env("CONTACT_VERIFIER__HOOKS__SECRET", HOOK_SECRET)
}

fn with_command(bin: Bin, script: &Path) -> Bin {
    bin.with_env("CONTACT_VERIFIER__HOOKS__COMMAND", script.to_str().unwrap())
}

/// `contact add`, then `operation add --type RESTORE_DOMAIN` on the still
/// unverified registrant (`domain_suspended` at once), then `contact verify`
/// (`contact_validated`, `domain_unsuspended`): three events.
fn suspend_then_release(bin: &Bin, id: &str, email: &str, domain: &str) {
    bin.add_contact(id, email, &[domain]);
    let op = bin
        .run(&[
            "operation",
            "add",
            "--domain",
            domain,
            "--type",
            "RESTORE_DOMAIN",
        ])
        .ok();
    assert_eq!(op["Type"], "RESTORE_DOMAIN", "{op}");
    let shown = bin.run(&["domain", "show", domain]).ok();
    assert_eq!(shown["Suspended"], true, "{shown}");
    verify(bin, id);
    let shown = bin.run(&["domain", "show", domain]).ok();
    assert_eq!(shown["Suspended"], false, "{shown}");
}

fn verify(bin: &Bin, id: &str) {
    let out = bin
        .run(&[
            "contact",
            "verify",
            "--external-id",
            id,
            "--reason",
            "confirmed by phone with the registrant",
        ])
        .ok();
    assert_eq!(out["VerificationStatus"], "Validated", "{out}");
}

/// `events list` (all pages), oldest first.
fn events(bin: &Bin, pending: bool) -> Vec<Value> {
    let mut all = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut args = vec!["events", "list"];
        if pending {
            args.push("--pending");
        }
        if let Some(m) = &marker {
            args.extend(["--marker", m.as_str()]);
        }
        let page = bin.run(&args).ok();
        all.extend(page["Events"].as_array().unwrap().iter().cloned());
        match page["NextPageMarker"].as_str() {
            Some(m) => marker = Some(m.to_string()),
            None => return all,
        }
    }
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// The event as delivered: an `events list` item without its delivery state.
fn payload(listed: &Value) -> Value {
    let mut v = listed.clone();
    let map = v.as_object_mut().unwrap();
    for k in ["Delivered", "Attempts", "LastError"] {
        assert!(map.remove(k).is_some(), "{listed}");
    }
    v
}

fn sweep(bin: &Bin) -> Value {
    bin.run(&["sweep"]).ok()
}

// ---------------------------------------------------------------------------
// Hook programs.

/// Writes an executable `#!/bin/sh` script atomically (a running delivery
/// never sees half of it).
fn write_script(path: &Path, body: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A hook that appends each event it gets to `out` and succeeds.
fn recording_hook(path: &Path, out: &Path) {
    write_script(path, &format!("cat >> '{}'", out.display()));
}

/// A hook that notes each try in `tries` and fails with exit 1.
fn failing_hook(path: &Path, tries: &Path) {
    write_script(
        path,
        &format!(
            "cat >> '{}'\necho 'registry unavailable' >&2\nexit 1",
            tries.display()
        ),
    );
}

/// The events a recording hook got, in order.
fn recorded(out: &Path) -> Vec<Value> {
    match std::fs::read_to_string(out) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

/// Whether a process is running (a zombie, killed but not reaped, is not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

/// Ends a process this test started (a hook left behind).
fn kill(pid: i32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// Whether anything was written to the test database.
async fn table_count(db: &TestDb) -> i64 {
    use sqlx::Connection;
    match db.backend {
        Backend::Sqlite => {
            if !db.dir.path().join("cv.db").exists() {
                return 0;
            }
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'")
                .fetch_one(&mut c)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_one(&mut c)
            .await
            .unwrap()
        }
    }
}

fn epp_hold_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hooks/epp-hold.sh")
}

// ---------------------------------------------------------------------------
// 1. Webhook posts: signed, one per event, in order.

both_backends!(
    webhook_gets_one_signed_post_per_event_in_order,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let receiver = Receiver::start(200);
        let bin = with_webhook(base_bin(&db, &sink), &receiver.url);

        suspend_then_release(&bin, "DNA-1", "Reg.One@Example.com", "one.com");
        let before = events(&bin, false);
        assert_eq!(
            types(&before),
            [
                "domain_suspended",
                "contact_validated",
                "domain_unsuspended"
            ]
        );
        for e in &before {
            assert_eq!(e["Delivered"], false, "{e}");
            assert_eq!(e["Attempts"], 0, "{e}");
            assert_eq!(e["LastError"], Value::Null, "{e}");
        }
        assert_eq!(events(&bin, true).len(), 3);
        // Only the daemon and a sweep deliver; the CLI commands that wrote
        // the events did not post them.
        assert!(receiver.posts().is_empty());

        sweep(&bin);
        let posts = receiver.wait_for(3, WAIT).await;
        assert_eq!(posts.len(), 3, "one post per event: {posts:?}");
        let got: Vec<Value> = posts.iter().map(|p| verify_post(p, HOOK_SECRET)).collect();
        for e in &got {
            assert_event_shape(e);
            assert_eq!(e["contactEmail"], "Reg.One@Example.com", "{e}");
            assert_eq!(e["externalIds"], serde_json::json!(["DNA-1"]), "{e}");
            assert_eq!(e["domains"], serde_json::json!(["one.com"]), "{e}");
        }
        // In the order they happened, each exactly as recorded.
        assert_eq!(ids(&got), ids(&before));
        for (g, b) in got.iter().zip(&before) {
            assert_eq!(g, &payload(b));
        }
        assert!(got[1]["reason"]
            .as_str()
            .unwrap()
            .contains("confirmed by phone with the registrant"));

        let after = events(&bin, false);
        assert_eq!(ids(&after), ids(&before));
        for e in &after {
            assert_eq!(e["Delivered"], true, "{e}");
            assert_eq!(e["Attempts"], 1, "{e}");
            assert_eq!(e["LastError"], Value::Null, "{e}");
        }
        assert!(events(&bin, true).is_empty());

        // Delivered events are not posted again.
        sweep(&bin);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.posts().len(), 3);
        drop(receiver);
        sink.stop().await;
        db.cleanup().await;
    }
);

both_backends!(
    webhook_answering_500_leaves_the_event_pending_and_holds_back_the_rest,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let receiver = Receiver::start(500);
        let bin = with_webhook(base_bin(&db, &sink), &receiver.url);
        suspend_then_release(&bin, "DNA-1", "a@example.com", "a.com");
        let out = bin.run(&["sweep"]);
        assert_eq!(
            out.code, 0,
            "a failed delivery is retried later: {}",
            out.stderr
        );

        let posts = receiver.posts();
        assert_eq!(posts.len(), 1, "only the oldest is tried: {posts:?}");
        let pending = events(&bin, true);
        assert_eq!(pending.len(), 3);
        assert_eq!(verify_post(&posts[0], HOOK_SECRET)["id"], pending[0]["id"]);
        assert_eq!(pending[0]["Attempts"], 1);
        let error = pending[0]["LastError"].as_str().unwrap_or_default();
        assert!(error.contains("500"), "{error}");
        for e in &pending[1..] {
            assert_eq!(e["Attempts"], 0, "{e}");
            assert_eq!(e["LastError"], Value::Null, "{e}");
        }
        drop(receiver);

        // An unreachable URL is a failure too, named as such.
        let closed = format!("http://127.0.0.1:{}/hook", free_port());
        let bin = with_webhook(base_bin(&db, &sink), &closed);
        suspend_then_release(&bin, "DNA-2", "b@example.com", "b.com");
        tokio::time::sleep(RETRY_WAIT).await;
        bin.run(&["sweep"]).ok();
        let pending = events(&bin, true);
        assert_eq!(pending.len(), 6);
        assert_eq!(pending[0]["Attempts"], 2, "{}", pending[0]);
        let error = pending[0]["LastError"].as_str().unwrap_or_default();
        assert!(error.contains("hooks.url"), "{error}");
        assert!(pending[1..].iter().all(|e| e["Attempts"] == 0));
        sink.stop().await;
        db.cleanup().await;
    }
);

// ---------------------------------------------------------------------------
// 2. Hook programs: stdin, exit 0 = delivered; a failure holds back the rest
// until it is fixed and its retry time has come.

both_backends!(
    a_failing_hook_holds_back_later_events_until_fixed_then_all_arrive_in_order,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let dir = db.dir.path().to_path_buf();
        let hook = dir.join("hook.sh");
        let tries = dir.join("tries.jsonl");
        let delivered = dir.join("delivered.jsonl");
        failing_hook(&hook, &tries);
        let bin = with_command(base_bin(&db, &sink), &hook);

        suspend_then_release(&bin, "DNA-1", "a@example.com", "a.com");
        let recorded_before = events(&bin, false);
        assert_eq!(recorded_before.len(), 3);

        let first_sweep = Instant::now();
        sweep(&bin);
        let failed_at = Instant::now();
        // The hook got the oldest event on stdin, once, and nothing after it.
        let tried = recorded(&tries);
        assert_eq!(ids(&tried), ids(&recorded_before[..1]));
        assert_eq!(tried[0], payload(&recorded_before[0]));
        assert!(recorded(&delivered).is_empty());

        let pending = events(&bin, true);
        assert_eq!(ids(&pending), ids(&recorded_before), "all three wait");
        assert_eq!(pending[0]["Attempts"], 1, "{}", pending[0]);
        let error = pending[0]["LastError"].as_str().unwrap_or_default();
        assert!(error.contains("exit status: 1"), "{error}");
        assert!(error.contains("registry unavailable"), "{error}");
        for e in &pending[1..] {
            assert_eq!(e["Attempts"], 0, "held back: {e}");
            assert_eq!(e["Delivered"], false, "{e}");
        }

        // Fixed, but the retry time (10 s) has not come: nothing is tried.
        recording_hook(&hook, &delivered);
        sweep(&bin);
        if first_sweep.elapsed() < Duration::from_secs(10) {
            assert!(recorded(&delivered).is_empty(), "retried before 10 s");
            assert_eq!(events(&bin, true)[0]["Attempts"], 1);
        } else {
            eprintln!("too slow to check that the retry waits 10 s");
        }

        // After it, all are delivered, in their original order.
        tokio::time::sleep(RETRY_WAIT.saturating_sub(failed_at.elapsed())).await;
        sweep(&bin);
        let got = recorded(&delivered);
        assert_eq!(ids(&got), ids(&recorded_before));
        for (g, b) in got.iter().zip(&recorded_before) {
            assert_eq!(g, &payload(b));
        }
        assert!(events(&bin, true).is_empty());
        let all = events(&bin, false);
        let attempts: Vec<&Value> = all.iter().map(|e| &e["Attempts"]).collect();
        assert_eq!(attempts, [2, 1, 1], "every try counts");
        assert!(all.iter().all(|e| e["LastError"].is_null()));
        sink.stop().await;
        db.cleanup().await;
    }
);

// ---------------------------------------------------------------------------
// 3. A hook that hangs past hooks.timeout_secs.

both_backends!(
    a_hook_hanging_past_the_timeout_counts_as_a_failure,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let dir = db.dir.path().to_path_buf();
        let hook = dir.join("hang.sh");
        write_script(
            &hook,
            &format!(
                "echo $$ > '{}'\nexec sleep 20",
                dir.join("hook.pid").display()
            ),
        );
        let bin = with_command(base_bin(&db, &sink), &hook)
            .with_env("CONTACT_VERIFIER__HOOKS__TIMEOUT_SECS", "1");
        suspend_then_release(&bin, "DNA-1", "a@example.com", "a.com");

        let started = Instant::now();
        sweep(&bin);
        let took = started.elapsed();
        let pid = read_pid(&dir.join("hook.pid"));
        assert!(took < Duration::from_secs(10), "the sweep waited {took:?}");

        let pending = events(&bin, true);
        assert_eq!(pending.len(), 3);
        assert_eq!(pending[0]["Attempts"], 1, "{}", pending[0]);
        let error = pending[0]["LastError"].as_str().unwrap_or_default();
        assert!(
            error.contains("did not finish within 1 s") && error.contains("killed"),
            "{error}"
        );
        assert!(pending[1..].iter().all(|e| e["Attempts"] == 0));
        kill(pid);
        sink.stop().await;
        db.cleanup().await;
    }
);

// At the timeout the hook's whole process group is killed: the program
// `/bin/sh -c` started and whatever it runs, so that the retry 10 s later
// never runs beside a late copy.
mod a_hook_hanging_past_the_timeout_is_killed {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let db = TestDb::new(Backend::Sqlite).await.unwrap();
        run(db).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(db) = TestDb::new(Backend::Postgres).await {
            run(db).await;
        }
    }

    async fn run(db: TestDb) {
        let sink = SmtpSink::start(TlsMode::None).await;
        let dir = db.dir.path().to_path_buf();
        let hook = dir.join("hang.sh");
        let hook_pid = dir.join("hook.pid");
        let child_pid = dir.join("child.pid");
        // The hook and a program it runs (as a hook runs an EPP client).
        write_script(
            &hook,
            &format!(
                "echo $$ > '{}'\nsleep 20 &\necho $! > '{}'\nwait",
                hook_pid.display(),
                child_pid.display()
            ),
        );
        let bin = with_command(base_bin(&db, &sink), &hook)
            .with_env("CONTACT_VERIFIER__HOOKS__TIMEOUT_SECS", "1");
        suspend_then_release(&bin, "DNA-1", "a@example.com", "a.com");
        sweep(&bin);
        let pids = [read_pid(&hook_pid), read_pid(&child_pid)];
        tokio::time::sleep(Duration::from_millis(500)).await;
        let running: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        for p in pids {
            kill(p);
        }
        assert!(
            running.is_empty(),
            "still running after the timeout: {running:?} of hook {} and its child {}",
            pids[0],
            pids[1]
        );
        sink.stop().await;
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------
// 4. Crash safety and continuous delivery by the daemon.

both_backends!(
    events_survive_a_killed_daemon_and_a_later_sweep_delivers_each_once,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let dir = db.dir.path().to_path_buf();
        let hook = dir.join("hook.sh");
        let tries = dir.join("tries.jsonl");
        let delivered = dir.join("delivered.jsonl");
        failing_hook(&hook, &tries);
        let port = free_port();
        let bin = with_command(daemon_bin(&db, &sink, port), &hook);
        let mut d = Daemon::start(&bin, port).await;

        suspend_then_release(&bin, "DNA-1", "a@example.com", "a.com");
        d.wait_event("hook_failed", 1, WAIT).await;
        let failed_at = Instant::now();
        let listed = events(&bin, false);
        assert_eq!(listed.len(), 3);
        assert!(listed.iter().all(|e| e["Delivered"] == false));

        // kill -9: no shutdown, nothing flushed.
        let mut child = d.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        // And a change committed while nothing runs.
        bin.add_contact("DNA-2", "b@example.com", &["b.com"]);
        verify(&bin, "DNA-2");
        let listed = events(&bin, false);
        assert_eq!(listed.len(), 4);
        assert!(ids(&recorded(&tries))
            .iter()
            .all(|id| *id == ids(&listed)[0]));

        recording_hook(&hook, &delivered);
        tokio::time::sleep(RETRY_WAIT.saturating_sub(failed_at.elapsed())).await;
        sweep(&bin);
        let got = recorded(&delivered);
        assert_eq!(ids(&got), ids(&listed), "every event, once, in order");
        for (g, b) in got.iter().zip(&listed) {
            assert_eq!(g, &payload(b));
        }
        assert!(events(&bin, true).is_empty());
        sink.stop().await;
        db.cleanup().await;
    }
);

both_backends!(
    the_daemon_delivers_continuously_without_a_sweep,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let receiver = Receiver::start(200);
        let port = free_port();
        let bin = with_webhook(daemon_bin(&db, &sink, port), &receiver.url);
        let mut d = Daemon::start(&bin, port).await;

        bin.add_contact("DNA-1", "a@example.com", &["a.com"]);
        verify(&bin, "DNA-1");
        let posts = receiver.wait_for(1, WAIT).await;
        let e = verify_post(&posts[0], HOOK_SECRET);
        assert_event_shape(&e);
        assert_eq!(e["type"], "contact_validated");
        assert_eq!(e["externalIds"], serde_json::json!(["DNA-1"]));

        // A later change is delivered too, while the daemon keeps running.
        bin.add_contact("DNA-2", "b@example.com", &["b.com"]);
        bin.run(&[
            "operation",
            "add",
            "--domain",
            "b.com",
            "--type",
            "RESTORE_DOMAIN",
        ])
        .ok();
        let posts = receiver.wait_for(2, WAIT).await;
        let e = verify_post(&posts[1], HOOK_SECRET);
        assert_eq!(e["type"], "domain_suspended");
        assert_eq!(e["domains"], serde_json::json!(["b.com"]));
        d.wait_event("hook_delivered", 2, WAIT).await;

        let (code, _) = d.terminate();
        assert_eq!(code, 0, "{}", d.logs());
        let all = events(&bin, false);
        let posted: Vec<String> = posts
            .iter()
            .map(|p| p.headers["x-contact-verifier-event"].clone())
            .collect();
        assert_eq!(ids(&all), posted);
        for e in &all {
            assert_eq!(e["Delivered"], true, "{e}");
            assert_eq!(e["Attempts"], 1, "{e}");
        }
        assert_eq!(receiver.posts().len(), 2, "each event posted once");
        drop(receiver);
        sink.stop().await;
        db.cleanup().await;
    }
);

// ---------------------------------------------------------------------------
// 5. Bad hook configuration is refused before anything is written.

both_backends!(
    a_bad_hooks_url_or_a_missing_secret_exits_78_and_writes_nothing,
    |db: TestDb| async move {
        let bin = Bin::new(&db);
        let bad_url = bin
            .with_env("CONTACT_VERIFIER__HOOKS__URL", "not a url")
            .with_env("CONTACT_VERIFIER__HOOKS__SECRET", HOOK_SECRET);
        for args in [&["check-config"][..], &["sweep"], &["events", "list"]] {
            let line = bad_url.run(args).err(78, "Configuration");
            assert!(line.contains("hooks.url"), "{args:?}: {line}");
        }
        let no_secret =
            Bin::new(&db).with_env("CONTACT_VERIFIER__HOOKS__URL", "https://hooks.example/cv");
        for args in [&["check-config"][..], &["sweep"], &["events", "list"]] {
            let line = no_secret.run(args).err(78, "Configuration");
            assert!(line.contains("hooks.secret"), "{args:?}: {line}");
            assert!(line.contains("hooks.url"), "{args:?}: {line}");
        }
        assert_eq!(table_count(&db).await, 0, "nothing was written");

        // A daemon with either refuses to start, with the same message.
        let out = Bin::new(&db)
            .with_env("CONTACT_VERIFIER__HOOKS__URL", "https://hooks.example/cv")
            .run(&["run"]);
        assert_eq!(out.code, 78, "{}", out.stderr);
        assert!(out.stderr.contains("hooks.secret"), "{}", out.stderr);
        assert_eq!(table_count(&db).await, 0, "nothing was written");

        // The same settings made valid pass, and the secret is masked.
        let ok = Bin::new(&db)
            .with_env("CONTACT_VERIFIER__HOOKS__URL", "https://hooks.example/cv")
            .with_env("CONTACT_VERIFIER__HOOKS__SECRET", HOOK_SECRET)
            .run(&["check-config"])
            .ok();
        assert_eq!(ok["hooks"]["url"], "https://hooks.example/cv", "{ok}");
        assert!(!ok.to_string().contains(HOOK_SECRET), "{ok}");
        db.cleanup().await;
    }
);

// ---------------------------------------------------------------------------
// 6. No hook: recorded, and delivered at once with no attempt.

both_backends!(
    without_a_hook_events_are_recorded_as_delivered_with_no_attempt,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let bin = base_bin(&db, &sink);
        suspend_then_release(&bin, "DNA-1", "a@example.com", "a.com");
        let all = events(&bin, false);
        assert_eq!(
            types(&all),
            [
                "domain_suspended",
                "contact_validated",
                "domain_unsuspended"
            ]
        );
        for e in &all {
            assert_event_shape(&payload(e));
            assert_eq!(e["Delivered"], true, "{e}");
            assert_eq!(e["Attempts"], 0, "{e}");
            assert_eq!(e["LastError"], Value::Null, "{e}");
        }
        assert!(events(&bin, true).is_empty());
        sweep(&bin);
        assert_eq!(events(&bin, false), all, "a sweep changes nothing");
        sink.stop().await;
        db.cleanup().await;
    }
);

// ---------------------------------------------------------------------------
// examples/hooks/epp-hold.sh

/// Runs the example hook by hand with `event` on stdin.
fn run_epp_hold(state: &Path, log: &Path, event: &Value) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(epp_hold_script())
        .env("EPP_HOLD_STATE_DIR", state)
        .env("EPP_HOLD_LOG", log)
        .env("EPP_HOLD_DRY_RUN", "1")
        .env_remove("EPP_HOLD_STATUSES")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run examples/hooks/epp-hold.sh (is jq installed?)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{event}\n").as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// The dry run's EPP calls so far: `(domain, add|rem, status)`.
fn epp_calls(log: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("dry-run: epp_update_status "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].to_string(), w[1].to_string(), w[2].to_string())
        })
        .collect()
}

fn call(domain: &str, op: &str) -> (String, String, String) {
    (domain.into(), op.into(), "clientHold".into())
}

/// The dry run's simulated registry: the domain's statuses.
fn registry_statuses(state: &Path, domain: &str) -> Vec<String> {
    std::fs::read_to_string(state.join("dry-run-registry").join(domain))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

both_backends!(
    epp_hold_example_holds_on_suspension_and_releases_only_its_own_holds,
    |db: TestDb| async move {
        let sink = SmtpSink::start(TlsMode::None).await;
        let dir = db.dir.path().to_path_buf();
        let state = dir.join("epp-state");
        let log = dir.join("epp.log");
        // b.com is on clientHold at the registry for another reason.
        std::fs::create_dir_all(state.join("dry-run-registry")).unwrap();
        std::fs::write(state.join("dry-run-registry/b.com"), "clientHold\n").unwrap();

        let bin = with_command(base_bin(&db, &sink), &epp_hold_script())
            .with_env("EPP_HOLD_STATE_DIR", state.to_str().unwrap())
            .with_env("EPP_HOLD_LOG", log.to_str().unwrap())
            .with_env("EPP_HOLD_DRY_RUN", "1");
        suspend_then_release(&bin, "DNA-1", "a@example.com", "a.com");
        suspend_then_release(&bin, "DNA-2", "b@example.com", "b.com");
        sweep(&bin);

        let all = events(&bin, false);
        assert_eq!(all.len(), 6);
        for e in &all {
            assert_eq!(e["Delivered"], true, "{e}");
            assert_eq!(e["Attempts"], 1, "{e}");
        }
        // a.com: hold on, then off; b.com: held by someone else, left alone.
        assert_eq!(
            epp_calls(&log),
            [call("a.com", "add"), call("a.com", "rem")]
        );
        assert!(registry_statuses(&state, "a.com").is_empty());
        assert_eq!(registry_statuses(&state, "b.com"), ["clientHold"]);

        // A second delivery of each event (in order, after all were handled)
        // changes nothing: the hook deduplicates by id.
        for e in &all {
            let out = run_epp_hold(&state, &log, &payload(e));
            assert!(out.status.success(), "{out:?}");
        }
        assert_eq!(
            epp_calls(&log).len(),
            2,
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(registry_statuses(&state, "a.com").is_empty());
        assert_eq!(registry_statuses(&state, "b.com"), ["clientHold"]);

        // The same event twice in a row: one hold, then one removal.
        let fresh = |e: &Value| {
            let mut e = payload(e);
            e["id"] = Value::String(uuid::Uuid::new_v4().to_string());
            e
        };
        let suspended = fresh(&all[0]);
        let released = fresh(&all[2]);
        assert_eq!(suspended["type"], "domain_suspended");
        assert_eq!(released["type"], "domain_unsuspended");
        for _ in 0..2 {
            assert!(run_epp_hold(&state, &log, &suspended).status.success());
        }
        assert_eq!(registry_statuses(&state, "a.com"), ["clientHold"]);
        for _ in 0..2 {
            assert!(run_epp_hold(&state, &log, &released).status.success());
        }
        assert!(registry_statuses(&state, "a.com").is_empty());
        assert_eq!(
            epp_calls(&log)[2..],
            [call("a.com", "add"), call("a.com", "rem")]
        );
        // Two different suspensions of a held domain (the hook's state lost
        // the event ids, say): still one hold, and one release removes it.
        let (s1, s2, r1) = (fresh(&all[0]), fresh(&all[0]), fresh(&all[2]));
        for e in [&s1, &s2, &r1] {
            assert!(run_epp_hold(&state, &log, e).status.success());
        }
        assert!(registry_statuses(&state, "a.com").is_empty());
        assert_eq!(
            epp_calls(&log)[4..],
            [call("a.com", "add"), call("a.com", "rem")]
        );

        // A run that recorded its intent but died before the EPP call: the
        // retry adds the hold and a release still removes it.
        std::fs::write(state.join("adding/a.com@clientHold"), "").unwrap();
        assert!(run_epp_hold(&state, &log, &fresh(&all[0])).status.success());
        assert_eq!(registry_statuses(&state, "a.com"), ["clientHold"]);
        assert!(run_epp_hold(&state, &log, &fresh(&all[2])).status.success());
        assert!(registry_statuses(&state, "a.com").is_empty());
        // The same after the EPP call succeeded: the hold found is ours.
        std::fs::write(state.join("adding/a.com@clientHold"), "").unwrap();
        std::fs::write(state.join("dry-run-registry/a.com"), "clientHold\n").unwrap();
        let calls = epp_calls(&log).len();
        assert!(run_epp_hold(&state, &log, &fresh(&all[0])).status.success());
        assert_eq!(epp_calls(&log).len(), calls, "no second add");
        assert!(state.join("added/a.com@clientHold").exists());
        assert!(run_epp_hold(&state, &log, &fresh(&all[2])).status.success());
        assert!(registry_statuses(&state, "a.com").is_empty());

        // Not an event: a non-zero exit, so contact-verifier retries.
        let out = run_epp_hold(&state, &log, &Value::String("garbage".into()));
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("epp-hold"));
        // Other events need nothing.
        let validated = payload(&all[1]);
        assert_eq!(validated["type"], "contact_validated");
        let calls = epp_calls(&log).len();
        assert!(run_epp_hold(&state, &log, &validated).status.success());
        assert_eq!(epp_calls(&log).len(), calls);
        sink.stop().await;
        db.cleanup().await;
    }
);

/// Without the dry run and with the placeholders not replaced, the hook
/// fails (so events wait) rather than pretending the registry was updated.
#[test]
fn epp_hold_example_fails_until_its_placeholders_are_replaced() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let event = serde_json::json!({
        "id": "3f1b8a52-8c57-4a0e-9a53-0d5b2f6f7c11",
        "type": "domain_suspended",
        "at": "2026-06-01T09:00:00Z",
        "contactEmail": "a@example.com",
        "externalIds": ["DNA-1"],
        "domains": ["a.com"],
        "reason": "restored name"
    });
    let mut child = std::process::Command::new(epp_hold_script())
        .env("EPP_HOLD_STATE_DIR", dir.path())
        .env("EPP_HOLD_DRY_RUN", "0")
        .env_remove("EPP_HOLD_LOG")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(event.to_string().as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("placeholder"), "{stderr}");
    assert!(!dir.path().join("added/a.com@clientHold").exists());
}
