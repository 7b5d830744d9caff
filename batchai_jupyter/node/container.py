"""A run's container on one node: pull the image, start one container, exec the job into it.

The agent calls `prepare()` after staging (so FUSE mounts are in place) and before
job_preparation, `wrap()` for every process it starts and `remove()` before it writes
status.json, so a run that is final has no container left. What each step does is written to
the run's `stdout-container.txt` / `stderr-container.txt` (a `-<node>` suffix on several nodes),
which the engine streams like any other log. A missing runtime, a missing image under
image_pull='never' and a refused pull are a ContainerError naming the image and the answer.
"""
from __future__ import annotations

import dataclasses
import os
import resource
import shutil
import subprocess
import sys
import time
from typing import IO

from ..errors import ContainerError
from ..spec import CONTAINER_RUNTIMES
from . import container_argv as cargv
from .container_argv import Bind, ContainerSpec
from .container_pull import PullRequest, pull_image
from .manifest import RunManifest
from .process import PlanInputs, ProcessPlan

#: Variables of the agent's own environment that never enter a container (the image has its own).
_HOST_ONLY = ("PATH", "HOME", "PWD", "OLDPWD", "SHLVL", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "PYTHONHOME",
              "TMPDIR", "XDG_RUNTIME_DIR", "_")
#: Variables the agent and the planners set for the job: passed even where the host has the same value.
_JOB_KEYS = ("AZ_BATCH", "BATCHAI_", "PYTHONUNBUFFERED", "MASTER_", "WORLD_SIZE", "RANK", "LOCAL_",
             "NODE_RANK", "CUDA_VISIBLE_DEVICES", "TF_CONFIG")
