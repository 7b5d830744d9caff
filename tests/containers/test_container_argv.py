"""The container surface without a runtime: the spec's and the cluster's fields and their errors,
the runtime command lines (GPU flags and apptainer cannot run here: their argv is checked),
the job.json import of containerSettings, --image on the magic and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.cluster_config import ClusterConfig
from batchai_jupyter.node import container_argv as cargv
from batchai_jupyter.node.container_argv import Bind, ContainerSpec
from batchai_jupyter.node.container_config import run_container
from batchai_jupyter.node.manifest import RunManifest
from batchai_jupyter.spec import image_registry


def _spec(**kw: object) -> ContainerSpec:
    base: dict = {"runtime": "podman", "executable": "/usr/bin/podman", "image": "reg.io/team/app:1",
                  "name": "batchai-r1-0", "agent_pid": 4242, "labels": {"batchai.run": "r1"},
                  "binds": [Bind("/n/runs/r1"), Bind("/pkg", "/opt/batchai/lib/batchai_jupyter", True)],
                  "ulimits": {"nofile": (1024, 4096)}, "runtime_args": ["--runtime", "runc"]}
    base.update(kw)
    return ContainerSpec(**base)


# -- JobSpec and ClusterConfig ---------------------------------------------------------------------
@pytest.mark.parametrize("image", ["python:3.11", "docker.io/library/python:3.11", "localhost/x:1",
                                   "myreg.azurecr.io:5000/team/app@sha256:" + "a" * 64, "/images/a.sif",
                                   "docker://ubuntu:22.04"])
def test_good_image_names_validate(tmp_path: Path, image: str) -> None:
    JobSpec(source_directory=tmp_path, command="true", image=image).validate()


@pytest.mark.parametrize("field,value", [("image", "Has Spaces"), ("image", "UPPER/case"),
                                         ("image", "x::1"), ("image", "/not/a/sif"),
                                         ("image_pull", "sometimes"), ("shm_size", "lots"),
                                         ("shm_size", "-1g"), ("container_options", "--privileged")])
def test_bad_container_fields_name_the_field(tmp_path: Path, field: str, value: str) -> None:
    spec = JobSpec(source_directory=tmp_path, command="true", image="python:3.11")
    setattr(spec, field, value)
    with pytest.raises(bai.SpecError) as info:
        spec.validate()
    assert info.value.field == field


def test_image_pull_error_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(bai.SpecError, match="missing.*always.*never"):
        JobSpec(source_directory=tmp_path, command="true", image="a:1", image_pull="if-new").validate()


def test_container_fields_survive_the_stored_form(tmp_path: Path) -> None:
    spec = JobSpec(source_directory=tmp_path, command="true", image="a/b:1", image_pull="always",
                   shm_size="8g", container_options=["--cap-add", "SYS_PTRACE"])
    back = JobSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert (back.image, back.image_pull, back.shm_size, back.container_options) == \
        ("a/b:1", "always", "8g", ["--cap-add", "SYS_PTRACE"])
    old = {k: v for k, v in spec.to_dict().items() if k not in ("image", "image_pull")}
    assert JobSpec.from_dict(old).image_pull == "missing"  # specs stored before containers


@pytest.mark.parametrize("options,field", [({"container_runtime": "lxc"}, "container_runtime"),
                                           ({"image": "Not An Image"}, "image"),
                                           ({"container_runtime_args": "--runtime runc"},
                                            "container_runtime_args")])
def test_cluster_container_settings_are_checked(options: dict, field: str) -> None:
    with pytest.raises(bai.SpecError) as info:
        ClusterConfig.new("c", max_nodes=1, **options).check()
    assert info.value.field == field


def test_create_cluster_keeps_runtime_and_image(ws: bai.Workspace) -> None:
    ws.create_cluster("boxed", backend="local", max_nodes=1, container_runtime="docker", image="a/b:1")
    settings = ClusterConfig.from_dict(ws.history.cluster_config("boxed").to_dict())
    assert (settings.container_runtime, settings.image) == ("docker", "a/b:1")
    assert ClusterConfig.new("plain").container_runtime == "podman"
    with pytest.raises(bai.SpecError):
        ws.create_cluster("bad", backend="local", container_runtime="rkt")


# -- which container a run gets -----------------------------------------------------------------------
def test_run_container_prefers_the_spec_image_and_adds_only_its_registry_credentials() -> None:
    auth = {"reg.io": {"username": "u", "password": "p"}}
    got = run_container({"image": "reg.io/team/app:1"}, {"image": "other/x:1", "container_runtime": "docker"},
                        lambda host: auth.get(host, {}))
    assert got is not None
    assert (got["image"], got["runtime"]) == ("reg.io/team/app:1", "docker")
    assert got["auth"] == {"registry": "reg.io", "username": "u", "password": "p"}
    plain = run_container({"image": None}, {"image": "other/x:1"}, lambda host: auth.get(host, {}))
    assert plain is not None and plain["image"] == "other/x:1" and "auth" not in plain
    assert run_container({}, {}, lambda host: {}) is None


def test_manifest_keeps_container_but_drops_the_credentials_on_disk(tmp_path: Path) -> None:
    data = {"run_id": "r1", "experiment": "e", "node_root": "/n", "node_index": 0,
            "nodes": [{"id": "n0", "address": "127.0.0.1"}], "master_port": 1, "objects_dir": "/o",
            "shared_dir": None, "python": "/usr/bin/python3", "snapshot": {"files": {}},
            "spec": JobSpec(source_directory=tmp_path, command="true").to_dict(),
            "container": {"runtime": "podman", "image": "a:1", "runtime_args": None,
                          "auth": {"registry": "docker.io", "username": "u", "password": "pw"}}}
    manifest = RunManifest.from_json(json.dumps(data))
    assert manifest.container is not None and manifest.container["auth"]["password"] == "pw"
    kept = manifest.without_secrets().to_json()
    assert '"image": "a:1"' in kept and "pw" not in kept


def test_image_registry_follows_docker_rules() -> None:
    assert image_registry("python:3.11") == "docker.io"
    assert image_registry("team/app") == "docker.io"
    assert image_registry("localhost/app") == "localhost"
    assert image_registry("reg.io:5000/a/b:1") == "reg.io:5000"


# -- command lines --------------------------------------------------------------------------------------
def test_run_argv_shares_host_network_pid_ipc_and_binds_at_the_same_paths() -> None:
    argv = cargv.run_argv(_spec())
    assert argv[:6] == ["/usr/bin/podman", "--runtime", "runc", "run", "-d", "--rm"]
    joined = " ".join(argv)
    for flag in ("--network host", "--pid host", "--ipc host", "--uts host", "--name batchai-r1-0",
                 "--label batchai.run=r1", "--ulimit nofile=1024:4096", "-v /n/runs/r1:/n/runs/r1 ",
                 "-v /pkg:/opt/batchai/lib/batchai_jupyter:ro", "--pull never"):
        assert flag in joined, flag
    image_at = argv.index("reg.io/team/app:1")
    assert argv[image_at - 2:image_at] == ["--entrypoint", "/bin/sh"]
    assert argv[-1] == "4242"  # the watchdog's agent pid


def test_shm_size_gives_the_container_its_own_ipc_and_options_come_last() -> None:
    argv = cargv.run_argv(_spec(shm_size="8g", options=["--cap-add", "SYS_PTRACE"]))
    assert "--ipc" not in argv and argv[argv.index("--shm-size") + 1] == "8g"
    image_at = argv.index("reg.io/team/app:1")
    assert argv[image_at - 4:image_at - 2] == ["--cap-add", "SYS_PTRACE"]


def test_gpu_flags_per_runtime() -> None:
    assert cargv.gpu_args("podman", ["2", "3"]) == ["--device", "nvidia.com/gpu=2", "--device",
                                                    "nvidia.com/gpu=3"]
    assert cargv.gpu_args("docker", ["2", "3"]) == ["--gpus", '"device=2,3"']
    assert cargv.gpu_args("apptainer", ["0"]) == ["--nv"]
    assert cargv.gpu_args("podman", []) == []
    assert "nvidia.com/gpu=5" in cargv.run_argv(_spec(gpu_ids=["5"]))


def test_cuda_visible_devices_are_renumbered_inside_podman_and_docker() -> None:
    # a node with host GPUs 4..7 and two processes of two GPUs each: process 1 has host 6,7
    assert cargv.visible_devices("6,7", ["4", "5", "6", "7"], "podman") == "2,3"
    assert cargv.visible_devices("6,7", ["4", "5", "6", "7"], "docker") == "2,3"
    assert cargv.visible_devices("6,7", ["4", "5", "6", "7"], "apptainer") == "6,7"
    assert cargv.visible_devices("", ["0"], "podman") == ""


def test_exec_argv_passes_variables_by_name_only() -> None:
    argv = cargv.exec_argv(_spec(), "/n/runs/r1/wd", ["TOKEN", "RANK"], ["python3", "train.py"], "/p/0.pid")
    assert argv == ["/usr/bin/podman", "--runtime", "runc", "exec", "-w", "/n/runs/r1/wd",
                    "-e", "RANK", "-e", "TOKEN", "batchai-r1-0", "/bin/sh", "-c", cargv.PID_WRAPPER,
                    "/p/0.pid", "python3", "train.py"]


def test_pull_uses_an_auth_file_never_the_credentials() -> None:
    assert cargv.pull_argv(_spec(), "/run/auth.json") == [
        "/usr/bin/podman", "--runtime", "runc", "pull", "--authfile", "/run/auth.json", "reg.io/team/app:1"]
    docker = cargv.pull_argv(_spec(runtime="docker", executable="/usr/bin/docker", runtime_args=[]), "/run/cfg")
    assert docker == ["/usr/bin/docker", "--config", "/run/cfg", "pull", "reg.io/team/app:1"]
    assert cargv.remove_argv(_spec()) == ["/usr/bin/podman", "--runtime", "runc", "rm", "-f", "-t", "0",
                                          "batchai-r1-0"]


def test_apptainer_exec_argv() -> None:
    spec = _spec(runtime="apptainer", executable="/usr/bin/apptainer", runtime_args=[], gpu_ids=["0", "1"],
                 image="team/app:1")
    argv = cargv.apptainer_argv(spec, "/n/runs/r1/wd", ["python3", "train.py"])
    assert argv == ["/usr/bin/apptainer", "exec", "--nv", "--pwd", "/n/runs/r1/wd", "--bind",
                    "/n/runs/r1:/n/runs/r1,/pkg:/opt/batchai/lib/batchai_jupyter:ro",
                    "docker://team/app:1", "python3", "train.py"]
    assert cargv.apptainer_image("/img/a.sif") == "/img/a.sif"
    assert cargv.apptainer_image("oras://reg/a:1") == "oras://reg/a:1"


def test_container_names_are_deterministic_and_valid() -> None:
    assert cargv.container_name("exp_17_ab.1", 2) == "batchai-exp_17_ab.1-2"
    assert cargv.container_name("a/b c", 0) == "batchai-a-b-c-0"


# -- job.json, magic, CLI -----------------------------------------------------------------------------
def test_container_settings_import_with_credentials_to_the_secrets(ws: bai.Workspace, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print(1)\n")
    job = {"properties": {"containerSettings": {
        "imageSourceRegistry": {"serverUrl": "https://myreg.azurecr.io", "image": "team/train:2",
                                "credentials": {"username": "robot", "password": "pa55word"}},
        "shmSize": "8g"},
        "pyTorchSettings": {"pythonScriptFilePath": "train.py"}}}
    spec = JobSpec.from_batchai_json(job, source_directory=tmp_path, workspace=ws)
    assert (spec.image, spec.shm_size) == ("myreg.azurecr.io/team/train:2", "8g")
    assert "pa55word" not in json.dumps(spec.to_dict())
    assert ws.secrets.get("registries", "myreg.azurecr.io") == {"username": "robot", "password": "pa55word"}


def test_container_settings_bad_image_is_a_spec_error(ws: bai.Workspace, tmp_path: Path) -> None:
    job = {"containerSettings": {"imageSourceRegistry": {"image": "Bad Image"}},
           "customToolkitSettings": {"commandLine": "true"}}
    with pytest.raises(bai.SpecError) as info:
        JobSpec.from_batchai_json(job, source_directory=tmp_path, workspace=ws)
    assert info.value.field == "containerSettings.imageSourceRegistry.image"


def test_set_registry_credentials_checks_its_input(ws: bai.Workspace) -> None:
    with pytest.raises(bai.SpecError):
        ws.set_registry_credentials("a b", "u", "p")
    with pytest.raises(bai.SpecError):
        ws.set_registry_credentials("reg.io", "u", "")
    ws.set_registry_credentials("reg.io:5000", "u", "p")
    assert ws.secrets.get("registries", "reg.io:5000")["username"] == "u"


def test_magic_image_option(ws: bai.Workspace, tmp_path: Path) -> None:
    from IPython.core.error import UsageError

    from batchai_jupyter.notebook.args import parse_image
    assert parse_image("python:3.11") == "python:3.11"
    assert parse_image(None) is None
    with pytest.raises(UsageError, match="--image 'No Good'"):
        parse_image("No Good")


def test_cli_job_create_image_flag(ws: bai.Workspace, tmp_path: Path) -> None:
    from batchai_jupyter.cli import main
    (tmp_path / "job.json").write_text(json.dumps({"customToolkitSettings": {"commandLine": "true"}}))
    code = main(["job", "create", "--workspace", str(ws.path), "-c", "local", "-f", str(tmp_path / "job.json"),
                 "--image", "localhost/batchai-none:1", "--image-pull", "never"])
    assert code == 0
    [row] = ws.history.run_rows()
    assert (row["spec"]["image"], row["spec"]["image_pull"]) == ("localhost/batchai-none:1", "never")
    assert ws.get_run(row["id"]).wait_for_completion(raise_on_error=False, timeout=60)["status"] == "Failed"
