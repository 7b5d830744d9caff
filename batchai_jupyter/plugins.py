"""Lazy registries of implementations (compute backends, datastore kinds), open to other packages.

Built-in entries name a module and a class and are imported on first use, so a missing optional
dependency only matters to someone who uses that entry, and then says what to install. An
installed package adds its own through an entry point group (value ``"module:Class"``)::

    [project.entry-points."batchai_jupyter.backends"]
    mybackend = "mypkg.backend:MyCompute"
"""
from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Any

Entry = tuple[str, str, "str | None"]  # (module, class, pip extra that provides its dependencies)
Registry = dict[str, Entry]

BACKEND_GROUP = "batchai_jupyter.backends"
DATASTORE_GROUP = "batchai_jupyter.datastores"
log = logging.getLogger(__name__)


def with_entry_points(builtin: Registry, group: str) -> Registry:
    """The built-in entries plus those installed packages declare in `group` (built-ins win)."""
    merged = dict(builtin)
    for ep in entry_points(group=group):
        module, sep, cls = ep.value.partition(":")
        if ep.name in merged:
            continue
        if not sep or not module.strip() or not cls.strip():
            log.warning("entry point %s = %r in %s is not 'module:Class'; ignored", ep.name, ep.value, group)
            continue
        merged[ep.name] = (module.strip(), cls.strip(), None)
    return merged


def load_registered(registry: Registry, name: str, what: str, error: type[Exception]) -> Any:
    """Import the class registered under `name`; a missing dependency says what to install."""
    module, cls, extra = registry[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        hint = f" (pip install 'batchai-jupyter[{extra}]')" if extra else ""
        raise error(f"{what} {name!r} cannot be loaded: {exc}{hint}") from exc
    except AttributeError as exc:
        raise error(f"{what} {name!r}: {module} has no {cls}") from exc
