"""An Azure ML v1 style training script (the shape of the SDK's "train on local" samples): it
imports its Run from azureml.core and runs unchanged as a batchai job."""
import argparse
import json
import os

from azureml.core import Run
from azureml.core.run import Run as RunFromModule

parser = argparse.ArgumentParser()
parser.add_argument("--regularization", type=float, dest="reg", default=0.01, help="regularization rate")
args = parser.parse_args()

run = Run.get_context()
print("same class:", Run is RunFromModule)
run.log("Regularization Rate", float(args.reg), "the rate the script was given")

# a tiny "ridge" fit on fixed data: y = 2x, with the rate shrinking the slope
xs, ys = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]
alphas = [0.0, args.reg, 1.0]
for alpha in alphas:
    slope = sum(x * y for x, y in zip(xs, ys)) / (sum(x * x for x in xs) + alpha)
    mse = sum((slope * x - y) ** 2 for x, y in zip(xs, ys)) / len(xs)
    run.log("alpha", alpha)
    run.log("mse", mse)
    run.log_row("results", alpha=alpha, mse=round(mse, 6))
run.log_list("alphas", alphas)
run.log_table("points", {"x": xs, "y": ys})
run.log_confusion_matrix("confusion", {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
                                       "data": {"class_labels": ["neg", "pos"], "matrix": [[5, 1], [0, 6]]}})
run.log_accuracy_table("accuracy", {"probability_tables": [[[1, 0, 0, 1]]], "percentile_tables": [[[1, 0, 0, 1]]],
                                    "probability_thresholds": [0.5], "percentile_thresholds": [50],
                                    "class_labels": ["neg", "pos"]})
run.log_predictions("predictions", json.dumps({"schema_type": "predictions", "schema_version": "1.0.0",
                                               "data": {"bin_averages": [2.0], "bin_errors": [0.1],
                                                        "bin_counts": [4], "bin_edges": [0.0, 10.0]}}))
run.log_residuals("residuals", {"bin_edges": [-1.0, 0.0, 1.0], "bin_counts": [2, 2]})

run.tag("model", "ridge")
run.set_tags({"data": "line", "reg": str(args.reg)})
run.add_properties({"framework": "stdlib"})

os.makedirs("outputs", exist_ok=True)
with open("outputs/model.json", "w") as fh:
    json.dump({"slope": slope}, fh)
with open("notes.txt", "w") as fh:
    fh.write("uploaded by the script\n")
run.upload_file(name="outputs/notes.txt", path_or_stream="notes.txt")
os.makedirs("extra/sub", exist_ok=True)
with open("extra/sub/a.txt", "w") as fh:
    fh.write("a")
run.upload_folder(name="extra", path="extra")
model = run.register_model(model_name="ridge", model_path="outputs/model.json", tags={"alpha": str(args.reg)})

folds = run.create_children(tag_key="fold", tag_values=["0", "1"])
for index, fold in enumerate(folds):
    fold.log("fold_mse", 0.1 * (index + 1))
folds[0].complete()
with run.child_run(name="evaluation") as evaluation:
    evaluation.log("accuracy", 0.9)
run.child_run(name="broken").fail(error_details="fold data missing")

print("READS " + json.dumps({
    "tags": run.get_tags(), "properties": run.get_properties(), "status": run.get_status(),
    "metrics": sorted(run.get_metrics()), "mse": run.get_metrics("mse"), "parent": run.parent is None,
    "experiment": run.experiment.name, "id": run.id, "model_version": model.version,
    "children": len(run.get_children()), "details_status": run.get_details()["status"],
    "files": [n for n in run.get_file_names() if n.startswith(("outputs/notes", "extra/"))],
}))
