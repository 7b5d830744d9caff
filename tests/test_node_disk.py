"""Nodes that do not fill up: ended runs' folders leave the nodes, one tree per snapshot, a
bounded cache, and every run's files still in the workspace afterwards."""
from __future__ import annotations

import hashlib
import json
import os
import textwrap
import time
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.cli import main as cli_main
from batchai_jupyter.engine.control import stop_engine
from batchai_jupyter.errors import SpecError
from batchai_jupyter.node.cache import upkeep
from batchai_jupyter.node.paths import RunPaths
from batchai_jupyter.node.tree import build_tree, tree_id
from tests.compute.conftest import backend_cluster, ssh_hosts  # noqa: F401 -- fixtures
from tests.support import wait_until

pytestmark = pytest.mark.timeout(300)
QUICK = os.environ.get("BATCHAI_TEST_QUICK") == "1"


def _project(folder: Path, big_bytes: int, files: int = 3) -> Path:
    """A source folder: a job script plus `files` data files of big_bytes in all."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.py").write_text(textwrap.dedent("""
        import os, sys
        os.makedirs("outputs", exist_ok=True)
        with open("outputs/result.txt", "w") as fh:
            fh.write(sys.argv[1])
        print("run", sys.argv[1], flush=True)
        sys.exit(int(sys.argv[2]))
    """))
    data = folder / "data"
    data.mkdir(exist_ok=True)
    for i in range(files):
        (data / f"part-{i}.bin").write_bytes(os.urandom(big_bytes // files))
    return folder


def _node_roots(ws: bai.Workspace) -> list[Path]:
    """Every node root of every backend the tests make inside the workspace."""
    roots = list(ws.path.glob("clusters/*/nodes/*")) + list(ws.path.glob("sshnodes/*"))
    return roots + list(ws.path.glob("slurm-root/nodes/*"))


def _bytes(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _tree_digest(tree: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(tree.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(tree)).encode() + p.read_bytes())
    return h.hexdigest()


def _wait_run_folders(ws: bai.Workspace, expected: set[str], timeout: float = 60) -> dict[Path, set[str]]:
    """Until the run folders left on the nodes are the expected ones; returns them per root."""
    def folders() -> dict[Path, set[str]]:
        return {root: {p.name for p in (root / "runs").iterdir()} if (root / "runs").is_dir() else set()
                for root in _node_roots(ws)}
    assert wait_until(lambda: set().union(*folders().values()) == expected, timeout), \
        f"run folders on the nodes: {folders()}, expected {expected}; engine log: " \
        + "".join(ws.paths.engine_log.read_text().splitlines(True)[-60:])
    return folders()


def _submit_many(ws: bai.Workspace, cluster: str, src: Path, count: int, failing: set[int],
                 keep: set[int] = frozenset()) -> list[bai.Run]:  # type: ignore[assignment]
    exp = ws.experiment("disk")
    runs = [exp.submit(JobSpec(source_directory=src, script="job.py",
                               arguments=[str(i), "1" if i in failing else "0"],
                               keep_node_files=i in keep), cluster=cluster)
            for i in range(count)]
    for run in runs:
        run.wait_for_completion(show_output=False, timeout=240, raise_on_error=False)
    return runs


def _check_after_many(ws: bai.Workspace, cluster: str, src: Path, count: int, size: int) -> None:
    failing, keep = {3, 7, 11}, {5}
    runs = _submit_many(ws, cluster, src, count, failing, keep)
    statuses = [r.get_details()["status"] for r in runs]
    assert statuses == ["Failed" if i in failing else "Completed" for i in range(count)]
    # the last two failed runs (keep_failed_runs=2) and the one that asked keep their folders
    expected = {runs[7].id, runs[11].id, runs[5].id}
    folders = _wait_run_folders(ws, expected)
    for root in _node_roots(ws):
        trees = [p for p in (root / "trees").iterdir()] if (root / "trees").is_dir() else []
        assert len(trees) <= 1, f"{root}: one tree per snapshot, found {trees}"
        if trees:
            assert size <= _bytes(trees[0]) < size + 64 * 1024
        for key in folders[root]:  # a kept run folder is not another copy of the snapshot
            if (RunPaths(str(root), key).view_mode and
                    Path(RunPaths(str(root), key).view_mode).read_text().startswith("overlay")):
                assert _bytes(root / "runs" / key) < size / 2
    used = [root for root in _node_roots(ws) if (root / "trees").is_dir() and any((root / "trees").iterdir())]
    assert used, "no node holds the snapshot's tree"
    # every run's files are still there once its node folder is gone
    for i, run in enumerate(runs):
        assert list(run.stream(follow=False)) == [f"run {i}"]
        out = ws.path / "dl" / f"{i}.txt"
        run.download_file("outputs/result.txt", out)
        assert out.read_text() == str(i)


def test_twenty_runs_of_a_50_mb_snapshot_leave_one_tree_per_node(ws: bai.Workspace, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    size = 50 * 1024 * 1024
    src = _project(tmp_path / "big", size)
    ws.cluster("local").update(keep_failed_runs=2)
    _check_after_many(ws, "local", src, 20, size)
    node_roots = {n.id: Path(n.info["path"]) for n in ws.cluster("local").nodes()}

    def measured() -> dict[str, tuple[float, float]]:
        return {k: (v["cache_bytes"], v["run_bytes"]) for k, v in ws.cluster("local").get_status().node_disk.items()}

    def walked() -> dict[str, tuple[float, float]]:
        return {k: (_bytes(r / "trees") if (r / "trees").exists() else 0, _bytes(r / "runs"))
                for k, r in node_roots.items()}
    # each node's figures as the engine measured them are what a walk of its folder finds
    assert wait_until(lambda: measured() == walked(), 30), (measured(), walked())
    with capsys.disabled():  # as nodes were: each run's full copy of the snapshot, kept
        print(f"\nnode bytes after 20 runs of a {size:,} B snapshot on {len(node_roots)} node(s): "
              f"{sum(sum(v) for v in walked().values()):,} (trees and kept folders; 20 kept copies "
              f"were {20 * size:,})")
    status = ws.cluster("local").get_status()
    assert cli_main(["cluster", "node", "list", "-c", "local", "-w", str(ws.path), "-o", "json"]) == 0
    shown = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert {k: shown[k]["cache_bytes"] for k in status.node_disk} == \
        {k: v["cache_bytes"] for k, v in status.node_disk.items()}


def test_many_runs_on_every_backend_leave_the_snapshot_once_per_node(backend_cluster, tmp_path: Path) -> None:
    ws, cluster = backend_cluster
    size = (2 if QUICK or cluster != "local" else 8) * 1024 * 1024
    src = _project(tmp_path / "proj", size)
    ws.cluster(cluster).update(keep_failed_runs=2)
    _check_after_many(ws, cluster, src, 12 if QUICK else 20, size)


WRITER = textwrap.dedent("""
    import os
    with open("data.txt", "a") as fh:
        fh.write("changed by the job\\n")
    os.remove("job.py")
    print(open("data.txt").read().strip().replace("\\n", " | "), "|", open("pkg/m7.py").read(), flush=True)
