"""Parsers for the values of %%batchai_job options (K=V pairs, --input and --output).

Pure functions over strings: every malformed value becomes a UsageError that says what the
value should look like, before anything is snapshotted or submitted.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INPUT_MODES = ("mount", "download")
#: An --input without a mode is downloaded: the faster and safer choice for most data sets.
DEFAULT_INPUT_MODE = "download"


@dataclass(frozen=True)
class DataOption:
    """One parsed --input/--output value: ID=DATASTORE:PATH[:mode]."""

    id: str
    datastore: str
    path: str
    mode: str  # mount | download | upload

    def reference(self, workspace: Any) -> Any:
        """The DataReference the Python API takes (ws.datastore(name).path(p).as_...())."""
        from ..errors import DatastoreError
        try:
            store = workspace.datastore(self.datastore)
        except DatastoreError as exc:
            raise UsageError(f"{_flag(self.mode)} {self.id}: {exc}") from None
        ref = store.path(self.path)
        if self.mode == "mount":
            return ref.as_mount()
        if self.mode == "download":
            return ref.as_download()
        return ref.as_upload()


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= minimum (the error names the option)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be {minimum} or more")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def _flag(mode: str) -> str:
    return "--output" if mode == "upload" else "--input"


def parse_pairs(values: Iterable[str] | None, option: str, identifier: bool = True) -> dict[str, str]:
    """['A=1', 'B=x=y'] -> {'A': '1', 'B': 'x=y'}; names must be identifiers when asked."""
    out: dict[str, str] = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} {value!r} is not of the form K=V (for example "
                             f"{option} SEED=1)")
        if identifier and not _IDENT.match(key):
            raise UsageError(f"{option} {value!r}: {key!r} is not a valid name (letters, digits "
                             f"and _, not starting with a digit)")
        out[key] = val
    return out


def parse_data(value: str, output: bool = False) -> DataOption:
    """'DATA=workspacestore:mnist:mount' -> DataOption; outputs take no mode (always upload)."""
    option = "--output" if output else "--input"
    form = "ID=DATASTORE:PATH" if output else "ID=DATASTORE:PATH[:mount|download]"
    ident, sep, rest = value.partition("=")
    if not sep or not ident or not rest:
        example = "MODEL=workspacestore:models" if output else "DATA=workspacestore:mnist:download"
        raise UsageError(f"{option} {value!r} is not of the form {form} (for example "
                         f"{option} {example})")
    if not _IDENT.match(ident):
        raise UsageError(f"{option} {value!r}: id {ident!r} is not an identifier (letters, digits "
                         f"and _, not starting with a digit); the job sees it as "
                         f"AZ_BATCHAI_{'OUTPUT' if output else 'INPUT'}_<ID>")
    store, sep, path = rest.partition(":")
    if not sep or not store:
        raise UsageError(f"{option} {value!r} is not of the form {form}: the datastore name and "
                         f"the path are separated by ':'")
    mode = "upload"
    if not output:
        mode = DEFAULT_INPUT_MODE
        head, colon, tail = path.rpartition(":")
        if colon:
            if tail not in INPUT_MODES:
                raise UsageError(f"--input {value!r}: unknown mode {tail!r} (valid: "
                                 f"{', '.join(INPUT_MODES)})")
            path, mode = head, tail
    if not path:
        raise UsageError(f"{option} {value!r}: the path inside datastore {store!r} is empty")
    return DataOption(ident, store, path, mode)


def parse_data_options(values: Iterable[str] | None, output: bool = False) -> list[DataOption]:
    parsed = [parse_data(v, output) for v in values or []]
    seen: set[str] = set()
    for item in parsed:
        if item.id in seen:
            raise UsageError(f"{'--output' if output else '--input'} id {item.id!r} is given twice")
        seen.add(item.id)
    return parsed


def parse_image(value: str | None) -> str | None:
    """--image IMAGE: an OCI reference (or a .sif path / URI for apptainer), checked before submit."""
    if value is None:
        return None
    from ..spec import IMAGE_FORMS, image_problem
    problem = image_problem(value)
    if problem:
        raise UsageError(f"--image {value!r} {problem} (valid: {'; '.join(IMAGE_FORMS)})")
    return value
