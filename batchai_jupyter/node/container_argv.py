"""The command lines of podman, docker and apptainer, as pure functions of their arguments.

node/container.py runs them; keeping them pure lets every flag be checked without a runtime
(GPU flags and apptainer cannot run on every test machine). One container per node is started
detached (`run -d --rm`) with a small shell loop as its first process that ends when the
node's agent is gone, so a container never outlives the agent that started it. Where the image
has python3, that first process also starts the job's processes when the agent asks through a
FIFO (container_starter.py: cheaper than an `exec`); in other images every job process is
`exec`'d into it. Apptainer has no long-lived container: each process is its own
`apptainer exec`.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: Where the node's batchai_jupyter package is bound (read-only) in every container; it is put
#: on PYTHONPATH so Run.get_context() works without installing anything in the image.
PACKAGE_MOUNT = "/opt/batchai/lib"
#: The PATH a job's process sees in a podman or docker container (the image's own PATH wins
#: where the image sets one: podman exec and docker exec keep the container's environment).
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The interpreter of script= jobs (and of our own modules) inside an image.
CONTAINER_PYTHON = "python3"
#: The first process of a node's container: it waits while the agent (pid $1) lives (a zombie
#: counts as dead), then kills what still runs in the container's cgroup: the container shares
#: the host's pid namespace, so its end would not take the exec'd processes with it, and the
#: runtime removes a container (--rm) only once its cgroup is empty.
WATCHDOG = ('trap "exit 0" TERM INT; while read -r s 2>/dev/null < "/proc/$1/stat"; do '
            's="${s##*) }"; [ "${s%% *}" = Z ] && break; sleep 1 & wait $!; done; '
            'for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/pids/cgroup.procs '
            '/sys/fs/cgroup/memory/cgroup.procs; do [ -r "$f" ] || continue; '
            'while read -r p; do [ "$p" = "$$" ] || kill -9 "$p" 2>/dev/null; done < "$f"; break; done')
#: The first process when the agent starts processes through a FIFO ($2): where the image has
#: python3, a reader in the background runs container_starter.py ($3) for every request file
#: named on the FIFO (opened read-write, so it never sees an end of file); "$2.ready" then says
#: "python3", else "exec" (the agent falls back to `exec`). The watchdog (agent pid $1) follows.
LAUNCHER = ('if command -v python3 >/dev/null 2>&1; then '
            '( exec 3<>"$2"; while read -r req <&3; do python3 -I -S "$3" "$req" & done ) & '
            'reader=$!; echo python3 > "$2.ready"; else reader=; echo exec > "$2.ready"; fi; '
            + WATCHDOG.replace('trap "exit 0"', 'trap "kill -9 $reader 2>/dev/null; exit 0"', 1))
#: Where the image has python3, the job runs as the child of this small waiter, in a session of
#: its own: the waiter leaves the job's pid (a host pid: the container shares the host's pid
#: namespace) in the pid file and, once it ended, its exit status in "<pid file>.status", where
#: the agent's helper reads it, so a job killed by a signal reports it as a bare one does
#: (-11, not 139). No single quote in it: it travels inside a shell word.
STATUS_WAITER = (
    "import os, sys\n"
    "pid_file, argv = sys.argv[1], sys.argv[2:]\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.setsid()\n"
    "    try:\n"
    "        os.execvp(argv[0], argv)\n"
    "    except OSError as exc:\n"
    "        sys.stderr.write(f\"cannot start {argv[0]}: {exc}\\n\")\n"
    "        os._exit(127)\n"
    "with open(pid_file + \".tmp\", \"w\") as fh:\n"
    "    fh.write(str(pid))\n"
    "os.replace(pid_file + \".tmp\", pid_file)\n"
    "status = os.waitpid(pid, 0)[1]\n"
    "code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)\n"
    "with open(pid_file + \".status\", \"w\") as fh:\n"
    "    fh.write(str(code))\n"
    "sys.exit(code if code >= 0 else 128 - code)\n")
#: The wrapper every exec'd process starts as: the waiter above where python3 is on the image's
#: PATH, else the job itself after it left its own pid (exit codes of signal deaths then read
#: 128+N, as the runtime reports them).
PID_WRAPPER = ("command -v python3 >/dev/null 2>&1 && exec python3 -I -S -c '" + STATUS_WAITER
               + "' \"$0\" \"$@\"; echo $$ > \"$0\"; exec \"$@\"")
LABEL = "batchai.run"

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def container_name(run_key: str, node_index: int) -> str:
    """Deterministic, so any later reader (agent, engine, a test) finds the container of a run."""
    return _NAME_BAD.sub("-", f"batchai-{run_key}-{node_index}")


@dataclass(frozen=True)
class Bind:
    """A folder of the node, bound into the container at the same path (unless dst is set)."""

    src: str
    dst: str = ""
    read_only: bool = False

    @property
    def target(self) -> str:
        return self.dst or self.src


@dataclass(frozen=True)
class ContainerSpec:
    """Everything the runtime's command lines need for one node's container."""

    runtime: str                    # podman | docker | apptainer
    executable: str                 # the runtime's path on the node
    image: str
    name: str
    agent_pid: int
    labels: Mapping[str, str] = field(default_factory=dict)
    binds: Sequence[Bind] = ()
    gpu_ids: Sequence[str] = ()
    shm_size: str | None = None
    options: Sequence[str] = ()     # the spec's container_options, last before the image
    runtime_args: Sequence[str] = ()  # global flags of the runtime (podman --runtime runc)
    ulimits: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    fifo: str = ""                  # where the agent asks for processes (LAUNCHER); "": exec only
    starter: str = ""               # container_starter.py as the container sees it


def _base(spec: ContainerSpec) -> list[str]:
    return [spec.executable, *spec.runtime_args]


def image_exists_argv(spec: ContainerSpec) -> list[str]:
    if spec.runtime == "docker":
        return [*_base(spec), "image", "inspect", "--format", "{{.Id}}", spec.image]
    return [*_base(spec), "image", "exists", spec.image]


def pull_argv(spec: ContainerSpec, auth_path: str | None = None) -> list[str]:
    """The pull; credentials only through a 0600 file named here (never on the command line)."""
    if spec.runtime == "docker":
        config = ["--config", auth_path] if auth_path else []  # a folder holding config.json
        return [spec.executable, *config, *spec.runtime_args, "pull", spec.image]
    auth = ["--authfile", auth_path] if auth_path else []
    return [*_base(spec), "pull", *auth, spec.image]


def gpu_args(runtime: str, gpu_ids: Sequence[str]) -> list[str]:
    """The node's GPUs for its container: CDI devices for podman, --gpus for docker, --nv for
    apptainer. Each process then sees its own share through CUDA_VISIBLE_DEVICES."""
    if not gpu_ids:
        return []
    if runtime == "docker":
        return ["--gpus", f'"device={",".join(gpu_ids)}"']
    if runtime == "apptainer":
        return ["--nv"]
    out: list[str] = []
    for gpu in gpu_ids:
        out += ["--device", f"nvidia.com/gpu={gpu}"]
    return out


def visible_devices(value: str, gpu_ids: Sequence[str], runtime: str) -> str:
    """CUDA_VISIBLE_DEVICES inside the container: podman and docker number the GPUs they pass
    from 0 in the order given, so a host id becomes its place in the node's list; apptainer
    --nv shows every GPU of the host, so the host ids stay."""
    if runtime == "apptainer" or not value:
        return value
    index = {g: str(i) for i, g in enumerate(gpu_ids)}
    return ",".join(index.get(v.strip(), v.strip()) for v in value.split(","))


def run_argv(spec: ContainerSpec) -> list[str]:
    """Start the node's container, detached, removed when its first process ends.

    Host network, pid and uts namespaces (torch rendezvous, NCCL, mpirun and the agent's signals
    work as on a bare node); host IPC unless shm_size asks for a /dev/shm of its own size."""
    argv = [*_base(spec), "run", "-d", "--rm", "--pull", "never", "--name", spec.name]
    for key, value in sorted(spec.labels.items()):
        argv += ["--label", f"{key}={value}"]
    argv += ["--network", "host", "--pid", "host", "--uts", "host"]
    argv += ["--shm-size", spec.shm_size] if spec.shm_size else ["--ipc", "host"]
    if spec.runtime == "podman":
        argv += ["--security-opt", "label=disable"]
    for name, (soft, hard) in sorted(spec.ulimits.items()):
        argv += ["--ulimit", f"{name}={soft}:{hard}"]
    argv += gpu_args(spec.runtime, spec.gpu_ids)
    for bind in spec.binds:
        argv += ["-v", f"{bind.src}:{bind.target}" + (":ro" if bind.read_only else "")]
    argv += list(spec.options)
    if spec.fifo:
        argv += ["--entrypoint", "/bin/sh", spec.image, "-c", LAUNCHER, "batchai-launcher",
                 str(spec.agent_pid), spec.fifo, spec.starter]
    else:
        argv += ["--entrypoint", "/bin/sh", spec.image, "-c", WATCHDOG, "batchai-watchdog", str(spec.agent_pid)]
    return argv


def exec_argv(spec: ContainerSpec, cwd: str, env_names: Iterable[str], argv: Sequence[str],
              pid_file: str) -> list[str]:
    """One job process in the node's container. Variables are passed by name only (`-e NAME`
    takes the value from the caller's environment), so no value, and no secret, is in argv."""
    out = [*_base(spec), "exec", "-w", cwd]
    for name in sorted(env_names):
        out += ["-e", name]
    return [*out, spec.name, "/bin/sh", "-c", PID_WRAPPER, pid_file, *argv]


