#!/bin/sh
# node and npm, which build the JupyterLab extension (labextension/) when the package is installed
# from this repository and run Azurite for the datastore tests. Idempotent: returns at once when
# npm is on PATH; root only to install Debian's nodejs and npm. Without them the install goes on
# without the extension (the Makefile says so) and the tests that need it are skipped.
set -eu
command -v npm >/dev/null 2>&1 && exit 0
if command -v node >/dev/null 2>&1; then
    # Debian's npm package conflicts with a nodejs from elsewhere (NodeSource's bundles npm)
    echo "node $(node --version) is installed without npm: install the npm that goes with it" >&2
    exit 0
fi
. "$(dirname "$0")/apt.sh"
apt_install "the JupyterLab extension's build and Azurite" nodejs npm
exit 0
