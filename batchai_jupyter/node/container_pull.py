"""Pulling a run's image on a node: the credentials in a 0600 file for this pull only, the
runtime's progress in the run's container log, cancel and the wall clock obeyed, and a refused
pull as a ContainerError that names the image, the registry and its answer."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from ..errors import ContainerError
from ..spec import image_registry
from . import container_argv as cargv
from .container_argv import ContainerSpec

POLL_SECONDS = 0.1
STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class PullRequest:
    """One pull: the container spec (runtime, image), the policy, and where its files go."""

    spec: ContainerSpec
    policy: str
    node: str
    folder: str                           # the run's container folder (0700)
    auth: Mapping[str, str] | None        # {"registry", "username", "password"} or None
    env: Mapping[str, str]                # the agent's environment


def pull_image(req: PullRequest, out: IO[str], err: IO[str], cancel_path: str, deadline: float) -> str | None:
    """Pull; "canceled" or "timeout" when stopped, None when pulled; ContainerError when refused."""
    image = req.spec.image
    out.write(f"pulling image {image} (image_pull={req.policy!r})\n")
    out.flush()
    auth = write_auth(req)
    try:
        # the runtime's temporary download lives in the run's folder, whatever stops the pull
        proc = subprocess.Popen(cargv.pull_argv(req.spec, auth), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True, env=dict(req.env, TMPDIR=req.folder))
        while proc.poll() is None:
            stopped = "canceled" if os.path.exists(cancel_path) else \
                "timeout" if time.time() > deadline else None
            if stopped:
                _stop(proc)
                out.write(f"pull stopped: {stopped}\n")
                return stopped
            time.sleep(POLL_SECONDS)
    finally:
        if auth:
            shutil.rmtree(auth, ignore_errors=True) if os.path.isdir(auth) else _unlink(auth)
    if proc.returncode != 0:
        err.flush()
        registry = (req.auth or {}).get("registry") or image_registry(image)
        raise ContainerError(image, f"pull failed on node {req.node} (registry {registry}): {tail(err.name)}")
    out.write(f"image {image} pulled\n")
    out.flush()
    return None


def write_auth(req: PullRequest) -> str | None:
    """The registry credentials as a 0600 auth file (a folder holding config.json for docker)."""
    auth = req.auth
    if not auth:
        return None
    token = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
    body = json.dumps({"auths": {auth["registry"]: {"auth": token}}}).encode()
    if req.spec.runtime == "docker":
        folder = os.path.join(req.folder, "docker-config")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        path = os.path.join(folder, "config.json")
    else:
        folder = path = os.path.join(req.folder, "auth.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(body)
    return folder


def tail(path: str, lines: int = 3) -> str:
    """The last lines of a log, on one line (what a ContainerError quotes)."""
    try:
        with open(path, errors="replace") as fh:
            last = [ln.strip() for ln in fh.read().splitlines() if ln.strip()][-lines:]
    except OSError:
        last = []
    return " | ".join(last) or "(no message)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """TERM first, so the runtime removes its partial download; KILL after the grace period."""
    proc.terminate()
    try:
        proc.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
