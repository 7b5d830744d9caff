"""The files and models of a run inside a job: download_file(s), get_file_names and
register_model, mixed into JobRun (job_run.py), which says where files go and what is seen."""
from __future__ import annotations

import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FileNotInRun, SpecError
from .channel import MetricRecord, OpRecord, now
from .logging_api import MetricsLogger, check_rel
from .reader import WorkspaceView

_WRITING = re.compile(r"\.tmp\d+$")  # an upload not renamed into place yet (logging_api.py)


@dataclass(frozen=True)
class RegisteredModel:
    """What register_model() inside a job returns (version: None where the workspace is unseen)."""

    name: str
    version: int | None
    path: str
    tags: dict[str, str]
    run_id: str


class JobFiles(MetricsLogger):
    """Run files and model registration; `_workspace`, `_send` and `_file_target` are JobRun's."""

    id: str
    _parent: Any
    _channel: Any

    def _workspace(self) -> WorkspaceView | None:
        raise NotImplementedError

    def _send(self, record: MetricRecord | OpRecord) -> None:
        raise NotImplementedError

    def get_file_names(self) -> list[str]:
        """The run's files in the workspace, and those this job uploaded that are not copied yet."""
        names: set[str] = set()
        view = self._workspace()
        if view is not None and view.files_dir(self.id).exists():
            base = view.files_dir(self.id)
            names.update(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
        own = self._file_target("")
        if own is not None and os.path.isdir(own):
            names.update(p.relative_to(own).as_posix() for p in Path(own).rglob("*")
                         if p.is_file() and not _WRITING.search(p.name))
        return sorted(names)

    def download_file(self, name: str, output_file_path: str | os.PathLike[str] | None = None) -> Path:
        rel = check_rel(name)
        view = self._workspace()
        own = self._file_target(rel)
        src = view.files_dir(self.id) / rel if view is not None else None
        if (src is None or not src.is_file()) and own is not None and os.path.isfile(own):
            src = Path(own)  # a file this job uploaded and the engine has not copied yet
        if src is None or not src.is_file():
            raise FileNotInRun(f"run {self.id} has no file {rel!r}"
                               + ("" if view is not None else " this node can see"))
        return copy_run_file(src, rel, output_file_path)

    def download_files(self, prefix: str | None = None, output_directory: str | os.PathLike[str] | None = None,
                       append_prefix: bool = True) -> list[Path]:
        out_dir = Path(output_directory) if output_directory is not None else Path.cwd()
        got = []
        for name in self.get_file_names():
            if name.startswith(prefix or ""):
                rel = name if append_prefix or not prefix else name[len(prefix):].lstrip("/")
                got.append(self.download_file(name, out_dir / rel))
        return got

    def register_model(self, model_name: str, model_path: str | None = None, tags: dict[str, Any] | None = None,
                       properties: dict[str, Any] | None = None, description: str | None = None,
                       **_azureml_options: Any) -> RegisteredModel:
        """Register the run's file or folder `model_path` (e.g. "outputs/model.pkl") as the next
        version of model `model_name`. A path not uploaded yet is taken from the job's working
        folder (./outputs is only collected at the end) and uploaded first."""
        from ..model_registry import check_model_name
        name = check_model_name(model_name)
        rel = check_rel(model_path or "outputs", "model_path")
        if self._parent is not None:
            raise SpecError("register_model", "register models from the job's own run "
                            "(Run.get_context()), not from a child run")
        uploaded = self._file_target(rel)
        if uploaded is not None and not os.path.exists(uploaded):
            local = os.path.join(os.getcwd(), rel)
            if os.path.isdir(local):
                self.upload_folder(rel, local)
            elif os.path.isfile(local):
                self.upload_file(rel, local)
            else:
                raise SpecError("model_path", f"{rel!r} is neither uploaded to the run nor in the "
                                f"job's folder {os.getcwd()}", "a file or folder under ./outputs")
        token = secrets.token_hex(8)
        clean_tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self._send({"op": "model", "run_id": self.id, "token": token, "name": name, "path": rel,
                    "tags": clean_tags, "properties": {str(k): str(v) for k, v in (properties or {}).items()},
                    "description": description, "ts": now()})
        if self._channel is None:
            print(f"[model] {name} from {rel}")
        view = self._workspace()
        version = view.model_version(token) if view is not None else None
        return RegisteredModel(name=name, version=version, path=rel, tags=clean_tags, run_id=self.id)


def copy_run_file(src: Path, rel: str, output_file_path: str | os.PathLike[str] | None) -> Path:
    """Copy a run file to output_file_path: a file, or a folder (default: its name in the cwd)."""
    target = Path(output_file_path) if output_file_path is not None else Path(Path(rel).name)
    if target.is_dir():
        target = target / Path(rel).name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    return target
