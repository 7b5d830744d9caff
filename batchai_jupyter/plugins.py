"""Lazy loading of registered implementations (compute backends, datastore kinds)."""
from __future__ import annotations

import importlib
from typing import Any

Registry = dict[str, tuple[str, str, "str | None"]]  # name -> (module, class, pip extra)


def load_registered(registry: Registry, name: str, what: str, error: type[Exception]) -> Any:
    """Import the class registered under `name`; a missing dependency says what to install."""
    module, cls, extra = registry[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        hint = f" (pip install 'batchai-jupyter[{extra}]')" if extra else ""
        raise error(f"{what} {name!r} cannot be loaded: {exc}{hint}") from exc
