#!/usr/bin/env bash
# Installs Debian's chromium for the operations console's browser test
# (test/observability/console_test.go drives it through chromedp). The test
# skips with a message when no chromium is found, so CI calls this first.
# Idempotent: does nothing when a chromium binary is already on PATH.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
	echo "chromium already installed: $(command -v chromium || command -v chromium-browser)"
	exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# fonts-dejavu-core gives the screenshot readable glyphs.
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "installed $(chromium --version 2>/dev/null || echo chromium)"
