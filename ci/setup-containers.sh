#!/bin/sh
# podman (with runc), mmdebstrap and the test image for the container tests. Idempotent: the
# rootfs tarball is cached keyed by its package list (BATCHAI_IMAGE_CACHE; default
# /var/cache/batchai-test-image as root, else $XDG_CACHE_HOME/batchai/test-image or
# ~/.cache/batchai/test-image), and the image is imported only when podman does not have it yet;
# two runs at once take turns (flock on the cache). Root only where a Debian package is missing.
# The last line printed is the image's name; when the image cannot be had here, the reason goes
# to stderr, nothing to stdout, and the exit status is 0 (the container tests skip with it).
set -eu
SUITE=bookworm
# python3 for jobs, OpenMPI + mpi4py for MPI jobs, libstdc++/libgomp for a bound host torch,
# procps for ps inside; bai_image_marker exists only in the image (tests import it)
PACKAGES="python3 openmpi-bin python3-mpi4py libstdc++6 libgomp1 procps"
MARKER='IMAGE_ONLY = "bai-test-image"'
if [ "$(id -u)" = 0 ]; then
    CACHE=${BATCHAI_IMAGE_CACHE:-/var/cache/batchai-test-image}
else
    CACHE=${BATCHAI_IMAGE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/batchai/test-image}
fi
KEY=$(printf '%s\n%s\n%s\n' "$SUITE" "$PACKAGES" "$MARKER" | sha256sum | cut -c1-12)
IMAGE="localhost/batchai-test:$KEY"
# --name: only the image's name (what a run would build), nothing checked or installed
if [ "${1:-}" = "--name" ]; then echo "$IMAGE"; exit 0; fi
skip() { echo "the container test image is not set up: $*" >&2; exit 0; }

need_apt=""
command -v podman >/dev/null 2>&1 || need_apt="$need_apt podman"
command -v runc >/dev/null 2>&1 || need_apt="$need_apt runc"
command -v mmdebstrap >/dev/null 2>&1 || need_apt="$need_apt mmdebstrap"
command -v fuse-overlayfs >/dev/null 2>&1 || need_apt="$need_apt fuse-overlayfs"
command -v newuidmap >/dev/null 2>&1 || need_apt="$need_apt uidmap"
if [ -n "$need_apt" ]; then
    . "$(dirname "$0")/apt.sh"
    # shellcheck disable=SC2086
    apt_install "the container tests" $need_apt >&2
fi
command -v podman >/dev/null 2>&1 || skip "podman is not installed"
podman info >/dev/null 2>&1 || skip "podman cannot run for $(id -un): $(podman info 2>&1 | tail -n 1)"

if ! podman image exists "$IMAGE" 2>/dev/null; then
    command -v flock >/dev/null 2>&1 || skip "flock (util-linux) is missing"
    mkdir -p "$CACHE" 2>/dev/null && [ -w "$CACHE" ] || skip "cannot write its cache folder $CACHE (BATCHAI_IMAGE_CACHE)"
    TAR="$CACHE/rootfs-$KEY.tar"
    PARTIAL="$CACHE/partial-$KEY.tar"
    exec 9>"$CACHE/rootfs-$KEY.lock"
    flock 9  # another run building or importing the same image: wait for it, then reuse its work
    if ! podman image exists "$IMAGE" 2>/dev/null; then
        if [ ! -s "$TAR" ]; then
            command -v mmdebstrap >/dev/null 2>&1 || skip "mmdebstrap is not installed"
            INCLUDE=$(echo "$PACKAGES" | tr ' ' ',')
            rm -f "$PARTIAL"
            if ! mmdebstrap --quiet --variant=minbase --include="$INCLUDE" \
                --customize-hook="printf '%s\n' '$MARKER' > \"\$1/usr/lib/python3/dist-packages/bai_image_marker.py\"" \
                --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
                "$SUITE" "$PARTIAL" >&2; then
                rm -f "$PARTIAL"
                skip "mmdebstrap could not build its rootfs (above)"
            fi
            mv "$PARTIAL" "$TAR"
        fi
        podman import --change 'CMD ["/bin/bash"]' "$TAR" "$IMAGE" >&2 || skip "podman could not import $TAR"
    fi
    exec 9>&-
fi
# a stable name too, for examples that name the image in a job.json (recipes/batchai-job)
id_of() { podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
[ "$(id_of localhost/batchai-test:latest)" = "$(id_of "$IMAGE")" ] || podman tag "$IMAGE" localhost/batchai-test:latest >&2
echo "$IMAGE"
