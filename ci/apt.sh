# Sourced by ci/setup-*.sh: install Debian packages only when missing, as root (or through a
# password-less sudo); apt-get waits while another installer holds the dpkg lock.
export DEBIAN_FRONTEND=noninteractive
AS_ROOT=${AS_ROOT:-}
apt_get() {
    for _ in 1 2 3 4 5; do
        if $AS_ROOT apt-get -o DPkg::Lock::Timeout=300 "$@"; then return 0; fi
        sleep 2
    done
    return 1
}
# apt_install WHY PACKAGE...: installs the packages; without root (and no sudo -n) it says what
# is missing and returns 0, so the tests that need them are skipped with that reason.
apt_install() {
    why=$1; shift
    [ "$#" -gt 0 ] || return 0
    AS_ROOT=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            AS_ROOT="sudo -n"
        else
            echo "not installed (needs root): $* — $why; the tests that need them are skipped" >&2
            return 0
        fi
    fi
    apt_get update -qq || true
    apt_get install -y -qq --no-install-recommends "$@"
}
