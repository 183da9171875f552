#!/usr/bin/env bash
# Builds the local control plane's binaries and the chart tools from Go
# modules, once, into a cache outside the work tree keyed by version:
#   ${XDG_CACHE_HOME:-~/.cache}/changegate/bin-<versions>/      control plane, helm
#   ${XDG_CACHE_HOME:-~/.cache}/changegate/helm-docs-<version>/ helm-docs
#   ${XDG_CACHE_HOME:-~/.cache}/changegate/prometheus-<version>/ prometheus, promtool
#   ${XDG_CACHE_HOME:-~/.cache}/changegate/alertmanager-<version>/ alertmanager, amtool
# helm-docs, Prometheus and Alertmanager have directories of their own so that
# adding or bumping them never invalidates the control plane (a cold build of
# that takes minutes).
# A binary already in the cache is never rebuilt, so a warm run takes no time.
# Usage: hack/build-binaries.sh             build everything, print the control plane's directory
#        hack/build-binaries.sh print-dir   print the control plane's directory only
#        hack/build-binaries.sh helm-docs   build helm-docs only, print its path
#        hack/build-binaries.sh print-helm-docs   print helm-docs' path only
#        hack/build-binaries.sh prometheus  build prometheus and promtool only, print their directory
#        hack/build-binaries.sh print-prometheus-dir     print that directory only
#        hack/build-binaries.sh alertmanager  build alertmanager and amtool only, print their directory
#        hack/build-binaries.sh print-alertmanager-dir   print that directory only
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/versions.env
source "$here/versions.env"

cache=${CHANGEGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/changegate}
bin="$cache/bin-k8s${KUBERNETES_VERSION}-etcd${ETCD_VERSION}-kwok${KWOK_VERSION}-helm${HELM_VERSION}"
docs_bin="$cache/helm-docs-${HELM_DOCS_VERSION}"
prom_bin="$cache/prometheus-${PROMETHEUS_VERSION}"
am_bin="$cache/alertmanager-${ALERTMANAGER_VERSION}"

case "${1:-}" in
  print-dir) echo "$bin" && exit 0 ;;
  print-helm-docs) echo "$docs_bin/helm-docs" && exit 0 ;;
  print-prometheus-dir) echo "$prom_bin" && exit 0 ;;
  print-alertmanager-dir) echo "$am_bin" && exit 0 ;;
esac

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

