#!/usr/bin/env bash
# Builds the local control plane's binaries from Go modules, once, into a cache
# outside the work tree keyed by version:
#   ${XDG_CACHE_HOME:-~/.cache}/changegate/<component>-<version>/bin
# A binary already in the cache is never rebuilt, so a warm run takes no time.
# Usage: hack/build-binaries.sh [print-dir]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/versions.env
source "$here/versions.env"

cache=${CHANGEGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/changegate}
bin="$cache/bin-k8s${KUBERNETES_VERSION}-etcd${ETCD_VERSION}-kwok${KWOK_VERSION}-helm${HELM_VERSION}"

if [[ "${1:-}" == "print-dir" ]]; then
  echo "$bin"
  exit 0
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$bin"

# build <module dir> <package> <output name> [extra ldflags]
build() {
  local module=$1 pkg=$2 out=$3 ldflags=${4:-}
  if [[ -x "$bin/$out" ]]; then
    return 0
  fi
  echo "building $out from $pkg (cached afterwards in $bin)" >&2
  local started=$SECONDS
  (cd "$here/build/$module" &&
    go build -trimpath -tags grpcnotrace -ldflags "-s -w $ldflags" -o "$bin/$out.tmp" "$pkg")
  mv "$bin/$out.tmp" "$bin/$out"
  echo "built $out in $((SECONDS - started))s" >&2
}

k8s_version_flags() {
  local v=$1 flags=""
  local major minor
  major=$(echo "${v#v}" | cut -d. -f1)
  minor=$(echo "${v#v}" | cut -d. -f2)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $p.gitVersion=$v -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    flags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

kflags=$(k8s_version_flags "v$KUBERNETES_VERSION")
build etcd go.etcd.io/etcd/server/v3 etcd
build kwok sigs.k8s.io/kwok/cmd/kwok kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION"
build kwok sigs.k8s.io/kwok/cmd/kwokctl kwokctl "-X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION"
build helm helm.sh/helm/v3/cmd/helm helm "-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
build kubernetes k8s.io/kubernetes/cmd/kubectl kubectl "$kflags"
build kubernetes k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "$kflags"
build kubernetes k8s.io/kubernetes/cmd/kube-controller-manager kube-controller-manager "$kflags"
build kubernetes k8s.io/kubernetes/cmd/kube-scheduler kube-scheduler "$kflags"

# kwok's stage definitions (what makes fake nodes and pods Ready) ship inside its module.
stages="$bin/kwok-stages"
if [[ ! -d "$stages" ]]; then
  src=$(cd "$here/build/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  mkdir -p "$stages.tmp"
  cp -r "$src/kustomize/stage/." "$stages.tmp/"
  chmod -R u+w "$stages.tmp"
  mv "$stages.tmp" "$stages"
fi
echo "$bin"
