"""Which container a run's nodes use: the spec's image, else its cluster's, and the credentials.

Pure and standard-library only (the engine calls it for each launch, tests call it directly):
the engine passes the cluster's options and a lookup into the workspace's secrets file, so
registry credentials travel only in the 0600 run manifest, never in history.db or argv.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..spec import DEFAULT_CONTAINER_RUNTIME, image_registry
from .manifest import ContainerConfig

#: The section of the workspace's secrets file that holds registry credentials, keyed by host.
REGISTRY_SECRETS = "registries"

RegistryAuth = Callable[[str], Mapping[str, Any]]


def run_container(spec: Mapping[str, Any], cluster_options: Mapping[str, Any],
                  registry_auth: RegistryAuth) -> ContainerConfig | None:
    """The container section of a run's manifest, or None when neither spec nor cluster names an image.

    Parameters
    ----------
    spec: the run's stored JobSpec dict (its `image`).
    cluster_options: the cluster's options (`image`, `container_runtime`, `container_runtime_args`).
    registry_auth: registry host -> {"username", "password"} (empty when none is stored).
    """
    image = spec.get("image") or cluster_options.get("image")
    if not image:
        return None
    args = cluster_options.get("container_runtime_args")
    out = ContainerConfig(runtime=str(cluster_options.get("container_runtime") or DEFAULT_CONTAINER_RUNTIME),
                          image=str(image), runtime_args=None if args is None else [str(a) for a in args])
    registry = image_registry(str(image))
    cred = registry_auth(registry)
    if cred.get("username") and cred.get("password"):
        out["auth"] = {"registry": registry, "username": str(cred["username"]),
                       "password": str(cred["password"])}
    return out
