"""Jobs in an OCI image on the local backend, with the real podman: the image's own modules,
metrics from inside, failure, cancel, the wall clock, a killed engine or agent, job.json's
containerSettings, bad input — and never a container left (the autouse check in conftest)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.engine.control import engine_info, forget, is_running
from tests.containers.conftest import containers
from tests.support import process_gone, wait_until

pytestmark = pytest.mark.timeout(300)


def _write(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(body))
    return folder


def _run_dir(ws: bai.Workspace, run: bai.Run, node_index: int = 0) -> Path:
    node = run.get_details()["nodes"][node_index]
    return Path(ws.path, "clusters", "local", "nodes", node, "runs", run.id)


def _first_line(run: bai.Run) -> str:
    return next(iter(run.stream()))


def test_job_runs_in_its_image_with_metrics_and_outputs(ws: bai.Workspace, tmp_path: Path, image: str) -> None:
    src = _write(tmp_path / "src", "train.py", """
        import os, sys
        import bai_image_marker                     # only the image has this module
        from batchai_jupyter import Run
        run = Run.get_context()
        run.log("loss", 0.5)
        run.log("loss", 0.25)
        os.makedirs("outputs", exist_ok=True)
        open("outputs/model.txt", "w").write("weights")
        print("marker", bai_image_marker.IMAGE_ONLY, "python", sys.version.split()[0], flush=True)
        print("cwd", os.getcwd(), flush=True)
        print("temp", os.path.isdir(os.environ["AZ_BATCHAI_JOB_TEMP"]), flush=True)
        print("secret", os.environ["TOKEN"] == "s3cr3t", flush=True)
        print("warn", file=sys.stderr)
    """)
    spec = JobSpec(source_directory=src, script="train.py", image=image, secrets={"TOKEN": "s3cr3t"},
                   environment_variables={"SEED": "7"})
    run = ws.experiment("img").submit(spec)
    assert run.wait_for_completion()["status"] == "Completed"
    lines = list(run.stream())
    assert lines[0] == f"marker bai-test-image python {_image_python(image)}"
    assert lines[1] == f"cwd {_run_dir(ws, run) / 'wd'}"  # the run folder at the same path
    assert lines[2:] == ["temp True", "secret True"]
    assert run.get_metrics()["loss"] == [0.5, 0.25]
    names = run.get_file_names()
    assert "outputs/model.txt" in names and "stdout-container.txt" in names
    prep = "".join(run.stream(file="stdout-container.txt"))
    assert "not pulled (image_pull='missing')" in prep and "started" in prep
    assert list(run.stream(file="stderr.txt")) == ["warn"]


def _image_python(image: str) -> str:
    import subprocess
    out = subprocess.run(["podman", "--runtime", "runc", "run", "--rm", "--ulimit", "nofile=1024:1024",
                          "--ulimit", "nproc=4096:4096", image, "python3", "-c",
                          "import sys; print(sys.version.split()[0])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_job_preparation_runs_inside_the_container(ws: bai.Workspace, tmp_path: Path, image: str) -> None:
    src = _write(tmp_path / "src", "main.py", """
        import os
        print(open(os.path.join(os.environ["AZ_BATCHAI_JOB_TEMP"], "prep.txt")).read().strip())
    """)
    prep = ('python3 -c "import bai_image_marker as m; print(m.IMAGE_ONLY)" '
            '> "$AZ_BATCHAI_JOB_TEMP/prep.txt"')
    run = ws.experiment("img").submit(JobSpec(source_directory=src, script="main.py", image=image,
                                              job_preparation=prep))
    assert run.wait_for_completion()["status"] == "Completed"
    assert list(run.stream()) == ["bai-test-image"]


def test_failing_job_keeps_its_exit_code_and_stderr(ws: bai.Workspace, tmp_path: Path, image: str) -> None:
    run = ws.experiment("img").submit(JobSpec(
        source_directory=tmp_path, image=image,
        command="echo going; echo 'it broke' >&2; exit 3"))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    error = details["error"]
    assert error["exit_codes"] == {"0-0": 3}
    assert "it broke" in " ".join(error["last_lines"])
    with pytest.raises(bai.RunFailed):
        run.wait_for_completion(raise_on_error=True)
    # a process killed by a signal reports it as it does bare (-11), not as the runtime's 139
    crashed = ws.experiment("img").submit(JobSpec(source_directory=tmp_path, image=image,
                                                  command="kill -SEGV $$"))
    bare = ws.experiment("img").submit(JobSpec(source_directory=tmp_path, command="kill -SEGV $$"))
    codes = [r.wait_for_completion(raise_on_error=False)["error"]["exit_codes"] for r in (crashed, bare)]
    assert codes[0] == codes[1] == {"0-0": -11}


@pytest.mark.parametrize("started_by", ["launcher", "exec"])
def test_both_ways_of_starting_a_process_behave_as_bare(ws: bai.Workspace, tmp_path: Path, image: str,
                                                      started_by: str) -> None:
    """The container's first process starts the job where the image has python3; without one on
    its PATH (here: PATH hidden), every process is exec'd. Either way: the same output, exit
    code, environment, own session and SIGINT reaching the job as KeyboardInterrupt."""
    src = _write(tmp_path / "src", "job.py", """
        import os, signal, sys, time
        print("env", os.environ["WHO"], flush=True)
        print("sigint", signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)
        print("session", os.getsid(0) == os.getpid(), flush=True)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        sys.exit(int(sys.argv[1]))
    """)
    hidden = ["-e", "PATH=/nowhere"] if started_by == "exec" else []
    spec = JobSpec(source_directory=src, image=image, container_options=hidden,
                   command="/usr/bin/python3 job.py 4", environment_variables={"WHO": "me"})
    run = ws.experiment("img").submit(spec)
    details = run.wait_for_completion(raise_on_error=False)
    out = run.file_path("stdout.txt").read_text()
    assert details["error"]["exit_codes"] == {"0-0": 4}, details
    assert "env me" in out and "sigint True" in out and "session True" in out and "interrupted" in out
    said = run.file_path("stdout-container.txt").read_text()
    assert ("started by the container" if started_by == "launcher" else "exec'd") in said, said
    crashed = ws.experiment("img").submit(JobSpec(source_directory=src, image=image, container_options=hidden,
                                                  command="/bin/kill -SEGV $$"))
    # without python3 in the image nothing can see the signal: the runtime's 128+N (documented)
    signal_death = -11 if started_by == "launcher" else 128 + 11
    assert crashed.wait_for_completion(raise_on_error=False)["error"]["exit_codes"] == {"0-0": signal_death}


def test_cancel_mid_run_stops_the_process_in_the_container(ws: bai.Workspace, tmp_path: Path,
                                                          image: str) -> None:
    src = _write(tmp_path / "src", "sleepy.py", """
        import os, time
        print("started", os.getpid(), flush=True)
        time.sleep(120)
    """)
    run = ws.experiment("img").submit(JobSpec(source_directory=src, script="sleepy.py", image=image))
    first = _first_line(run)
    assert first.startswith("started ")
    inner = int(first.split()[1])  # a host pid: the container shares the host's pid namespace
    assert not process_gone(inner)
    t0 = time.monotonic()
    run.cancel()
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Canceled"
    assert time.monotonic() - t0 < 30
    assert process_gone(inner)
    assert containers() == []


def test_wall_clock_kills_the_job_in_the_container(ws: bai.Workspace, tmp_path: Path, image: str) -> None:
    run = ws.experiment("img").submit(JobSpec(source_directory=tmp_path, image=image,
                                              command="echo started; sleep 120",
                                              max_wall_clock_seconds=3))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    assert "max_wall_clock_seconds=3" in json.dumps(details["error"])
    assert list(run.stream()) == ["started"]


def test_engine_killed_mid_run_leaves_no_container(ws: bai.Workspace, tmp_path: Path, image: str) -> None:
    src = _write(tmp_path / "src", "gated.py", """
        import os, time
        gate = os.path.join(os.environ["AZ_BATCHAI_JOB_TEMP"], "gate")   # bound into the container
        print("waiting", flush=True)
        while not os.path.exists(gate):
            time.sleep(0.05)
        print("through", flush=True)
    """)
    run = ws.experiment("img").submit(JobSpec(source_directory=src, script="gated.py", image=image))
    stream = run.stream()
    assert next(stream) == "waiting"
    gate = _run_dir(ws, run) / "temp" / "gate"
    pid = engine_info(ws.path)["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: process_gone(pid), 10)
    assert not is_running(ws.path)
    assert len(containers()) == 1           # the job goes on in its container without an engine
    gate.write_text("go")
    forget(ws.path)
    assert list(stream) == ["through"]     # this client call brings an engine back
    assert run.wait_for_completion()["status"] == "Completed"
    assert containers() == []


def test_agent_killed_its_container_goes_too(ws: bai.Workspace, tmp_path: Path, image: str) -> None:
    ws.create_cluster("once", backend="local", max_nodes=1, node_deallocation_option="terminate")
    run = ws.experiment("img").submit(JobSpec(source_directory=tmp_path, image=image,
                                              command="echo up; sleep 120"), cluster="once")
    assert _first_line(run) == "up"
    node = run.get_details()["nodes"][0]
    run_dir = Path(ws.path, "clusters", "once", "nodes", node, "runs", run.id)
    assert len(containers()) == 1
    agent = int((run_dir / "agent.started").read_text())
    os.kill(agent, signal.SIGKILL)
    # the container's first process watches the agent: it ends, and the runtime removes it
    assert wait_until(lambda: containers() == [], 15), containers()


def test_job_json_container_settings_run_in_the_image(ws: bai.Workspace, tmp_path: Path, image: str) -> None:
    folder = _write(tmp_path / "job", "train.py", """
        import bai_image_marker
        print("in", bai_image_marker.IMAGE_ONLY, flush=True)
    """)
    job = {"properties": {"nodeCount": 1,
                          "containerSettings": {"imageSourceRegistry": {"image": image}, "shmSize": "256m"},
                          "customToolkitSettings": {"commandLine": "python3 train.py"}}}
    (folder / "job.json").write_text(json.dumps(job))
    spec = JobSpec.from_batchai_json(folder / "job.json", workspace=ws)
    assert (spec.image, spec.shm_size) == (image, "256m")
    run = ws.experiment("json").submit(spec)
    assert run.wait_for_completion()["status"] == "Completed"
    assert list(run.stream()) == ["in bai-test-image"]


def test_cluster_default_image(ws: bai.Workspace, tmp_path: Path, image: str) -> None:
    ws.create_cluster("boxed", backend="local", max_nodes=1, container_runtime="podman", image=image)
    run = ws.experiment("img").submit(JobSpec(source_directory=tmp_path, command=(
        'python3 -c "import bai_image_marker as m; print(m.IMAGE_ONLY)"')), cluster="boxed")
    assert run.wait_for_completion()["status"] == "Completed"
    assert list(run.stream()) == ["bai-test-image"]


# -- bad input ---------------------------------------------------------------------------------------
def test_image_name_that_does_not_parse_is_refused_at_submit(ws: bai.Workspace, tmp_path: Path) -> None:
    with pytest.raises(bai.SpecError) as info:
        ws.experiment("bad").submit(JobSpec(source_directory=tmp_path, command="true", image="Not An Image"))
    assert info.value.field == "image"
    assert ws.runs(experiment="bad") == []


def test_missing_image_with_pull_never_fails_in_preparing(ws: bai.Workspace, tmp_path: Path, image: str) -> None:
    missing = "localhost/batchai-no-such-image:1"
    run = ws.experiment("bad").submit(JobSpec(source_directory=tmp_path, command="true", image=missing,
                                              image_pull="never"))
    details = run.wait_for_completion(raise_on_error=False, timeout=60)
    assert details["status"] == "Failed"
    message = details["error"]["message"]
    assert "ContainerError" in message and missing in message and "image_pull='never'" in message


def test_pull_error_names_the_image_and_the_registry_answer(ws: bai.Workspace, tmp_path: Path,
                                                            image: str) -> None:
    nowhere = "127.0.0.1:9/team/app:1"   # port 9 (discard): nothing listens, the pull is refused
    ws.set_registry_credentials("127.0.0.1:9", "robot", "hunter2-registry-password")
    run = ws.experiment("bad").submit(JobSpec(source_directory=tmp_path, command="true", image=nowhere,
                                              image_pull="always"))
    details = run.wait_for_completion(raise_on_error=False, timeout=120)
    assert details["status"] == "Failed"
    message = details["error"]["message"]
    assert nowhere in message and "registry 127.0.0.1:9" in message
    assert "connection refused" in message.lower() or "connect" in message.lower()
    assert "pulling image" in "".join(run.stream(file="stdout-container.txt"))
    # the password is in the secrets file only: not in the run's files, logs or manifest
    secrets = Path(ws.path, "secrets.json")
    for path in Path(ws.path).rglob("*"):
        if path.is_file() and path != secrets:
            assert b"hunter2-registry-password" not in path.read_bytes(), path
    assert not list(Path(ws.path).rglob("auth.json"))


def test_runtime_missing_on_the_node_is_a_clear_failure(ws: bai.Workspace, tmp_path: Path) -> None:
    if shutil.which("apptainer"):
        pytest.skip(reason="apptainer is installed here: this test needs a runtime the node lacks")
    ws.create_cluster("noapptainer", backend="local", max_nodes=1, container_runtime="apptainer",
                      python=sys.executable)
    run = ws.experiment("bad").submit(JobSpec(source_directory=tmp_path, command="true",
                                              image="docker.io/library/python:3.11"), cluster="noapptainer")
    details = run.wait_for_completion(raise_on_error=False, timeout=60)
    assert details["status"] == "Failed"
    message = details["error"]["message"]
    assert "ContainerError" in message and "container runtime 'apptainer' is not installed on node" in message


@pytest.fixture
def silent_registry() -> Iterator[str]:
    """A registry address that accepts connections and never answers: a pull hangs there."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def test_cancel_and_wall_clock_stop_a_hanging_pull(ws: bai.Workspace, tmp_path: Path, image: str,
                                                    silent_registry: str) -> None:
    hanging = f"{silent_registry}/team/app:1"
    run = ws.experiment("pull").submit(JobSpec(source_directory=tmp_path, command="true", image=hanging,
                                               image_pull="always"))
    assert wait_until(lambda: "pulling image" in "".join(run.stream(file="stdout-container.txt",
                                                                    follow=False)), 60)
    t0 = time.monotonic()
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False, timeout=60)["status"] == "Canceled"
    assert time.monotonic() - t0 < 30
    timed = ws.experiment("pull").submit(JobSpec(source_directory=tmp_path, command="true", image=hanging,
                                                 image_pull="always", max_wall_clock_seconds=3))
    details = timed.wait_for_completion(raise_on_error=False, timeout=60)
    assert details["status"] == "Failed"
    assert "max_wall_clock_seconds=3" in json.dumps(details["error"])


