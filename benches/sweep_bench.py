#!/usr/bin/env python3
"""The benchmark of import, sweeps, memory and the idle daemon, driven by benches/run.sh.

Runs the release binary as separate processes against a fresh SQLite file and
a fresh Postgres database, with Postfix's smtp-sink as the relay, and measures
in the same run the limits it is compared with: smtp-source against the same
sink, and the raw SQL doing the same inserts and state changes. Prints a table
and the ratios to the targets; writes the figures as JSON under
target/bench-results/. Temporary files go to a mktemp directory under
target/bench-tmp/ and are removed at the end (CV_BENCH_KEEP=1 keeps them).

Environment (all optional):
  CV_BENCH_CONTACTS          contacts generated (default 1000000)
  CV_BENCH_SMTP_CONNECTIONS  smtp.max_connections and smtp-source -s (default 4)
  CV_BENCH_DATABASES         comma-separated: sqlite,postgres (default both)
  CV_TEST_PG_URL             Postgres server (default postgres://postgres@127.0.0.1:5432)
  CV_BENCH_TIMEOUT           seconds any one process may take (default 3600)
  CV_BENCH_KEEP              1: keep the temporary directory (logs, databases)
  CV_BENCH_PG_ANALYZE        0: skip the ANALYZE between the Postgres import and
                             the sweep (default 1, see BENCHMARKS.md: this
                             machine's server runs with autovacuum = off)
  CV_BENCH_BIN               the binary (default target/release/contact-verifier)
"""

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("CV_BENCH_BIN", os.path.join(ROOT, "target/release/contact-verifier"))
N = int(os.environ.get("CV_BENCH_CONTACTS", "1000000"))
CONNS = int(os.environ.get("CV_BENCH_SMTP_CONNECTIONS", "4"))
DATABASES = [d.strip() for d in os.environ.get("CV_BENCH_DATABASES", "sqlite,postgres").split(",") if d.strip()]
PG_ADMIN = os.environ.get("CV_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
TIMEOUT = float(os.environ.get("CV_BENCH_TIMEOUT", "3600"))
KEEP = os.environ.get("CV_BENCH_KEEP") == "1"
PG_ANALYZE = os.environ.get("CV_BENCH_PG_ANALYZE", "1") != "0"
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
GNU_TIME = "/usr/bin/time"
SECRET = "bench-secret-0123456789-0123456789-abcdef"

# Defaults of the configuration the import and sweep use.
KEY_VALIDITY = dt.timedelta(days=60)
REMINDER_DAYS = [3, 7, 14, 30, 45, 55]
SUSPEND_AFTER = dt.timedelta(days=15)

# Targets.
TARGET_SWEEP_RATIO = 1.5
TARGET_IMPORT_RATIO = 3.0
TARGET_NOOP_MS = 50.0
TARGET_PEAK_MIB = 64.0
TARGET_IDLE_MIB = 15.0


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')} load {loadavg()}] {msg}", file=sys.stderr, flush=True)


def ts(t):
    """RFC 3339 as the import file carries it."""
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def sq(t):
    """A timestamp as the SQLite schema stores it (RFC 3339 text, +00:00)."""
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, secs=10):
    end = time.time() + secs
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# ---------------------------------------------------------------- the contacts

KINDS = ("validated", "expired", "reminder", "new")


def kind_of(i):
    # 37 is prime to 100: every 100 consecutive lines hold exactly 92 / 5 / 2 / 1.
    b = (i * 37 + 11) % 100
    return "validated" if b < 92 else "expired" if b < 97 else "reminder" if b < 99 else "new"


def contact(i, now):
    """The line's fields and the timestamps it implies."""
    k = kind_of(i)
    c = {
        "external_id": f"CV-{i:07d}",
        "email": f"registrant{i}@mail{i % 997}.example.com",
        "domain": f"shop-{i}.{('com', 'net', 'org', 'de', 'io')[i % 5]}",
        "kind": k,
    }
    if k == "validated":
        c["issued"] = now - dt.timedelta(days=100 + i % 900)
    elif k == "expired":
        c["issued"] = now - dt.timedelta(days=61 + i % 30)
        c["last"] = c["issued"] + dt.timedelta(days=55)
    elif k == "reminder":
        c["issued"] = now - dt.timedelta(days=4)
        c["last"] = c["issued"]
    return c


