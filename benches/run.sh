#!/usr/bin/env bash
# The benchmark: import, full sweep, no-op sweep, peak RSS and the
# idle daemon on SQLite and Postgres, against the limits measured in the same
# run (Postfix's smtp-source against smtp-sink, raw SQL). See BENCHMARKS.md.
#
#   bash benches/run.sh                           # 1,000,000 contacts
#   CV_BENCH_CONTACTS=100000 bash benches/run.sh  # a quicker check
#
# Other knobs (CV_BENCH_SMTP_CONNECTIONS, CV_BENCH_DATABASES, CV_TEST_PG_URL,
# CV_BENCH_TIMEOUT, CV_BENCH_KEEP) are described in benches/sweep_bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -x /usr/sbin/smtp-sink ] && [ -x /usr/sbin/smtp-source ] || need_apt+=(postfix)
[ -x /usr/bin/time ] || need_apt+=(time)
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "benches/run.sh: install ${need_apt[*]} (Debian packages) first" >&2
    exit 1
  fi
  echo "== installing ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Only smtp-sink and smtp-source are used: Postfix itself must not run (the
# package may have started it).
if [ -x /usr/sbin/postfix ] && /usr/sbin/postfix status >/dev/null 2>&1; then
  echo "== stopping the Postfix the package started" >&2
  /usr/sbin/postfix stop >/dev/null 2>&1 || true
fi

if [ "${CV_BENCH_NO_BUILD:-0}" != 1 ]; then
  echo "== cargo build --release" >&2
  cargo build --release --quiet
fi
exec python3 benches/sweep_bench.py