def test_cell_magic_image_option_runs_the_cell_in_the_image(ws: bai.Workspace, image: str,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell
    monkeypatch.setenv("BATCHAI_WORKSPACE", str(ws.path))
    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("batchai_jupyter")
    run = shell.run_cell_magic("batchai_job", f"--image {image} --experiment magic --wait",
                               "import bai_image_marker\nprint('cell', bai_image_marker.IMAGE_ONLY)\n")
    assert run.status == "Completed"
    assert list(run.stream()) == ["cell bai-test-image"]
    with pytest.raises(UsageError, match="--image 'Bad Image'"):
        shell.run_cell_magic("batchai_job", "--image 'Bad Image'", "print(1)\n")


def test_inputs_mounts_and_outputs_at_the_same_paths(ws: bai.Workspace, tmp_path: Path, image: str) -> None:
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    (data / "mnist" / "train.csv").write_text("1,2,3\n")
    (data / "models").mkdir()
    store = ws.register_datastore("shared", kind="local", path=str(data))
    src = _write(tmp_path / "src", "io.py", """
        import os
        src = os.environ["AZ_BATCHAI_INPUT_DATA"]
        mounted = os.path.join(os.environ["AZ_BATCHAI_JOB_MOUNT_ROOT"], "shared", "mnist", "train.csv")
        print("input", open(os.path.join(src, "train.csv")).read().strip(), flush=True)
        print("mount", open(mounted).read().strip(), flush=True)
        with open(os.path.join(os.environ["AZ_BATCHAI_OUTPUT_MODEL"], "model.bin"), "w") as fh:
            fh.write("weights")
    """)
    spec = JobSpec(source_directory=src, script="io.py", image=image,
                   inputs={"DATA": store.path("mnist").as_download()},
                   outputs={"MODEL": store.path("models").as_upload()}, mounts={"shared": store})
    run = ws.experiment("io").submit(spec)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", details.get("error")
    assert list(run.stream()) == ["input 1,2,3", "mount 1,2,3"]
    assert any(p.name == "model.bin" and p.read_text() == "weights" for p in (data / "models").rglob("*"))
