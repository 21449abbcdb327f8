#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver, which the browser test of `pladis ui`
# (packages/pladis-ui/tests/test_browser.py) drives through Selenium. Only the distribution's packages:
# no browser or driver download. .ci/run calls it before the test command; it does nothing when both
# are already there, and fails loudly when they cannot be installed (so CI never skips the test silently).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "install_browser: $(chromium --version 2>/dev/null || echo chromium) and chromedriver already installed"
    exit 0
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install_browser: needs root (or sudo) for apt-get" >&2; exit 1; }
    SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q chromium chromium-driver
echo "install_browser: $(chromium --version) and $(chromedriver --version) installed"