# go_build <source dir> <output dir> <package> <output name> <ldflags> <tags>
# The temporary output is named per process, so two runs at once never trip
# over each other's half-written files; the last mv wins with the same binary.
go_build() {
  local src=$1 dir=$2 pkg=$3 out=$4 ldflags=$5 tags=$6
  mkdir -p "$dir"
  echo "building $out from $pkg (cached afterwards in $dir)" >&2
  local started=$SECONDS
  (cd "$src" && go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$dir/$out.tmp.$$" "$pkg") ||
    return 1
  mv "$dir/$out.tmp.$$" "$dir/$out" || return 1
  echo "built $out in $((SECONDS - started))s" >&2
}

# build <output dir> <module> <package> <output name> [extra ldflags] [tags]
build() {
  local dir=$1 module=$2 pkg=$3 out=$4 ldflags=${5:-} tags=${6:-grpcnotrace}
  if [[ -x "$dir/$out" ]]; then
    return 0
  fi
  go_build "$here/build/$module" "$dir" "$pkg" "$out" "$ldflags" "$tags"
}

# module_dir <build module> <module path> <expected version>: the module's
# source in the module cache, after checking that the build module pins the
# version versions.env names (the cache directory is keyed by the latter).
module_dir() {
  local module=$1 path=$2 want=$3 got
  got=$(cd "$here/build/$module" && go list -m -f '{{.Version}}' "$path")
  if [[ "$got" != "$want" ]]; then
    echo "hack/build/$module pins $path $got, versions.env says $want" >&2
    return 1
  fi
  (cd "$here/build/$module" && go mod download "$path" && go list -m -f '{{.Dir}}' "$path")
}

# Version information as the projects' own release builds stamp it.
prometheus_version_flags() {
  local v=$1 p=github.com/prometheus/common/version
  echo "-X $p.Version=$v -X $p.Revision=v$v -X $p.Branch=HEAD" \
    "-X $p.BuildUser=changegate -X $p.BuildDate=19700101-00:00:00"
}

build_helm_docs() {
  build "$docs_bin" helm-docs github.com/norwoodj/helm-docs/cmd/helm-docs helm-docs \
    "-X main.version=v$HELM_DOCS_VERSION"
}

# Prometheus's 3.x releases are tagged v0.3MM.P as Go modules (3.16.0 is v0.316.0).
build_prometheus() {
  [[ -x "$prom_bin/prometheus" && -x "$prom_bin/promtool" ]] && return 0
  local major minor patch
  IFS=. read -r major minor patch <<<"$PROMETHEUS_VERSION"
  module_dir prometheus github.com/prometheus/prometheus "v0.$major$(printf %02d "$minor").$patch" >/dev/null
  # remove_all_sd leaves only the file and HTTP service discovery: the tests
  # scrape static targets, and the cloud SDs (AWS, Azure, GCE, Kubernetes...)
  # are most of the build. Without the builtinassets tag the web UI is read
  # from disk (absent here) rather than embedded: the HTTP API, all the tests
  # use, works the same.
  local flags tags="grpcnotrace remove_all_sd"
  flags=$(prometheus_version_flags "$PROMETHEUS_VERSION")
  build "$prom_bin" prometheus github.com/prometheus/prometheus/cmd/prometheus prometheus "$flags" "$tags"
  build "$prom_bin" prometheus github.com/prometheus/prometheus/cmd/promtool promtool "$flags" "$tags"
}

# Alertmanager embeds its web UI from ui/app/dist, which its release process
# generates (with npm and Elm) and its Go module does not ship, so the module
# does not compile as published. It is built from a private copy of the
# module's source with a placeholder there instead: the UI serves nothing,
# the HTTP API and the cluster, all the tests use, are untouched. The copy
# builds against the module's own go.sum, the same versions the build module
# pins.
build_alertmanager() {
  [[ -x "$am_bin/alertmanager" && -x "$am_bin/amtool" ]] && return 0
  local src flags
  src=$(module_dir alertmanager github.com/prometheus/alertmanager "v$ALERTMANAGER_VERSION")
  mkdir -p "$am_bin"
  copy="$am_bin/src.tmp.$$"
  trap 'rm -rf "$copy"' EXIT
  cp -r "$src" "$copy"
  chmod -R u+w "$copy"
  mkdir -p "$copy/ui/app/dist/elm" "$copy/ui/app/dist/mantine"
  echo "Alertmanager built without its web UI; the API is unaffected." >"$copy/ui/app/dist/README.txt"
  flags=$(prometheus_version_flags "$ALERTMANAGER_VERSION")
  for cmd in alertmanager amtool; do
    if [[ ! -x "$am_bin/$cmd" ]]; then
      go_build "$copy" "$am_bin" "./cmd/$cmd" "$cmd" "$flags" grpcnotrace
    fi
  done
  rm -rf "$copy"
}

# Called as plain statements (not in && lists, where bash ignores set -e) so a
# failed build stops the script.
case "${1:-}" in
  helm-docs)
    build_helm_docs
    echo "$docs_bin/helm-docs"
    exit 0
    ;;
  prometheus)
    build_prometheus
    echo "$prom_bin"
    exit 0
    ;;
  alertmanager)
    build_alertmanager
    echo "$am_bin"
    exit 0
    ;;
esac

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
build_prometheus
build_alertmanager

# kwok's stage definitions (what makes fake nodes and pods Ready) ship inside its module.
stages="$bin/kwok-stages"
if [[ ! -d "$stages" ]]; then
  src=$(cd "$here/build/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  tmp="$stages.tmp.$$"
  mkdir -p "$tmp"
  cp -r "$src/kustomize/stage/." "$tmp/"
  chmod -R u+w "$tmp"
  # Another run may have finished first: its copy is the same, keep it.
  mv -T "$tmp" "$stages" 2>/dev/null || rm -rf "$tmp"
fi
echo "$bin"
