"""The node agent: runs one run's share on one node, detached from whoever started it.

    python -m batchai_jupyter.node.agent <runs/<id>/run.json>

Materialise the snapshot, run job_preparation, stage inputs, start the processes in their own
process groups with stdout/stderr in files, keep a heartbeat, obey cancel and the wall clock,
stage outputs, and write status.json last. The engine only reads what this leaves on disk, so
the agent keeps going when the engine, the notebook or the network goes away.
"""
from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from ..compat import with_shim
from ..errors import SpecError
from ..spec import DEFAULT_WALL_CLOCK, DISTRIBUTIONS
from . import job_user, reap, tree
from .manifest import ManifestError, RunManifest
from .paths import RunPaths
from .plan_mpi import hostfile_text, plan_mpi
from .plan_pytorch import plan_per_process
from .plan_tensorflow import plan_tensorflow
from .process import NodePlan, PlanInputs, ProcessPlan, job_env, job_prep_plan
from .writes import write_atomic, write_in_place, write_small, write_when_space

if TYPE_CHECKING:
    from .container import NodeContainer

POLL_SECONDS = 0.05
HEARTBEAT_SECONDS = 1.0
RANK_POLL_SECONDS = 0.2

Planner = Callable[[PlanInputs], NodePlan]
PLANNERS: dict[str | None, Planner] = {None: plan_per_process, "pytorch": plan_per_process,
                                       "mpi": plan_mpi, "tensorflow": plan_tensorflow}


def plan_node(inputs: PlanInputs) -> NodePlan:
    """Every process (and file) this node starts for the run: the spec's distribution decides."""
    spec = inputs.spec
    if spec.master_only and inputs.manifest.node_index != 0:
        return NodePlan()
    planner = PLANNERS.get(spec.distribution)
    if planner is None:
        raise SpecError("distribution", f"unknown value {spec.distribution!r}",
                        [str(d) for d in DISTRIBUTIONS])
    return planner(inputs)


def plan_inputs(manifest: RunManifest, env: dict[str, str]) -> PlanInputs:
    """What the pure planners need to know about this node, looked up here and only here."""
    cpus = len(os.sched_getaffinity(0)) or 1
    if manifest.spec.distribution != "mpi":
        return PlanInputs(manifest=manifest, env=env, cpu_count=cpus)
    return PlanInputs(manifest=manifest, env=env, mpirun=shutil.which("mpirun", path=env.get("PATH")),
                      as_root=os.geteuid() == 0, cpu_count=cpus, mca=read_mca(manifest.paths.mca_file))


def read_mca(path: str) -> dict[str, str]:
    """The cluster's OpenMPI settings the backend left on the node (none if it left none)."""
    try:
        with open(path) as fh:
            params = json.load(fh)
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else {}


