#!/bin/sh
# OpenSSH server, OpenMPI and iproute2 for the ssh backend and the distributed tests, plus
# torch (CPU wheel) and mpi4py in the project's virtualenv. Idempotent: fast when present.
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${BATCHAI_VENV_PYTHON:-$HERE/.venv/bin/python}
need_apt=""
[ -x /usr/sbin/sshd ] || need_apt="$need_apt openssh-server"
command -v mpirun >/dev/null 2>&1 || need_apt="$need_apt openmpi-bin"
[ -e /usr/include/x86_64-linux-gnu/openmpi ] || [ -e /usr/lib/x86_64-linux-gnu/openmpi/include ] \
    || need_apt="$need_apt libopenmpi-dev"
command -v ip >/dev/null 2>&1 || need_apt="$need_apt iproute2"
if [ -n "$need_apt" ]; then
    . "$(dirname "$0")/apt.sh"
    apt_get update -qq || true
    # shellcheck disable=SC2086
    apt_get install -y -qq --no-install-recommends $need_apt
fi
mkdir -p /run/sshd && chmod 755 /run/sshd
if [ -x "$PY" ]; then
    has() { "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)"; }
    has torch || "$PY" -m pip install -q "torch==2.13.0" numpy
    has mpi4py || "$PY" -m pip install -q mpi4py
fi
exit 0
