#!/bin/sh
# podman (with runc), mmdebstrap and the test image for the container tests. Idempotent: the
# rootfs tarball is cached under $BATCHAI_IMAGE_CACHE keyed by its package list, and the image is
# imported only when podman does not have it yet. The last line printed is the image's name.
set -eu
CACHE=${BATCHAI_IMAGE_CACHE:-/var/cache/batchai-test-image}
SUITE=bookworm
# python3 for jobs, OpenMPI + mpi4py for MPI jobs, libstdc++/libgomp for a bound host torch,
# procps for ps inside; bai_image_marker exists only in the image (tests import it)
PACKAGES="python3 openmpi-bin python3-mpi4py libstdc++6 libgomp1 procps"
MARKER='IMAGE_ONLY = "bai-test-image"'

need_apt=""
command -v podman >/dev/null 2>&1 || need_apt="$need_apt podman"
command -v runc >/dev/null 2>&1 || need_apt="$need_apt runc"
command -v mmdebstrap >/dev/null 2>&1 || need_apt="$need_apt mmdebstrap"
command -v fuse-overlayfs >/dev/null 2>&1 || need_apt="$need_apt fuse-overlayfs"
command -v newuidmap >/dev/null 2>&1 || need_apt="$need_apt uidmap"
if [ -n "$need_apt" ]; then
    . "$(dirname "$0")/apt.sh"
    apt_get update -qq || true
    # shellcheck disable=SC2086
    apt_get install -y -qq --no-install-recommends $need_apt >&2
fi

KEY=$(printf '%s\n%s\n%s\n' "$SUITE" "$PACKAGES" "$MARKER" | sha256sum | cut -c1-12)
IMAGE="localhost/batchai-test:$KEY"
if ! podman image exists "$IMAGE" 2>/dev/null; then
    mkdir -p "$CACHE"
    TAR="$CACHE/rootfs-$KEY.tar"
    if [ ! -s "$TAR" ]; then
        INCLUDE=$(echo "$PACKAGES" | tr ' ' ',')
        mmdebstrap --quiet --variant=minbase --include="$INCLUDE" \
            --customize-hook="printf '%s\n' '$MARKER' > \"\$1/usr/lib/python3/dist-packages/bai_image_marker.py\"" \
            --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
            "$SUITE" "$CACHE/partial-$KEY.tar" >&2
        mv "$CACHE/partial-$KEY.tar" "$TAR"
    fi
    podman import --change 'CMD ["/bin/bash"]' "$TAR" "$IMAGE" >&2
fi
# a stable name too, for examples that name the image in a job.json (recipes/batchai-job)
podman tag "$IMAGE" localhost/batchai-test:latest >&2
echo "$IMAGE"
