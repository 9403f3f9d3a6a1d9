#!/usr/bin/env bash
# The test command: installs the environments, starts the test servers (PostgreSQL, the S3 server) on loopback,
# runs the whole suite in both environments, stops the servers. Usage: scripts/test.sh [extra pytest args]
set -uo pipefail
cd "$(dirname "$0")/.."
export SEEDCODER_PROFILE=local PYTHONUNBUFFERED=1
export PATH="$PWD/.venv/bin:$PATH"
scripts/bootstrap.sh all || exit 1
# The UI's browser test drives Debian's Chromium (no browser download at run time).
if ! command -v chromium >/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then
    echo "test: installing chromium (apt) for the UI browser test"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || { echo "test: could not install chromium" >&2; exit 1; }
  else
    echo "test: chromium is missing and this is not root: the UI browser test will be skipped" >&2
  fi
fi
scripts/toolchains.sh || exit 1  # bubblewrap and the compilers of the code sandbox
if [[ -x scripts/services.sh ]]; then
  scripts/services.sh start || { echo "test: could not start the test servers" >&2; exit 1; }
  trap 'scripts/services.sh stop' EXIT
  # shellcheck disable=SC1090
  source "$(scripts/services.sh env)"
fi

status=0
run() {  # run LABEL PYTHON ARGS...: pytest exit 5 (nothing collected) is not a failure
  local label=$1 py=$2; shift 2
  echo "=== $label"
  "$py" -m pytest "$@"
  local rc=$?
  if [[ $rc -ne 0 && $rc -ne 5 ]]; then status=1; fi
}
run "platform environment (.venv): lake, Spark jobs, plugins, DAGs" .venv/bin/python \
  tests lake spark_jobs plugins --ignore=tests/training "$@"
run "GPU-side environment (.venv-gpu): training" .venv-gpu/bin/python tests/training training "$@"
exit $status
