"""Azure ML v1's names on the client's Run that its own API words differently: get_status,
get_tags, add_properties/get_properties and register_model (mixed into Run)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import RunActive, SpecError
from .history import TERMINAL_STATUSES
from .run_context.channel import USER_PROPERTIES

if TYPE_CHECKING:
    from .models import Model
    from .records import RunRow
    from .workspace import Workspace


class AzureMLRunNames:
    """The methods Run gets for Azure ML v1 users; `row()`, `files_dir` and `workspace` are Run's."""

    workspace: Workspace
    id: str

    def row(self) -> RunRow:
        raise NotImplementedError

    @property
    def files_dir(self) -> Path:
        raise NotImplementedError

    def get_status(self) -> str:
        return str(self.row()["status"])

    def get_tags(self) -> dict[str, str]:
        return dict(self.row()["tags"])

    def get_properties(self) -> dict[str, str]:
        """The properties users added (add_properties, inside the job or here)."""
        return dict(self.row()["properties"].get(USER_PROPERTIES) or {})

    def add_properties(self, properties: dict[str, Any]) -> None:
        """Add properties; as in Azure ML a property keeps its first value (SpecError otherwise)."""
        if not isinstance(properties, dict) or not all(isinstance(k, str) and k for k in properties):
            raise SpecError("properties", f"a dict of non-empty string keys is needed, got {properties!r}")
        row = self.row()
        props = dict(row["properties"])
        user = dict(props.get(USER_PROPERTIES) or {})
        for key, value in properties.items():
            if key in user and user[key] != str(value):
                raise SpecError(key, f"property {key!r} is already {user[key]!r}; properties cannot "
                                "be changed (use a tag)")
            user[key] = str(value)
        props[USER_PROPERTIES] = user
        self.workspace.history.update_run(self.id, properties=props)

    def register_model(self, model_name: str, model_path: str | None = None,
                       tags: dict[str, Any] | None = None, properties: dict[str, Any] | None = None,
                       description: str | None = None, **_azureml_options: Any) -> Model:
        """Register the run's file or folder `model_path` (e.g. "outputs/model.pkl") as the next
        version of `model_name`; the run must have ended, so its outputs are all in.

        Parameters: model_name, letters, digits, '-', '_', '.'; model_path, a path in the run's
        files (default "outputs"); tags, properties, description: kept with the version."""
        from .models import register_from_run
        status = self.get_status()
        if status not in TERMINAL_STATUSES and self.row()["cluster"] is not None:
            raise RunActive(self.id, status, f"run {self.id} is {status}: its outputs are collected "
                            "when it ends (wait_for_completion() first, or register inside the job)")
        return register_from_run(self.workspace, self.id, self.files_dir, model_name,
                                 model_path or "outputs", tags, properties, description)
