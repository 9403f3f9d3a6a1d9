#!/usr/bin/env bash
# Build the platform's images on a machine without a Docker engine or a reachable registry, and run every
# stage in its image (the production path, for real). Production builds use `docker build` (docker/README.md).
#
# Usage: scripts/images.sh build [airflow|spark|gpu|sandbox|base ...]  build the named images (default: all four)
#        scripts/images.sh smoke [image_smoke.py options]       every stage in its image (scripts/image_smoke.py)
#        scripts/images.sh ls                                   images, sizes, and the last builds' times
#        scripts/images.sh clean                                remove every image and the storage
#        scripts/images.sh buildah|podman ARGS...               the tool, on this script's storage
#
# How: `debootstrap` makes a Debian bookworm root file system, `podman import` turns it into the base image,
# docker/base/Dockerfile puts Python 3.11 on it (the stand-in for python:3.11-slim-bookworm), and
# `buildah bud --isolation chroot` builds docker/{airflow,spark,gpu,sandbox}/Dockerfile on that base with each image's
# Dockerfile.dockerignore. Images are tagged localhost/seedcoder/NAME:VERSION (VERSION: the chart's appVersion).
# Builds are layered: a code change rebuilds only the COPY layers on top of the cached dependency layers, which
# the images' old versions share; `clean` removes everything.
#
# Settings (environment; defaults in brackets):
#   SEEDCODER_IMAGES_DIR    container storage, the base root file system, build logs and timings  [.work/images]
#   SEEDCODER_S3A           the Spark image's s3a: fetch | none | auto (fetch if Maven Central answers)  [auto]
#   SEEDCODER_TORCH_VARIANT the GPU image's torch: cpu (this machine) | cuda (PyPI's CUDA build)     [cpu]
#   SEEDCODER_TORCH_WHEELS  directory holding the CPU torch wheel of requirements/gpu.lock   [$PIP_FIND_LINKS]
#   SEEDCODER_BUILD_CA      CA bundle pip must trust inside builds (a TLS-intercepting proxy's), bound into
#                           every build with a pip.conf naming it; nothing of it stays in the images
#                           [$PIP_CERT, else pip's global.cert setting, else none]
#   DEBIAN_MIRROR           mirror for debootstrap                                 [http://deb.debian.org/debian]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${SEEDCODER_IMAGES_DIR:-$REPO/.work/images}
DIR=$(mkdir -p "$DIR" && cd "$DIR" && pwd)
VERSION=$(sed -n -E 's/^appVersion: *"?([^"]+)"?$/\1/p' "$REPO/helm/seedcoder/Chart.yaml")
DEBIAN_BASE=localhost/seedcoder-base/debian:bookworm
PYTHON_BASE=localhost/seedcoder-base/python:3.11-bookworm
STORAGE=(--root "$DIR/storage" --runroot "$DIR/run" --storage-driver overlay)
TIMINGS=$DIR/builds.tsv