""")


def _writes_its_sources(ws: bai.Workspace, cluster: str, tmp_path: Path) -> str:
    """Two runs of a job that changes and removes its source files: each sees the snapshot as
    it was taken, every tree on the nodes is still the snapshot (by hash); returns the first
    (kept) run's view mode."""
    src = tmp_path / "w"
    src.mkdir()
    (src / "data.txt").write_text("original\n")
    (src / "job.py").write_text(WRITER)
    (src / "pkg").mkdir()
    for i in range(20):  # small files: stored in one pack, materialised from it on the nodes
        (src / "pkg" / f"m{i}.py").write_text(f"m{i}")
    pristine = _tree_digest(src)
    exp = ws.experiment("w")
    first = exp.submit(JobSpec(source_directory=src, script="job.py", keep_node_files=True), cluster=cluster)
    first.wait_for_completion(show_output=False, timeout=120)
    second = exp.submit(JobSpec(source_directory=src, script="job.py"), cluster=cluster)
    second.wait_for_completion(show_output=False, timeout=120)
    assert list(first.stream(follow=False)) == ["original | changed by the job | m7"]
    assert list(second.stream(follow=False)) == ["original | changed by the job | m7"]
    assert list((ws.store.objects / "packs").glob("*.pack"))
    trees = [t for root in _node_roots(ws) for t in (root / "trees").glob("*")]
    assert trees and all(_tree_digest(t) == pristine for t in trees), trees
    assert {t.name for t in trees} == {ws.history.run_row(first.id)["snapshot"]}  # named at submit
    (kept,) = [RunPaths(str(root), first.id) for root in _node_roots(ws) if (root / "runs" / first.id).is_dir()]
    made = Path(kept.view_mode).read_text()
    if made == "overlay-closed":  # the kept folder holds what the run changed, not the snapshot
        assert sorted(p.name for p in Path(kept.wd).iterdir() if p.is_file()) == ["data.txt"]
    return made


