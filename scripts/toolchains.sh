#!/usr/bin/env bash
# The system tools the code sandbox needs (training/sandbox), installed from apt when missing (as root):
#   bubblewrap (namespaces), util-linux (setpriv, prlimit, unshare), and the toolchains of the languages it runs:
#   python3, g++, a JDK 17 (javac/java), nodejs, golang-go. g++ (with gcc and the C/C++ system headers) is also
#   the syntax filter's C-family compile check (spark_jobs/filters/c_compile.py).
# Usage: scripts/toolchains.sh        (idempotent; prints what it installed)
set -euo pipefail

declare -A PACKAGE_OF=([bwrap]=bubblewrap [setpriv]=util-linux [prlimit]=util-linux [python3]=python3 [g++]=g++
                       [javac]=openjdk-17-jdk-headless [node]=nodejs [go]=golang-go)
missing=()
for tool in bwrap setpriv prlimit python3 g++ javac node go; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$tool]}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "toolchains: sandbox tools present"
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [[ $(id -u) -ne 0 ]]; then
  echo "toolchains: missing ${missing[*]}; run as root or: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "toolchains: installing ${missing[*]} from apt"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
