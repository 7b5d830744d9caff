#!/bin/sh
# Slurm (slurmctld, slurmd, client commands) and munge for the slurm backend's tests.
# Idempotent: returns at once when both are installed. Daemons are started by the tests.
set -eu
if command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
        && command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 \
        && [ -s /etc/munge/munge.key ]; then
    exit 0
fi
. "$(dirname "$0")/apt.sh"
apt_get update -qq || true
apt_get install -y -qq --no-install-recommends slurm-wlm munge
# the packages' services are not used (no systemd): the tests start the daemons themselves
mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
