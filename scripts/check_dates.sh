#!/usr/bin/env bash
# Run tests once per date with every clock they meet reading that date: does anything depend on today's date?
#   scripts/check_dates.sh 2027-03-01T00:10Z 2030-12-31T23:00Z -- tests/spark_jobs/crawl/github/test_github_backfill.py
# For each date: a fresh PostgreSQL (scripts/services.sh, its own port and directory) runs under libfaketime shifted
# to that date, the tests run under scripts/at_date.sh (every Python process shifted by the same offset) with
# $SEEDCODER_BACKFILL_TEST_DB pointing Airflow's metadata at that server, whose now() the scheduler compares run
# dates with (SQLite inside Python would read the real clock). One line per date: the date, pytest's exit code
# and its summary; the exit code is non-zero if any date failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
dates=()
while [[ $# -gt 0 && $1 != -- ]]; do dates+=("$1"); shift; done
[[ $# -gt 0 ]] && shift
[[ ${#dates[@]} -gt 0 && $# -gt 0 ]] || { echo "usage: $0 DATE... -- PYTEST_ARGS..." >&2; exit 2; }
lib=$(find /usr/lib -name libfaketime.so.1 -print -quit 2>/dev/null)
if [[ -z $lib ]]; then
  apt-get install -y -qq faketime >/dev/null || { echo "check_dates: needs libfaketime (apt: faketime)" >&2; exit 1; }
  lib=$(find /usr/lib -name libfaketime.so.1 -print -quit)
fi
export SEEDCODER_PG_PORT=${SEEDCODER_CHECK_DATES_PG_PORT:-5599}
status=0
for date in "${dates[@]}"; do
  offset=$(( $(date -u -d "$date" +%s) - $(date -u +%s) ))
  export SEEDCODER_SERVICES_DIR=$PWD/.work/check-dates/services-$SEEDCODER_PG_PORT
  rm -rf "$SEEDCODER_SERVICES_DIR"
  LD_PRELOAD=$lib FAKETIME="$( ((offset >= 0)) && echo +)$offset" scripts/services.sh start postgres >/dev/null \
    || { echo "$date: PostgreSQL did not start"; status=1; continue; }
  # shellcheck disable=SC1090
  source "$(scripts/services.sh env)"
  log=.work/check-dates/pytest-$date.log
  SEEDCODER_BACKFILL_TEST_DB=$SEEDCODER_POSTGRES_URI scripts/at_date.sh "$date" \
    .venv/bin/python -m pytest -q -p no:cacheprovider "$@" > "$log" 2>&1
  rc=$?
  scripts/services.sh stop postgres >/dev/null
  rm -rf "$SEEDCODER_SERVICES_DIR"
  echo "$date: pytest exit $rc, $(tail -n 1 "$log")   (log: $log)"
  [[ $rc -eq 0 ]] || status=1
done
exit $status
