#!/bin/sh
# Debian's chromium for the JupyterLab browser test (playwright drives it through
# executable_path; no browser is ever downloaded). Idempotent: fast when already installed;
# root only to install it.
set -eu
if [ ! -x /usr/bin/chromium ]; then
    . "$(dirname "$0")/apt.sh"
    apt_install "the JupyterLab browser test" chromium fonts-dejavu-core
fi
exit 0
