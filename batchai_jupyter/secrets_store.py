"""The workspace's secrets file (mode 0600): datastore credentials and run secrets.

Nothing secret is ever written to history.db; records there name a secret, this file holds it.
"""
from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class SecretStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = self.path.with_name(self.path.name + ".lock")
        if not self.path.exists():
            with self._locked():
                if not self.path.exists():
                    self._write({})
        os.chmod(self.path, 0o600)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text() or "{}")
        except FileNotFoundError:
            return {}

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.path)

    def get(self, section: str, key: str) -> dict[str, Any]:
        return dict(self._read().get(section, {}).get(key, {}))

    def put(self, section: str, key: str, value: dict[str, Any]) -> None:
        with self._locked():
            data = self._read()
            data.setdefault(section, {})[key] = value
            self._write(data)

    def delete(self, section: str, key: str) -> None:
        with self._locked():
            data = self._read()
            if data.get(section, {}).pop(key, None) is not None:
                self._write(data)

    # -- container registries (docs/containers.md): one entry per registry host ---------------
    def set_registry(self, registry: str, username: str, password: str) -> None:
        """Credentials for pulling images from `registry` (a host, e.g. myreg.azurecr.io)."""
        from .node.container_config import REGISTRY_SECRETS
        self.put(REGISTRY_SECRETS, registry, {"username": username, "password": password})

    def values(self) -> list[str]:
        """Every secret string held (tests scan the workspace for them)."""
        out: list[str] = []

        def walk(obj: Any) -> None:
            if isinstance(obj, dict):
                for v in obj.values():
                    walk(v)
            elif isinstance(obj, str) and obj:
                out.append(obj)
        walk(self._read())
        return out
