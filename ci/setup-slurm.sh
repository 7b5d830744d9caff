#!/bin/sh
# Slurm (slurmctld, slurmd, client commands) and munge for the slurm backend's tests.
# Idempotent: returns at once when they are installed and a munge key exists. Root only to
# install them or to make the key; the tests start their own daemons (no system service).
set -eu
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
# -e, not -s: without root the key (mode 0400, owner munge) exists but cannot be read
if have slurmctld && have slurmd && have sbatch && have munged && [ -e /etc/munge/munge.key ]; then
    exit 0
fi
. "$(dirname "$0")/apt.sh"
if have slurmctld && have slurmd && have sbatch && have munged; then
    :
else
    apt_install "the slurm backend's tests" slurm-wlm munge
fi
if [ "$(id -u)" != 0 ] || ! have munged; then
    exit 0  # apt_install said what is missing
fi
# the packages' services are not used (no systemd): the tests start the daemons themselves
mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
exit 0
