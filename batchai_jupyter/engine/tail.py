"""RunTail: copies a run's node files into the workspace by offset, as they grow.

stdout/stderr, ./logs and artifacts are appended to their workspace copies from the copy's own
size (a file the job rewrote is copied again from the start: one that got shorter, and a ./logs
file whose first HEAD_BYTES changed, even at the same or a larger size; a copy that vanished or
got shorter than what was copied, e.g. runs/<id> deleted mid-run, is made anew from offset 0);
a full workspace disk stops the copies where it stopped them until space returns (`full`
says why); metrics.jsonl is read
from the offset stored with the metrics it covers, in one transaction, so a restarted engine
neither drops nor repeats a record (its other records, engine/job_records.py, are idempotent).
The agent's own temporary files (`<name>.tmp<pid>`, renamed
into place when complete) are not copied; any other name is, `.tmp` in it or not.
"""
from __future__ import annotations

import errno
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from ..compute.base import NodeInfo
from ..compute.transport import LocalTransport, Transport
from ..errors import DISK_FULL_ERRNOS, WorkspaceError
from ..history import RunHistory
from ..layout import WorkspacePaths
from ..node.paths import RunPaths
from .job_records import JobRecords

_AGENT_TMP = re.compile(r"\.tmp\d+$")  # an atomic write in progress (node/agent.py, transports)
HEAD_BYTES = 64           # a ./logs copy whose start differs from the node file's is copied anew
HEAD_CHECK_SECONDS = 1.0  # how often the start of a ./logs file whose size did not change is compared
DISK_FULL = "workspace disk full"  # the start of a run's properties["warning"] while copies wait
#: copy_file_range cannot copy between these two files: they are copied through a buffer
_NO_KERNEL_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF}


