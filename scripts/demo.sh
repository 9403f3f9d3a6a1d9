#!/usr/bin/env bash
# The main job on the embedded default (local profile): installs the environments, builds a local source of
# real code from this machine, runs every built DAG of the pipeline end to end on snapshot "demo" (crawl -> ...
# -> quality, with scorer v1 trained once), cuts release "demo" from it, trains on the release and evaluates the
# model, runs RL on that model (release partition "demo.rl": warm-up, curriculum and GRPO rounds, the policy's
# evaluation), and prints where each stage's output and numbers are, the release's manifest, its shards, its model,
# the evaluation's table and, last, the RL stages and the policy's evaluation.
# Usage: scripts/demo.sh   (env: SNAPSHOT, RELEASE, DEMO_MAX_FILES, DAGS)
set -euo pipefail
cd "$(dirname "$0")/.."
export SEEDCODER_PROFILE=local PYTHONUNBUFFERED=1
export PATH="$PWD/.venv/bin:$PATH" PYSPARK_PYTHON="$PWD/.venv/bin/python"
start=$(date +%s)
scripts/bootstrap.sh all
scripts/toolchains.sh  # bubblewrap and the compilers of the code sandbox (evaluation)
.venv/bin/python -m spark_jobs.crawl.demo_source --out .work/demo_source --max-files "${DEMO_MAX_FILES:-14000}"
# The full Airflow/Spark log goes to .work/demo.log; the terminal shows progress.
set +e
args=(--snapshot "${SNAPSHOT:-demo}" --release "${RELEASE:-${SNAPSHOT:-demo}}" --timing-json .work/demo-timing.json)
rm -f .work/demo-timing.json
.venv/bin/python scripts/pipeline.py "${args[@]}" ${DAGS:+--dags "$DAGS"} 2>&1 \
  | tee .work/demo.log | grep -E --line-buffered '^(==>|<==|---|DAG )|ERROR|Traceback'
status=${PIPESTATUS[0]}
set -e
[[ $status -eq 0 ]] || { echo "demo failed (exit $status): full log in .work/demo.log" >&2; exit 1; }
# What was committed: every stage of the snapshot, the scorer version, the release's manifest, shards and model,
# and, last, the evaluation's table.
.venv/bin/python scripts/pipeline.py "${args[@]}" --summary-only
echo "demo: finished in $(( $(date +%s) - start ))s (full log: .work/demo.log)"