def write_import_file(path, now):
    counts = dict.fromkeys(KINDS, 0)
    with open(path, "w") as f:
        for i in range(N):
            c = contact(i, now)
            counts[c["kind"]] += 1
            line = {"external_id": c["external_id"], "email": c["email"], "domains": [c["domain"]]}
            if c["kind"] == "validated":
                line.update(status="Validated", key_issued_at=ts(c["issued"]))
            elif c["kind"] in ("expired", "reminder"):
                line.update(status="Pending", key_issued_at=ts(c["issued"]), last_notification_at=ts(c["last"]))
            f.write(json.dumps(line, separators=(",", ":")) + "\n")
    return counts


# ------------------------------------------------ the raw SQL rows (baseline)


def key_id():
    return uuid.uuid4().hex


def raw_rows(now):
    """The rows the import writes, then the changes the sweep makes, as
    plain tuples (timestamps as datetimes): what the raw SQL baseline writes."""
    imp = {t: [] for t in ("contacts", "verifications", "verification_keys", "domains", "evidence", "events")}
    swp = {"notifications": [], "verification_keys": [], "events": [], "updates": []}
    for i in range(N):
        c = contact(i, now)
        k, ek, email, ext, dom = c["kind"], c["email"].lower(), c["email"], c["external_id"], c["domain"]
        imp["contacts"].append((ext, email, ek, now, now))
        kid = issued = expires = last = validated = due = None
        status = "NotValidated"
        if k == "validated":
            status, validated = "Validated", c["issued"]
        elif k in ("expired", "reminder"):
            status, kid, issued, last = "Pending", key_id(), c["issued"], c["last"]
            expires = issued + KEY_VALIDITY
            due = issued + dt.timedelta(days=REMINDER_DAYS[0])
            imp["verification_keys"].append((kid, ek, issued, expires))
        else:
            due = now
        # email_key, email, status, key_id, key_issued_at, key_expires_at,
        # last_notification_at, reminder_day_covered, expiry_notice_owed,
        # failures, retry_at, claim_owner, claim_until, validated_at, due_at,
        # version, created_at, updated_at
        imp["verifications"].append((ek, email, status, kid, issued, expires, last, 0, False, 0, None, None, None, validated, due, 0, now, now))
        waiting = k != "validated"
        imp["domains"].append((dom, ext, now, now, now if waiting else None, now + SUSPEND_AFTER if waiting else None, False, None))
        if k == "validated":
            ids, doms = json.dumps([ext]), json.dumps([dom])
            imp["evidence"].append((str(uuid.uuid4()), ek, email, ids, doms, now, "import", None, None, None, None, None, None))
            eid = str(uuid.uuid4())
            payload = json.dumps({"id": eid, "type": "contact_validated", "at": ts(now), "contactEmail": email, "externalIds": [ext], "domains": [dom], "reason": "imported as Validated"})
            imp["events"].append((eid, "contact_validated", now, payload, True, now, 0))
            continue
        # The sweep: one email per due address and its state change.
        nid = str(uuid.uuid4())
        if k == "new":
            nk = key_id()
            swp["verification_keys"].append((nk, ek, now, now + KEY_VALIDITY))
            swp["notifications"].append((nid, ek, "SendContactMethodVerification", "initial", "Succeeded", True, now, now))
            swp["updates"].append((ek, "Pending", nk, now, now + KEY_VALIDITY, now, 0, now + dt.timedelta(days=3)))
        elif k == "reminder":
            swp["notifications"].append((nid, ek, "SendVerificationReminder", "reminder:3", "Succeeded", True, now, now))
            swp["updates"].append((ek, "Pending", kid, issued, expires, now, 3, issued + dt.timedelta(days=7)))
        else:
            swp["notifications"].append((nid, ek, "SendVerificationExpiredNotice", "expired", "Succeeded", True, now, now))
            swp["updates"].append((ek, "Expired", kid, issued, expires, now, 0, None))
            eid = str(uuid.uuid4())
            payload = json.dumps({"id": eid, "type": "contact_expired", "at": ts(now), "contactEmail": email, "externalIds": [ext], "domains": [dom], "reason": f"the verification link expired unconfirmed on {ts(expires)}"})
            swp["events"].append((eid, "contact_expired", now, payload, True, now, 0))
    return imp, swp


def sqlite_values(row):
    return tuple(sq(v) if isinstance(v, dt.datetime) else int(v) if isinstance(v, bool) else v for v in row)