class RunTail:
    """The workspace copies of one run's node files (runs/<id>/files/)."""

    def __init__(self, history: RunHistory, run_id: str, files: Path, attempt: int = 0):
        self.history = history
        self.run_id = run_id
        self.attempt = attempt
        self.files = files
        self.sizes: dict[str, int] = {}          # workspace copy -> bytes copied so far
        self.heads: dict[str, tuple[bytes, float]] = {}  # ./logs copy -> (its first bytes, checked at)
        self.metric_offsets = history.offsets(run_id)
        self.full: str | None = None  # why the last copies stopped (the workspace disk is full)
        #: held while copying; bytes pushed by an ssh host (compute/ssh/push.py) go in under it too
        self.lock = threading.Lock()
        # the job's other records (tags, statuses, child runs, models); history.db is at the root
        self.records = JobRecords(history, WorkspacePaths(history.path.parent), run_id)

    def tail(self, transport: Transport, index: int, node: NodeInfo, paths: RunPaths) -> None:
        """Copy what is new (see _tail), under the lock that pushed bytes take too."""
        with self.lock:
            self._tail(transport, index, node, paths)

    def _tail(self, transport: Transport, index: int, node: NodeInfo, paths: RunPaths) -> None:
        """Copy what is new of node `index`'s logs, artifacts and metrics.

        A workspace disk that is full (or over quota) stops the copies, not the caller: `full`
        says why until the next pass the caller starts with `full = None`; each copy resumes
        from what reached the disk, so nothing is lost or repeated once space returns."""
        log_prefix = "logs/" if index == 0 else f"logs/node-{index}/"
        for source, prefix in ((paths.stdouterr, ""), (paths.logs, log_prefix),
                               (paths.artifacts, "")):
            for rel, size in transport.list_files(source).items():
                if _AGENT_TMP.search(rel.rsplit("/", 1)[-1]):
                    continue
                try:
                    self._copy_tail(transport, f"{source}/{rel}", prefix + rel, size,
                                    check_head=source == paths.logs)
                except OSError as exc:
                    if exc.errno not in DISK_FULL_ERRNOS:
                        raise
                    self._disk_full(rel, exc)
        try:
            self._tail_metrics(transport, node, paths)
        except WorkspaceError as exc:  # history.db's disk is full: the offset did not move
            self.full = f"{DISK_FULL}: {exc}"

    def _disk_full(self, rel: str, exc: OSError) -> None:
        """A copy stopped on a full disk: go on from the bytes that are in the copy."""
        dest = self.files / rel
        try:
            self.sizes[rel] = dest.stat().st_size
        except FileNotFoundError:
            self.sizes.pop(rel, None)
        self.heads.pop(rel, None)
        self.full = f"{DISK_FULL}: {exc.strerror or exc} copying {rel}"

    def _copy_tail(self, transport: Transport, src: str, rel: str, size: int, check_head: bool = False) -> None:
        dest = self.files / rel
        known = self.sizes.get(rel)
        try:
            have = dest.stat().st_size
        except FileNotFoundError:
            have = 0
        # the copy was removed or cut since (runs/<id> deleted mid-run): copy it anew from 0
        rewritten = size < have or (known is not None and have < known)
        if check_head and have and not rewritten:
            rewritten = self._head_changed(transport, src, rel, dest, have, force=size != have)
        if size == have and not rewritten:
            self.sizes[rel] = have
            return
        flags = os.O_WRONLY | os.O_CREAT
        if rewritten:  # rewritten by the job: copy it again from the start
            have, flags = 0, flags | os.O_TRUNC
        dest.parent.mkdir(parents=True, exist_ok=True)
        out = os.open(dest, flags, 0o666)  # written at known offsets: what reached the disk is known
        try:
            have = _copy_range(transport, src, out, have, size)
        finally:
            os.close(out)
        self.sizes[rel] = have
        if check_head:
            self.heads[rel] = (_head(dest), time.monotonic())

    def _head_changed(self, transport: Transport, src: str, rel: str, dest: Path, have: int,
                      force: bool) -> bool:
        """True when the node file no longer starts as the copy does (it was rewritten in place).

        Compared whenever the size changed, else at most every HEAD_CHECK_SECONDS."""
        known = self.heads.get(rel)
        now = time.monotonic()
        if known is None:
            known = (_head(dest), 0.0)  # after an engine restart: the copy on disk
        if not force and now - known[1] < HEAD_CHECK_SECONDS:
            return False
        self.heads[rel] = (known[0], now)
        n = min(HEAD_BYTES, have, len(known[0]))
        return transport.read_from(src, 0, n) != known[0][:n]

    def _tail_metrics(self, transport: Transport, node: NodeInfo, paths: RunPaths) -> None:
        key = (node.id, paths.metrics)
        offset = self.metric_offsets.get(key, 0)
        data = transport.read_from(paths.metrics, offset)
        end = data.rfind(b"\n")
        if end < 0:
            return
        records: list[dict[str, Any]] = []
        ops: list[dict[str, Any]] = []
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "op" in rec:
                ops.append(rec)
            elif isinstance(rec, dict) and "name" in rec:
                records.append(rec)
        if ops:  # each is idempotent: applied again if the offset below does not land
            self.records.apply(ops, transport, paths)
        records = [r for r in records if self.records.allowed(r.get("run_id"))]  # child runs made above
        offset += end + 1
        self.history.record_metrics(self.run_id, node.id, paths.metrics, offset, records, self.attempt)
        self.metric_offsets[key] = offset

    def collect_outputs(self, transport: Transport, paths: RunPaths) -> None:
        """Bring a node's ./outputs into the workspace (later calls win a clash): the run has ended
        on that node, so a node that shares the workspace's filesystem hands them over by rename."""
        for rel in transport.list_files(paths.outputs):
            transport.take_file(f"{paths.outputs}/{rel}", self.files / "outputs" / rel)


def _copy_range(transport: Transport, src: str, out: int, have: int, size: int) -> int:
    """Bytes [have, size) of the node file src written into `out` at the same offsets; returns
    where the copy ends (sooner when src is shorter). A local node's file is copied inside the
    kernel (copy_file_range): a print-heavy job's log passes through no buffer of the engine's,
    which would otherwise take CPU from the job it follows."""
    if isinstance(transport, LocalTransport):
        try:
            fd = os.open(src, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return have
        try:
            while have < size:
                copied = os.copy_file_range(fd, out, size - have, have, have)
                if not copied:
                    return have
                have += copied
            return have
        except OSError as exc:
            if exc.errno not in _NO_KERNEL_COPY:
                raise
        finally:
            os.close(fd)
    while have < size:  # another node, or a filesystem the kernel cannot copy within
        chunk = transport.read_from(src, have, size - have)
        if not chunk:
            break
        while chunk:
            written = os.pwrite(out, chunk, have)
            chunk = chunk[written:]
            have += written
    return have


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(HEAD_BYTES)
    except OSError:
        return b""
