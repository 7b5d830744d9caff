"""Parsers for the values of %%batchai_job options (K=V pairs, --input and --output).

Pure functions over strings: every malformed value becomes a UsageError that says what the
value should look like, before anything is snapshotted or submitted. IPython shows a UsageError
as one line without a traceback; its __cause__ is the typed SpecError, whose `field` is the
option at fault (`--input`, `--nodes`, ...), so code and tests check the same field the
Python API and the CLI name.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from IPython.core.error import UsageError

from ..datastores.paths import clean_path
from ..errors import DatastoreError, SpecError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INPUT_MODES = ("mount", "download")
#: An --input without a mode is downloaded: the faster and safer choice for most data sets.
DEFAULT_INPUT_MODE = "download"
#: The option of %%batchai_job that sets each JobSpec/submit field: an error of the Python API
#: is named by the option the user typed.
OPTION_OF_FIELD = {
    "experiment": "--experiment", "tags": "--tag", "node_count": "--nodes",
    "process_count_per_node": "--processes-per-node", "distribution": "--distribution",
    "source_directory": "--source", "script": "--script", "command": "--command",
    "arguments": "ARGS", "inputs": "--input", "outputs": "--output",
    "environment_variables": "--env", "gpus_per_process": "--gpus-per-process", "image": "--image",
    "image_pull": "--image-pull",
}


def refuse(field: str, problem: str, valid: Sequence[Any] | str | None = None,
           text: str | None = None, cause: BaseException | None = None) -> NoReturn:
    """Raise the UsageError for a bad option: `text` (default: "FIELD PROBLEM (valid: ...)") is
    what IPython shows; its __cause__ is SpecError(field, problem, valid), caused by `cause`."""
    typed = SpecError(field, problem, valid)
    if cause is not None:
        typed.__cause__ = cause
    if text is None:
        text = f"{field} {problem}"
        if typed.valid is not None:
            shown = typed.valid if isinstance(typed.valid, str) else ", ".join(map(str, typed.valid))
            text += f" (valid: {shown})"
    raise UsageError(text) from typed


def refuse_api_error(exc: SpecError, prefix: str = "%%batchai_job: ") -> NoReturn:
    """Raise a SpecError of the Python API (submit, JobSpec.validate) as the UsageError of the
    option that set its field (node_count -> --nodes; inputs.D.path -> --input)."""
    option = OPTION_OF_FIELD.get(exc.field.split(".", 1)[0], exc.field)
    refuse(option, f"{exc.field}: {exc.problem}", exc.valid, text=f"{prefix}{exc}", cause=exc)


@dataclass(frozen=True)
class DataOption:
    """One parsed --input/--output value: ID=DATASTORE:PATH[:mode]."""

    id: str
    datastore: str
    path: str
    mode: str  # mount | download | upload

    def reference(self, workspace: Any) -> Any:
        """The DataReference the Python API takes (ws.datastore(name).path(p).as_...())."""
        flag = _flag(self.mode)
        try:
            store = workspace.datastore(self.datastore)
        except DatastoreError as exc:
            known = [r["name"] for r in workspace.history.datastore_rows()]
            refuse(flag, f"{self.id}: {exc}", known, text=f"{flag} {self.id}: {exc}", cause=exc)
        try:
            ref = store.path(self.path)
        except SpecError as exc:
            refuse(flag, f"{self.id}: {exc.problem}", exc.valid, cause=exc)
        if self.mode == "mount":
            return ref.as_mount()
        if self.mode == "download":
            return ref.as_download()
        return ref.as_upload()


_ARGPARSE_ARGUMENT = re.compile(r"^argument ([^:]+): (.*)$", re.DOTALL)


def refuse_parse_error(prog: str, exc: UsageError, options: Sequence[str]) -> NoReturn:
    """argparse's complaint about a magic's line, refused naming the option at fault (an unknown
    one is the field itself, with the valid options); the text is argparse's own."""
    text = str(exc)
    valid: list[str] | None = None
    match = _ARGPARSE_ARGUMENT.match(text)
    if match:  # "argument --cluster/-c: expected one argument"
        names = match.group(1).split("/")
        field, problem = next((n for n in names if n.startswith("--")), names[0]), match.group(2)
    elif text.startswith("unrecognized arguments: "):
        field, problem, valid = text.split(": ", 1)[1].split()[0], "is not an option", list(options)
    else:
        field, problem = "options", text
    if "unrecognized arguments" in text or "expected one argument" in text:
        text += f"\nvalid options: {', '.join(options)}"
    refuse(field, problem, valid, text=f"{prog}: {text}")


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
            refuse(option, f"{value!r} is not of the form K=V (for example {option} SEED=1)")
        if identifier and not _IDENT.match(key):
            refuse(option, f"{value!r}: {key!r} is not a valid name",
                   "letters, digits and _, not starting with a digit")
        if "\0" in value:
            refuse(option, f"{value!r} holds a NUL byte", "text without NUL bytes")
        out[key] = val
    return out


def parse_data(value: str, output: bool = False) -> DataOption:
    """'DATA=workspacestore:mnist:mount' -> DataOption; outputs take no mode (always upload)."""
    option = "--output" if output else "--input"
    form = "ID=DATASTORE:PATH" if output else "ID=DATASTORE:PATH[:mount|download]"
    ident, sep, rest = value.partition("=")
    if not sep or not ident or not rest:
        example = "MODEL=workspacestore:models" if output else "DATA=workspacestore:mnist:download"
        refuse(option, f"{value!r} is not of the form {form} (for example {option} {example})")
    if not _IDENT.match(ident):
        refuse(option, f"{value!r}: id {ident!r} is not an identifier; the job sees it as "
               f"AZ_BATCHAI_{'OUTPUT' if output else 'INPUT'}_<ID>",
               "letters, digits and _, not starting with a digit")
    store, sep, path = rest.partition(":")
    if not sep or not store:
        refuse(option, f"{value!r} is not of the form {form}: the datastore name and the path are "
               f"separated by ':'")
    mode = "upload"
    if not output:
        mode = DEFAULT_INPUT_MODE
        head, colon, tail = path.rpartition(":")
        if colon:
            if tail not in INPUT_MODES:
                refuse(option, f"{value!r}: unknown mode {tail!r}", INPUT_MODES)
            path, mode = head, tail
    if not path:
        refuse(option, f"{value!r}: the path inside datastore {store!r} is empty")
    try:  # the path's own rules (no '..', no NUL) hold whichever datastore it names
        clean_path(path, option)
    except SpecError as exc:
        refuse(option, f"{ident}: {exc.problem}", exc.valid, cause=exc)
    return DataOption(ident, store, path, mode)


def parse_data_options(values: Iterable[str] | None, output: bool = False) -> list[DataOption]:
    parsed = [parse_data(v, output) for v in values or []]
    seen: set[str] = set()
    for item in parsed:
        if item.id in seen:
            refuse("--output" if output else "--input", f"id {item.id!r} is given twice",
                   "each ID once")
        seen.add(item.id)
    return parsed


def parse_image(value: str | None) -> str | None:
    """--image IMAGE: an OCI reference (or a .sif path / URI for apptainer), checked before submit."""
    if value is None:
        return None
    from ..spec import IMAGE_FORMS, image_problem
    problem = image_problem(value)
    if problem:
        refuse("--image", f"{value!r} {problem}", "; ".join(IMAGE_FORMS))
    return value
