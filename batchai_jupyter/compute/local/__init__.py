"""The embedded default backend: nodes are folders on this machine."""
from .backend import LocalCompute

__all__ = ["LocalCompute"]