say() { echo "images: $*"; }
die() { echo "images: error: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
b() { buildah "${STORAGE[@]}" "$@"; }
p() { podman "${STORAGE[@]}" "$@"; }
has_image() { b inspect --type image "$1" >/dev/null 2>&1; }

need_tools() {
  local missing=()
  for tool in buildah podman debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  ((${#missing[@]} == 0)) && return
  [[ $(id -u) -eq 0 ]] || die "${missing[*]} not installed; run as root or: apt-get install -y buildah podman debootstrap"
  say "installing ${missing[*]} from apt"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah podman debootstrap >/dev/null
}

image_size() { p image inspect --format '{{.Size}}' "$1" 2>/dev/null || echo 0; }

# Bind mounts of every build: the CA bundle pip must trust here (if any), through a pip.conf at /etc/pip.conf.
# Mounts are not committed, so the images keep Debian's own trust store.
BUILD_MOUNTS=()
setup_build_mounts() {
  local ca=${SEEDCODER_BUILD_CA:-${PIP_CERT:-$(pip config get global.cert 2>/dev/null || true)}}
  [[ -n $ca ]] || return 0
  [[ -f $ca ]] || die "SEEDCODER_BUILD_CA: $ca is not a file"
  printf '[global]\ncert = /run/seedcoder-build/ca-certificates.crt\n' >"$DIR/pip.conf"
  BUILD_MOUNTS=("--volume=$ca:/run/seedcoder-build/ca-certificates.crt:ro" "--volume=$DIR/pip.conf:/etc/pip.conf:ro")
}
record() {  # record NAME TAG SECONDS
  local size
  size=$(image_size "$2")
  printf '%s\t%s\t%s\t%ss\t%s\n' "$(date -u +%FT%TZ)" "$1" "$2" "$3" "$size" >>"$TIMINGS"
  say "$1: built $2 in ${3}s ($(numfmt --to=iec "$size")B)"
}

# -- base images ---------------------------------------------------------------------------------------------
build_debian() {
  local rootfs=$DIR/rootfs-bookworm start=$SECONDS
  say "debootstrap bookworm (minbase) into $rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
    >"$DIR/debootstrap.log" 2>&1 || { tail -n 5 "$DIR/debootstrap.log" >&2; die "debootstrap failed (log: $DIR/debootstrap.log)"; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -c . | p import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$DEBIAN_BASE" >/dev/null
  rm -rf "$rootfs"
  record debian "$DEBIAN_BASE" $((SECONDS - start))
}

build_python() {
  local start=$SECONDS
  has_image "$DEBIAN_BASE" || build_debian
  b bud --isolation chroot "${BUILD_MOUNTS[@]}" --build-arg "DEBIAN_IMAGE=$DEBIAN_BASE" -f "$REPO/docker/base/Dockerfile" \
    -t "$PYTHON_BASE" "$REPO/docker/base" >"$DIR/build-base.log" 2>&1 \
    || { tail -n 20 "$DIR/build-base.log" >&2; die "the Python base failed to build (log: $DIR/build-base.log)"; }
  record base "$PYTHON_BASE" $((SECONDS - start))
}

# -- the images --------------------------------------------------------------------------------------------
s3a_mode() {
  local mode=${SEEDCODER_S3A:-auto}
  if [[ $mode == auto ]]; then
    if curl -fs -o /dev/null --max-time 10 https://repo1.maven.org/maven2/; then mode=fetch; else
      say "Maven Central is unreachable: building the Spark image without s3a (S3A=none; its Spark stages need a filesystem lake)" >&2
      mode=none
    fi
  fi
  [[ $mode == fetch || $mode == none ]] || die "SEEDCODER_S3A must be fetch, none or auto, got '$mode'"
  echo "$mode"
}

torch_wheels() {  # the directory holding requirements/gpu.lock's CPU torch wheel
  local pin dir
  pin=$(sed -n -E 's/^torch==(.+)$/\1/p' "$REPO/requirements/gpu.lock")
  for dir in ${SEEDCODER_TORCH_WHEELS:-${PIP_FIND_LINKS:-}}; do
    [[ -d $dir ]] && compgen -G "$dir/torch-${pin}-cp311-*.whl" >/dev/null && { echo "$dir"; return; }
  done
  die "no torch-${pin} wheel found: set SEEDCODER_TORCH_WHEELS to the directory holding it (pip takes it from PIP_FIND_LINKS here)"
}

build_image() {  # build_image NAME
  local name=$1 tag="localhost/seedcoder/$1:$VERSION" start=$SECONDS args=() log old
  log=$DIR/build-$name.log
  has_image "$PYTHON_BASE" || build_python
  args=("${BUILD_MOUNTS[@]}" --build-arg "PYTHON_IMAGE=$PYTHON_BASE")
  case $name in
    spark) args+=(--build-arg "S3A=$(s3a_mode)") ;;
    gpu)
      local variant=${SEEDCODER_TORCH_VARIANT:-cpu}
      args+=(--build-arg "TORCH_VARIANT=$variant")
      [[ $variant == cpu ]] && args+=(--volume "$(torch_wheels):/wheels:ro" --build-arg PIP_FIND_LINKS=/wheels)
      ;;
  esac
  old=$(p image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  say "$name: building $tag (log: $log)"
  b bud --isolation chroot --layers --ignorefile "$REPO/docker/$name/Dockerfile.dockerignore" "${args[@]}" \
    -f "$REPO/docker/$name/Dockerfile" -t "$tag" "$REPO" >"$log" 2>&1 \
    || { tail -n 30 "$log" >&2; die "$name failed to build (log: $log)"; }
  # The replaced image, unless later layers still build on it (then it stays as their cache).
  [[ -n $old && $old != "$(p image inspect --format '{{.Id}}' "$tag")" ]] && { b rmi "$old" >/dev/null 2>&1 || true; }
  record "$name" "$tag" $((SECONDS - start))
}

list() {
  b images --format '{{.Name}}:{{.Tag}}  {{.Size}}  {{.CreatedAtRaw}}' 2>/dev/null || true
  [[ -f $TIMINGS ]] && { echo "last builds (utc, name, tag, seconds, bytes):"; tail -n 8 "$TIMINGS"; }
  du -sh "$DIR/storage" 2>/dev/null || true
}

cmd=${1:-help}
[[ $# -gt 0 ]] && shift
case $cmd in
  build)
    need_tools
    setup_build_mounts
    names=("$@")
    ((${#names[@]})) || names=(airflow spark gpu sandbox)
    for name in "${names[@]}"; do
      case $name in
        base) build_python ;;
        airflow|spark|gpu|sandbox) build_image "$name" ;;
        *) die "unknown image '$name' (airflow, spark, gpu, sandbox, base)" ;;
      esac
    done
    list
    ;;
  smoke)
    need_tools
    export SEEDCODER_IMAGES_DIR=$DIR SEEDCODER_IMAGE_VERSION=$VERSION
    exec "$REPO/.venv/bin/python" "$REPO/scripts/image_smoke.py" "$@"
    ;;
  ls) list ;;
  clean)
    b rm --all >/dev/null 2>&1 || true
    b rmi --all --force >/dev/null 2>&1 || true
    rm -rf "$DIR/storage" "$DIR/run" "$DIR/rootfs-bookworm"
    say "removed every image under $DIR"
    ;;
  buildah) b "$@" ;;
  podman) p "$@" ;;
  help|-h|--help) usage ;;
  *) usage >&2; exit 2 ;;
esac
