#!/usr/bin/env bash
# Build the operator image with buildah (no daemon) and print its name on stdout.
#
#   image/build.sh            build (or reuse) the image, print e.g. localhost/rotator:0.1.0-1a2b3c4d5e6f
#   BASE_IMAGE=ref image/build.sh   build on another base (default: the Dockerfile's ARG)
#
# Installs buildah (and mmdebstrap) with apt-get when missing, so it works on a fresh CI
# machine. The base is the official python image pinned by digest in the Dockerfile; where it
# cannot be pulled (no Docker Hub), a local base of the same Debian release and Python minor is
# made from Debian packages with mmdebstrap and imported once. Both the base (a tarball) and the
# image (in buildah's storage, tagged by a hash of everything that goes into it) are cached, so
# a warm run only hashes the sources. Progress goes to stderr.
set -euo pipefail
shopt -s inherit_errexit

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${ROTATOR_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rotator/image}"
DEBIAN_RELEASE=bookworm
PYTHON_MINOR=3.11
LOCAL_BASE="localhost/rotator-base:${DEBIAN_RELEASE}-python${PYTHON_MINOR}"
# What the local base contains: what python:3.11-slim-bookworm brings (ca-certificates,
# netbase, tzdata, a `python` command with venv and ensurepip), from Debian's own packages.
BASE_PACKAGES="python3.11,python3.11-venv,python-is-python3,ca-certificates,netbase,tzdata"

say() { echo "image/build.sh: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_tools() {
  local missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
}

# buildah needs root (or a configured user namespace); CI and these machines run it as root.
bh() { as_root buildah "$@"; }

have_image() { bh inspect --type image "$1" >/dev/null 2>&1; }

default_base() {
  sed -n 's/^ARG BASE_IMAGE=//p' "$REPO/Dockerfile" | head -n 1
}

# A root filesystem of Debian $DEBIAN_RELEASE with Python $PYTHON_MINOR, as a tarball.
make_base_tarball() {
  local out="$1" tmp="${1%.tar}.partial.tar"  # mmdebstrap picks the format from the name
  say "making a local ${DEBIAN_RELEASE} + python${PYTHON_MINOR} base with mmdebstrap (about a minute)"
  as_root mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$DEBIAN_RELEASE" "$tmp" \
    "deb http://deb.debian.org/debian $DEBIAN_RELEASE main" \
    "deb http://deb.debian.org/debian $DEBIAN_RELEASE-updates main" \
    "deb http://deb.debian.org/debian-security $DEBIAN_RELEASE-security main" >&2
  mv "$tmp" "$out"
}

# The base to build on: the official one when it is here or can be pulled, else the local one.
resolve_base() {
  local wanted="$1"
  if have_image "$wanted"; then echo "$wanted"; return; fi
  if [ "${ROTATOR_IMAGE_LOCAL_BASE:-}" != 1 ]; then
    say "pulling $wanted"
    if timeout 120 buildah pull --quiet "$wanted" >/dev/null 2>&1 \
      || as_root timeout 120 buildah pull --quiet "$wanted" >/dev/null 2>&1; then
      echo "$wanted"; return
    fi
    say "cannot pull $wanted: using a local base of the same release instead"
  fi
  local key tarball ctr mnt
  key="$(printf '%s\n' "$DEBIAN_RELEASE" "$PYTHON_MINOR" "$BASE_PACKAGES" "$(declare -f make_base_tarball)" \
    | sha256sum | cut -c1-12)"
  if ! have_image "$LOCAL_BASE-$key"; then
    tarball="$CACHE/base-${DEBIAN_RELEASE}-python${PYTHON_MINOR}-$key.tar"
    [ -f "$tarball" ] || make_base_tarball "$tarball"
    say "importing $tarball as $LOCAL_BASE-$key"
    ctr="$(bh from --quiet scratch)"
    mnt="$(bh mount "$ctr")"
    as_root tar -C "$mnt" -xf "$tarball"
    bh umount "$ctr" >/dev/null
    bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd python3 \
      --label "org.opencontainers.image.description=Debian $DEBIAN_RELEASE + python$PYTHON_MINOR (mmdebstrap)" \
      "$ctr"
    bh commit --quiet --rm "$ctr" "$LOCAL_BASE-$key" >/dev/null
  fi
  echo "$LOCAL_BASE-$key"
}

# A hash of everything the build reads: the Dockerfile, the package sources and the base.
source_key() {
  local base="$1"
  {
    echo "$base"
    cd "$REPO"
    find Dockerfile .dockerignore pyproject.toml setup.py constraints.txt README.md operator \
      -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' -print0 \
      | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-12
}

main() {
  mkdir -p "$CACHE"
  ensure_tools
  local wanted base version tag secret=()
  wanted="${BASE_IMAGE:-$(default_base)}"
  base="$(resolve_base "$wanted")"
  version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -n 1)"
  tag="localhost/rotator:${version}-$(source_key "$base")"
  if have_image "$tag"; then
    say "$tag is built already"
    echo "$tag"
    return
  fi
  # The host's CA store, so pip reaches PyPI through a TLS-inspecting proxy where there is one.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    secret=(--secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt)
  fi
  say "building $tag on $base"
  # --layers: the dependency layer is reused when only the sources changed.
  bh bud --isolation chroot --layers --quiet \
    --build-arg "BASE_IMAGE=$base" "${secret[@]}" \
    --tag "$tag" --file "$REPO/Dockerfile" "$REPO" >&2
  prune_old "$tag"
  echo "$tag"
}

# Every source change makes a new ~700 MB image: keep the newest few, drop older ones (an image
# a container still uses is refused by rmi, and left alone).
prune_old() {
  local keep=3
  bh images --noheading --format '{{.CreatedAtRaw}}|{{.Name}}:{{.Tag}}' \
    | grep -F '|localhost/rotator:' | sort -r | cut -d'|' -f2 | grep -v -x -F "$1" \
    | tail -n "+$keep" \
    | while read -r old; do bh rmi "$old" >/dev/null 2>&1 || true; done
}

main "$@"
