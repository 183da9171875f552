#!/usr/bin/env bash
# Builds the local control plane's binaries and the chart tools from Go
# modules, once, into a cache outside the work tree keyed by version:
#   ${XDG_CACHE_HOME:-~/.cache}/changegate/bin-<versions>/      control plane, helm
#   ${XDG_CACHE_HOME:-~/.cache}/changegate/helm-docs-<version>/ helm-docs
# helm-docs has a directory of its own so that adding or bumping it never
# invalidates the control plane (a cold build of that takes minutes).
# A binary already in the cache is never rebuilt, so a warm run takes no time.
# Usage: hack/build-binaries.sh             build everything, print the control plane's directory
#        hack/build-binaries.sh print-dir   print the control plane's directory only
#        hack/build-binaries.sh helm-docs   build helm-docs only, print its path
#        hack/build-binaries.sh print-helm-docs   print helm-docs' path only
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/versions.env
source "$here/versions.env"

cache=${CHANGEGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/changegate}
bin="$cache/bin-k8s${KUBERNETES_VERSION}-etcd${ETCD_VERSION}-kwok${KWOK_VERSION}-helm${HELM_VERSION}"
docs_bin="$cache/helm-docs-${HELM_DOCS_VERSION}"

case "${1:-}" in
  print-dir) echo "$bin" && exit 0 ;;
  print-helm-docs) echo "$docs_bin/helm-docs" && exit 0 ;;
esac

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

# build <output dir> <module dir> <package> <output name> [extra ldflags]
build() {
  local dir=$1 module=$2 pkg=$3 out=$4 ldflags=${5:-}
  if [[ -x "$dir/$out" ]]; then
    return 0
  fi
  mkdir -p "$dir"
  echo "building $out from $pkg (cached afterwards in $dir)" >&2
  local started=$SECONDS
  (cd "$here/build/$module" &&
    go build -trimpath -tags grpcnotrace -ldflags "-s -w $ldflags" -o "$dir/$out.tmp" "$pkg")
  mv "$dir/$out.tmp" "$dir/$out"
  echo "built $out in $((SECONDS - started))s" >&2
}

build_helm_docs() {
  build "$docs_bin" helm-docs github.com/norwoodj/helm-docs/cmd/helm-docs helm-docs \
    "-X main.version=v$HELM_DOCS_VERSION"
}

if [[ "${1:-}" == "helm-docs" ]]; then
  build_helm_docs
  echo "$docs_bin/helm-docs"
  exit 0
fi

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
build "$bin" etcd go.etcd.io/etcd/server/v3 etcd
build "$bin" kwok sigs.k8s.io/kwok/cmd/kwok kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION"
build "$bin" kwok sigs.k8s.io/kwok/cmd/kwokctl kwokctl "-X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION"
build "$bin" helm helm.sh/helm/v3/cmd/helm helm "-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
build "$bin" kubernetes k8s.io/kubernetes/cmd/kubectl kubectl "$kflags"
build "$bin" kubernetes k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "$kflags"
build "$bin" kubernetes k8s.io/kubernetes/cmd/kube-controller-manager kube-controller-manager "$kflags"
build "$bin" kubernetes k8s.io/kubernetes/cmd/kube-scheduler kube-scheduler "$kflags"
build_helm_docs

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
