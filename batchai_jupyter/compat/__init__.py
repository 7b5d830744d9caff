"""A stand-in `azureml` package for jobs: Azure ML v1 training scripts import their Run from
`azureml.core` and run unchanged here. The node agent puts this folder first on the job's
PYTHONPATH unless a real `azureml.core` is importable in the job's environment.

What it offers is what training scripts import inside jobs: `Run` (Run.get_context()), and, for
scripts that reach their workspace, `Workspace`, `Experiment` and `Model` (ours, where the node
sees the workspace). Datasets, environments and run configurations are not offered: a job gets
its data as inputs and mounts (AZ_BATCHAI_INPUT_<ID>), so a script that imports them needs a
real azureml. Standard library only: the agent imports this module on bare nodes.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Mapping

#: the folder that goes on PYTHONPATH (it holds the `azureml` package of this shim)
SHIM_DIR = os.path.dirname(os.path.abspath(__file__))
_CHECK = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('azureml.core') else 3)"


def real_azureml(python: str, env: Mapping[str, str]) -> bool:
    """Is a real `azureml.core` importable by `python` in the job's environment `env`?"""
    if os.path.realpath(python) == os.path.realpath(sys.executable) and \
            _foreign_path(env.get("PYTHONPATH", "")) == _foreign_path(os.environ.get("PYTHONPATH", "")):
        try:  # the agent's own interpreter and path: ask here, no process to start
            return importlib.util.find_spec("azureml.core") is not None
        except (ImportError, ValueError):
            return False
    try:
        done = subprocess.run([python, "-c", _CHECK], env=dict(env), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _foreign_path(pythonpath: str) -> list[str]:
    """PYTHONPATH without this package's own folders (e.g. node/autoflush: no azureml there)."""
    own = os.path.dirname(SHIM_DIR) + os.sep
    return [p for p in pythonpath.split(os.pathsep) if p and not os.path.abspath(p).startswith(own)]


def with_shim(env: Mapping[str, str], python: str) -> dict[str, str]:
    """The job's environment with the shim first on PYTHONPATH (unchanged if a real one is there)."""
    out = dict(env)
    if real_azureml(python, env):
        return out
    rest = out.get("PYTHONPATH")
    out["PYTHONPATH"] = SHIM_DIR + (os.pathsep + rest if rest else "")
    return out
