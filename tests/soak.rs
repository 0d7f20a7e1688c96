//! Soak under faults: `run` daemons of the real binary (and now and then a
//! one-shot `sweep`) mail one relay from one database while a seeded random
//! schedule kills them (-9 and SIGTERM), takes the relay down, slows its
//! final dot and makes the database unavailable. Afterwards every address
//! has its email, the repeats are at most the sends in flight at the kills
//! -9, every link confirms and no claim is held. SQLite and Postgres.
//! `CV_SOAK_SECS`, `CV_SOAK_SEED`: see docs/soak.md.

mod common;
mod sending;

use std::collections::{BTreeMap, VecDeque};
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use contact_verifier::clock::Clock;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::app::{settings_for, token_of, verifier};
use common::smtp::{Fault, ReceivedMail, SmtpSink, TlsMode};
use common::{Backend, Bin, DbOutage, TestDb};

/// `smtp.max_connections` of every worker (as [`sending::bin`] sets it):
/// the most emails one process can have handed to the relay without their
/// outcome recorded, so the most one kill -9 can make the relay get again.
const IN_FLIGHT: usize = 4;
/// `schedule.claim_lease_secs` of the workers: the least the configuration
/// accepts with `smtp.timeout_secs` 2 and `smtp.data_timeout_secs` 10, so
/// that database outages and slow sends outlast it.
const LEASE_SECS: u64 = 12;
/// Longest slow final dot: well inside `smtp.data_timeout_secs` (10), so
/// that a slow relay is answered, never given up on (a relay answering
/// after the data timeout is a documented repeat, not a fault tested here).
const SLOWEST_DOT_MS: u64 = 3_000;
/// The relay's usual answer to the final dot: a real relay takes a moment,
/// and a kill then finds sends in flight.
const USUAL_DOT: Duration = Duration::from_millis(100);
const SEED: u64 = 20_260_601;
const SECS: u64 = 75;

/// What `CV_SOAK_*` ask for.
#[derive(Debug, Clone, Copy)]
struct Params {
    seed: u64,
    chaos: Duration,
    contacts: usize,
    workers: usize,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

impl Params {
    fn from_env() -> Params {
        let secs: u64 = env_or("CV_SOAK_SECS", SECS);
        Params {
            seed: env_or("CV_SOAK_SEED", SEED),
            chaos: Duration::from_secs(secs),
            // Work keeps arriving through the faults (3,000 addresses, 10
            // a second in longer runs: about what gets through them), so
            // that they meet emails in flight.
            contacts: env_or("CV_SOAK_CONTACTS", (10 * secs as usize).max(3_000)),
            workers: env_or("CV_SOAK_WORKERS", 3),
        }
    }
}

/// The workers' configuration: [`sending::bin`] (commands 2 s, 4
/// connections, retries after 1 s then 2 s), the final dot 10 s, the lease
/// 12 s, a sweep every 2 s, no HTTP, JSON logs at info.
fn worker_bin(db: &TestDb, sink: &SmtpSink) -> Bin {
    sending::bin(db, sink)
        .with_env("CONTACT_VERIFIER__SMTP__DATA_TIMEOUT_SECS", "10")
        .with_env(
            "CONTACT_VERIFIER__SCHEDULE__CLAIM_LEASE_SECS",
            &LEASE_SECS.to_string(),
        )
        .with_env("CONTACT_VERIFIER__SCHEDULE__SWEEP", "*/2 * * * * *")
        .with_env("CONTACT_VERIFIER__HTTP__ENABLED", "false")
        .with_env("CONTACT_VERIFIER__LOG__FORMAT", "json")
        .with_env("CONTACT_VERIFIER__LOG__LEVEL", "info")
        .with_env("CONTACT_VERIFIER__DATABASE__ACQUIRE_TIMEOUT_SECS", "2")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Daemon,
    Sweep,
}

/// One worker: a daemon started again after each stop, or a one-shot sweep.
struct Proc {
    name: String,
    kind: Kind,
    log: PathBuf,
    child: Option<Child>,
    /// SIGTERM sent: finishing what it has in flight.
    stopping: bool,
    /// When its process started.
    since: Instant,
    started_at: DateTime<Utc>,
}

/// The workers, and how often each fault hit them.
struct Fleet {
    bin: Bin,
    logs: PathBuf,
    procs: Vec<Proc>,
    t0: Instant,
    kills: usize,
    /// Each process killed -9: when it started and when it was killed.
    killed: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    sigterms: usize,
    sweeps: usize,
    unavailable_exits: usize,
}

impl Fleet {
    fn new(bin: Bin, logs: PathBuf, daemons: usize) -> Fleet {
        std::fs::create_dir_all(&logs).unwrap();
        let mut fleet = Fleet {
            bin,
            logs,
            procs: Vec::new(),
            t0: Instant::now(),
            kills: 0,
            killed: Vec::new(),
            sigterms: 0,
            sweeps: 0,
            unavailable_exits: 0,
        };
        for i in 0..daemons {
            fleet.add(format!("w{i}"), Kind::Daemon);
        }
        fleet
    }