@pytest.mark.parametrize("view", ["overlay", "reflink", "copy"])
def test_a_job_that_writes_its_sources_leaves_the_tree_as_it_was(ws: bai.Workspace, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 view: str) -> None:
    monkeypatch.setenv("BATCHAI_NODE_VIEW", view)  # the local agents are the engine's children
    made = _writes_its_sources(ws, "local", tmp_path)
    if view == "overlay" and os.geteuid() == 0:
        assert made == "overlay-closed"
    elif view == "copy" or (view == "reflink" and made == "copy"):
        assert made == "copy"  # reflink falls back where the filesystem cannot clone
    else:
        assert made == view


def test_a_job_that_writes_its_sources_leaves_the_tree_as_it_was_on_every_backend(
        backend_cluster, tmp_path: Path) -> None:
    """Each backend's nodes make their runs' views their own way (overlay where they can)."""
    ws, cluster = backend_cluster
    assert _writes_its_sources(ws, cluster, tmp_path) in ("overlay-closed", "reflink", "copy")


def test_keep_node_files_must_be_a_bool(ws: bai.Workspace, src: Path) -> None:
    with pytest.raises(SpecError, match="keep_node_files"):
        ws.experiment("x").submit(JobSpec(source_directory=src, script="train.py",
                                          keep_node_files="yes"), cluster="local")  # type: ignore[arg-type]
    for bad in (-1, "3", True):
        with pytest.raises(SpecError, match="keep_failed_runs"):
            ws.cluster("local").update(keep_failed_runs=bad)
    with pytest.raises(SpecError, match="node_cache_bytes"):
        ws.cluster("local").update(node_cache_bytes=-5)


def test_an_engine_that_starts_again_cleans_what_ended_runs_left(ws: bai.Workspace, src: Path) -> None:
    run = ws.experiment("left").submit(JobSpec(source_directory=src, script="train.py"), cluster="local")
    run.wait_for_completion(show_output=False, timeout=120)
    _wait_run_folders(ws, set())
    stop_engine(ws.path)
    # what an engine killed between finalizing a run and its node upkeep leaves behind
    node = next(ws.path.glob("clusters/local/nodes/*"))
    leftover = RunPaths(str(node), run.id)
    os.makedirs(leftover.wd)
    Path(leftover.status).write_text(json.dumps({"exit_codes": {"0-0": 0}}))
    Path(leftover.wd, "big.bin").write_bytes(b"x" * 100_000)
    ws.get_run(run.id)  # a client call starts an engine
    _wait_run_folders(ws, set())
    assert "epoch 2 loss 0.333" in list(run.stream(follow=False))


