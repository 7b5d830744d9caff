"""Inside a node's container: start one job process the agent asked for, and report its end.

    python3 -I -S container_starter.py <request file>

The container's first process reads request file names from a FIFO and runs this script for
each (node/container_argv.py LAUNCHER), so a job process is started in the container's
namespaces without a `podman exec` (which costs more than the container's own start). The
request (JSON, 0600, removed once read) holds the argv, the working folder, the variables the
job gets on top of the container's own, the account to run as, and the stdout and stderr files
the agent opened for the host-side helper (container_exec.py), appended to. As the status waiter of
container_argv.py does, this script leaves its own pid in "<pid file>.waiter", the job's pid in
the pid file and its exit status in "<pid file>.status" (negative: the signal that ended it).

Standard library only and plain enough for the python3 of old images (3.5 and later): it runs
on the image's interpreter, not the node's.
"""
import json
import os
import signal
import sys


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _child(request):
    """In the forked child: its own session, the asked files and account, then exec."""
    argv = request["argv"]
    try:
        os.setsid()
        # a background process of a non-interactive shell starts with INT and QUIT ignored;
        # the job gets them as a bare process would
        for sig in (signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        fds = [os.open(os.devnull, os.O_RDONLY),
               os.open(request["stdout"], os.O_WRONLY | os.O_APPEND),
               os.open(request["stderr"], os.O_WRONLY | os.O_APPEND)]
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        user = request.get("user")
        if user:
            os.setgroups([])
            os.setgid(int(user[1]))
            os.setuid(int(user[0]))
        env = dict(os.environ)
        env.update(request["env"])
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        os.write(2, ("cannot start {}: {}\n".format(argv[0] if argv else "?", exc)).encode())
    os._exit(127)


def main(path):
    with open(path) as fh:
        request = json.load(fh)
    os.unlink(path)
    pid_file = request["pid_file"]
    _write(pid_file + ".waiter", str(os.getpid()))
    pid = os.fork()
    if pid == 0:
        _child(request)
    _write(pid_file, str(pid))
    status = os.waitpid(pid, 0)[1]
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    _write(pid_file + ".status", str(code))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