class Agent:
    """One run on one node; see the module docstring for the order of things."""

    def __init__(self, manifest: RunManifest):
        self.manifest = manifest  # with its secrets and datastore credentials: memory only
        self.spec = manifest.spec
        self.paths = manifest.paths
        self.node_index = manifest.node_index
        self.started = time.time()
        self.deadline = self.started + float(self.spec.max_wall_clock_seconds or DEFAULT_WALL_CLOCK)
        self.grace = manifest.kill_grace_seconds
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.exit_codes: dict[str, int | None] = {}
        self.files: dict[str, list[str]] = {}
        self.stop_reason: str | None = None
        self.canceled = False
        self.timed_out = False
        self._done = threading.Event()
        self.container: NodeContainer | None = None  # when the run names an image (container.py)

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        status: dict[str, Any] = {"node_index": self.node_index, "started": self.started}
        beat = threading.Thread(target=self._heartbeat, daemon=True)
        beat.start()
        phase = "preparing"
        stage = None
        try:
            self._set_state(phase)
            self._make_folders()
            # AZ_BATCHAI_MPI_HOST_FILE names it on every run, as on Batch AI, not only on mpi runs
            write_atomic(self.paths.hostfile, hostfile_text(
                self.manifest.nodes, self.spec.process_count_per_node).encode(), 0o666)
            self._materialise()
            env = job_env(self.manifest, os.environ)
            # `from azureml.core import Run` works in the job unless a real azureml is there
            env = with_shim(env, self.spec.python_interpreter or self.manifest.python)
            if self.manifest.job_user is not None:
                env = job_user.user_env(self.manifest.job_user, env, self.paths.temp)
            if self.spec.inputs or self.spec.outputs or self.spec.mounts or self.manifest.data:
                from . import staging  # datastores: only on runs that use them
                stage = staging.Stager(self.manifest, self.paths, env)
                stage.stage_in()
            if self.manifest.job_user is not None:  # what staging brought in is the job's too
                self._hand_over([] if stage is None else [v.target for v in stage.volumes.volumes if v.read_only])
            if self.manifest.setup_task and self.stop_reason is None:
                self._setup_task(env)
            if self.manifest.container is not None:
                self._start_container(env)
            if self.spec.job_preparation and self.stop_reason is None:
                self._job_preparation(env)
            if self.stop_reason is None:
                phase = "running"
                self._set_state(phase)
                self._run_processes(env)
            phase = "finalizing"
            self._set_state(phase)
            if stage is not None:
                stage.stage_out()
        except Exception as exc:  # noqa: BLE001 -- the run fails with the reason; nothing half-done
            self._kill_all()
            self._reap()
            status["error"] = {"phase": phase, "message": f"{type(exc).__name__}: {exc}",
                               "traceback": traceback.format_exc()}
            if stage is not None:  # outputs are uploaded on failure too (a no-op if done)
                try:
                    stage.stage_out()
                except Exception as out_exc:  # noqa: BLE001 -- reported with the first error
                    status["error"]["message"] += f"; {type(out_exc).__name__}: {out_exc}"
        if self.container is not None:  # no container outlives its run
            self.container.remove()
        try:  # an overlay view is unmounted; the run's own files stay in wd
            tree.close_view(self.paths)
        except OSError as exc:
            print(f"[agent] cannot close the view of the snapshot: {exc}", flush=True)
        status.update(exit_codes=self.exit_codes, files=self.files, reason=self.stop_reason,
                      canceled=self.canceled, timed_out=self.timed_out, ended=time.time())
        write_when_space(self.paths.status, json.dumps(status).encode())
        self._done.set()

    def _heartbeat(self) -> None:
        """Beat in place, one fixed-width file: a full node disk does not stop it (no node is
        declared lost because the disk filled up)."""
        while not self._done.is_set():
            try:
                write_in_place(self.paths.heartbeat, f"{time.time():020.6f}".encode())
            except OSError:
                pass
            self._done.wait(HEARTBEAT_SECONDS)

    def _set_state(self, state: str) -> None:
        write_small(self.paths.state, state.encode())

    def _make_folders(self) -> None:
        p = self.paths
        shared_temp = p.shared_temp(self.manifest.shared_dir, self.manifest.run_id)
        for d in (p.wd, p.outputs, p.logs, p.stdouterr, p.temp, p.mounts, p.artifacts, shared_temp):
            os.makedirs(d, exist_ok=True)

    def _materialise(self) -> None:
        """wd: a writable view of the snapshot's one read-only tree on this node (tree.py)."""
        snap, m = self.manifest.snapshot, self.manifest
        # a job running as its own account gets a tree of its own, so its overlay shows it its files
        owner = None if m.job_user is None else (m.job_user["uid"], m.job_user["gid"])
        name = tree.tree_name(snap.files, snap.links, snap.tree, owner)
        built = tree.build_tree(m.node_root, m.objects_dir, snap.files, snap.links, name, owner)
        modes = tree.wanted_modes(self.paths, m.shared_dir, os.environ)
        tree.open_view(self.paths, built, snap.files, snap.links, modes, owner)

    def _hand_over(self, read_only: list[str]) -> None:
        """The folders the job writes become its account's (job_user.py); staged read-only
        volumes stay the agent's, so the job can read them and not write them."""
        user, p = self.manifest.job_user, self.paths
        assert user is not None
        shared_temp = p.shared_temp(self.manifest.shared_dir, self.manifest.run_id)
        job_user.hand_over(user, [p.wd, p.outputs, p.logs, p.temp, p.artifacts, p.mounts, shared_temp],
                           files=[p.metrics], keep=read_only)

    # -- the cluster's node setup task, then job preparation ----------------------------------------
    def _setup_task(self, env: dict[str, str]) -> None:
        from . import setup_task

        def run(plan: ProcessPlan) -> int | None:
            self._start(plan)
            self._wait()
            return self.exit_codes.get(plan.name)
        code = setup_task.run_once(self.manifest, run, env)
        if code not in (None, 0) and self.stop_reason is None:
            self.stop_reason = f"the cluster's node setup task exited with code {code}"

    def _job_preparation(self, env: dict[str, str]) -> None:
        self._start(job_prep_plan(self.manifest, env))
        self._wait()
        code = self.exit_codes.get("job_prep")
        if code != 0 and self.stop_reason is None:
            self.stop_reason = f"job preparation exited with code {code}"

    # -- processes -------------------------------------------------------------------------------
    def _run_processes(self, env: dict[str, str]) -> None:
        if os.path.exists(self.paths.cancel):  # canceled while preparing: start nothing
            self.canceled, self.stop_reason = True, "canceled"
            return
        inputs = plan_inputs(self.manifest, env)
        plan = plan_node(inputs if self.container is None else self.container.plan_inputs(inputs))
        for planned in plan.files:  # hostfile, the MPI rank environment (its presence: "ready")
            write_atomic(planned.path, planned.text.encode(), planned.mode)
        for process in plan.processes:
            self._start(process)
        self._wait()
        if plan.await_ranks:
            self._await_ranks(plan.await_ranks)
        for proc in self.procs.values():  # nothing a job left in the background outlives it
            _signal_group(proc.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        """Kill what left the job's sessions (setsid daemons): reap.py says how they are found."""
        marker = {"BATCHAI_RUN_ID": self.manifest.run_id, "BATCHAI_METRICS_FILE": self.paths.metrics}
        reap.kill_leftovers([p.pid for p in self.procs.values()], marker)

    # -- MPI ranks another node's mpirun starts here ---------------------------------------------
    def _await_ranks(self, expected: int) -> None:
        """Until the ranks of this node ended, so the outputs they write are staged.

        A rank holds an flock on its marker (mpi_rank.hold_marker) while it runs. The wait ends
        when `expected` ranks started and none holds its marker, or when node 0's mpirun is known
        to be over and none is left running here: node 0's status.json where this node can see it,
        or the engine stopping this node's recorded process (a placeholder that stands for the
        ranks, which are mpirun's children, not ours). Cancel and the wall clock stop the ranks.
        """
        sentinel = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        recorded = {n: p.pid for n, p in self.procs.items()}
        write_atomic(self.paths.pids, json.dumps({**recorded, "mpi-ranks": sentinel.pid}).encode())
        master_status = self.manifest.paths_of(self.manifest.nodes[0]).status
        try:
            while True:
                started, running = rank_markers(self.paths.ranks)
                if not running and (len(started) >= expected or sentinel.poll() is not None
                                    or os.path.exists(master_status)):
                    return
                if os.path.exists(self.paths.cancel) and self.stop_reason is None:
                    self.canceled, self.stop_reason = True, "canceled"
                elif time.time() > self.deadline and self.stop_reason is None:
                    self.timed_out = True
                    self.stop_reason = (f"exceeded max_wall_clock_seconds="
                                        f"{self.spec.max_wall_clock_seconds}")
                if self.canceled or self.timed_out:
                    self._stop_ranks(running)
                    return
                time.sleep(RANK_POLL_SECONDS)
        finally:
            _signal_group(sentinel.pid, signal.SIGKILL)
            sentinel.wait()
            write_atomic(self.paths.pids, json.dumps(recorded).encode())

    def _stop_ranks(self, pids: list[int]) -> None:
        """TERM the ranks still running here, KILL them after the grace period."""
        for pid in pids:
            _signal_pid(pid, signal.SIGTERM)
        end = time.time() + self.grace
        while time.time() < end and rank_markers(self.paths.ranks)[1]:
            time.sleep(0.05)
        for pid in rank_markers(self.paths.ranks)[1]:
            _signal_pid(pid, signal.SIGKILL)

    def _start_container(self, env: dict[str, str]) -> None:
        """Pull the image and start the node's container (its own log, stdout-container.txt)."""
        from .container import NodeContainer
        self.container = NodeContainer(self.manifest, env)
        self.files["container"] = list(self.container.log_names)
        stopped = self.container.prepare(self.paths.cancel, self.deadline)
        if stopped == "canceled":
            self.canceled, self.stop_reason = True, "canceled"
        elif stopped:
            self.timed_out = True
            self.stop_reason = f"exceeded max_wall_clock_seconds={self.spec.max_wall_clock_seconds}"

    def _start(self, plan: ProcessPlan) -> None:
        if self.container is not None:
            plan = self.container.wrap(plan)
        with ExitStack() as files:
            out = files.enter_context(open(os.path.join(self.paths.stdouterr, plan.stdout), "ab"))
            err = out if plan.stderr == plan.stdout else \
                files.enter_context(open(os.path.join(self.paths.stdouterr, plan.stderr), "ab"))
            try:
                # the cluster's setup task runs as the agent (it sets the node up); the job's
                # processes as its account, if it has one
                as_user = job_user.popen_kwargs(None if plan.name == "setup_task" or plan.as_agent
                                                else self.manifest.job_user)
                proc = subprocess.Popen(plan.argv, cwd=self.paths.wd, env=plan.env,
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        start_new_session=True, **as_user)
            except OSError as exc:
                err.write(f"cannot start {plan.argv[0]}: {exc}\n".encode())
                self.exit_codes[plan.name] = 127
                self.files[plan.name] = [plan.stdout, plan.stderr]
                return
        self.procs[plan.name] = proc
        self.files[plan.name] = [plan.stdout, plan.stderr]
        write_atomic(self.paths.pids, json.dumps({n: p.pid for n, p in self.procs.items()}).encode())

    def _wait(self) -> None:
        """Until every process ended; one failure, cancel or the wall clock stops the rest."""
        while True:
            running = False
            for name, proc in self.procs.items():
                if name in self.exit_codes:
                    continue
                code = proc.poll()
                if code is None:
                    running = True
                    continue
                self.exit_codes[name] = code
                if code != 0 and self.stop_reason is None and len(self.procs) > 1:
                    self.stop_reason = f"process {name} exited with code {code}"
                    self._kill_all()
            if not running:
                return
            if os.path.exists(self.paths.cancel) and self.stop_reason is None:
                self.canceled = True
                self.stop_reason = "canceled"
                self._kill_all()
            elif time.time() > self.deadline and self.stop_reason is None:
                self.timed_out = True
                self.stop_reason = (f"exceeded max_wall_clock_seconds="
                                    f"{self.spec.max_wall_clock_seconds}")
                self._kill_all()
            _until_one_ends([p for n, p in self.procs.items() if n not in self.exit_codes], POLL_SECONDS)

    def _kill_all(self) -> None:
        """TERM every live process group, wait the grace period, then KILL what is left."""
        live = [p for n, p in self.procs.items() if n not in self.exit_codes and p.poll() is None]
        for proc in live:
            _signal_group(proc.pid, signal.SIGTERM)
        end = time.time() + self.grace
        while time.time() < end and any(p.poll() is None for p in live):
            time.sleep(0.05)
        for proc in self.procs.values():  # also reap stragglers left in finished groups
            _signal_group(proc.pid, signal.SIGKILL)
        for name, proc in self.procs.items():
            if name not in self.exit_codes:
                self.exit_codes[name] = proc.wait()


def _until_one_ends(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """Sleep until one of the processes ends (pidfds, where the kernel has them) or the timeout,
    so a run's end costs no poll interval; cancel and the wall clock are still looked at each
    `timeout`."""
    fds = []
    try:
        for proc in procs:
            try:
                fds.append(os.pidfd_open(proc.pid))
            except (AttributeError, OSError):  # no pidfds here, or the process is already reaped
                fds = []
                break
        if fds:
            select.select(fds, [], [], timeout)
        else:
            time.sleep(timeout)
    finally:
        for fd in fds:
            os.close(fd)


def rank_markers(folder: str) -> tuple[list[str], list[int]]:
    """The ranks that started on this node (ranks/<rank>) and the pids of those still running."""
    try:
        names = [n for n in os.listdir(folder) if ".tmp" not in n]
    except FileNotFoundError:
        return [], []
    running = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # the rank (or what it left behind) still holds it
            running.append(_marker_pid(path))
        finally:
            os.close(fd)
    return names, running


def _marker_pid(path: str) -> int:
    try:
        with open(path) as fh:
            return int(json.load(fh).get("pid") or 0)
    except (OSError, ValueError, AttributeError):
        return 0


def _signal_pid(pid: int, sig: int) -> None:
    if pid <= 0:
        return
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str]) -> int:
    manifest_path = argv[1]
    with open(manifest_path, "rb") as fh:
        text = fh.read()
    try:
        manifest = RunManifest.from_json(text)
    except ManifestError as exc:  # e.g. an engine newer than this node: say so in status.json
        return _refuse(RunPaths.of_run_dir(os.path.dirname(os.path.abspath(manifest_path))), exc)
    # secrets and datastore credentials (SAS tokens) are kept in memory only, not on disk:
    # dropped before anything else, so an agent that loses the launch race leaves none either
    bare = manifest.without_secrets()
    if bare != manifest:  # a manifest with nothing secret stays as the engine wrote it
        write_atomic(manifest_path, bare.to_json().encode(), 0o600)
    if not _claim(manifest.paths):
        return 0
    Agent(manifest).run()
    return 0


def _claim(paths: RunPaths) -> bool:
    """Launch is idempotent: only the first agent for this run on this node proceeds."""
    try:
        fd = os.open(paths.started, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(str(os.getpid()))
    return True


def _refuse(paths: RunPaths, exc: ManifestError) -> int:
    """A manifest this agent cannot run fails the run with the reason (once), instead of a hang."""
    print(f"batchai: {exc}", file=sys.stderr)
    if not os.path.isdir(paths.run_dir) or not _claim(paths):
        return 1
    now = time.time()
    status: dict[str, Any] = {"started": now, "exit_codes": {}, "files": {}, "reason": None,
                              "canceled": False, "timed_out": False, "ended": now,
                              "error": {"phase": "preparing", "message": f"{type(exc).__name__}: {exc}"}}
    write_atomic(paths.status, json.dumps(status).encode())
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