def test_deleted_runs_leave_an_ssh_node_kept_folders_too(ws: bai.Workspace, ssh_hosts, tmp_path: Path) -> None:
    """An ssh node root is not the workspace's alone: only runs it knows were deleted go."""
    from tests.compute.ssh_env import make_ssh_cluster
    cluster = make_ssh_cluster(ws, ssh_hosts, name="gone", count=1, keep_failed_runs=1)
    src = _project(tmp_path / "d", 200_000, files=1)
    exp = ws.experiment("gone")

    def run(i: int, code: int, keep: bool = False) -> bai.Run:
        job = exp.submit(JobSpec(source_directory=src, script="job.py", arguments=[str(i), str(code)],
                                 keep_node_files=keep), cluster=cluster)
        job.wait_for_completion(show_output=False, timeout=120, raise_on_error=False)
        return job
    kept, failed = run(0, 0, keep=True), run(1, 1)
    _wait_run_folders(ws, {kept.id, failed.id})  # the folders the run and the cluster keep
    root = next(ws.path.glob("sshnodes/*"))
    other = RunPaths(str(root), "another-workspaces-run")  # a folder history does not know
    os.makedirs(other.wd)
    Path(other.status).write_text("{}")
    kept.delete()
    failed.delete()
    quick = run(2, 0)
    quick.delete()  # deleted before or after the sweep its end starts: gone either way
    _wait_run_folders(ws, {other.key})
    assert ws.history.deleted_run_ids(cluster) == {kept.id, failed.id, quick.id}


def test_a_manifest_names_its_tree_and_lists_its_files_beside_it(ws: bai.Workspace, src: Path,
                                                                  tmp_path: Path) -> None:
    """The engine writes the stored file list beside the run's manifest as it is (not serialised
    per run) and names the tree by the snapshot id; the agent reads the list only when it uses
    the files (a later run on a node with the tree never does)."""
    from batchai_jupyter.node.manifest import ManifestError, ManifestSnapshot, RunManifest
    from batchai_jupyter.node.tree import tree_name
    from tests.node.helpers import make_manifest
    snap = ws.store.take(src)
    listing = tmp_path / "snapshot.json"  # not written yet: naming the tree reads nothing
    text = make_manifest(snapshot=ManifestSnapshot.listed(str(listing), snap.id)).to_json()
    assert json.loads(text)["snapshot"] == {"tree": snap.id, "listing": str(listing)}
    back = RunManifest.from_json(text).snapshot
    assert tree_name(back.files, back.links, back.tree) == snap.id
    assert back == RunManifest.from_json(text).snapshot  # compared without reading the list
    with pytest.raises(ManifestError, match="snapshot listing .*snapshot.json cannot be read"):
        len(back.files)
    listing.write_text(ws.store.manifest_text(snap.id))
    assert dict(back.files) == ManifestSnapshot.from_dict(ws.store.manifest(snap.id)).files and back.files
    assert tree_name(back.files, back.links, "../../etc") == tree_id(back.files, back.links)  # not a digest
    assert tree_name(back.files, back.links, back.tree, (1000, 1000)) == f"{snap.id}-1000-1000"


