"""Datastore: the interface every storage kind implements, and the parallel transfer loop.

A kind implements four primitives (list, put, get, exists) over paths relative to its root; the
public calls (upload, upload_files, download, list, path) and the folder-level staging used by
the node agent are written once here, so every kind transfers in parallel, reports progress the
same way, and never leaves a partial file under its final name.
"""
from __future__ import annotations

import os
import secrets as _secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import DatastoreError
from .paths import TMP_MARK, clean_path, join
from .progress import Callback, make_callback

if TYPE_CHECKING:
    from .reference import DataReference

DEFAULT_CONCURRENCY = 8
Advance = Callable[[int], None]
UploadPairs = list[tuple[str, str]]                  # (local file, datastore path)
DownloadPairs = list[tuple[str, int, Path]]          # (datastore path, size, local file)
TransferTasks = list[tuple[str, int, Callable[[Advance], None]]]  # (path, size, transfer)


def tmp_name(path: str) -> str:
    """A hidden sibling name for an upload or download in progress."""
    head, _, tail = path.rpartition("/")
    name = f".{tail}{TMP_MARK}{_secrets.token_hex(4)}"
    return f"{head}/{name}" if head else name


class Datastore(ABC):
    """A named place that holds files: a folder, a blob container or a file share."""

    kind: ClassVar[str] = ""

    def __init__(self, name: str, config: dict[str, Any], credential: dict[str, Any] | None = None):
        self.name = name
        self.config = dict(config)
        self._credential = dict(credential or {})
        self.max_concurrency = int(self.config.get("max_concurrency") or DEFAULT_CONCURRENCY)

    # -- what a kind provides -------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def validate_options(cls, name: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Registration options -> (config for history.db, credential for the secrets file)."""

    @abstractmethod
    def _iter_files(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(path, size) of every file whose path starts with the string prefix."""

    @abstractmethod
    def _exists(self, path: str) -> bool: ...

    @abstractmethod
    def _put(self, local: str, path: str, size: int, advance: Advance) -> None:
        """Upload one file; it becomes visible under `path` whole or not at all."""

    @abstractmethod
    def _get(self, path: str, local: str, size: int, advance: Advance) -> None:
        """Download one file into `local` (a temporary name the caller renames)."""

    def node_config(self) -> dict[str, Any]:
        """Non-secret settings a node needs to reach this datastore."""
        return dict(self.config)

    def node_credential(self, access: str, expiry_seconds: float) -> dict[str, Any]:
        """The narrowest credential for `access` ('read', 'write' or 'mount'); none for folders."""
        return {}

    def describe(self) -> str:
        return ""

    def _secret_values(self) -> list[str]:
        return [v for v in self._credential.values() if isinstance(v, str) and v]

    def scrub(self, text: str) -> str:
        """Remove every secret this datastore holds from a text (errors, logs)."""
        from .azure_common import redact
        return redact(text, self._secret_values())

    def _error(self, exc: BaseException, op: str, path: str) -> DatastoreError:
        """One DatastoreError naming the operation, datastore and path; never a secret."""
        if isinstance(exc, DatastoreError):
            return exc
        reason = self.scrub(f"{type(exc).__name__}: {exc}".splitlines()[0])
        return DatastoreError(f"{op} of {path!r} on datastore {self.name!r} failed: {reason}")

    def __repr__(self) -> str:
        extra = self.describe()
        return f"{type(self).__name__}(name={self.name!r}{', ' + extra if extra else ''})"

    # -- references ------------------------------------------------------------------------------
    def path(self, path: str = "") -> DataReference:
        from .reference import DataReference
        return DataReference(self, clean_path(path))

    def as_mount(self) -> DataReference:
        return self.path("").as_mount()

    def as_download(self, path_on_compute: str | None = None) -> DataReference:
        return self.path("").as_download(path_on_compute)

    def as_upload(self, path_on_compute: str | None = None) -> DataReference:
        return self.path("").as_upload(path_on_compute)

    # -- public transfers ------------------------------------------------------------------------
    def list(self, prefix: str = "") -> list[str]:
        """Paths of all files under the root that start with `prefix` (a string prefix)."""
        prefix = _clean_prefix(prefix)
        try:
            return sorted(p for p, _ in self._iter_files(prefix))
        except Exception as exc:  # noqa: BLE001 — any backend failure becomes one DatastoreError, secrets scrubbed
            raise self._error(exc, "list", prefix or "/") from None

    def upload(self, src_dir: str | os.PathLike[str], target_path: str | None = None,
               overwrite: bool = False, show_progress: Any = True) -> DataReference:
        """Upload a folder's files under target_path; existing files are kept unless overwrite."""
        src = Path(src_dir).expanduser()
        if not src.is_dir():
            raise DatastoreError(f"upload: src_dir {str(src)!r} is not a folder")
        target = clean_path(target_path, "target_path")
        pairs = [(str(p), join(target, p.relative_to(src).as_posix()))
                 for p in sorted(src.rglob("*")) if p.is_file() and TMP_MARK not in p.name]
        self._upload_pairs(pairs, overwrite, show_progress, target)
        return self.path(target)

    def upload_files(self, files: Iterable[str | os.PathLike[str]], target_path: str | None = None,
                     overwrite: bool = False, show_progress: Any = True,
                     relative_root: str | os.PathLike[str] | None = None) -> DataReference:
        """Upload single files: named by their path below relative_root, else by their file name."""
        target = clean_path(target_path, "target_path")
        root = Path(relative_root).expanduser().resolve() if relative_root else None
        pairs = []
        for f in files:
            p = Path(f).expanduser()
            if not p.is_file():
                raise DatastoreError(f"upload_files: {str(p)!r} is not a file")
            if root is not None:
                try:
                    rel = p.resolve().relative_to(root).as_posix()
                except ValueError:
                    raise DatastoreError(f"upload_files: {str(p)!r} is not under relative_root "
                                         f"{str(root)!r}") from None
            else:
                rel = p.name
            pairs.append((str(p), join(target, rel)))
        self._upload_pairs(pairs, overwrite, show_progress, target)
        return self.path(target)

    def download(self, target_path: str | os.PathLike[str], prefix: str | None = None,
                 overwrite: bool = False, show_progress: Any = True) -> int:
        """Download files starting with prefix to target_path/<their path>; returns files fetched."""
        prefix = _clean_prefix(prefix or "")
        try:
            found = list(self._iter_files(prefix))
        except Exception as exc:  # noqa: BLE001 — any backend failure becomes one DatastoreError, secrets scrubbed
            raise self._error(exc, "list", prefix or "/") from None
        dest = Path(target_path).expanduser()
        pairs = [(path, size, dest / path) for path, size in found]
        return self._download_pairs(pairs, overwrite, show_progress, prefix or self.name)

    # -- folder staging (node agent) --------------------------------------------------------------
    def fetch_tree(self, path: str, local_dir: str, show_progress: Any = False) -> str:
        """The file or folder `path` into local_dir; returns the local path that holds it."""
        path = clean_path(path)
        try:
            found = list(self._iter_files(path))
        except Exception as exc:  # noqa: BLE001 — any backend failure becomes one DatastoreError, secrets scrubbed
            raise self._error(exc, "list", path or "/") from None
        os.makedirs(local_dir, exist_ok=True)
        exact = [(p, s) for p, s in found if p == path]
        if path and exact:  # a single file: it keeps its name inside local_dir
            local = os.path.join(local_dir, path.rsplit("/", 1)[-1])
            self._download_pairs([(path, exact[0][1], Path(local))], True, show_progress, path)
            return local
        under = [(p, s) for p, s in found if not path or p.startswith(path + "/")]
        if not under:
            raise DatastoreError(f"input {path or '/'!r} not found on datastore {self!r}")
        cut = len(path) + 1 if path else 0
        pairs = [(p, s, Path(local_dir) / p[cut:]) for p, s in under]
        self._download_pairs(pairs, True, show_progress, path)
        return local_dir

    def push_tree(self, local_dir: str, path: str, show_progress: Any = False) -> int:
        """Every file below local_dir to `path`/<relative path>, overwriting; returns files sent."""
        pairs = self._tree_pairs(local_dir, path)
        self._upload_pairs(pairs, True, show_progress, path)
        return len(pairs)

    def move_tree(self, local_dir: str, path: str) -> int:
        """push_tree for a folder nothing reads again (a run's staged outputs): a kind that can
        take a file over without copying it does (see LocalDatastore); here, a copy."""
        return self.push_tree(local_dir, path)

    def _tree_pairs(self, local_dir: str, path: str) -> UploadPairs:
        root = Path(local_dir)
        return [(str(p), join(clean_path(path), p.relative_to(root).as_posix()))
                for p in sorted(root.rglob("*")) if p.is_file()] if root.is_dir() else []

    # -- the transfer loop -----------------------------------------------------------------------
    def _upload_pairs(self, pairs: UploadPairs, overwrite: bool, show_progress: Any,
                      label: str) -> None:
        if not overwrite and pairs:
            existing = set(self.list(os.path.commonprefix([p for _, p in pairs])))
            pairs = [(loc, p) for loc, p in pairs if p not in existing]
        tasks: TransferTasks = []
        for local, path in pairs:
            size = os.path.getsize(local)
            tasks.append((path, size, _bind(self._put, local, path, size)))
        self._run(tasks, "upload", show_progress, f"upload {label or self.name}")

    def _download_pairs(self, pairs: DownloadPairs, overwrite: bool,
                        show_progress: Any, label: str) -> int:
        if not overwrite:
            pairs = [t for t in pairs if not t[2].exists()]
        tasks: TransferTasks = [(path, size, _bind_get(self._get, path, size, dest)) for path, size, dest in pairs]
        self._run(tasks, "download", show_progress, f"download {label}")
        return len(tasks)

    def _run(self, tasks: TransferTasks, op: str,
             show_progress: Any, desc: str) -> None:
        """Run transfers on a thread pool; the first failure stops the rest and is raised."""
        cb: Callback = make_callback(show_progress, desc)
        cb.set_size(sum(size for _, size, _ in tasks))
        stop = threading.Event()

        def one(path: str, fn: Callable[[Advance], None]) -> None:
            if stop.is_set():
                return
            try:
                fn(cb.advance)
            except BaseException as exc:  # noqa: BLE001 — stop the others first, then raise it typed
                stop.set()
                raise self._error(exc, op, path) from None

        try:
            if len(tasks) == 1:
                one(tasks[0][0], tasks[0][2])
                return
            workers = max(1, min(self.max_concurrency, len(tasks)))
            with ThreadPoolExecutor(workers, thread_name_prefix=f"bai-{op}") as pool:
                futures = [pool.submit(one, path, fn) for path, _, fn in tasks]
                try:
                    wait(futures, return_when=FIRST_EXCEPTION)
                except BaseException:  # Ctrl-C in a notebook: queued files are not started
                    stop.set()
                    for f in futures:
                        f.cancel()
                    raise
                for f in futures:
                    f.cancel()
                for f in futures:
                    if f.done() and not f.cancelled() and f.exception() is not None:
                        raise f.exception()  # type: ignore[misc]
        finally:
            cb.close()


def _bind(fn: Callable[..., None], local: str, path: str, size: int) -> Callable[[Advance], None]:
    return lambda advance: fn(local, path, size, advance)


def _bind_get(get: Callable[..., None], path: str, size: int, dest: Path) -> Callable[[Advance], None]:
    def run(advance: Advance) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}{TMP_MARK}{_secrets.token_hex(4)}")
        try:
            get(path, str(tmp), size, advance)
            os.replace(tmp, dest)  # the final name only ever holds a whole file
        finally:
            if tmp.exists():
                tmp.unlink()
    return run


def _clean_prefix(prefix: str) -> str:
    """A string prefix: like clean_path, but a trailing '/' is meaningful and kept."""
    cleaned = clean_path(prefix, "prefix")
    return cleaned + "/" if cleaned and str(prefix).endswith("/") else cleaned

