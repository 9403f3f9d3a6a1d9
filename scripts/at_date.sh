#!/usr/bin/env bash
# Run a command with the clock of every Python process it starts reading another date, to check that nothing
# depends on today's date:
#   scripts/at_date.sh 2029-06-15T12:00:00Z .venv/bin/python -m pytest tests/spark_jobs/crawl/github/test_github_backfill.py
# The shift is an offset from the real clock (scripts/at_date/sitecustomize.py, with time-machine from the platform
# lock), so the test, Airflow's scheduler and API server, task runners and stages all read the same shifted time,
# and it runs. Only Python's clock moves: the JVM and other programs read the real one.
# (libfaketime would move every program's clock, but its 0.9.10 in Debian 12 hangs Python's
# threading.Event.wait or fails time.sleep with EINVAL, depending on whether it fakes the monotonic clock.)
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 DATE COMMAND [ARGS...]   (DATE: anything GNU date -d reads)" >&2; exit 2; }
target=$(date -u -d "$1" +%s) || { echo "at_date: cannot read the date '$1'" >&2; exit 2; }
shift
here=$(cd "$(dirname "$0")" && pwd)
export SEEDCODER_CLOCK_OFFSET_S=$(( target - $(date -u +%s) ))
export PYTHONPATH="$here/at_date${PYTHONPATH:+:$PYTHONPATH}"
echo "at_date: Python processes read $(date -u -d "@$target" +%FT%TZ) (offset ${SEEDCODER_CLOCK_OFFSET_S}s)" >&2
exec "$@"
