"""Azure ML v1's logging names (log, log_list, log_row, log_table, log_image, the schema'd
metrics, upload_file/upload_folder) over two hooks, shared by the run inside a job (records for
the engine) and the interactive run of a notebook (written straight to the run history).

Standard library only at import time: it runs in the user's process on every node.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from ..errors import SpecError
from .channel import SCHEMA_VERSION


def check_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise SpecError(field, f"a metric needs a non-empty string name, got {name!r}")
    return name


def check_rel(name: object, field: str = "name") -> str:
    """A file name inside a run's files: relative, without '..'."""
    if not isinstance(name, str) or not name.strip("/"):
        raise SpecError(field, f"a file name inside the run is needed, got {name!r}",
                        "a relative path such as 'outputs/model.pkl'")
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or ".." in parts:
        raise SpecError(field, f"{name!r} must stay inside the run's files",
                        "a relative path such as 'outputs/model.pkl'")
    return "/".join(p for p in parts if p and p != ".")


def plain(value: Any) -> Any:
    """A value with numpy (or pandas) scalars and arrays made Python numbers and lists, as Azure
    ML stores them: np.float32(0.97) is the number 0.97, not the string "0.97". Duck-typed
    (.tolist()): numpy is not imported here."""
    if isinstance(value, (str, bytes, bool, int, float)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if callable(getattr(value, "tolist", None)):  # a numpy scalar or array, a pandas Series
        return plain(value.tolist())
    return value


def _as_list(value: Any) -> list[Any]:
    listed = plain(value)
    return listed if isinstance(listed, list) else list(listed)


def _listlike(value: Any) -> bool:
    """A list, tuple, numpy array or pandas Series (not a string, not a mapping)."""
    if isinstance(value, (str, bytes, Mapping)):
        return False
    return isinstance(value, Sequence) or (hasattr(value, "tolist") and getattr(value, "ndim", 1) >= 1)


def schema_value(kind: str, value: Any) -> dict[str, Any]:
    """Azure ML's {schema_type, schema_version, data} of a confusion matrix, accuracy table,
    predictions or residuals: a JSON string or dict of that shape, or only its `data`."""
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise SpecError("value", f"log_{kind}: not JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise SpecError("value", f"log_{kind}: a dict or a JSON string is needed, got "
                        f"{type(value).__name__}")
    value = plain(value)  # e.g. sklearn's confusion_matrix(...) as the matrix
    if "schema_type" in value or "data" in value:
        given = value.get("schema_type", kind)
        if given != kind:
            raise SpecError("value", f"log_{kind}: schema_type is {given!r}", [kind])
        return {"schema_type": kind, "schema_version": str(value.get("schema_version", SCHEMA_VERSION)),
                "data": value.get("data", {})}
    return {"schema_type": kind, "schema_version": SCHEMA_VERSION, "data": dict(value)}


class MetricsLogger:
    """log_* and upload_* of Azure ML v1; subclasses say where a record and a file go."""

    def _emit(self, name: str, kind: str, value: Any, step: int | None = None) -> None:
        raise NotImplementedError

    def _file_target(self, rel: str) -> str | None:
        """The local path a run file `rel` is written to (None: offline, nothing is kept)."""
        raise NotImplementedError

    def _file_done(self, rel: str) -> None:
        """A run file was written completely at _file_target(rel)."""

    # -- metrics -------------------------------------------------------------------------------
    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log one value (again: a series; `step` places it on the x axis).

        Parameters: name, the metric; value, a number or a string; description, kept for
        Azure ML compatibility; step, the x of this value (default: its index)."""
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise SpecError("step", f"an integer is needed, got {step!r}")
        self._emit(check_name(name), "scalar", plain(value), step)

    def log_list(self, name: str, value: Sequence[Any], description: str = "") -> None:
        """Log a list of values under one name (the last list logged is the metric); a numpy
        array or pandas Series is taken as its list."""
        if not _listlike(value):
            raise SpecError("value", f"log_list needs a list, got {type(value).__name__}")
        self._emit(check_name(name), "list", _as_list(value))

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Add one row to a table metric: each keyword is a column."""
        if not kwargs:
            raise SpecError("log_row", "give the row's columns as keywords, e.g. epoch=1, acc=0.9")
        self._emit(check_name(name), "row", plain(kwargs))

    def log_table(self, name: str, value: Mapping[str, Sequence[Any]], description: str = "") -> None:
        """Log a table as {column: [values]} (rows logged again are appended); a column may be
        a numpy array or pandas Series."""
        if not isinstance(value, Mapping) or not all(_listlike(v) for v in value.values()):
            raise SpecError("value", "log_table needs a dict of column name -> list of values")
        self._emit(check_name(name), "table", {str(k): _as_list(v) for k, v in value.items()})

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        """A confusion matrix: {"class_labels": [...], "matrix": [[...]]} (or Azure ML's JSON)."""
        self._emit(check_name(name), "confusion_matrix", schema_value("confusion_matrix", value))

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        """An accuracy table (probability and percentile tables), in Azure ML's JSON shape."""
        self._emit(check_name(name), "accuracy_table", schema_value("accuracy_table", value))

    def log_predictions(self, name: str, value: Any, description: str = "") -> None:
        """Regression predictions binned (bin_averages, bin_errors, bin_counts, bin_edges)."""
        self._emit(check_name(name), "predictions", schema_value("predictions", value))

    def log_residuals(self, name: str, value: Any, description: str = "") -> None:
        """Regression residuals binned (bin_edges, bin_counts)."""
        self._emit(check_name(name), "residuals", schema_value("residuals", value))

    def log_image(self, name: str, path: str | os.PathLike[str] | None = None, plot: Any = None,
                  description: str = "") -> None:
        """Keep an image with the run: a PNG file (path=) or a matplotlib figure or pyplot (plot=)."""
        check_name(name)
        if (path is None) == (plot is None):
            raise SpecError("log_image", "give exactly one of path= or plot=",
                            ["path='curve.png'", "plot=plt", "plot=figure"])
        if path is not None and not os.path.isfile(path):
            raise SpecError("path", f"no image file {os.fspath(path)!r}")
        rel = f"images/{name}-{int(time.time() * 1000)}.png"
        target = self._file_target(rel)
        if target is None:
            print(f"[image] {name}")
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target}.tmp{os.getpid()}"  # the engine copies no .tmp<pid> file
        if plot is not None:
            figure = plot.gcf() if hasattr(plot, "gcf") else plot
            figure.savefig(tmp, format="png")
        elif path is not None:
            shutil.copyfile(path, tmp)
        os.replace(tmp, target)
        self._file_done(rel)
        self._emit(name, "image", rel)

    # -- files ---------------------------------------------------------------------------------
    def upload_file(self, name: str, path_or_stream: str | os.PathLike[str] | IO[bytes]) -> str:
        """Keep a file with the run under `name` (e.g. "outputs/model.pkl"): a path or a stream."""
        rel = check_rel(name)
        is_stream = hasattr(path_or_stream, "read")
        if not is_stream and not os.path.isfile(path_or_stream):  # type: ignore[arg-type]
            raise SpecError("path_or_stream", f"no file {path_or_stream!r}")
        target = self._file_target(rel)
        if target is None:
            print(f"[upload] {rel}")
            return rel
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        tmp = f"{target}.tmp{os.getpid()}"
        if is_stream:
            with open(tmp, "wb") as out:
                data = path_or_stream.read()  # type: ignore[union-attr]
                out.write(data.encode() if isinstance(data, str) else data)
        else:
            shutil.copyfile(path_or_stream, tmp)  # type: ignore[arg-type]
        os.replace(tmp, target)
        self._file_done(rel)
        return rel

    def upload_files(self, names: Sequence[str], paths: Sequence[str | os.PathLike[str]]) -> list[str]:
        if len(names) != len(paths):
            raise SpecError("names", f"{len(names)} names for {len(paths)} paths")
        return [self.upload_file(n, p) for n, p in zip(names, paths)]

    def upload_folder(self, name: str, path: str | os.PathLike[str]) -> list[str]:
        """Keep every file below folder `path` under `name/` in the run's files."""
        prefix = check_rel(name)
        if not os.path.isdir(path):
            raise SpecError("path", f"no folder {os.fspath(path)!r}")
        done = []
        for folder, _dirs, files in os.walk(path):
            for file in sorted(files):
                full = os.path.join(folder, file)
                rel = os.path.relpath(full, path).replace(os.sep, "/")
                done.append(self.upload_file(f"{prefix}/{rel}", full))
        return done