_ULIMITS = {"nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC}
_POLL = 0.1
REMOVE_WAIT_SECONDS = 10.0


class NodeContainer:
    """The container of one run on this node; see the module docstring for the order."""

    def __init__(self, manifest: RunManifest, job_env: dict[str, str]):
        """job_env: the run's environment on this node (job_env + staging): it names the data."""
        config = manifest.container
        if config is None:
            raise ValueError("the run names no image")
        self.manifest = manifest
        self.job_env = dict(job_env)
        self.agent_env = dict(os.environ)  # the host's own variables stay out of the container
        self.config = config
        self.runtime = config["runtime"]
        self.image = config["image"]
        paths = manifest.paths
        self.folder = os.path.join(paths.run_dir, "container")
        suffix = f"-{manifest.node_index}" if manifest.multi_node else ""
        self.log_names = [f"stdout-container{suffix}.txt", f"stderr-container{suffix}.txt"]
        self.spec = self._container_spec()
        self.started = False
        self.launcher = False  # the container starts our processes itself (no exec; LAUNCHER)
        self._seq = 0

    # -- the spec --------------------------------------------------------------------------------
    def _container_spec(self) -> ContainerSpec:
        m = self.manifest
        if self.runtime not in CONTAINER_RUNTIMES:
            raise ContainerError(self.image, f"unknown container_runtime {self.runtime!r} "
                                 f"(valid: {', '.join(CONTAINER_RUNTIMES)})")
        executable = shutil.which(self.runtime, path=self.agent_env.get("PATH"))
        if executable is None:
            raise ContainerError(self.image, f"container runtime {self.runtime!r} is not installed on node "
                                 f"{m.node.id} ({m.node.address}); PATH={self.agent_env.get('PATH')}; "
                                 f"install it there or set the cluster's container_runtime= "
                                 f"(one of {', '.join(CONTAINER_RUNTIMES)})")
        return ContainerSpec(
            runtime=self.runtime, executable=executable, image=self.image,
            name=cargv.container_name(m.run_key, m.node_index), agent_pid=os.getpid(),
            labels={cargv.LABEL: m.run_id, "batchai.node": m.node.id, "batchai.run_dir": m.paths.run_dir},
            binds=self._binds(), gpu_ids=list(m.node.gpu_ids), shm_size=m.spec.shm_size,
            options=list(m.spec.container_options), runtime_args=self._runtime_args(),
            ulimits=node_ulimits(), fifo=os.path.join(self.folder, "launch.fifo"),
            starter=f"{cargv.PACKAGE_MOUNT}/batchai_jupyter/node/container_starter.py")

    def _runtime_args(self) -> list[str]:
        """The cluster's container_runtime_args; by default podman runs with runc where runc is
        installed (crun cannot start containers on hosts with hybrid cgroups)."""
        given = self.config.get("runtime_args")
        if given is not None:
            return list(given)
        if self.runtime == "podman" and shutil.which("runc", path=self.agent_env.get("PATH")):
            return ["--runtime", "runc"]
        return []

    def _binds(self) -> list[Bind]:
        """The run's folders at their own paths, data the job reads through links, our package."""
        m, p = self.manifest, self.manifest.paths
        folders = [p.run_dir, p.shared_temp(m.shared_dir, m.run_id), p.mount_root]
        # other nodes of the run on this machine (local clusters): mpirun's ranks run here
        folders += [m.paths_of(n).run_dir for n in m.nodes]
        binds: list[Bind] = []
        for folder in folders:
            if os.path.isdir(folder) and not _covered(folder, binds):
                binds.append(Bind(folder))
        for target in self._linked_data():
            if os.path.isdir(target) and not _covered(target, binds):
                binds.append(Bind(target))
        binds.append(Bind(_package_dir(), f"{cargv.PACKAGE_MOUNT}/batchai_jupyter", read_only=True))
        return binds

    def _linked_data(self) -> list[str]:
        """Where inputs, outputs and mounts really are when they are links out of the run folder."""
        p = self.manifest.paths
        paths = [v for k, v in self.job_env.items()
                 if k.startswith(("AZ_BATCHAI_INPUT_", "AZ_BATCHAI_OUTPUT_"))]
        for folder in (p.mounts, p.mount_root):
            try:
                paths += [os.path.join(folder, n) for n in os.listdir(folder)]
            except OSError:
                pass
        return sorted({os.path.realpath(x) for x in paths})

    # -- prepare -----------------------------------------------------------------------------------
    def prepare(self, cancel_path: str, deadline: float) -> str | None:
        """Pull (per image_pull) and start the container; "canceled" or "timeout" if stopped.

        Under 'missing' and 'never' the container is started first: an image already on the node
        costs no separate look-up; only a start that fails makes us ask whether the image is there."""
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        if self.runtime != "apptainer" and not os.path.exists(self.spec.fifo):
            os.mkfifo(self.spec.fifo, 0o600)
        t0 = time.monotonic()
        policy = self.manifest.spec.image_pull
        node = self.manifest.node.id
        out_path, err_path = (os.path.join(self.manifest.paths.stdouterr, n) for n in self.log_names)
        with open(out_path, "a") as out, open(err_path, "a") as err:
            if self.runtime == "apptainer":
                if self.image.startswith("/") and not os.path.isfile(self.image):
                    raise ContainerError(self.image, f"no such image file on node {node}")
                out.write("apptainer: each process runs as `apptainer exec`; no container to start\n")
                return None
            if policy != "always":
                code, answer = self._start_container()
                if code == 0:
                    out.write(f"image {self.image} present on node {node}; not pulled "
                              f"(image_pull={policy!r})\n")
                    self._started(out, t0)
                    return None
                if self._quiet(cargv.image_exists_argv(self.spec)) == 0:
                    err.write(answer)
                    raise ContainerError(self.image, f"container {self.spec.name} did not start on node "
                                         f"{node}: {_last(answer)}")
                if policy == "never":
                    raise ContainerError(self.image, f"not present on node {node} and image_pull='never' "
                                         "(valid: 'missing' or 'always' to pull it, or load the image "
                                         "on the node first)")
            stopped = self._pull(out, err, cancel_path, deadline)
            if stopped:
                return stopped
            code, answer = self._start_container()
            if code != 0:
                err.write(answer)
                raise ContainerError(self.image, f"container {self.spec.name} did not start on node "
                                     f"{node}: {_last(answer)}")
            self._started(out, t0)
        return None

    def _start_container(self) -> tuple[int, str]:
        """`run -d`: its exit code and what it said on stderr."""
        try:
            done = subprocess.run(cargv.run_argv(self.spec), check=False, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
        except subprocess.TimeoutExpired:
            return 1, "the runtime did not start the container within 600 s\n"
        return done.returncode, done.stderr.decode(errors="replace")

    def _started(self, out: IO[str], t0: float) -> None:
        self.started = True
        self.launcher = _launcher_answer(self.spec.fifo + ".ready") == "python3"
        how = "started by the container" if self.launcher else "exec'd (the image has no python3)"
        out.write(f"container {self.spec.name} started ({time.monotonic() - t0:.2f} s); "
                  f"job processes are {how}\n")
        out.flush()

    def _pull(self, out: IO[str], err: IO[str], cancel_path: str, deadline: float) -> str | None:
        return pull_image(PullRequest(spec=self.spec, policy=self.manifest.spec.image_pull,
                                      node=self.manifest.node.id, folder=self.folder,
                                      auth=self.config.get("auth"), env=self.agent_env),
                          out, err, cancel_path, deadline)

    # -- processes -------------------------------------------------------------------------------
    def plan_inputs(self, inputs: PlanInputs) -> PlanInputs:
        """The planners' view of this node from inside the image: its python, PATH and mpirun."""
        spec = inputs.manifest.spec
        python = spec.python_interpreter or cargv.CONTAINER_PYTHON
        env = dict(inputs.env, PATH=cargv.CONTAINER_PATH)
        mpirun = inputs.mpirun
        if spec.distribution == "mpi":
            mpirun = self._which_inside("mpirun")
        return dataclasses.replace(inputs, manifest=dataclasses.replace(inputs.manifest, python=python),
                                   env=env, mpirun=mpirun)

    def _which_inside(self, name: str) -> str | None:
        if self.runtime == "apptainer":
            argv = cargv.apptainer_argv(self.spec, "/", ["/bin/sh", "-c", f"command -v {name}"])
        else:
            argv = cargv.exec_argv(self.spec, "/", [], ["/bin/sh", "-c", f"command -v {name}"],
                                   os.path.join(self.folder, f"which-{name}.pid"))
        try:
            done = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = done.stdout.decode(errors="replace").strip()
        return found or None if done.returncode == 0 else None

    def container_env(self, env: dict[str, str]) -> dict[str, str]:
        """The variables a process gets inside: those the job and the agent set, not the host's."""
        spec = self.manifest.spec
        own = set(spec.environment_variables) | set(self.manifest.secrets)
        out = {k: v for k, v in env.items()
               if k in own or k.startswith(_JOB_KEYS)
               or (k not in _HOST_ONLY and self.agent_env.get(k) != v)}
        # our package's own folders on the job's path (e.g. the line-flushing site hook) are
        # seen where the package is bound; the host's other folders stay out
        pkg, paths = _package_dir(), []
        for entry in env.get("PYTHONPATH", "").split(os.pathsep):
            if entry == pkg or entry.startswith(pkg + os.sep):
                paths.append(f"{cargv.PACKAGE_MOUNT}/batchai_jupyter{entry[len(pkg):]}")
        paths.append(cargv.PACKAGE_MOUNT)
        if "PYTHONPATH" in spec.environment_variables:
            paths.append(str(spec.environment_variables["PYTHONPATH"]))
        out["PYTHONPATH"] = os.pathsep.join(paths)
        if "CUDA_VISIBLE_DEVICES" in out:
            out["CUDA_VISIBLE_DEVICES"] = cargv.visible_devices(out["CUDA_VISIBLE_DEVICES"],
                                                                self.spec.gpu_ids, self.runtime)
        return out

    def wrap(self, plan: ProcessPlan) -> ProcessPlan:
        """The same process, started in the node's container (see container_exec.py)."""
        inner = self.container_env(plan.env)
        cwd = self.manifest.paths.wd
        if self.runtime == "apptainer":
            env = dict(plan.env, **inner)
            return dataclasses.replace(plan, argv=cargv.apptainer_argv(self.spec, cwd, plan.argv), env=env)
        self._seq += 1
        pid_file = os.path.join(self.folder, f"{plan.name}.{self._seq}.pid")
        if self.launcher:  # the helper runs as the agent; the job's account is the starter's to take
            user = self.manifest.job_user
            as_user = ["--user", f"{user['uid']}:{user['gid']}"] if user else []
            names = [a for name in sorted(inner) for a in ("--env", name)]
            logs = self.manifest.paths.stdouterr
            argv = [sys.executable, "-I", "-S", _helper_path(), "--fifo", self.spec.fifo, "--cwd", cwd,
                    "--stdout", os.path.join(logs, plan.stdout), "--stderr", os.path.join(logs, plan.stderr),
                    *as_user, *names, pid_file, "--", *plan.argv]
            return dataclasses.replace(plan, argv=argv, env=dict(plan.env, **inner), as_agent=True)
        argv = [sys.executable, _helper_path(), pid_file,
                *cargv.exec_argv(self.spec, cwd, inner, plan.argv, pid_file)]
        # the runtime client runs with the agent's environment plus the values it passes by name
        return dataclasses.replace(plan, argv=argv, env=dict(plan.env, **inner))

    # -- the end -----------------------------------------------------------------------------------
    def remove(self) -> None:
        """Remove the container (and what still runs in it); wait until the runtime says it is gone."""
        if self.runtime == "apptainer":
            return
        self._quiet(cargv.remove_argv(self.spec))
        end = time.time() + REMOVE_WAIT_SECONDS
        while self._quiet(cargv.exists_argv(self.spec)) == 0 and time.time() < end:
            time.sleep(_POLL)
            self._quiet(cargv.remove_argv(self.spec))
        self.started = False

    # -- helpers -----------------------------------------------------------------------------------
    def _quiet(self, argv: list[str]) -> int:
        try:
            return subprocess.run(argv, check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=120).returncode
        except (OSError, subprocess.TimeoutExpired):
            return 1


def node_ulimits() -> dict[str, tuple[int, int]]:
    """The agent's own open-file and process limits, so the job has the limits it has bare.

    Given explicitly because a runtime's defaults raise them, which some hosts refuse; the process
    limit is capped at the kernel's pid_max (no higher count can exist, and some kernels refuse it)."""
    out: dict[str, tuple[int, int]] = {}
    for name, res in _ULIMITS.items():
        soft, hard = resource.getrlimit(res)
        if name == "nproc":
            cap = _pid_max()
            soft, hard = (cap if v == resource.RLIM_INFINITY or v > cap else v for v in (soft, hard))
        out[name] = (-1 if soft == resource.RLIM_INFINITY else soft, -1 if hard == resource.RLIM_INFINITY else hard)
    return out


def _pid_max() -> int:
    try:
        with open("/proc/sys/kernel/pid_max") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return 32768


def _launcher_answer(path: str, wait: float = 10.0) -> str:
    """What the container's first process said of the image ("python3" or "exec"); "" if nothing."""
    end = time.monotonic() + wait
    while True:
        try:
            with open(path) as fh:
                text = fh.read().strip()
            if text:
                return text
        except OSError:
            pass
        if time.monotonic() >= end:
            return ""
        time.sleep(0.005)


def _last(text: str, lines: int = 3) -> str:
    return " | ".join([ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]) or "(no message)"


def _covered(path: str, binds: list[Bind]) -> bool:
    return any(path == b.src or path.startswith(b.src.rstrip("/") + "/") for b in binds)


def _package_dir() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _helper_path() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "container_exec.py")