def raw_sqlite(db, imp, swp):
    """executemany of the same rows in one transaction into the migrated
    schema (same tables, indexes, pragmas), then the sweep's changes (inserts
    and one UPDATE per due row) in a second one. Returns the two times."""
    conv = {t: [sqlite_values(r) for r in rows] for t, rows in imp.items()}
    sconv = {t: [sqlite_values(r) for r in rows] for t, rows in swp.items()}
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA foreign_keys=ON")
    t0 = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    con.executemany("INSERT INTO contacts (external_id, email, email_key, created_at, updated_at) VALUES (?,?,?,?,?)", conv["contacts"])
    con.executemany(
        "INSERT INTO verifications (email_key, email, status, key_id, key_issued_at, key_expires_at, last_notification_at, "
        "reminder_day_covered, expiry_notice_owed, failures, retry_at, claim_owner, claim_until, validated_at, due_at, version, "
        "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", conv["verifications"])
    con.executemany("INSERT INTO verification_keys (key_id, email_key, issued_at, expires_at) VALUES (?,?,?,?)", conv["verification_keys"])
    con.executemany(
        "INSERT INTO domains (name, contact_external_id, created_at, updated_at, waiting_since, suspension_date, suspended, "
        "suspended_at) VALUES (?,?,?,?,?,?,?,?)", conv["domains"])
    con.executemany(
        "INSERT INTO evidence (id, email_key, contact_email, external_ids, domains, validated_at, method, key_id, key_issued_at, "
        "client_ip, user_agent, reason, by_name) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", conv["evidence"])
    con.executemany("INSERT INTO events (id, type, at, payload, delivered, delivered_at, attempts) VALUES (?,?,?,?,?,?,?)", conv["events"])
    con.execute("COMMIT")
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    con.executemany(
        "INSERT INTO notifications (id, email_key, operation_type, reason, status, is_terminal, created_at, status_changed_at) "
        "VALUES (?,?,?,?,?,?,?,?)", sconv["notifications"])
    con.executemany("INSERT INTO verification_keys (key_id, email_key, issued_at, expires_at) VALUES (?,?,?,?)", sconv["verification_keys"])
    con.executemany("INSERT INTO events (id, type, at, payload, delivered, delivered_at, attempts) VALUES (?,?,?,?,?,?,?)", sconv["events"])
    con.executemany(
        "UPDATE verifications SET status = ?2, key_id = ?3, key_issued_at = ?4, key_expires_at = ?5, last_notification_at = ?6, "
        "reminder_day_covered = ?7, due_at = ?8, expiry_notice_owed = 0, version = version + 1, updated_at = ?6 "
        "WHERE email_key = ?1", sconv["updates"])
    con.execute("COMMIT")
    t_sweep = time.perf_counter() - t0
    con.close()
    return t_import, t_sweep


def pg_text(v):
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S+00")
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def write_copy(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write("\t".join(pg_text(v) for v in r) + "\n")


def raw_postgres(url, tmp, imp, swp):
    """psql COPY of the same rows in one transaction, then the sweep's changes
    (COPY of its inserts, one UPDATE ... FROM of the due rows) in a second.
    The COPY files are written before the clock starts; each time is the psql
    process's wall time. Returns the two times."""
    files = {}
    for t, rows in list(imp.items()) + [("s_" + t, r) for t, r in swp.items()]:
        files[t] = os.path.join(tmp, f"copy-{t}.tsv")
        write_copy(files[t], rows)
    s1 = os.path.join(tmp, "raw-import.sql")
    with open(s1, "w") as f:
        f.write(f"\\copy contacts (external_id, email, email_key, created_at, updated_at) FROM '{files['contacts']}'\n")
        f.write("\\copy verifications (email_key, email, status, key_id, key_issued_at, key_expires_at, last_notification_at, "
                "reminder_day_covered, expiry_notice_owed, failures, retry_at, claim_owner, claim_until, validated_at, due_at, "
                f"version, created_at, updated_at) FROM '{files['verifications']}'\n")
        f.write(f"\\copy verification_keys (key_id, email_key, issued_at, expires_at) FROM '{files['verification_keys']}'\n")
        f.write("\\copy domains (name, contact_external_id, created_at, updated_at, waiting_since, suspension_date, suspended, "
                f"suspended_at) FROM '{files['domains']}'\n")
        f.write("\\copy evidence (id, email_key, contact_email, external_ids, domains, validated_at, method, key_id, "
                f"key_issued_at, client_ip, user_agent, reason, by_name) FROM '{files['evidence']}'\n")
        f.write(f"\\copy events (id, type, at, payload, delivered, delivered_at, attempts) FROM '{files['events']}'\n")
    s2 = os.path.join(tmp, "raw-sweep.sql")
    with open(s2, "w") as f:
        f.write("CREATE TEMP TABLE due (email_key TEXT, status TEXT, key_id TEXT, key_issued_at TIMESTAMPTZ, "
                "key_expires_at TIMESTAMPTZ, last_notification_at TIMESTAMPTZ, reminder_day_covered BIGINT, due_at TIMESTAMPTZ) "
                "ON COMMIT DROP;\n")
        f.write(f"\\copy due FROM '{files['s_updates']}'\n")
        f.write("\\copy notifications (id, email_key, operation_type, reason, status, is_terminal, created_at, "
                f"status_changed_at) FROM '{files['s_notifications']}'\n")
        f.write(f"\\copy verification_keys (key_id, email_key, issued_at, expires_at) FROM '{files['s_verification_keys']}'\n")
        f.write(f"\\copy events (id, type, at, payload, delivered, delivered_at, attempts) FROM '{files['s_events']}'\n")
        f.write("UPDATE verifications v SET status = d.status, key_id = d.key_id, key_issued_at = d.key_issued_at, "
                "key_expires_at = d.key_expires_at, last_notification_at = d.last_notification_at, "
                "reminder_day_covered = d.reminder_day_covered, due_at = d.due_at, expiry_notice_owed = FALSE, "
                "version = v.version + 1, updated_at = d.last_notification_at FROM due d WHERE v.email_key = d.email_key;\n")
    times = []
    for script in (s1, s2):
        t0 = time.perf_counter()
        subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-1", "-f", script, url],
                       check=True, stdout=subprocess.DEVNULL, timeout=TIMEOUT)
        times.append(time.perf_counter() - t0)
    return times


