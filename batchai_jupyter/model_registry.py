"""ModelRegistry: the workspace's registered models — a table of history.db and models/ files.

A model version is made from files a run kept (its outputs or uploads): the engine registers
those a job asks for (engine/job_records.py, files read from the node), a client those of an
ended run or of a local path (models.py). Versions count 1, 2, ... per name; the table is made
on first use (the history package's migration pattern: CREATE ... IF NOT EXISTS), and its SQL lives
here to keep the history package small. Files are copied to a temporary folder first and moved into
models/<name>/<version>/ once the version is taken, so a reader never sees half a model.
"""
from __future__ import annotations

import json
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from .errors import ModelNotFound, SpecError
from .history import RunHistory
from .layout import WorkspacePaths
from .records import ModelRow

SCHEMA = """
CREATE TABLE IF NOT EXISTS models(name TEXT NOT NULL, version INTEGER NOT NULL, run_id TEXT,
    path TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '{}', properties TEXT NOT NULL DEFAULT '{}',
    description TEXT, token TEXT UNIQUE, created REAL NOT NULL, PRIMARY KEY(name, version));
"""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")

#: writes a model's files into the folder it is given (which it creates)
FileWriter = Callable[[Path], None]


def check_model_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError("model_name", f"{name!r} is not a model name",
                        "letters, digits, '-', '_' and '.', starting with a letter or digit, at most 255")
    return name


class ModelRegistry:
    """Registered model versions of one workspace."""

    def __init__(self, history: RunHistory, root: Path, create: bool = True):
        self.history = history
        self.paths = WorkspacePaths(Path(root))
        if create:
            with history.tx() as db:
                db.execute(SCHEMA)

    # -- reads ---------------------------------------------------------------------------------
    def _select(self, where: str = "", args: tuple[object, ...] = ()) -> list[ModelRow]:
        try:
            rows = self.history.query(f"SELECT * FROM models {where} ORDER BY name, version", args)
        except sqlite3.OperationalError:  # no model was ever registered (no table yet)
            return []
        return [_model(r) for r in rows]

    def rows(self, name: str | None = None) -> list[ModelRow]:
        return self._select("WHERE name=?", (name,)) if name is not None else self._select()

    def row(self, name: str, version: int | None = None) -> ModelRow:
        """One version (None: the latest); ModelNotFound names the models or versions there are."""
        versions = self.rows(name)
        if not versions:
            known = sorted({r["name"] for r in self.rows()})
            raise ModelNotFound(f"model {name!r} not found (registered models: {', '.join(known) or 'none'})")
        if version is None:
            return versions[-1]
        for row in versions:
            if row["version"] == version:
                return row
        raise ModelNotFound(f"model {name!r} has no version {version!r} (versions: "
                            f"{', '.join(str(r['version']) for r in versions)})")

    def by_token(self, token: str) -> ModelRow | None:
        found = self._select("WHERE token=?", (token,))
        return found[0] if found else None

    def files_dir(self, row: ModelRow) -> Path:
        return self.paths.model_dir(row["name"], row["version"])

    # -- registration --------------------------------------------------------------------------
    def register(self, name: str, path: str, write: FileWriter, run_id: str | None = None,
                 tags: dict[str, str] | None = None, properties: dict[str, str] | None = None,
                 description: str | None = None, token: str | None = None) -> ModelRow:
        """The next version of `name`, with the files `write` puts in its folder. With a token
        (a job's record) it is registered once however often it is asked."""
        check_model_name(name)
        token = token or secrets.token_hex(8)
        incoming = self.paths.models / f".incoming-{token}"
        done = self.by_token(token)
        if done is None:
            if incoming.exists():
                shutil.rmtree(incoming)
            incoming.mkdir(parents=True)
            try:
                write(incoming)
            except BaseException:
                shutil.rmtree(incoming, ignore_errors=True)
                raise
            with self.history.tx() as db:
                version = int(db.execute("SELECT coalesce(max(version), 0) FROM models WHERE name=?",
                                         (name,)).fetchone()[0]) + 1
                db.execute("INSERT INTO models VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (name, version, run_id, path, json.dumps(tags or {}), json.dumps(properties or {}),
                            description, token, time.time()))
            done = self.by_token(token)
            assert done is not None
        target = self.files_dir(done)
        if incoming.exists() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            incoming.rename(target)
        return done


def copy_into(source: Path) -> FileWriter:
    """A FileWriter copying a file or a folder into the model's folder under its own name."""
    def write(folder: Path) -> None:
        if source.is_dir():
            shutil.copytree(source, folder / source.name, symlinks=True)
        elif source.is_file():
            shutil.copyfile(source, folder / source.name)
        else:
            raise SpecError("model_path", f"{source} is neither a file nor a folder")
    return write


def _model(row: sqlite3.Row) -> ModelRow:
    return ModelRow(name=row["name"], version=row["version"], run_id=row["run_id"], path=row["path"],
                    tags=json.loads(row["tags"] or "{}"), properties=json.loads(row["properties"] or "{}"),
                    description=row["description"], created=row["created"])