    fn add(&mut self, name: String, kind: Kind) {
        let log = self.logs.join(format!("{name}.log"));
        self.procs.push(Proc {
            name,
            kind,
            log,
            child: None,
            stopping: false,
            since: Instant::now(),
            started_at: Utc::now(),
        });
        self.start(self.procs.len() - 1);
    }

    fn start(&mut self, i: usize) {
        let t = self.t0.elapsed().as_secs_f64();
        let p = &mut self.procs[i];
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p.log)
            .unwrap();
        let args: &[&str] = match p.kind {
            Kind::Daemon => &["run"],
            Kind::Sweep => &["sweep"],
        };
        let mut cmd = self.bin.command(args);
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file.try_clone().unwrap());
        let started_at = Utc::now();
        let child = cmd.spawn().expect("start a worker");
        writeln!(file, "--- soak: started at {t:.1} s, pid {}", child.id()).unwrap();
        p.child = Some(child);
        p.stopping = false;
        p.since = Instant::now();
        p.started_at = started_at;
    }

    fn say(&self, what: String) {
        eprintln!(
            "[{:6.1} s {}] {what}",
            self.t0.elapsed().as_secs_f64(),
            Utc::now().format("%H:%M:%S%.3f")
        );
    }

    fn note(&self, i: usize, what: &str) {
        let t = self.t0.elapsed().as_secs_f64();
        if let Ok(mut f) = OpenOptions::new().append(true).open(&self.procs[i].log) {
            let _ = writeln!(f, "--- soak: {what} at {t:.1} s");
        }
    }

    /// Workers with a process (stopping ones included).
    fn live(&self) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|i| self.procs[*i].child.is_some())
            .collect()
    }

    fn kill_9(&mut self, i: usize) {
        let mut child = self.procs[i].child.take().unwrap();
        child.kill().expect("SIGKILL a worker");
        child.wait().expect("reap a worker");
        self.killed.push((self.procs[i].started_at, Utc::now()));
        self.kills += 1;
        self.note(i, "kill -9");
        self.say(format!("kill -9 {}", self.procs[i].name));
    }

    /// SIGTERM; `chaos`: counted as a fault (not the final stop).
    fn sigterm(&mut self, i: usize, chaos: bool) {
        let pid = self.procs[i].child.as_ref().unwrap().id();
        // SAFETY: a plain kill(2) of our own child, which is not reaped yet.
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM {pid}");
        self.procs[i].stopping = true;
        self.note(i, "SIGTERM");
        if chaos {
            self.sigterms += 1;
            self.say(format!("SIGTERM {}", self.procs[i].name));
        }
    }

    /// Reaps the workers that exited and starts the daemons again (those
    /// that found the database unavailable once it is back). A daemon that
    /// exits on its own, other than for the database as it starts, or a
    /// worker that exits with an error, is an error.
    fn poll(&mut self, db_up: bool) -> Result<(), String> {
        for i in 0..self.procs.len() {
            let p = &mut self.procs[i];
            let Some(child) = p.child.as_mut() else {
                continue;
            };
            let Some(status) = child.try_wait().unwrap() else {
                continue;
            };
            p.child = None;
            let code = status.code().unwrap_or(-1);
            let (name, kind, stopping) = (p.name.clone(), p.kind, p.stopping);
            // A daemon gives up on an unavailable database only as it starts.
            let starting = p.since.elapsed() < Duration::from_secs(20);
            self.note(i, &format!("exited {status}"));
            match code {
                0 if stopping || kind == Kind::Sweep => {}
                69 if starting || kind == Kind::Sweep => {
                    // Started (or swept) while the database was away; a
                    // daemon starts again once it is back.
                    self.unavailable_exits += 1;
                    self.say(format!("{name} exited 69 (database unavailable)"));
                }
                _ => return Err(format!("{name} exited {status} (stopping: {stopping})")),
            }
            if kind == Kind::Daemon && stopping {
                self.say(format!("{name} stopped ({status}); starting it again"));
                self.start(i);
            }
        }
        if db_up {
            for i in 0..self.procs.len() {
                let p = &self.procs[i];
                if p.kind == Kind::Daemon && p.child.is_none() {
                    self.start(i);
                }
            }
        }
        Ok(())
    }

    /// Stops every worker with SIGTERM and waits for each to exit 0.
    async fn stop_all(&mut self) -> Result<Duration, String> {
        let started = Instant::now();
        for i in self.live() {
            if !self.procs[i].stopping {
                self.sigterm(i, false);
            }
        }
        while !self.live().is_empty() {
            for i in self.live() {
                let p = &mut self.procs[i];
                if let Some(status) = p.child.as_mut().unwrap().try_wait().unwrap() {
                    p.child = None;
                    self.note(i, &format!("exited {status}"));
                    if !status.success() {
                        return Err(format!("{} stopped with {status}", self.procs[i].name));
                    }
                }
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err("workers did not stop within 120 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(started.elapsed())
    }

    /// How many log lines of all workers have `"event":"name"`.
    fn events(&self, name: &str) -> usize {
        let needle = format!("\"event\":\"{name}\"");
        self.procs
            .iter()
            .map(|p| {
                std::fs::read_to_string(&p.log)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains(&needle))
                    .count()
            })
            .sum()
    }

    /// The log lines (of any worker) that contain one of `needles`.
    fn grep(&self, needles: &[String]) -> String {
        let mut out = String::new();
        for p in &self.procs {
            for l in std::fs::read_to_string(&p.log).unwrap_or_default().lines() {
                if needles.iter().any(|n| l.contains(n.as_str())) {
                    out.push_str(&format!("{}: {l}\n", p.name));
                }
            }
        }
        out
    }

    /// The last `n` lines of each daemon's log.
    fn tails(&self, n: usize) -> String {
        let mut out = String::new();
        for p in self.procs.iter().filter(|p| p.kind == Kind::Daemon) {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "===== {} ({}) last {n} lines\n",
                p.name,
                p.log.display()
            ));
            for l in &lines[lines.len().saturating_sub(n)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Copies the logs out of the test's temporary directory (removed when
    /// the test ends) and returns where.
    fn keep_logs(&self, tag: &str) -> PathBuf {
        let to = std::env::temp_dir().join(format!("cv-soak-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&to).unwrap();
        for p in &self.procs {
            let _ = std::fs::copy(&p.log, to.join(p.log.file_name().unwrap()));
        }
        to
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// JSON Lines for the contacts `DNA-i` (`ri@example.com`, domain `di.com`)
/// of `range`, as [`common::numbered_contacts`] writes them.
fn contacts(range: std::ops::Range<usize>) -> String {
    range
        .map(|i| format!("{{\"external_id\":\"DNA-{i}\",\"email\":\"r{i}@example.com\",\"domains\":[\"d{i}.com\"]}}\n"))
        .collect()
}

/// `contact import` of `range` through the binary, off the test's threads.
async fn import(bin: &Bin, range: std::ops::Range<usize>) {
    let path = bin.cwd.join(format!("wave-{}.jsonl", range.start));
    let n = range.len();
    std::fs::write(&path, contacts(range)).unwrap();
    let mut cmd =
        tokio::process::Command::from(bin.command(&["contact", "import", path.to_str().unwrap()]));
    let out = cmd.output().await.expect("run contact import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "import failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["imported"], n, "{report}");
}

/// Rows of `sql` (one text column and one optional timestamp) on either backend.
async fn rows(db: &TestDb, sql: &str) -> Vec<(String, Option<DateTime<Utc>>)> {
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
    }
}

/// Addresses not done yet: not `Pending` (no email recorded as accepted),
/// or still claimed (also by a killed process whose lease has run out).
const UNSETTLED: &str = "SELECT email_key, claim_until FROM verifications \
     WHERE status <> 'Pending' OR claim_owner IS NOT NULL";
const CLAIMED: &str =
    "SELECT email_key, claim_until FROM verifications WHERE claim_owner IS NOT NULL";
const ADDRESSES: &str = "SELECT email_key, claim_until FROM verifications";
const VALIDATED: &str =
    "SELECT email_key, claim_until FROM verifications WHERE status = 'Validated'";

/// For a failure: the emails and records of up to five addresses, and the
/// log lines (of whichever workers) that name those records.
async fn explain<'a>(
    db: &TestDb,
    sink: &SmtpSink,
    fleet: &Fleet,
    addresses: impl Iterator<Item = &'a String>,
) -> String {
    let notes = sending::notes(db).await;
    let mails = sink.messages();
    let mut out = String::new();
    for a in addresses.take(5) {
        let ns: Vec<&sending::Note> = notes.iter().filter(|n| &n.email_key == a).collect();
        let emails = mails.iter().filter(|m| m.to.contains(a)).count();
        out.push_str(&format!("{a}: {emails} emails; records {ns:#?}\n"));
        let ids: Vec<String> = ns.iter().map(|n| n.id.clone()).collect();
        out.push_str(&fleet.grep(&ids));
    }
    out
}

/// Puts each repeat down to a kill -9: a repeat is an email the relay
/// took from a process that died before recording it, so the address has
/// an attempt cut short (left `Started` or closed `Interrupted`) that was
/// claimed while that process lived, and each kill accounts for at most
/// `per_kill` of them. `repeats`: per address, how many emails it got
/// beyond one and when each of its cut attempts was claimed; `killed`: each
/// killed process's life. A flow from the repeats through their cut
/// attempts to the kills whose process was alive at the claim; returns how
/// many repeats it traces, and how many kills cut sends in flight.
fn trace_repeats(
    repeats: &[(usize, Vec<DateTime<Utc>>)],
    killed: &[(DateTime<Utc>, DateTime<Utc>)],
    per_kill: usize,
) -> (usize, usize) {
    // Nodes: source, repeats, cut attempts, kills, sink. Edges come in
    // pairs (an edge, then its reverse), so `e ^ 1` is the other of a pair.
    let attempts: Vec<(usize, DateTime<Utc>)> = repeats
        .iter()
        .enumerate()
        .flat_map(|(r, (_, at))| at.iter().map(move |t| (r, *t)))
        .collect();
    let (source, first_attempt) = (0, 1 + repeats.len());
    let first_kill = first_attempt + attempts.len();
    let sink = first_kill + killed.len();
    let mut to: Vec<usize> = Vec::new();
    let mut room: Vec<usize> = Vec::new();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); sink + 1];
    let mut edge = |u: usize, v: usize, cap: usize| -> usize {
        let e = to.len();
        out[u].push(e);
        to.push(v);
        room.push(cap);
        out[v].push(e + 1);
        to.push(u);
        room.push(0);
        e
    };
    for (r, (extra, _)) in repeats.iter().enumerate() {
        edge(source, 1 + r, *extra);
    }
    for (a, (r, claimed)) in attempts.iter().enumerate() {
        edge(1 + r, first_attempt + a, 1);
        for (k, (born, died)) in killed.iter().enumerate() {
            // Stored times are whole seconds, rounded down.
            if claimed.timestamp() >= born.timestamp() && claimed <= died {
                edge(first_attempt + a, first_kill + k, 1);
            }
        }
    }
    let kill_edges: Vec<usize> = (0..killed.len())
        .map(|k| edge(first_kill + k, sink, per_kill))
        .collect();
    let mut flow = 0;
    loop {
        // Breadth-first search for a path with room left.
        let mut via = vec![usize::MAX; sink + 1];
        let mut queue = VecDeque::from([source]);
        while let Some(u) = queue.pop_front() {
            for &e in &out[u] {
                let v = to[e];
                if room[e] > 0 && v != source && via[v] == usize::MAX {
                    via[v] = e;
                    queue.push_back(v);
                }
            }
        }
        if via[sink] == usize::MAX {
            break;
        }
        let mut v = sink;
        while v != source {
            let e = via[v];
            room[e] -= 1;
            room[e ^ 1] += 1;
            v = to[e ^ 1];
        }
        flow += 1;
    }
    let kills_used = kill_edges.iter().filter(|e| room[**e] < per_kill).count();
    (flow, kills_used)
}

/// The faults of the schedule.
#[derive(Default)]
struct Chaos {
    fault_until: Option<Instant>,
    dot_until: Option<Instant>,
    outage: Option<(DbOutage, Instant)>,
    outages: usize,
    relay_faults: usize,
    slow_dots: usize,
}

impl Chaos {
    /// Ends the faults whose time is up (all with `all`).
    async fn expire(&mut self, sink: &SmtpSink, fleet: &Fleet, all: bool) {
        let usual = if all { Duration::ZERO } else { USUAL_DOT };
        let now = Instant::now();
        if self.fault_until.is_some_and(|t| all || t <= now) {
            sink.set_fault(Fault::None);
            self.fault_until = None;
            fleet.say("relay fault over".into());
        }
        if self.dot_until.is_some_and(|t| all || t <= now) {
            sink.set_delay(usual);
            self.dot_until = None;
            fleet.say("final dot fast again".into());
        }
        if self.outage.as_ref().is_some_and(|(_, t)| all || *t <= now) {
            let (outage, _) = self.outage.take().unwrap();
            outage.end().await;
            fleet.say("database back".into());
        }
    }
}

async fn soak(db: TestDb) {
    let _machine = sending::MACHINE.write().await;
    let p = Params::from_env();
    let started = Instant::now();
    eprintln!(
        "soak {:?}: seed {} (replay with CV_SOAK_SEED={}), {} s of faults, {} addresses, \
         {} daemons",
        db.backend,
        p.seed,
        p.seed,
        p.chaos.as_secs(),
        p.contacts,
        p.workers
    );
    let mut rng = StdRng::seed_from_u64(p.seed);
    let sink = SmtpSink::start(TlsMode::None).await;
    sink.set_delay(USUAL_DOT);
    let importer = sending::bin(&db, &sink);

    // A third of the addresses at once, the rest in waves every 5 s over
    // the first 80% of the faults.
    let first = p.contacts / 3;
    import(&importer, 0..first).await;
    let mut waves: VecDeque<(Duration, std::ops::Range<usize>)> = VecDeque::new();
    let rounds = (p.chaos.as_secs() * 4 / 5 / 5).max(1) as usize;
    let per = (p.contacts - first).div_ceil(rounds);
    for k in 0..rounds {
        let range = (first + k * per).min(p.contacts)..(first + (k + 1) * per).min(p.contacts);
        if !range.is_empty() {
            waves.push_back((Duration::from_secs(5 * (k as u64 + 1)), range));
        }
    }

    let mut fleet = Fleet::new(
        worker_bin(&db, &sink),
        db.dir.path().join("logs"),
        p.workers,
    );
    let mut chaos = Chaos::default();
    let mut next_event = Instant::now() + Duration::from_millis(rng.gen_range(1_000..=4_000));
    let mut next_progress = Instant::now() + Duration::from_secs(10);
    let mut failure: Option<String> = None;

    while fleet.t0.elapsed() < p.chaos && failure.is_none() {
        chaos.expire(&sink, &fleet, false).await;
        if let Err(e) = fleet.poll(chaos.outage.is_none()) {
            failure = Some(e);
            break;
        }
        // The importer needs the database: a wave due in an outage waits.
        if chaos.outage.is_none()
            && waves
                .front()
                .is_some_and(|(at, _)| fleet.t0.elapsed() >= *at)
        {
            let (_, range) = waves.pop_front().unwrap();
            fleet.say(format!("import {range:?}"));
            import(&importer, range).await;
        }
        if Instant::now() >= next_progress {
            fleet.say(format!("{} emails so far", sink.count()));
            next_progress += Duration::from_secs(10);
        }
        if Instant::now() < next_event {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        // The same draws for every event, whatever the workers are doing,
        // so a seed replays the same schedule.
        let (what, pick, a, b) = (
            rng.gen_range(0..11u32),
            rng.gen::<u64>() as usize,
            rng.gen::<u64>(),
            rng.gen::<u64>(),
        );
        next_event = Instant::now() + Duration::from_millis(1_000 + a % 3_001);
        // kill -9 3, SIGTERM 2, relay fault 2, outage 2, slow dot 1, sweep 1.
        match what {
            0..=2 => {
                let live = fleet.live();
                if !live.is_empty() {
                    fleet.kill_9(live[pick % live.len()]);
                }
            }
            3..=4 => {
                let running: Vec<usize> = fleet
                    .live()
                    .into_iter()
                    .filter(|i| !fleet.procs[*i].stopping)
                    .collect();
                if !running.is_empty() {
                    fleet.sigterm(running[pick % running.len()], true);
                }
            }
            5..=6 => {
                let fault = [
                    Fault::Transient,
                    Fault::RefuseConnections,
                    Fault::ServiceUnavailable,
                    Fault::DropAfterData,
                ][pick % 4];
                let ms = 2_000 + b % 4_001;
                sink.set_fault(fault);
                chaos.fault_until = Some(Instant::now() + Duration::from_millis(ms));
                chaos.relay_faults += 1;
                fleet.say(format!("relay fault {fault:?} for {ms} ms"));
            }
            7..=8 => {
                // Half short, half longer than the lease.
                let ms = if pick % 2 == 0 {
                    2_000 + b % 4_001
                } else {
                    LEASE_SECS * 1_000 + 1_000 + b % 5_001
                };
                if chaos.outage.is_none() {
                    let outage = DbOutage::begin(&db).await;
                    chaos.outage = Some((outage, Instant::now() + Duration::from_millis(ms)));
                    chaos.outages += 1;
                    fleet.say(format!("database unavailable for {ms} ms"));
                }
            }
            9 => {
                let delay = 500 + pick as u64 % (SLOWEST_DOT_MS - 499);
                let ms = 4_000 + b % 6_001;
                sink.set_delay(Duration::from_millis(delay));
                chaos.dot_until = Some(Instant::now() + Duration::from_millis(ms));
                chaos.slow_dots += 1;
                fleet.say(format!("final dot answered after {delay} ms, for {ms} ms"));
            }
            _ => {
                fleet.sweeps += 1;
                let name = format!("s{}", fleet.sweeps);
                fleet.say(format!("one-shot sweep {name}"));
                fleet.add(name, Kind::Sweep);
            }
        }
    }
    let chaos_took = fleet.t0.elapsed();

    // Calm: no fault, the remaining waves, every daemon running; until every
    // address has an accepted email on record and no claim is left.
    chaos.expire(&sink, &fleet, true).await;
    sink.set_delay(Duration::ZERO);
    fleet.say(format!(
        "faults over; {} emails so far; draining",
        sink.count()
    ));
    let drain = Instant::now();
    while failure.is_none() {
        if let Err(e) = fleet.poll(true) {
            failure = Some(e);
            break;
        }
        if let Some((_, range)) = waves.pop_front() {
            import(&importer, range).await;
            continue;
        }
        let unsettled = rows(&db, UNSETTLED).await;
        if unsettled.is_empty() && sink.count() >= p.contacts {
            break;
        }
        // Calm, the daemons send about 100 emails a second here; a long run
        // can end with a large backlog.
        let limit = Duration::from_secs(240 + p.contacts as u64 / 25);
        if drain.elapsed() > limit {
            failure = Some(format!(
                "not settled {limit:?} after the faults: {} addresses, e.g. {:?}\n{}",
                unsettled.len(),
                &unsettled[..unsettled.len().min(5)],
                explain(&db, &sink, &fleet, unsettled.iter().map(|(a, _)| a)).await
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain_took = drain.elapsed();
    if failure.is_none() {
        if let Err(e) = fleet.stop_all().await {
            failure = Some(e);
        }
    }
    // The workers are stopped (or killed by the drop on a failure).
    let tag = format!("{:?}-{}", db.backend, p.seed).to_lowercase();
    let fail = |fleet: &Fleet, why: String| -> ! {
        let kept = fleet.keep_logs(&tag);
        panic!(
            "soak {:?}, seed {}: {why}\n{}\nworker logs kept in {}",
            db.backend,
            p.seed,
            fleet.tails(40),
            kept.display()
        );
    };
    if let Some(why) = failure {
        fail(&fleet, why);
    }

    // Nothing lost.
    let mails = sink.messages();
    let mut by_address: BTreeMap<String, Vec<&ReceivedMail>> = BTreeMap::new();
    for m in &mails {
        assert_eq!(m.to.len(), 1, "one recipient per message: {:?}", m.to);
        by_address.entry(m.to[0].clone()).or_default().push(m);
    }
    let want = sending::addresses(p.contacts);
    let missing: Vec<&String> = want
        .iter()
        .filter(|a| !by_address.contains_key(*a))
        .collect();
    if !missing.is_empty() {
        fail(
            &fleet,
            format!(
                "{} addresses got no email, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            ),
        );
    }
    if by_address.len() != p.contacts {
        fail(
            &fleet,
            format!(
                "emails to {} recipients, not {}",
                by_address.len(),
                p.contacts
            ),
        );
    }
    if rows(&db, ADDRESSES).await.len() != p.contacts {
        fail(&fleet, "not every address is in the database".into());
    }

    // Repeats. Only the sends in flight at a kill -9 may be repeated: a
    // connection takes its next message only once the outcome of its last
    // one is recorded, so each kill leaves at most IN_FLIGHT emails the
    // relay took without a record, which a later sweep sends again.
    // Nothing else may repeat:
    // - SIGTERM finishes and records the sends in flight (the outages here
    //   last at most LEASE + 6 s, well inside the 63 s the final write is
    //   retried and the 73 s stop grace), and gives back the rest;
    // - an outage longer than the lease leaves the claims of live senders
    //   theirs: they beat, and others wait 15 s of database before judging;
    // - a Postgres session terminated around a COMMIT can leave the client
    //   unsure whether a claim or an outcome was written: a claim written
    //   but thought lost only keeps the address for its own (live) process,
    //   which retakes it after the lease, having sent nothing; an outcome
    //   written but thought lost is written again, and finds the claim
    //   released. Neither sends an email twice;
    // - DropAfterData: the relay read the message and closed without a
    //   reply. The sender records a failure and retries, as it must: a real
    //   relay that did queue it would deliver twice, a case no SMTP client
    //   can tell apart (RFC 1047); the sink, like a relay that dropped it,
    //   does not record it, so the retry is the only email it counts.
    let repeated: Vec<(&String, usize)> = by_address
        .iter()
        .filter(|(_, m)| m.len() > 1)
        .map(|(a, m)| (a, m.len()))
        .collect();
    let extra: usize = repeated.iter().map(|(_, n)| n - 1).sum();
    let allowed = fleet.kills * IN_FLIGHT;

    // The records: each address has exactly one accepted attempt on record
    // (a second would be an email sent twice with both known), each repeat
    // follows an attempt cut short (left Started, or closed Interrupted), and
    // no address has more than one attempt still Started.
    let notes = sending::notes(&db).await;
    let mut of: BTreeMap<&str, Vec<&sending::Note>> = BTreeMap::new();
    for n in &notes {
        of.entry(n.email_key.as_str()).or_default().push(n);
    }
    let mut bad_records = Vec::new();
    let mut interrupted = 0;
    let mut started_left = 0;
    for a in &want {
        let ns = of.get(a.as_str()).cloned().unwrap_or_default();
        let succeeded = ns.iter().filter(|n| n.status == "Succeeded").count();
        let started = ns.iter().filter(|n| n.status == "Started").count();
        let cut = ns
            .iter()
            .filter(|n| n.status == "Failed" && n.error_code.as_deref() == Some("Interrupted"))
            .count();
        interrupted += cut;
        started_left += started;
        let emails = by_address.get(a).map_or(0, Vec::len);
        if succeeded != 1 || started > 1 || emails > 1 + started + cut {
            bad_records.push((a.clone(), emails, ns));
        }
    }

    let cut_claims: Vec<(usize, Vec<DateTime<Utc>>)> = repeated
        .iter()
        .map(|(a, n)| {
            let at = of
                .get(a.as_str())
                .map(|ns| {
                    ns.iter()
                        .filter(|n| {
                            n.status == "Started" || n.error_code.as_deref() == Some("Interrupted")
                        })
                        .map(|n| n.created_at)
                        .collect()
                })
                .unwrap_or_default();
            (n - 1, at)
        })
        .collect();
    let (traced, kills_cutting) = trace_repeats(&cut_claims, &fleet.killed, IN_FLIGHT);

    let summary = format!(
        "soak summary: backend={:?} seed={} faults={:.0}s drain={:.0}s total={:.0}s \
         addresses={} emails={} kills={} sigterms={} outages={} relay_faults={} slow_dots={} \
         sweeps={} repeated_addresses={} extra_emails={} max_allowed={} \
         kills_cutting_sends={} interrupted={} started_left={} exits_unavailable={}",
        db.backend,
        p.seed,
        chaos_took.as_secs_f64(),
        drain_took.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        p.contacts,
        mails.len(),
        fleet.kills,
        fleet.sigterms,
        chaos.outages,
        chaos.relay_faults,
        chaos.slow_dots,
        fleet.sweeps,
        repeated.len(),
        extra,
        allowed,
        kills_cutting,
        interrupted,
        started_left,
        fleet.unavailable_exits,
    );
    eprintln!("{summary}");
    eprintln!(
        "events: state_write_retry={} state_write_recovered={} sweep_failed={} \
         sweep_waiting_for_owners={} attempts_interrupted={} email_failed={}; repeated: {:?}",
        fleet.events("state_write_retry"),
        fleet.events("state_write_recovered"),
        fleet.events("sweep_failed"),
        fleet.events("sweep_waiting_for_owners"),
        fleet.events("attempts_interrupted"),
        fleet.events("email_failed"),
        repeated
    );
    if !bad_records.is_empty() {
        fail(
            &fleet,
            format!(
                "{} addresses whose records do not match their emails (one Succeeded, at most \
                 one Started, a repeat only after a cut attempt):\n{}\n{summary}",
                bad_records.len(),
                explain(&db, &sink, &fleet, bad_records.iter().map(|(a, _, _)| a)).await
            ),
        );
    }
    if extra > allowed {
        fail(
            &fleet,
            format!(
                "{extra} repeated emails ({} addresses) is more than the {allowed} sends in \
                 flight at {} kills -9: {repeated:?}\n{}\n{summary}",
                repeated.len(),
                fleet.kills,
                explain(&db, &sink, &fleet, repeated.iter().map(|(a, _)| *a)).await
            ),
        );
    }
    if traced < extra {
        fail(
            &fleet,
            format!(
                "only {traced} of {extra} repeated emails are the sends in flight of a process \
                 killed -9 (at most {IN_FLIGHT} a kill, claimed while it lived; kills: {:?}):\n\
                 {}\n{summary}",
                fleet.killed,
                explain(&db, &sink, &fleet, repeated.iter().map(|(a, _)| *a)).await
            ),
        );
    }
    let abandoned = fleet.grep(&["\"clean\":false".into()]);
    if !abandoned.is_empty() {
        fail(
            &fleet,
            format!("a stop abandoned emails in flight:\n{abandoned}"),
        );
    }

    // No claim held once the workers stopped.
    let now = Utc::now();
    let held: Vec<_> = rows(&db, CLAIMED)
        .await
        .into_iter()
        .filter(|(_, until)| until.is_some_and(|u| u > now))
        .collect();
    if !held.is_empty() {
        fail(
            &fleet,
            format!("{} claims still held after the stop: {held:?}", held.len()),
        );
    }
    // What the CLI shows for the repeated addresses.
    for (a, _) in repeated.iter().take(10) {
        let listed = importer
            .run(&["contact", "notifications", "--email", a])
            .ok();
        let started = listed["operations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["status"] == "Started")
            .count();
        assert!(started <= 1, "{a}: {listed}");
    }

    // Every link works: the last email's link confirms (for an address
    // mailed more than once, one of its links).
    let v = verifier(&settings_for(&db, &sink), Clock::system()).await;
    let confirming = Instant::now();
    let results: Vec<(String, Result<bool, String>)> = futures::stream::iter(by_address.iter())
        .map(|(a, ms)| {
            let v = v.clone();
            async move {
                let last = token_of(ms.last().unwrap());
                // Ok(true): the last link; Ok(false): an earlier one.
                let mut result = v
                    .confirm(&last)
                    .await
                    .map(|_| true)
                    .map_err(|e| e.to_string());
                if result.is_err() && ms.len() > 1 {
                    for m in ms.iter().rev().skip(1) {
                        if v.confirm(&token_of(m)).await.is_ok() {
                            result = Ok(false);
                            break;
                        }
                    }
                }
                (a.clone(), result)
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let broken: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
    if !broken.is_empty() {
        fail(
            &fleet,
            format!(
                "{} links do not confirm, e.g. {:?}",
                broken.len(),
                &broken[..broken.len().min(5)]
            ),
        );
    }
    let validated = rows(&db, VALIDATED).await.len();
    assert_eq!(validated, p.contacts, "every address confirmed");
    let by_earlier = results.iter().filter(|(_, r)| *r == Ok(false)).count();
    eprintln!(
        "{:?}: {} links confirmed ({by_earlier} by an earlier email than the last) in {:.1} s; \
         test took {:.0} s",
        db.backend,
        results.len(),
        confirming.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    if std::env::var_os("CV_SOAK_KEEP_LOGS").is_some() {
        eprintln!("worker logs kept in {}", fleet.keep_logs(&tag).display());
    }
    v.store.close().await;
    drop(fleet);
    sink.stop().await;
    db.cleanup().await;
}

both_backends!(
    faults_lose_nothing_and_repeat_only_what_a_kill_cut_short,
    |db: TestDb| soak(db)
);

// The tracing of repeats to kills: a kill accounts for at most its sends
// in flight, and only for attempts claimed while its process lived.
#[test]
fn each_kill_accounts_for_at_most_its_sends_in_flight() {
    let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
    // Two processes: one lived 0..10 s, the other 5..20 s.
    let killed = [(t(0), t(10)), (t(5), t(20))];
    let one = |at: i64| (1, vec![t(at)]);
    // Five repeats claimed at 2 s: only the first process lived then.
    let early: Vec<_> = (0..5).map(|_| one(2)).collect();
    assert_eq!(trace_repeats(&early, &killed, 4), (4, 1));
    // Claimed at 7 s: either process; eight fit, a ninth does not.
    let both: Vec<_> = (0..9).map(|_| one(7)).collect();
    assert_eq!(trace_repeats(&both, &killed, 4), (8, 2));
    // Claimed after every kill: nothing traces.
    assert_eq!(trace_repeats(&[one(30)], &killed, 4), (0, 0));
    // An address mailed three times needs two cut attempts.
    assert_eq!(trace_repeats(&[(2, vec![t(2)])], &killed, 4), (1, 1));
    assert_eq!(trace_repeats(&[(2, vec![t(2), t(12)])], &killed, 4), (2, 2));
}