# ------------------------------------------------------------ the processes


class Ran:
    def __init__(self, name, secs, peak_kib, stdout, log_path):
        self.name, self.secs, self.peak_kib, self.stdout, self.log = name, secs, peak_kib, stdout, log_path

    def json(self):
        return json.loads(self.stdout.strip().splitlines()[-1])


def run_binary(tmp, env, name, *args):
    """One process of the binary under GNU time: its wall time and its own
    peak RSS (%M of the binary, which GNU time forks and execs directly)."""
    tfile = os.path.join(tmp, f"{name}.time")
    log_path = os.path.join(tmp, f"{name}.log")
    with open(log_path, "w") as err:
        t0 = time.perf_counter()
        p = subprocess.run([GNU_TIME, "-o", tfile, "-f", "%M %e", BIN, *args], env=env, stdout=subprocess.PIPE,
                           stderr=err, text=True, timeout=TIMEOUT)
        secs = time.perf_counter() - t0
    if p.returncode != 0:
        with open(log_path) as f:
            tail = f.read()[-2000:]
        raise RuntimeError(f"{name}: exit {p.returncode}\n{tail}")
    with open(tfile) as f:
        peak = int(f.read().split()[-2])
    return Ran(name, secs, peak, p.stdout, log_path)


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def idle_daemon(tmp, env, label):
    """`run` with nothing due and no sweep scheduled in the next year's
    first second: VmRSS and VmHWM after 3 s, then SIGTERM."""
    port = free_port()
    e = dict(env, CONTACT_VERIFIER__HTTP__LISTEN=f"127.0.0.1:{port}",
             CONTACT_VERIFIER__SCHEDULE__SWEEP="0 0 0 1 1 *")
    with open(os.path.join(tmp, f"{label}-run.log"), "w") as err:
        p = subprocess.Popen([BIN, "run"], env=e, stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_port(port)
            time.sleep(3)
            if p.poll() is not None:
                raise RuntimeError(f"run exited early with {p.returncode}")
            rss, hwm = status_kib(p.pid, "VmRSS"), status_kib(p.pid, "VmHWM")
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=95)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    return rss, hwm


