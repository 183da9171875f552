#!/usr/bin/env bash
# Installs Chromium's headless shell (Debian's package) when absent: the HTML
# report's test renders the page in it and keeps a screenshot.
set -euo pipefail
exec "$(dirname "$0")/ensure-tool.sh" chromium-headless-shell