def remove_argv(spec: ContainerSpec) -> list[str]:
    if spec.runtime == "docker":
        return [*_base(spec), "rm", "-f", spec.name]
    return [*_base(spec), "rm", "-f", "-t", "0", spec.name]


def exists_argv(spec: ContainerSpec) -> list[str]:
    if spec.runtime == "docker":
        return [*_base(spec), "container", "inspect", "--format", "{{.Id}}", spec.name]
    return [*_base(spec), "container", "exists", spec.name]


def apptainer_image(image: str) -> str:
    """An OCI reference becomes docker://...; a .sif path or a URI is used as it is."""
    return image if image.startswith("/") or "://" in image else f"docker://{image}"


def apptainer_argv(spec: ContainerSpec, cwd: str, argv: Sequence[str]) -> list[str]:
    """One job process as `apptainer exec`: the host's environment, network, IPC and pid
    namespace are apptainer's defaults; --nv brings the host's GPUs and driver libraries."""
    out = [*_base(spec), "exec", *gpu_args("apptainer", spec.gpu_ids), "--pwd", cwd]
    if spec.binds:
        out += ["--bind", ",".join(f"{b.src}:{b.target}" + (":ro" if b.read_only else "")
                                   for b in spec.binds)]
    return [*out, *spec.options, apptainer_image(spec.image), *argv]
