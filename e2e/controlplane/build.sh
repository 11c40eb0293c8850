#!/usr/bin/env bash
# Build kube-apiserver and etcd from the Go module proxy into a cache folder
# keyed by version. Never rebuilds when both binaries are present.
#
# Why a wrapper module: `go install k8s.io/kubernetes/cmd/...` fails because
# kubernetes' go.mod replaces its staging modules with local paths; go.mod
# here replaces them with the published k8s.io/X v0.M.N instead.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kube_version="$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$here/go.mod")"
etcd_version="$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$here/go.mod")"
cache="${ROTATOR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rotator}"
out="$cache/controlplane/kube-${kube_version}_etcd-${etcd_version}"
if [[ -x "$out/kube-apiserver" && -x "$out/etcd" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out.tmp"
cd "$here"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$(date +%s)
echo "building kube-apiserver $kube_version and etcd $etcd_version into $out (one-off, 10-25 min)" >&2
go build -trimpath -o "$out.tmp/kube-apiserver" \
  -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=${kube_version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$kube_version" | cut -d. -f2)" \
  k8s.io/kubernetes/cmd/kube-apiserver >&2
go build -trimpath -o "$out.tmp/etcd" -ldflags "-s -w" go.etcd.io/etcd/server/v3 >&2
rm -rf "$out" && mv "$out.tmp" "$out"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out"
