"""Model: one registered model version, as Azure ML v1's `Model(ws, name, version=None)`.

Models are registered from a run (`run.register_model(...)`, inside a job or on the client) or
from a local path (`Model.register(ws, model_path, model_name)`); `ws.models()` lists them.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .model_registry import ModelRegistry, copy_into
from .records import ModelRow

if TYPE_CHECKING:
    from .workspace import Workspace

__all__ = ["Model"]


class Model:
    """A registered model version (the latest of its name unless `version` is given).

    Parameters: workspace, the Workspace; name, the model's name; version, a version number
    (None: the latest). ModelNotFound lists the names or versions there are.
    """

    def __init__(self, workspace: Workspace, name: str, version: int | None = None,
                 *, _row: ModelRow | None = None):
        self.workspace = workspace
        row = _row or registry(workspace).row(name, version)
        self._row = row
        self.name: str = row["name"]
        self.version: int = row["version"]
        self.tags: dict[str, str] = dict(row["tags"])
        self.properties: dict[str, str] = dict(row["properties"])
        self.description: str | None = row["description"]
        self.run_id: str | None = row["run_id"]
        self.created_time: float = row["created"]
        self.id = f"{self.name}:{self.version}"

    def __repr__(self) -> str:
        return f"Model(name={self.name!r}, version={self.version}, run_id={self.run_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other.id == self.id and other.workspace.path == self.workspace.path

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def path(self) -> Path:
        """The model's file or folder in the workspace."""
        return registry(self.workspace).files_dir(self._row) / Path(self._row["path"]).name

    @property
    def run(self) -> Any:
        """The run that made the model (None when registered from a local path)."""
        return self.workspace.get_run(self.run_id) if self.run_id else None

    def download(self, target_dir: str | os.PathLike[str] = ".", exist_ok: bool = False) -> str:
        """Copy the model's file or folder into target_dir; returns the copy's path.

        Parameters: target_dir, the folder to copy into (made if missing); exist_ok, replace a
        file or folder of the same name there (else SpecError)."""
        target = Path(target_dir) / self.path.name
        if target.exists() or target.is_symlink():
            if not exist_ok:
                raise SpecError("target_dir", f"{target} exists", "exist_ok=True to replace it")
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_dir():
            shutil.copytree(self.path, target, symlinks=True)
        else:
            shutil.copyfile(self.path, target)
        return str(target)

    @staticmethod
    def register(workspace: Workspace, model_path: str | os.PathLike[str], model_name: str,
                 tags: dict[str, Any] | None = None, properties: dict[str, Any] | None = None,
                 description: str | None = None, **_azureml_options: Any) -> Model:
        """Register a local file or folder as the next version of `model_name` (no run)."""
        source = Path(model_path)
        if not source.exists():
            raise SpecError("model_path", f"no file or folder {source}")
        row = registry(workspace).register(model_name, source.name, copy_into(source), None,
                                           _strings(tags), _strings(properties), description)
        return Model(workspace, row["name"], _row=row)


def registry(workspace: Workspace) -> ModelRegistry:
    return ModelRegistry(workspace.history, workspace.path)


def register_from_run(workspace: Workspace, run_id: str, files_dir: Path, model_name: str,
                      model_path: str, tags: dict[str, Any] | None, properties: dict[str, Any] | None,
                      description: str | None) -> Model:
    """A run's file or folder (a path in its files, e.g. "outputs/model.pkl") as a model version."""
    from .run_context.logging_api import check_rel
    rel = check_rel(model_path, "model_path")
    source = files_dir / rel
    if not source.exists():
        raise SpecError("model_path", f"run {run_id} has no file or folder {rel!r}",
                        "a path from run.get_file_names(), e.g. 'outputs/model.pkl'")
    row = registry(workspace).register(model_name, rel, copy_into(source), run_id, _strings(tags),
                                       _strings(properties), description)
    return Model(workspace, row["name"], _row=row)


def _strings(values: dict[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}
