"""`make demo`: submit the sample training script to the local cluster and follow it live."""
from pathlib import Path

import batchai_jupyter as bai

here = Path(__file__).resolve().parent
ws = bai.Workspace.create(here.parent / ".batchai", exist_ok=True)
spec = bai.JobSpec(source_directory=here / "train", script="train.py", arguments=["8"],
                   environment_variables={"LEARNING_RATE": "0.3"})
run = ws.experiment("demo").submit(spec, cluster="local", tags={"lr": "0.3"})
run.wait_for_completion(show_output=True)
print("Metrics:", {k: [round(v, 4) for v in vals] for k, vals in run.get_metrics().items()})
outputs = ws.run_files_dir(run.id)
print("Files:")
for name in run.get_file_names():
    print(f"  {outputs / name}")