# -- the node cache, on real files -----------------------------------------------------------------
def _objects(folder: Path, contents: list[bytes]) -> dict[str, tuple[str, int, int]]:
    files = {}
    for i, data in enumerate(contents):
        digest = hashlib.sha256(data).hexdigest()
        path = folder / digest[:2] / digest[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[f"f{i}.bin"] = (digest, len(data), 0o644)
    return files


def test_the_cache_evicts_the_least_recently_used_and_never_an_active_runs(tmp_path: Path) -> None:
    objects, root = tmp_path / "objects", tmp_path / "node"
    (root / "runs").mkdir(parents=True)
    old = _objects(objects, [os.urandom(100_000)])
    active = _objects(objects, [os.urandom(100_000)])
    new = _objects(objects, [os.urandom(100_000)])
    trees = {name: build_tree(str(root), str(objects), files, {})
             for name, files in (("old", old), ("active", active), ("new", new))}
    for age, name in ((3000, "old"), (2000, "active"), (10, "new")):  # last used that long ago
        stamp = time.time() - age
        files = {"old": old, "active": active, "new": new}[name]
        os.utime(trees[name], (stamp, stamp))
        for digest, _s, _m in files.values():
            os.utime(objects / digest[:2] / digest[2:], (stamp, stamp))
    run = RunPaths(str(root), "r1")  # an active run of the "active" snapshot (no status.json)
    os.makedirs(run.run_dir)
    Path(run.manifest).write_text(json.dumps({"snapshot": {"files": {k: list(v) for k, v in active.items()}}}))
    total = upkeep({"roots": [str(root)], "objects_dir": str(objects), "cache_limit": None})
    assert total["objects_bytes"] == 300_000 and len(total["roots"][str(root)]["trees"]) == 3
    report = upkeep({"roots": [str(root)], "objects_dir": str(objects), "cache_limit": 350_000,
                     "protect": ["r1"]})
    left = report["roots"][str(root)]["trees"]
    assert tree_id(active, {}) in left and tree_id(new, {}) in left and tree_id(old, {}) not in left
    digest = next(iter(active.values()))[0]
    assert (objects / digest[:2] / digest[2:]).exists()
    assert report["objects_bytes"] + sum(left.values()) <= 350_000 or report["evicted_objects"] >= 1
    assert report["evicted_trees"] >= 1
    # an ended run no longer protects its snapshot; its folder goes when asked
    Path(run.status).write_text("{}")
    report = upkeep({"roots": [str(root)], "objects_dir": str(objects), "cache_limit": 0, "remove": ["r1"]})
    assert report["roots"][str(root)] == {"runs": {}, "trees": {}} and report["objects_bytes"] == 0



def test_a_pack_is_evicted_whole_and_only_when_no_active_run_uses_it(tmp_path: Path) -> None:
    """Packs the engine sends to a node cache: least recently used first, a whole pack at a time,
    kept while a run of a snapshot with one of its objects is active (its listing says so)."""
    from batchai_jupyter.node.packs import write_pack
    objects, root = tmp_path / "objects", tmp_path / "node"
    (root / "runs").mkdir(parents=True)
    contents = [os.urandom(50_000) for _ in range(4)]
    digests = [hashlib.sha256(c).hexdigest() for c in contents]
    used_index = write_pack(str(objects), dict(zip(digests[:2], contents[:2], strict=True)))
    idle_index = write_pack(str(objects), dict(zip(digests[2:], contents[2:], strict=True)))
    for index, age in ((used_index, 2000), (idle_index, 1000)):  # the used pack is the older one
        stamp = time.time() - age
        os.utime(index[:-4] + ".pack", (stamp, stamp))
    run = RunPaths(str(root), "r1")  # active: no status.json; its files beside its manifest
    os.makedirs(run.run_dir)
    Path(run.snapshot_listing).write_text(json.dumps({"files": {"a.bin": [digests[1], 50_000, 0o644]}, "links": {}}))
    Path(run.manifest).write_text(json.dumps({"snapshot": {"tree": "t", "listing": run.snapshot_listing}}))
    report = upkeep({"roots": [str(root)], "objects_dir": str(objects), "cache_limit": 0, "protect": ["r1"]})
    assert report["evicted_objects"] == 1 and report["objects_bytes"] == os.path.getsize(used_index) + 100_000
    assert Path(used_index).exists() and not Path(idle_index).exists()
    assert not Path(idle_index[:-4] + ".pack").exists()
    Path(run.status).write_text("{}")  # the run ended: nothing holds the pack now
    report = upkeep({"roots": [str(root)], "objects_dir": str(objects), "cache_limit": 0})
    assert report["objects_bytes"] == 0 and not list((objects / "packs").iterdir())


def test_an_ssh_node_gets_a_many_file_snapshot_as_packs(ws: bai.Workspace, ssh_hosts, tmp_path: Path) -> None:
    """A run of 300 small files sends one pack, not 300 objects, and reads every file; once the
    cache limit evicted the pack (the run ended), the next run is sent it again and runs the same."""
    from tests.compute.ssh_env import make_ssh_cluster
    src = tmp_path / "many"
    (src / "pkg").mkdir(parents=True)
    for i in range(300):
        (src / "pkg" / f"m{i}.txt").write_text(f"{i}\n" * (i + 1))
    (src / "job.py").write_text(textwrap.dedent("""
        import pathlib
        print(sum(len(p.read_text()) for p in pathlib.Path("pkg").iterdir()))
        cache = pathlib.Path("../../../objects")  # the node's object cache, as the job ran
        print(len(list(cache.glob("??/*"))), len(list(cache.glob("packs/*.pack"))))
    """))
    total = str(sum(len(f"{i}\n" * (i + 1)) for i in range(300)))
    cluster = make_ssh_cluster(ws, ssh_hosts, name="packs", count=1, node_cache_bytes=0)
    for _ in range(2):
        run = ws.experiment("packs").submit(JobSpec(source_directory=src, script="job.py"), cluster=cluster)
        assert run.wait_for_completion(show_output=False, timeout=120)["status"] == "Completed"
        got, cache = list(run.stream(follow=False))
        loose, packs = map(int, cache.split())
        assert got == total and packs == 1 and loose < 16, cache
        objects = next(ws.path.glob("sshnodes/*")) / "objects"
        assert wait_until(lambda o=objects: not list(o.glob("packs/*")), 30)  # evicted: the run ended


def _mounted_below(path: Path) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        return [line.split()[4] for line in fh if line.split()[4].startswith(str(path))]


def test_an_overlay_a_killed_agent_left_is_unmounted_and_its_changes_kept(
        ws: bai.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip(reason="overlay views need root; this node copies instead")
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "3")
    monkeypatch.setenv("BATCHAI_NODE_RETRY_SECONDS", "120")  # a reclaimed local node is made anew
    ws.create_cluster("frail", max_nodes=1, node_deallocation_option="terminate")
    src = tmp_path / "k"
    src.mkdir()
    (src / "job.py").write_text("import time\nopen('written.txt', 'w').write('mine')\n"
                                "print('started', flush=True)\ntime.sleep(120)\n")
    run = ws.experiment("k").submit(JobSpec(source_directory=src, script="job.py", keep_node_files=True),
                                    cluster="frail")
    assert next(iter(run.stream())) == "started"
    paths = RunPaths(str(next(ws.path.glob("clusters/frail/nodes/*"))), run.id)
    assert Path(paths.view_mode).read_text() == "overlay" and _mounted_below(Path(paths.run_dir))
    os.kill(int(Path(paths.started).read_text()), 9)  # the agent dies; its mount stays behind
    assert run.wait_for_completion(show_output=False, timeout=60, raise_on_error=False)["status"] == "Failed"
    assert wait_until(lambda: Path(paths.view_mode).read_text() == "overlay-closed", 30)
    assert not _mounted_below(Path(paths.run_dir))
    assert Path(paths.wd, "written.txt").read_text() == "mine"  # the kept folder has the run's changes
    assert not Path(paths.wd, "job.py").exists()  # and not another copy of the snapshot


def test_an_ssh_nodes_cache_stays_under_its_limit_and_evicted_snapshots_run_again(
        ws: bai.Workspace, ssh_hosts, tmp_path: Path) -> None:
    from tests.compute.ssh_env import make_ssh_cluster
    limit = 1_500_000
    cluster = make_ssh_cluster(ws, ssh_hosts, name="small", count=1, node_cache_bytes=limit)
    projects = [_project(tmp_path / f"p{i}", 600_000, files=2) for i in range(3)]
    exp = ws.experiment("lru")
    for i, src in enumerate([*projects, projects[0]]):  # the first one again, after its eviction
        run = exp.submit(JobSpec(source_directory=src, script="job.py", arguments=[str(i), "0"]), cluster=cluster)
        assert run.wait_for_completion(show_output=False, timeout=120)["status"] == "Completed"
        assert list(run.stream(follow=False)) == [f"run {i}"]
    root = next(ws.path.glob("sshnodes/*"))
    _wait_run_folders(ws, set())
    assert wait_until(lambda: _bytes(root / "objects") + _bytes(root / "trees") <= limit, 30), \
        (_bytes(root / "objects"), _bytes(root / "trees"))
    assert wait_until(lambda: bool(ws.cluster(cluster).get_status().node_disk), 30)
    disk = ws.cluster(cluster).get_status().node_disk
    assert next(iter(disk.values()))["cache_bytes"] <= limit
