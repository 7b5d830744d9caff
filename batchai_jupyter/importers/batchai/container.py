"""job.json `containerSettings` -> JobSpec(image=, shm_size=) and the workspace's registry secrets.

Batch AI named the registry twice: `imageSourceRegistry.serverUrl` and the image, which may or
may not start with it. The image we run is the full reference (the server's host first unless
the image names a registry already); its credentials go to the workspace's secrets file, keyed
by that host, and are never part of the spec.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from ...errors import SpecError
from ...images import IMAGE_FORMS, image_problem, image_registry

FIELD = "containerSettings"


def full_image(image: str, server_url: str | None) -> str:
    """The image reference with the registry of serverUrl in front, unless it names one already."""
    if not server_url:
        return image
    host = urlparse(server_url).netloc if "://" in server_url else server_url.strip("/")
    host = host.strip("/")
    if not host or host in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return image
    if image_registry(image) != "docker.io" or image.startswith("docker.io/"):
        return image  # the image names its registry itself
    return f"{host}/{image}"


def import_container(props: Mapping[str, Any], workspace: Any) -> dict[str, Any]:
    """The JobSpec fields of a job.json's containerSettings ({} when it has none).

    Parameters
    ----------
    props: the job.json's properties.
    workspace: where registry credentials are stored (None: Workspace.from_config(), only
        when the job names credentials).
    """
    settings = props.get(FIELD)
    if not settings:
        return {}
    if not isinstance(settings, Mapping):
        raise SpecError(FIELD, "must be an object")
    source = settings.get("imageSourceRegistry")
    if not isinstance(source, Mapping) or not source.get("image"):
        raise SpecError(f"{FIELD}.imageSourceRegistry.image", "is missing", IMAGE_FORMS)
    image = full_image(str(source["image"]), source.get("serverUrl"))
    problem = image_problem(image)
    if problem:
        raise SpecError(f"{FIELD}.imageSourceRegistry.image", f"{image!r} {problem}", IMAGE_FORMS)
    out: dict[str, Any] = {"image": image}
    if settings.get("shmSize"):
        out["shm_size"] = str(settings["shmSize"])
    creds = source.get("credentials")
    if creds:
        where = f"{FIELD}.imageSourceRegistry.credentials"
        if creds.get("passwordSecretReference"):
            raise SpecError(f"{where}.passwordSecretReference",
                            "Key Vault references are not supported here", ["password"])
        if not creds.get("username") or not creds.get("password"):
            raise SpecError(where, "needs username and password", ["username", "password"])
        if workspace is None:  # looked up by name: JobSpec must not import the client API
            workspace = importlib.import_module("batchai_jupyter.workspace").Workspace.from_config()
        workspace.set_registry_credentials(image_registry(image), str(creds["username"]),
                                           str(creds["password"]))
    return out
