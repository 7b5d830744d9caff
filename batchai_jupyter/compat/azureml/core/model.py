"""`from azureml.core.model import Model` inside a batchai job."""
from __future__ import annotations

from batchai_jupyter.models import Model

__all__ = ["Model"]
