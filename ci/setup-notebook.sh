#!/bin/sh
# Debian's chromium for the JupyterLab browser test (playwright drives it through
# executable_path; no browser is ever downloaded). Idempotent: fast when already installed.
set -eu
if [ ! -x /usr/bin/chromium ]; then
    . "$(dirname "$0")/apt.sh"
    apt_get update -qq || true
    apt_get install -y -qq --no-install-recommends chromium fonts-dejavu-core
fi
exit 0
