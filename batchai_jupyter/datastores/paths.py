"""Datastore paths: the one normal form ('a/b/c', '' for the root) every kind and reference uses."""
from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from ..errors import SpecError

TMP_MARK = ".batchai-tmp-"  # temporary names carry this; listings never show them
#: NUL ends a name in every OS call, and the other control characters (newline, tab, escape,
#: DEL) break the line-based listings and logs a path shows up in: no datastore path has them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_path(value: Any, field: str = "path") -> str:
    """A datastore path as 'a/b/c' (no leading or trailing '/'); '' is the root.

    Absolute paths and '..' segments are refused: a reference can never leave its datastore;
    so are control characters (NUL, newline, ...), before anything is stored or sent.
    """
    if value is None:
        return ""
    if not isinstance(value, (str, PurePosixPath)):
        raise SpecError(field, f"must be a string path, got {type(value).__name__}")
    text = str(value).replace("\\", "/")
    bad = _CONTROL.search(text)
    if bad:
        raise SpecError(field, f"{text!r} holds the control character {bad.group()!r}",
                        "a path of printable characters, without NUL, newline or tab")
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
