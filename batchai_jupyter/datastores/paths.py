"""Datastore paths: the one normal form ('a/b/c', '' for the root) every kind and reference uses."""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from ..errors import SpecError

TMP_MARK = ".batchai-tmp-"  # temporary names carry this; listings never show them

def clean_path(value: Any, field: str = "path") -> str:
    """A datastore path as 'a/b/c' (no leading or trailing '/'); '' is the root.

    Absolute paths and '..' segments are refused: a reference can never leave its datastore.
    """
    if value is None:
        return ""
    if not isinstance(value, (str, PurePosixPath)):
        raise SpecError(field, f"must be a string path, got {type(value).__name__}")
    text = str(value).replace("\\", "/")
    if text.startswith("/"):
        raise SpecError(field, f"{text!r} is absolute", "a path relative to the datastore root")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SpecError(field, f"{text!r} contains '..'", "a path inside the datastore, without '..'")
    if any(TMP_MARK in p for p in parts):
        raise SpecError(field, f"{text!r} uses the reserved marker {TMP_MARK!r}")
    return "/".join(parts)


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))
