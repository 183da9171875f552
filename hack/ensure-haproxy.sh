#!/usr/bin/env bash
# Installs haproxy (Debian's package) when absent: the webhook HA integration
# test runs two webhook processes behind it, as a Service would spread them.
set -euo pipefail
exec "$(dirname "$0")/ensure-tool.sh" haproxy
