#!/bin/sh
# OpenSSH server, OpenMPI's runtime and iproute2 for the ssh backend and the distributed tests,
# plus torch (CPU wheel), numpy and mpi4py in the project's virtualenv: the python named by
# BATCHAI_VENV_PYTHON, else VENV's (the Makefile's), else .venv's; it says which one it checked.
# Idempotent: fast when present; root only when a Debian package is missing; where it cannot
# install (no root, a venv it cannot write) it says what it skipped and exits 0. A VENV without
# a python is an error. mpi4py installs as a wheel (no compiler, no libopenmpi-dev).
# BATCHAI_TORCH_INDEX_URL: where torch comes from (default: PyTorch's CPU-only index, so no CUDA
# build of several GB is downloaded; "" uses pip's own configuration).
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${BATCHAI_VENV_PYTHON:-}" ]; then
    PY=$BATCHAI_VENV_PYTHON
elif [ -n "${VENV:-}" ]; then
    PY=$VENV/bin/python
else
    PY=$HERE/.venv/bin/python
fi
TORCH_INDEX=${BATCHAI_TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}
need_apt=""
[ -x /usr/sbin/sshd ] || need_apt="$need_apt openssh-server"
command -v mpirun >/dev/null 2>&1 || need_apt="$need_apt openmpi-bin"
command -v ip >/dev/null 2>&1 || need_apt="$need_apt iproute2"
. "$(dirname "$0")/apt.sh"
# shellcheck disable=SC2086
apt_install "the ssh backend's and the MPI tests" $need_apt
if [ ! -x "$PY" ]; then
    if [ -e "$PY" ] || [ -L "$PY" ]; then  # there, but this account cannot run it (a venv under /root)
        echo "$PY cannot be run by $(id -un): torch, numpy and mpi4py not checked; the tests that need them are skipped" >&2
        exit 0
    fi
    echo "no virtualenv python at $PY: torch and mpi4py not installed" >&2
    exit 1
fi
has() { "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)"; }
missing=""
for module in torch numpy mpi4py; do has "$module" || missing="$missing $module"; done
if [ -z "$missing" ]; then
    echo "torch, numpy and mpi4py: present for $PY"
    exit 0
fi
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -w "$SITE" ]; then
    echo "not installed:$missing — $SITE is not writable by $(id -un); the tests that need them are skipped" >&2
    exit 0
fi
case "$missing" in *torch*)
    if [ -n "$TORCH_INDEX" ] && ! "$PY" -c 'import socket, sys, urllib.parse as u
socket.create_connection((u.urlparse(sys.argv[1]).hostname, 443), 5)' "$TORCH_INDEX" 2>/dev/null; then
        echo "$TORCH_INDEX is not reachable: torch comes from pip's own sources (on PyPI, the CUDA build)" >&2
        TORCH_INDEX=""
    fi
    if [ -n "$TORCH_INDEX" ]; then
        # the CPU-only index in place of PyPI's (whose Linux wheel is the CUDA build); pip's
        # configured find-links and extra indexes still count
        "$PY" -m pip install -q --index-url "$TORCH_INDEX" "torch==2.13.0"
    else
        "$PY" -m pip install -q "torch==2.13.0"
    fi
esac
has numpy || "$PY" -m pip install -q numpy
has mpi4py || "$PY" -m pip install -q --only-binary mpi4py mpi4py
echo "torch, numpy and mpi4py: installed for $PY"
exit 0
