"""Transport: how the engine runs a command on a node and moves bytes there and back.

The engine only ever talks to nodes through this interface, so a backend that can provide it
(local folders, SSH/SFTP, a Slurm node with a shared filesystem) gets every feature for free.
"""
from __future__ import annotations

import errno
import os
import shlex
import shutil
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path


class Transport(ABC):
    """Commands and files on one node. Paths are the node's own (POSIX) paths."""

    @abstractmethod
    def run(self, argv: list[str], timeout: float = 60) -> tuple[int, str, str]:
        """Run a command to completion: (exit code, stdout, stderr)."""

    @abstractmethod
    def read_from(self, path: str, offset: int, limit: int = 4 << 20) -> bytes:
        """Bytes of a file from offset (b'' when the file is missing or has no more)."""

    @abstractmethod
    def read_bytes(self, path: str) -> bytes | None:
        """A whole (small) file, or None when it does not exist."""

    @abstractmethod
    def write_bytes(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write a file atomically (temp name, then rename), creating folders."""

    @abstractmethod
    def list_files(self, folder: str) -> dict[str, int]:
        """Relative path -> size of every regular file under folder ({} when missing)."""

    @abstractmethod
    def get_file(self, path: str, local_path: Path) -> None:
        """Copy a node file to this machine."""

    def take_file(self, path: str, local_path: Path) -> None:
        """Bring a node file the node no longer needs (a finished run's output) to this machine:
        moved where the node's folder and this one share a filesystem, else copied."""
        self.get_file(path, local_path)

    @abstractmethod
    def put_file(self, local_path: Path, path: str, mode: int = 0o644) -> None:
        """Copy a file of this machine to the node (atomically)."""

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    def start_detached(self, argv: list[str], log_path: str) -> None:
        """Start a process that outlives us: its own session, re-parented to init at once."""
        line = " ".join(shlex.quote(a) for a in argv)
        script = f"setsid {line} </dev/null >>{shlex.quote(log_path)} 2>&1 &"
        code, _out, err = self.run(["/bin/sh", "-c", script], timeout=60)
        if code != 0:
            raise OSError(f"cannot start {argv[0]} on the node: {err.strip()}")

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


class LocalTransport(Transport):
    """The node is a folder on this machine."""

    def run(self, argv: list[str], timeout: float = 60) -> tuple[int, str, str]:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def read_from(self, path: str, offset: int, limit: int = 4 << 20) -> bytes:
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                return fh.read(limit)
        except (FileNotFoundError, NotADirectoryError):
            return b""

    def read_bytes(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)

    def list_files(self, folder: str) -> dict[str, int]:
        out: dict[str, int] = {}
        base_len = len(folder.rstrip("/")) + 1
        stack = [folder]
        while stack:
            current = stack.pop()
            try:
                entries = list(os.scandir(current))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        out[entry.path[base_len:]] = entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
        return out

    def get_file(self, path: str, local_path: Path) -> None:
        local_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, local_path)

    def take_file(self, path: str, local_path: Path) -> None:
        """A rename where both sides are on one filesystem (no bytes move), else a copy."""
        local_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, local_path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # another filesystem: copy; anything else is an error
                raise
            shutil.copyfile(path, local_path)

    def put_file(self, local_path: Path, path: str, mode: int = 0o644) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        shutil.copyfile(local_path, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def close(self) -> None:
        """Nothing to release: the node is a folder on this machine."""
