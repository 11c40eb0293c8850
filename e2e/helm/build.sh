#!/usr/bin/env bash
# Build helm from the Go module proxy into a cache folder keyed by version; print its path.
# Never rebuilds when present. helm renders charts/rotator so e2e runs the operator under
# exactly the RBAC rules the chart ships.
set -euo pipefail
version="${HELM_VERSION:-v3.19.5}"
cache="${ROTATOR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rotator}"
out="$cache/helm/$version"
if [[ -x "$out/helm" ]]; then
  echo "$out/helm"
  exit 0
fi
echo "building helm $version into $out (one-off, a few minutes)" >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out.tmp"
(cd "$work" && GOBIN="$out.tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$version" >&2)
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out/helm"
