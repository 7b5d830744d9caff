"""The node agent: runs one run's share on one node, detached from whoever started it.

    python -m batchai_jupyter.node.agent <runs/<id>/run.json>

Materialise the snapshot, run job_preparation, stage inputs, start the processes in their own
process groups with stdout/stderr in files, keep a heartbeat, obey cancel and the wall clock,
stage outputs, and write status.json last. The engine only reads what this leaves on disk, so
the agent keeps going when the engine, the notebook or the network goes away.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

from .launch import ProcessPlan, plan_processes
from .paths import RunPaths, objects_path

POLL_SECONDS = 0.05
HEARTBEAT_SECONDS = 1.0


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def copy_file(src: str, dst: str, mode: int) -> None:
    """A real copy (copy_file_range: the kernel reflinks where it can), never a hard link."""
    with open(src, "rb") as fin:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode | 0o200)
        try:
            size = os.fstat(fin.fileno()).st_size
            done = 0
            try:
                while done < size:
                    n = os.copy_file_range(fin.fileno(), fd, size - done)
                    if n == 0:
                        break
                    done += n
            except OSError:
                fin.seek(done)
                os.lseek(fd, done, os.SEEK_SET)
                with os.fdopen(os.dup(fd), "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
        finally:
            os.close(fd)
    os.chmod(dst, mode)


class Agent:
    """One run on one node; see the module docstring for the order of things."""

    def __init__(self, job: dict[str, Any], secrets: dict[str, str]):
        self.job = job
        self.spec = job["spec"]
        self.paths = RunPaths(job["node_root"], job.get("run_key") or job["run_id"])
        self.secrets = secrets
        self.node_index = int(job["node_index"])
        self.multi_node = len(job["nodes"]) > 1
        self.started = time.time()
        self.deadline = self.started + float(self.spec.get("max_wall_clock_seconds") or 7 * 86400)
        self.grace = float(job.get("kill_grace_seconds", 10))
        self.procs: dict[str, subprocess.Popen] = {}
        self.exit_codes: dict[str, int | None] = {}
        self.files: dict[str, list[str]] = {}
        self.stop_reason: str | None = None
        self.canceled = False
        self.timed_out = False
        self._done = threading.Event()

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
            self._materialise()
            env = self._base_env()
            if self.spec.get("inputs") or self.spec.get("outputs") or self.spec.get("mounts"):
                from . import staging  # datastores: only on runs that use them
                stage = staging.Stager(self.job, self.paths, env)
                stage.stage_in()
            if self.spec.get("job_preparation"):
                self._job_preparation(env)
            if self.stop_reason is None:
                phase = "running"
                self._set_state(phase)
                self._run_processes(env)
            phase = "finalizing"
            self._set_state(phase)
            if stage is not None:
                stage.stage_out()
        except Exception as exc:  # the run fails with the reason; nothing is left half-done
            self._kill_all()
            status["error"] = {"phase": phase, "message": f"{type(exc).__name__}: {exc}",
                               "traceback": traceback.format_exc()}
            if stage is not None:  # outputs are uploaded on failure too (a no-op if done)
                try:
                    stage.stage_out()
                except Exception as out_exc:
                    status["error"]["message"] += f"; {type(out_exc).__name__}: {out_exc}"
        status.update(exit_codes=self.exit_codes, files=self.files, reason=self.stop_reason,
                      canceled=self.canceled, timed_out=self.timed_out, ended=time.time())
        self._done.set()
        write_atomic(self.paths.status, json.dumps(status).encode())

    def _heartbeat(self) -> None:
        while not self._done.is_set():
            try:
                write_atomic(self.paths.heartbeat, str(time.time()).encode())
            except OSError:
                pass
            self._done.wait(HEARTBEAT_SECONDS)

    def _set_state(self, state: str) -> None:
        write_atomic(self.paths.state, state.encode())

    def _make_folders(self) -> None:
        p = self.paths
        for d in (p.wd, p.outputs, p.logs, p.stdouterr, p.temp, p.mounts, p.artifacts,
                  self._shared_temp()):
            os.makedirs(d, exist_ok=True)

    def _shared_temp(self) -> str:
        shared = self.job.get("shared_dir")
        if shared:
            return os.path.join(shared, "jobs", self.job["run_id"], "temp")
        return self.paths.temp

    def _materialise(self) -> None:
        snap = self.job["snapshot"]
        objects = self.job["objects_dir"]
        for rel, (digest, _size, mode) in snap["files"].items():
            dst = os.path.join(self.paths.wd, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            copy_file(objects_path(objects, digest), dst, mode)
        for rel, target in snap.get("links", {}).items():
            dst = os.path.join(self.paths.wd, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if not os.path.lexists(dst):
                os.symlink(target, dst)

    def _base_env(self) -> dict[str, str]:
        job, p = self.job, self.paths
        node = job["nodes"][self.node_index]
        python = job["python"]
        env = dict(os.environ)
        env.update({k: str(v) for k, v in self.spec.get("environment_variables", {}).items()})
        env.update(self.secrets)
        env.update({
            "PYTHONUNBUFFERED": "1",
            "PATH": os.path.dirname(python) + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
            "BATCHAI_RUN_ID": job["run_id"],
            "BATCHAI_EXPERIMENT": job["experiment"],
            "BATCHAI_NODE_INDEX": str(self.node_index),
            "BATCHAI_METRICS_FILE": p.metrics,
            "BATCHAI_ARTIFACTS_DIR": p.artifacts,
            "AZ_BATCHAI_JOB_MOUNT_ROOT": p.mounts,
            "AZ_BATCHAI_MOUNT_ROOT": os.path.join(job["node_root"], "mounts"),
            "AZ_BATCHAI_JOB_TEMP": p.temp,
            "AZ_BATCHAI_SHARED_JOB_TEMP": self._shared_temp(),
            "AZ_BATCHAI_STDOUTERR_DIR": p.stdouterr,
            "AZ_BATCHAI_NUM_GPUS": str(len(node.get("gpu_ids", []))),
            "AZ_BATCHAI_NODE_COUNT": str(len(job["nodes"])),
        })
        return env

    # -- job preparation -------------------------------------------------------------------------
    def _job_preparation(self, env: dict[str, str]) -> None:
        suffix = f"-{self.node_index}" if self.multi_node else ""
        plan = ProcessPlan(name="job_prep", argv=["/bin/bash", "-c", self.spec["job_preparation"]],
                           env=env, stdout=f"stdout-job_prep{suffix}.txt",
                           stderr=f"stderr-job_prep{suffix}.txt")
        self._start(plan)
        self._wait()
        code = self.exit_codes.get("job_prep")
        if code != 0 and self.stop_reason is None:
            self.stop_reason = f"job preparation exited with code {code}"

    # -- processes -------------------------------------------------------------------------------
    def _run_processes(self, env: dict[str, str]) -> None:
        if os.path.exists(self.paths.cancel):  # canceled while preparing: start nothing
            self.canceled, self.stop_reason = True, "canceled"
            return
        for plan in plan_processes(self.job, env, self.job["python"]):
            self._start(plan)
        self._wait()
        for proc in self.procs.values():  # nothing a job left in the background outlives it
            _signal_group(proc.pid, signal.SIGKILL)

    def _start(self, plan: ProcessPlan) -> None:
        out = open(os.path.join(self.paths.stdouterr, plan.stdout), "ab")
        err = out if plan.stderr == plan.stdout else \
            open(os.path.join(self.paths.stdouterr, plan.stderr), "ab")
        try:
            proc = subprocess.Popen(plan.argv, cwd=self.paths.wd, env=plan.env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, start_new_session=True)
        except OSError as exc:
            err.write(f"cannot start {plan.argv[0]}: {exc}\n".encode())
            self.exit_codes[plan.name] = 127
            self.files[plan.name] = [plan.stdout, plan.stderr]
            return
        finally:
            out.close()
            if err is not out:
                err.close()
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
                                    f"{self.spec.get('max_wall_clock_seconds')}")
                self._kill_all()
            time.sleep(POLL_SECONDS)

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


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str]) -> int:
    manifest_path = argv[1]
    with open(manifest_path) as fh:
        job = json.load(fh)
    paths = RunPaths(job["node_root"], job.get("run_key") or job["run_id"])
    try:  # launch is idempotent: only the first agent for this run on this node proceeds
        fd = os.open(paths.started, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return 0
    with os.fdopen(fd, "w") as fh:
        fh.write(str(os.getpid()))
    secrets = job.pop("secrets", {}) or {}
    data = job.pop("data", None)  # datastore SAS tokens: kept in memory only, like secrets
    write_atomic(manifest_path, json.dumps(job).encode(), 0o600)  # secrets do not stay on disk
    if data is not None:
        job["data"] = data
    Agent(job, secrets).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
