#!/bin/sh
# Debian's chromium for the JupyterLab browser test (playwright drives it through
# executable_path; no browser is ever downloaded). Idempotent: fast when already installed.
set -eu
if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt_get() {  # another installer may hold the dpkg lock: wait for it
        for _ in $(seq 1 60); do
            if apt-get -o DPkg::Lock::Timeout=120 "$@"; then return 0; fi
            sleep 2
        done
        return 1
    }
    apt_get update -qq || true
    apt_get install -y -qq --no-install-recommends chromium fonts-dejavu-core
fi
exit 0
