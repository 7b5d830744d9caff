"""How many of the official Batch AI recipes' job.json files import, over the repository's history.

    python -m tools.count_batchai_recipes [GIT_DIR]

GIT_DIR is a clone (or bare mirror) of github.com/Azure/BatchAI; default: $BATCHAI_RECIPES_GIT.
Every distinct job*.json blob under recipes/ in any commit is imported with JobSpec.from_batchai_json
into a scratch workspace, the storage account placeholders filled with a made-up account and key
(nothing is contacted: the datastores are only registered), with a cluster that mounts a share at
external/, afs/, data/, bfs/ and scriptsandoutputs/ as the recipes' cluster instructions did
(--afs-mount-path). Prints the count, per schema version, and the reasons of those that do not import.

Those left out are refused on purpose: two files are not valid JSON, and six name keys no Batch AI
API version had (`cntkSettings.process_count`, `chainerSettings.masterCommandLineArgs`; Batch AI
dropped them unread and the recipes later fixed them; docs/migrate.md "job.json").
"""
from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SCHEMA = re.compile(r"schemas/([0-9a-z-]+)/job\.json")


def _git(git_dir: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, *args], capture_output=True, text=True,
                          check=True).stdout


def recipe_blobs(git_dir: str) -> dict[str, str]:
    """blob id -> the first path it was seen at, for every job*.json under recipes/ in history."""
    blobs: dict[str, str] = {}
    for commit in _git(git_dir, "log", "--all", "--format=%H", "--", "recipes").split():
        for line in _git(git_dir, "ls-tree", "-r", commit, "recipes").splitlines():
            meta, _, path = line.partition("\t")
            if re.search(r"/job[^/]*\.json$", path):
                blobs.setdefault(meta.split()[2], path)
    return blobs


def count(git_dir: str) -> dict[str, Any]:
    import batchai_jupyter as bai
    blobs = recipe_blobs(git_dir)
    results: dict[str, Any] = {"total": 0, "imported": 0, "by_schema": collections.Counter(),
                               "ok_by_schema": collections.Counter(), "failures": collections.Counter()}
    with tempfile.TemporaryDirectory() as tmp:
        ws = bai.Workspace.create(path=os.path.join(tmp, ".batchai"))
        # the cluster the recipes' instructions create: `az batchai cluster create --afs-name ...
        # --afs-mount-path external` (older ones: afs), so $AZ_BATCHAI_MOUNT_ROOT/<path> resolves
        ws.register_datastore("recipeafs", kind="azure_file", account_name="recipeacct", share="batchaisample",
                              account_key="a2V5")
        paths = ("external", "afs", "data", "bfs", "scriptsandoutputs")
        ws.create_cluster("recipes", max_nodes=2,
                          mount_volumes=[{"datastore": "recipeafs", "path": p} for p in paths])
        for blob, _path in sorted(blobs.items(), key=lambda kv: kv[1]):
            text = _git(git_dir, "cat-file", "-p", blob)
            match = SCHEMA.search(text)
            schema = match.group(1) if match else "none"
            results["total"] += 1
            results["by_schema"][schema] += 1
            try:
                data = json.loads(text)
                bai.JobSpec.from_batchai_json(data, workspace=ws, source_directory=tmp,
                                              storage_account="recipeacct", storage_key="a2V5")
            except Exception as exc:  # noqa: BLE001 -- a survey: every reason is counted
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                results["failures"][reason] += 1
                continue
            results["imported"] += 1
            results["ok_by_schema"][schema] += 1
        from batchai_jupyter.engine.control import stop_engine
        stop_engine(Path(ws.path))
    return results


def main(argv: list[str]) -> int:
    git_dir = argv[1] if len(argv) > 1 else os.environ.get("BATCHAI_RECIPES_GIT", "")
    if not git_dir or not os.path.isdir(git_dir):
        print("usage: python -m tools.count_batchai_recipes GIT_DIR (a clone of Azure/BatchAI)")
        return 2
    r = count(git_dir)
    print(f"{r['imported']} of {r['total']} distinct recipe job.json files import")
    for schema, n in sorted(r["by_schema"].items()):
        print(f"  schema {schema}: {r['ok_by_schema'][schema]} of {n}")
    for reason, n in r["failures"].most_common():
        print(f"  {n} x {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
