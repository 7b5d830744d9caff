"""A pipeline step in the shape of the SDK's pipeline samples: it finds its workspace through its
run (Workspace.from_config() when offline), registers a model folder, reads the model back and
looks at its parent run; with --stop it cancels the pipeline (`run.parent.cancel()`)."""
import argparse
import json
import os

from azureml.core import Model, Workspace
from azureml.core.run import Run, _OfflineRun

parser = argparse.ArgumentParser("register")
parser.add_argument("--model_name", default="pipeline-model")
parser.add_argument("--stop", action="store_true", help="cancel the pipeline: nothing new to train on")
args = parser.parse_args()

run = Run.get_context()
if type(run) == _OfflineRun:  # noqa: E721 -- as the samples test it
    ws = Workspace.from_config()
else:
    ws = run.experiment.workspace
parent = run.parent
seen = {"offline": type(run) == _OfflineRun,  # noqa: E721
        "parent": parent.id if parent is not None else None,
        "parent_status": parent.get_status() if parent is not None else None,
        "siblings": sorted(r.id for r in parent.get_children()) if parent is not None else []}

if args.stop:
    print("READS " + json.dumps(seen), flush=True)
    print("no new data: cancelling the pipeline", flush=True)
    run.parent.cancel()
else:
    os.makedirs("model", exist_ok=True)
    with open("model/weights.txt", "w") as fh:
        fh.write("w=1\n")
    model = Model.register(workspace=ws, model_name=args.model_name, model_path="model",
                           tags={"step": "register"})
    again = Model(ws, args.model_name)
    seen.update(version=again.version, created=again.created_time > 0, tags=again.tags)
    try:
        parent.tag("registered", str(model.version))
    except Exception as exc:  # noqa: BLE001 -- a job writes to its own run only
        seen["refused"] = f"{type(exc).__name__}: {exc}"
    print("READS " + json.dumps(seen), flush=True)
