# Sourced by ci/setup-*.sh: apt-get that waits while another installer holds the dpkg lock.
export DEBIAN_FRONTEND=noninteractive
apt_get() {
    for _ in 1 2 3 4 5; do
        if apt-get -o DPkg::Lock::Timeout=300 "$@"; then return 0; fi
        sleep 2
    done
    return 1
}
