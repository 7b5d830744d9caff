"""Container start cost: submit -> first log line in an image, next to the same job without an
image and to a bare `podman run --rm IMAGE python3 -c 'print(1)'`, all measured in this run.

    python -m bench.bench_containers [--quick]
Target: the job in an image <= 1.5 x the bare podman run. Skips (exit 0, reason printed) where
podman or the test image (ci/setup-containers.sh) is not available.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import batchai_jupyter as bai
from batchai_jupyter.node.container import node_ulimits
from bench._common import median, parse_args, report, temp_workspace

REPO = Path(__file__).resolve().parents[1]


def test_image() -> str | None:
    """The test image's name, built if needed; None (with the reason printed) when it cannot be."""
    if shutil.which("podman") is None:
        print("bench_containers: skipped: podman is not installed (ci/setup-containers.sh)")
        return None
    done = subprocess.run(["sh", str(REPO / "ci" / "setup-containers.sh")], capture_output=True,
                          text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        print(f"bench_containers: skipped: the test image cannot be built: {done.stderr.strip()[-300:]}")
        return None
    return lines[-1]


def bare_podman(image: str, n: int) -> float:
    """podman run --rm with what this host needs (runc, explicit ulimits) and nothing of ours."""
    limits = [f"--ulimit={k}={s}:{h}" for k, (s, h) in node_ulimits().items()]
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(["podman", *runtime, "run", "--rm", "--network", "host", *limits, image,
                        "python3", "-c", "print(1)"], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return median(times)


def first_lines(exp: bai.Experiment, spec: bai.JobSpec, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        run = exp.submit(spec)
        next(iter(run.stream()))
        times.append(time.perf_counter() - t)
        run.wait_for_completion()
    return median(times)


def main() -> int:
    args = parse_args(__doc__)
    image = test_image()
    if image is None:
        return 0
    n = 3 if args.quick else 10
    with tempfile.TemporaryDirectory(prefix="bench-ctr-") as tmp, temp_workspace() as ws:
        src = Path(tmp) / "src"
        src.mkdir()
        (src / "hello.py").write_text("print('first line', flush=True)\n")
        exp = ws.experiment("bench")  # type: ignore[attr-defined]
        bare_spec = bai.JobSpec(source_directory=src, command="python3 hello.py")
        boxed_spec = bai.JobSpec(source_directory=src, command="python3 hello.py", image=image)
        exp.submit(boxed_spec).wait_for_completion()  # warm: engine up, node provisioned
        boxed = first_lines(exp, boxed_spec, n)
        plain = first_lines(exp, bare_spec, n)
        podman = bare_podman(image, n)
        report(f"submit -> first line, image (median of {n})", boxed, "bare podman run --rm", podman,
               "<= 1.5 x")
        report(f"submit -> first line, image (median of {n})", boxed, "the same job, no image", plain,
               "cost of the container")
    return 0


if __name__ == "__main__":
    sys.exit(main())
