#!/usr/bin/env bash
# Installs a command from Debian's packages when it is absent; does nothing
# when it is already on PATH, so every target can call it on every run.
# Usage: hack/ensure-tool.sh <command> [<debian package, default: the command>]
set -euo pipefail

command=${1:?usage: hack/ensure-tool.sh <command> [<debian package>]}
package=${2:-$command}

if command -v "$command" >/dev/null 2>&1; then
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "$command is missing and installing $package needs root (or sudo)" >&2
    exit 1
  }
  sudo=(sudo)
fi

echo "installing $package from Debian's packages (for $command)" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet: update once, then retry.
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$package" >/dev/null; then
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$package" >/dev/null
fi
command -v "$command" >/dev/null 2>&1 || {
  echo "installed $package but $command is still not on PATH" >&2
  exit 1
}