def smtp_source(port, count, size, reuse):
    args = [SMTP_SOURCE, "-s", str(CONNS), "-m", str(count), "-l", str(size)]
    if reuse:
        args.insert(1, "-d")
    t0 = time.perf_counter()
    subprocess.run(args + [f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL, timeout=TIMEOUT)
    return time.perf_counter() - t0


def start_sink(port, *extra):
    p = subprocess.Popen([SMTP_SINK, "-u", "nobody", *extra, f"127.0.0.1:{port}", "256"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def base_env(db_url, smtp_port):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACT_VERIFIER")}
    env.update({
        "CONTACT_VERIFIER__DATABASE__URL": db_url,
        "CONTACT_VERIFIER__VERIFICATION__SECRET": SECRET,
        "CONTACT_VERIFIER__SMTP__HOST": "127.0.0.1",
        "CONTACT_VERIFIER__SMTP__PORT": str(smtp_port),
        "CONTACT_VERIFIER__SMTP__TLS": "none",
        "CONTACT_VERIFIER__SMTP__MAX_CONNECTIONS": str(CONNS),
        "CONTACT_VERIFIER__LOG__LEVEL": "info",
        "RUST_LOG": "info",
    })
    return env


def message_size(tmp):
    """The mean size on the wire (CRLF line ends) of the daemon's messages,
    weighted by the mix's emails (1 initial : 2 reminders : 5 expiry
    notices), from one message of each sent to a dumping smtp-sink."""
    port = free_port()
    dump_dir = os.path.join(tmp, "dump")
    os.makedirs(dump_dir)
    os.chmod(dump_dir, 0o777)
    dump = os.path.join(dump_dir, "all")
    sink = start_sink(port, "-D", dump)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    env = base_env(f"sqlite://{os.path.join(tmp, 'probe.db')}", port)
    env["CONTACT_VERIFIER__SMTP__MAX_CONNECTIONS"] = "1"
    try:
        # smtp-sink dumps the first message of a session: one sweep each.
        for i, status in enumerate(("new", "reminder", "expired")):
            line = {"external_id": f"P-{i}", "email": f"registrant{i}@mail{i}.example.com", "domains": [f"shop-{i}.com"]}
            if status != "new":
                issued = now - dt.timedelta(days=4 if status == "reminder" else 61)
                line.update(status="Pending", key_issued_at=ts(issued),
                            last_notification_at=ts(issued + dt.timedelta(days=0 if status == "reminder" else 55)))
            f = os.path.join(tmp, f"probe-{i}.jsonl")
            with open(f, "w") as fh:
                fh.write(json.dumps(line) + "\n")
            run_binary(tmp, env, f"probe-import-{i}", "contact", "import", f)
            run_binary(tmp, env, f"probe-sweep-{i}", "sweep")
    finally:
        time.sleep(0.2)
        stop(sink)
    with open(dump, "rb") as f:
        data = f.read()
    sizes = {}
    for rec in data.split(b"X-Client-Addr:")[1:]:
        lines = rec.split(b"\n")
        # smtp-sink's own lines: X-Client-*, X-*-Args, Received (3 lines).
        start = next(n for n, ln in enumerate(lines) if ln.startswith(b"Received:")) + 3
        body = lines[start:]
        while body and body[-1] == b"":
            body.pop()
        subject = next((ln for ln in body if ln.startswith(b"Subject:")), b"")
        size = sum(len(ln) + 2 for ln in body)
        kind = "reminder" if b"Reminder" in subject else "expired" if b"not confirmed" in subject else "new"
        sizes[kind] = size
    if len(sizes) != 3:
        raise RuntimeError(f"message probe saw {sorted(sizes)}, wanted new/reminder/expired")
    mean = round((sizes["new"] * 1 + sizes["reminder"] * 2 + sizes["expired"] * 5) / 8)
    return mean, sizes


# ------------------------------------------------------------- one database


def bench_db(label, tmp, import_file, counts, sink_port, msg_size, raw):
    due = counts["expired"] + counts["reminder"] + counts["new"]
    res = {"database": label}
    pg_dbs = []
    if label == "sqlite":
        url = f"sqlite://{os.path.join(tmp, 'bench.db')}"
        raw_url = f"sqlite://{os.path.join(tmp, 'raw.db')}"
    else:
        suffix = uuid.uuid4().hex[:12]
        names = [f"cv_bench_{suffix}", f"cv_bench_raw_{suffix}"]
        for n in names:
            subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {n}", f"{PG_ADMIN}/postgres"],
                           check=True, stdout=subprocess.DEVNULL, timeout=60)
            pg_dbs.append(n)
        url, raw_url = f"{PG_ADMIN}/{names[0]}", f"{PG_ADMIN}/{names[1]}"
    env = base_env(url, sink_port)
    try:
        r = run_binary(tmp, env, f"{label}-migrate", "migrate")
        res["migrate"] = {"secs": r.secs, "peak_kib": r.peak_kib}

        log(f"{label}: contact import of {N} lines")
        r = run_binary(tmp, env, f"{label}-import", "contact", "import", import_file)
        rep = r.json()
        if rep.get("imported") != N or rep.get("rejected_count") != 0:
            raise RuntimeError(f"import: {rep}")
        res["import"] = {"secs": r.secs, "lines_per_s": N / r.secs, "peak_kib": r.peak_kib}
        log(f"{label}: import {r.secs:.1f} s = {N / r.secs:,.0f} lines/s, peak RSS {r.peak_kib / 1024:.1f} MiB")
        if label == "postgres" and PG_ANALYZE:
            # What autovacuum does on a server that runs it: without
            # statistics the planner picks sequential scans for the sweep's
            # per-address lookups. Timed and reported on its own.
            t0 = time.perf_counter()
            subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-c", "ANALYZE", url], check=True,
                           stdout=subprocess.DEVNULL, timeout=TIMEOUT)
            res["analyze_secs"] = time.perf_counter() - t0
            log(f"{label}: ANALYZE {res['analyze_secs']:.2f} s")

        log(f"{label}: full sweep ({due} emails due)")
        r = run_binary(tmp, env, f"{label}-sweep", "sweep")
        s = r.json()
        emails = s["initial_sent"] + s["reminders_sent"] + s["expiry_notices_sent"]
        res["sweep"] = {"secs": r.secs, "emails": emails, "emails_per_s": emails / r.secs, "peak_kib": r.peak_kib,
                        "summary": s, "expected_emails": due}
        if emails != due or s["failed"]:
            log(f"{label}: WARNING: sweep sent {emails} of {due} due emails, {s['failed']} failed")
        log(f"{label}: sweep {r.secs:.2f} s, {emails} emails = {emails / r.secs:,.0f}/s, peak RSS {r.peak_kib / 1024:.1f} MiB; {s}")

        r = run_binary(tmp, env, f"{label}-noop-sweep", "sweep")
        s = r.json()
        res["noop_sweep"] = {"secs": r.secs, "peak_kib": r.peak_kib, "summary": s}
        busy = {k: v for k, v in s.items() if k != "duration_ms" and v}
        if busy:
            log(f"{label}: WARNING: the second sweep was not a no-op: {busy}")
        log(f"{label}: no-op sweep {r.secs * 1000:.0f} ms (its own duration_ms {s['duration_ms']})")

        rss, hwm = idle_daemon(tmp, env, label)
        res["idle"] = {"vmrss_kib": rss, "vmhwm_kib": hwm}
        log(f"{label}: idle daemon VmRSS {rss / 1024:.1f} MiB, VmHWM {hwm / 1024:.1f} MiB")

        # The limits, measured now against the same sink and the same schema.
        res["smtp_source"] = {
            "messages": due, "size": msg_size,
            "new_connection_secs": smtp_source(sink_port, due, msg_size, reuse=False),
            "reuse_secs": smtp_source(sink_port, due, msg_size, reuse=True),
        }
        log(f"{label}: smtp-source {due} x {msg_size} B: {res['smtp_source']['new_connection_secs']:.2f} s, "
            f"with -d {res['smtp_source']['reuse_secs']:.2f} s")
        run_binary(tmp, base_env(raw_url, sink_port), f"{label}-raw-migrate", "migrate")
        imp, swp = raw
        if label == "sqlite":
            t_imp, t_swp = raw_sqlite(raw_url[len("sqlite://"):], imp, swp)
        else:
            t_imp, t_swp = raw_postgres(raw_url, tmp, imp, swp)
        res["raw"] = {"import_secs": t_imp, "sweep_secs": t_swp}
        log(f"{label}: raw SQL insert {t_imp:.2f} s, sweep changes {t_swp:.2f} s")
        res["rows"] = {"app": table_counts(label, url), "raw": table_counts(label, raw_url)}
    finally:
        for n in pg_dbs:
            subprocess.run(["psql", "-q", "-X", "-c", f"DROP DATABASE IF EXISTS {n} WITH (FORCE)", f"{PG_ADMIN}/postgres"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return res


TABLES = ("contacts", "verifications", "verification_keys", "domains", "evidence", "events", "notifications")


def table_counts(label, url):
    if label == "sqlite":
        con = sqlite3.connect(url[len("sqlite://"):])
        out = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        con.close()
        return out
    q = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in TABLES)
    p = subprocess.run(["psql", "-X", "-A", "-t", "-F", " ", "-c", q, url], check=True, capture_output=True, text=True, timeout=600)
    found = {ln.split()[0]: int(ln.split()[1]) for ln in p.stdout.split("\n") if ln.strip()}
    return {t: found[t] for t in TABLES}


# ------------------------------------------------------------------ report


def mib(kib):
    return kib / 1024


def verdict(ok):
    return "met" if ok else "MISSED"


def report(results, meta):
    out = []
    p = out.append
    p(f"\ncontact-verifier benchmark: {N:,} contacts ({meta['counts']}), smtp.max_connections = {CONNS}, "
      f"message {meta['msg_size']} B, commit {meta['commit']}")
    p(f"{meta['nproc']} CPUs, load average {meta['load_start']} at the start and {meta['load_end']} at the end"
      f"{'' if meta['pg_analyze'] else '; Postgres: no ANALYZE after the import'}")
    cols = [r["database"] for r in results]
    w = 20
    p("")
    p(f"{'':44}" + "".join(f"{c:>{w}}" for c in cols))

    def row(name, f):
        p(f"{name:44}" + "".join(f"{f(r):>{w}}" for r in results))

    row("import: s", lambda r: f"{r['import']['secs']:.2f}")
    row("import: lines/s", lambda r: f"{r['import']['lines_per_s']:,.0f}")
    row("import: peak RSS MiB", lambda r: f"{mib(r['import']['peak_kib']):.1f}")
    row("raw SQL insert: s", lambda r: f"{r['raw']['import_secs']:.2f}")
    row("raw SQL insert: lines/s", lambda r: f"{N / r['raw']['import_secs']:,.0f}")
    row("full sweep: s (process)", lambda r: f"{r['sweep']['secs']:.2f}")
    row("full sweep: duration_ms (its summary)", lambda r: f"{r['sweep']['summary']['duration_ms']}")
    row("full sweep: emails", lambda r: f"{r['sweep']['emails']:,}")
    row("full sweep: emails/s", lambda r: f"{r['sweep']['emails_per_s']:,.0f}")
    row("full sweep: peak RSS MiB", lambda r: f"{mib(r['sweep']['peak_kib']):.1f}")
    row("raw SQL sweep changes: s", lambda r: f"{r['raw']['sweep_secs']:.2f}")
    row("smtp-source -s C -m E -l L: s", lambda r: f"{r['smtp_source']['new_connection_secs']:.2f}")
    row("smtp-source -d (reused connections): s", lambda r: f"{r['smtp_source']['reuse_secs']:.2f}")
    row("no-op sweep: ms (process)", lambda r: f"{r['noop_sweep']['secs'] * 1000:.0f}")
    row("no-op sweep: duration_ms (its summary)", lambda r: f"{r['noop_sweep']['summary']['duration_ms']}")
    row("no-op sweep: peak RSS MiB", lambda r: f"{mib(r['noop_sweep']['peak_kib']):.1f}")
    row("ANALYZE after the import: s", lambda r: f"{r['analyze_secs']:.2f}" if "analyze_secs" in r else "-")
    row("idle daemon: VmRSS MiB (VmHWM)", lambda r: f"{mib(r['idle']['vmrss_kib']):.1f} ({mib(r['idle']['vmhwm_kib']):.1f})")
    p("")
    p("Targets (ratio = measured / limit; met when <= 1):")
    for r in results:
        db = r["database"]
        lim_brief = r["raw"]["sweep_secs"] + r["smtp_source"]["new_connection_secs"]
        lim_reuse = r["raw"]["sweep_secs"] + r["smtp_source"]["reuse_secs"]
        rs = r["sweep"]["secs"] / (TARGET_SWEEP_RATIO * lim_reuse)
        rb = r["sweep"]["secs"] / (TARGET_SWEEP_RATIO * lim_brief)
        ri = r["import"]["secs"] / (TARGET_IMPORT_RATIO * r["raw"]["import_secs"])
        rn = r["noop_sweep"]["secs"] * 1000 / TARGET_NOOP_MS
        peak = max(r["import"]["peak_kib"], r["sweep"]["peak_kib"], r["noop_sweep"]["peak_kib"])
        rp = mib(peak) / TARGET_PEAK_MIB
        ri2 = mib(r["idle"]["vmrss_kib"]) / TARGET_IDLE_MIB
        p(f"  {db}:")
        p(f"    full sweep <= 1.5 x (raw SQL + smtp-source -d): {r['sweep']['secs']:.2f} s vs 1.5 x {lim_reuse:.2f} s"
          f" = ratio {rs:.2f} {verdict(rs <= 1)}")
        p(f"    full sweep <= 1.5 x (raw SQL + smtp-source, a connection per message): {r['sweep']['secs']:.2f} s vs"
          f" 1.5 x {lim_brief:.2f} s = ratio {rb:.2f} {verdict(rb <= 1)}")
        p(f"    import <= 3 x raw insert: {r['import']['secs']:.2f} s vs 3 x {r['raw']['import_secs']:.2f} s"
          f" = ratio {ri:.2f} {verdict(ri <= 1)}")
        p(f"    no-op sweep < 50 ms: {r['noop_sweep']['secs'] * 1000:.0f} ms process"
          f" ({r['noop_sweep']['summary']['duration_ms']} ms inside) = ratio {rn:.2f} {verdict(rn < 1)}")
        p(f"    peak RSS < 64 MiB: {mib(peak):.1f} MiB = ratio {rp:.2f} {verdict(rp < 1)}")
        p(f"    idle daemon < 15 MiB: VmRSS {mib(r['idle']['vmrss_kib']):.1f} MiB = ratio {ri2:.2f} {verdict(ri2 < 1)}")
        if r["rows"]["app"] != r["rows"]["raw"]:
            p(f"    note: row counts differ, app {r['rows']['app']} raw {r['rows']['raw']}")
        else:
            p(f"    rows written (app = raw SQL): {r['rows']['app']}")
    if N < 1_000_000:
        p(f"\n(The 50 ms, 64 MiB and 15 MiB targets are stated for 1,000,000 contacts; this run had {N:,}.)")
    return "\n".join(out)


def main():
    global BIN
    for tool in (BIN, SMTP_SINK, SMTP_SOURCE, GNU_TIME):
        if not os.access(tool, os.X_OK):
            sys.exit(f"missing {tool} (benches/run.sh builds and installs what is needed)")
    os.makedirs(os.path.join(ROOT, "target/bench-tmp"), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="run-", dir=os.path.join(ROOT, "target/bench-tmp"))
    os.chmod(tmp, 0o711)  # smtp-sink writes the probe's dump as nobody
    # Run a copy: a `cargo build --release` elsewhere in the tree during the
    # run must not swap the binary between two measurements.
    shutil.copy2(BIN, os.path.join(tmp, "contact-verifier"))
    BIN = os.path.join(tmp, "contact-verifier")
    sink = None
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "src", "migrations", "Cargo.toml", "Cargo.lock"],
                               capture_output=True, text=True).stdout.split("\n")
        dirty = [d for d in dirty if d.strip()]
        if dirty:
            commit += f" + uncommitted changes to {len(dirty)} files of src/, migrations/, Cargo.*"
        load_start = loadavg()
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        import_file = os.path.join(tmp, "contacts.jsonl")
        log(f"generating {N} contacts into {import_file}")
        counts = write_import_file(import_file, now)
        log(f"  {counts}, {os.path.getsize(import_file) / 1048576:.0f} MiB")
        log("probing the daemon's message size")
        msg_size, sizes = message_size(tmp)
        log(f"  {sizes} -> mean {msg_size} B")
        log("building the raw SQL rows")
        raw = raw_rows(now)
        sink_port = free_port()
        sink = start_sink(sink_port)
        results = []
        for label in DATABASES:
            if label == "postgres":
                ok = subprocess.run(["psql", "-X", "-c", "SELECT 1", f"{PG_ADMIN}/postgres"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=30).returncode == 0
                if not ok:
                    log(f"postgres: skipped, no server answers at {PG_ADMIN}")
                    continue
            results.append(bench_db(label, tmp, import_file, counts, sink_port, msg_size, raw))
        meta = {"load_start": load_start, "load_end": loadavg(), "pg_analyze": PG_ANALYZE, "nproc": os.cpu_count(), "contacts": N, "counts": counts, "msg_size": msg_size, "msg_sizes": sizes, "commit": commit,
                "smtp_connections": CONNS, "started": ts(now)}
        text = report(results, meta)
        print(text)
        outdir = os.path.join(ROOT, "target/bench-results")
        os.makedirs(outdir, exist_ok=True)
        out = os.path.join(outdir, f"bench-{N}-{now.strftime('%Y%m%dT%H%M%SZ')}.json")
        with open(out, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
        print(f"\nfigures as JSON: {out}")
    finally:
        if sink:
            stop(sink)
        if KEEP:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
