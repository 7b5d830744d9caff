"""One conformance suite, the same tests on every datastore kind:
local folder, Azure Blob (real Azurite) and Azure Files (the labelled protocol emulator)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.datastores import Callback


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "empty.bin": b"",
        "sub/b.txt": b"beta" * 1000,
        "sub/deeper/c.dat": os.urandom(3 * 1024 * 1024 + 17),  # several blocks/ranges
    }
    files.update({f"many/f{i:03d}.txt": f"file {i}\n".encode() for i in range(40)})
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _read(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_upload_list_download_round_trip(store, tmp_path: Path) -> None:
    files = _tree(tmp_path / "src")
    ref = store.upload(tmp_path / "src", target_path="data/v1", show_progress=False)
    assert (ref.datastore.name, ref.path) == (store.name, "data/v1")
    assert store.list("data/v1/") == sorted(f"data/v1/{k}" for k in files)
    assert store.list("data/v1/sub/") == ["data/v1/sub/b.txt", "data/v1/sub/deeper/c.dat"]
    assert store.list("nothing/") == []
    fetched = store.download(tmp_path / "out", prefix="data/v1/sub", show_progress=False)
    assert fetched == 2
    assert _read(tmp_path / "out") == {"data/v1/sub/b.txt": files["sub/b.txt"],
                                       "data/v1/sub/deeper/c.dat": files["sub/deeper/c.dat"]}
    assert store.download(tmp_path / "all", show_progress=False) == len(files)
    assert _read(tmp_path / "all" / "data" / "v1") == files


def test_overwrite_false_keeps_existing_files(store, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.txt").write_text("first")
    store.upload(src, "m", show_progress=False)
    (src / "model.txt").write_text("second")
    store.upload(src, "m", show_progress=False)  # overwrite=False: the stored file stays
    store.download(tmp_path / "d1", prefix="m", show_progress=False)
    assert (tmp_path / "d1" / "m" / "model.txt").read_text() == "first"
    store.upload(src, "m", overwrite=True, show_progress=False)
    assert store.download(tmp_path / "d1", prefix="m", show_progress=False) == 0  # local kept
    store.download(tmp_path / "d1", prefix="m", overwrite=True, show_progress=False)
    assert (tmp_path / "d1" / "m" / "model.txt").read_text() == "second"


def test_upload_files_names_and_relative_root(store, tmp_path: Path) -> None:
    files = _tree(tmp_path / "src")
    picked = [tmp_path / "src" / "a.txt", tmp_path / "src" / "sub" / "b.txt"]
    store.upload_files(picked, target_path="flat", show_progress=False)
    assert store.list("flat/") == ["flat/a.txt", "flat/b.txt"]
    store.upload_files(picked, target_path="kept", relative_root=tmp_path / "src", show_progress=False)
    assert store.list("kept/") == ["kept/a.txt", "kept/sub/b.txt"]
    store.download(tmp_path / "o", prefix="kept/sub/b.txt", show_progress=False)
    assert (tmp_path / "o" / "kept" / "sub" / "b.txt").read_bytes() == files["sub/b.txt"]
    with pytest.raises(bai.DatastoreError, match="not under relative_root"):
        store.upload_files([tmp_path / "src" / "a.txt"], relative_root=tmp_path / "src" / "sub",
                           show_progress=False)


def test_progress_callback_sees_every_byte(store, tmp_path: Path) -> None:
    files = _tree(tmp_path / "src")
    total = sum(len(v) for v in files.values())
    up, down = Callback(), Callback()
    store.upload(tmp_path / "src", "p", show_progress=up)
    store.download(tmp_path / "o", prefix="p/", show_progress=down)
    assert up.total == up.done == total
    assert down.total == down.done == total
    seen: list[tuple[int, int]] = []
    store.download(tmp_path / "o2", prefix="p/a.txt", show_progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(files["a.txt"]), len(files["a.txt"]))


def test_paths_cannot_leave_the_datastore(store, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    for bad in ("../x", "a/../../b", "/etc"):
        with pytest.raises(bai.SpecError):
            store.path(bad)
        with pytest.raises(bai.SpecError):
            store.upload(tmp_path / "src", target_path=bad, show_progress=False)
        with pytest.raises(bai.SpecError):
            store.download(tmp_path / "o", prefix=bad, show_progress=False)
    with pytest.raises(bai.DatastoreError, match="not a folder"):
        store.upload(tmp_path / "missing", show_progress=False)


def test_datastore_is_found_again_from_the_workspace(store, ws) -> None:
    again = bai.Workspace(ws.path).datastore(store.name)
    assert (again.name, again.kind) == (store.name, store.kind)
    assert store.name in [d.name for d in ws.datastores()]
    assert "account_key" not in repr(again) and "Eby8" not in repr(again)


def _job_source(tmp_path: Path, fail: bool = False) -> Path:
    src = tmp_path / "job"
    src.mkdir()
    (src / "train.py").write_text(
        "import os, sys\n"
        "data = os.environ['AZ_BATCHAI_INPUT_DATA']\n"
        "total = sum(len(open(os.path.join(r, f), 'rb').read()) for r, _, fs in os.walk(data) for f in fs)\n"
        "print('input bytes', total, flush=True)\n"
        "out = os.environ['AZ_BATCHAI_OUTPUT_MODEL']\n"
        "os.makedirs(os.path.join(out, 'ckpt'), exist_ok=True)\n"
        "open(os.path.join(out, 'ckpt', 'model.bin'), 'w').write(f'trained on {total} bytes')\n"
        f"sys.exit({1 if fail else 0})\n")
    return src


@pytest.mark.parametrize("fail", [False, True], ids=["succeeds", "fails"])
def test_job_reads_input_and_writes_output(store, ws, tmp_path: Path, fail: bool) -> None:
    files = _tree(tmp_path / "data")
    store.upload(tmp_path / "data", "datasets/d1", show_progress=False)
    spec = bai.JobSpec(source_directory=_job_source(tmp_path, fail), script="train.py",
                       inputs={"DATA": store.path("datasets/d1").as_download()},
                       outputs={"MODEL": store.path("models").as_upload()})
    run = ws.experiment("ds").submit(spec)
    run.wait_for_completion(show_output=False, timeout=120, raise_on_error=False)
    assert run.status == ("Failed" if fail else "Completed"), run.get_details().get("error")
    total = sum(len(v) for v in files.values())
    assert f"input bytes {total}" in "".join(run.stream(follow=False))
    # outputs land in <path>/<run id>/..., also when the job failed
    assert store.list("models/") == [f"models/{run.id}/ckpt/model.bin"]
    store.download(tmp_path / "got", prefix=f"models/{run.id}", show_progress=False)
    assert (tmp_path / "got" / "models" / run.id / "ckpt" / "model.bin").read_text() == \
        f"trained on {total} bytes"
    stored = ws.history.run_row(run.id)["spec"]
    assert stored["inputs"] == {"DATA": {"datastore": store.name, "path": "datasets/d1", "mode": "download"}}


def test_staging_a_single_file_and_a_folder(store, tmp_path: Path) -> None:
    """What a node does: fetch a path (file or folder) into a local folder, push a folder back."""
    files = _tree(tmp_path / "src")
    store.upload(tmp_path / "src", "in", show_progress=False)
    one = store.fetch_tree("in/sub/b.txt", str(tmp_path / "one"))
    assert one == str(tmp_path / "one" / "b.txt") and Path(one).read_bytes() == files["sub/b.txt"]
    folder = store.fetch_tree("in/sub", str(tmp_path / "folder"))
    assert _read(Path(folder)) == {"b.txt": files["sub/b.txt"], "deeper/c.dat": files["sub/deeper/c.dat"]}
    with pytest.raises(bai.DatastoreError, match="not found"):
        store.fetch_tree("in/su", str(tmp_path / "none"))  # a string prefix is not a folder
    assert store.push_tree(str(tmp_path / "src" / "sub"), "out/run1") == 2
    assert store.list("out/") == ["out/run1/b.txt", "out/run1/deeper/c.dat"]


def test_staged_outputs_are_moved_where_the_datastore_can_take_them(store, tmp_path: Path) -> None:
    """A run's staged outputs (move_tree): every kind ends with the same files; a local datastore
    on the same filesystem takes the files over (same inode, nothing copied, the folder emptied),
    except a link, whose content is copied and which stays."""
    files = _tree(tmp_path / "staged")
    (tmp_path / "target.txt").write_bytes(b"linked\n")
    (tmp_path / "staged" / "link.txt").symlink_to(tmp_path / "target.txt")
    inodes = {rel: (tmp_path / "staged" / rel).stat().st_ino for rel in files}
    assert store.move_tree(str(tmp_path / "staged"), "out/run2") == len(files) + 1
    got = store.fetch_tree("out/run2", str(tmp_path / "back"))
    assert _read(Path(got)) == {**files, "link.txt": b"linked\n"}
    left = sorted(p.relative_to(tmp_path / "staged").as_posix() for p in (tmp_path / "staged").rglob("*")
                  if p.is_file())
    if store.kind != "local":
        assert left == sorted([*files, "link.txt"])  # copied: the node removes its folder later
        return
    assert left == ["link.txt"]
    landed = Path(store.local_path("out/run2"))
    assert {rel: (landed / rel).stat().st_ino for rel in files} == inodes
    assert not (landed / "link.txt").is_symlink()
