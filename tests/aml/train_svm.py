"""An Azure ML v1 training script in the shape of the SDK's scikit-learn samples (an SVM on the
iris data): module-level Run.get_context(), numpy values logged as they come (np.float32,
np.int64, arrays), a pyplot figure with log_image(plot=plt), a file with upload_file."""
import argparse
import os

import joblib
import matplotlib.pyplot as plt
import numpy as np
from azureml.core.run import Run
from sklearn import datasets
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

run = Run.get_context()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel", type=str, default="linear", help="the SVM's kernel")
    parser.add_argument("--penalty", type=float, default=1.0, help="the error term's penalty C")
    args = parser.parse_args()
    run.log("Kernel type", np.str_(args.kernel))
    run.log("Penalty", np.float64(args.penalty))

    iris = datasets.load_iris()
    x_train, x_test, y_train, y_test = train_test_split(iris.data, iris.target, random_state=0)
    model = SVC(kernel=args.kernel, C=args.penalty).fit(x_train, y_train)
    predicted = model.predict(x_test)
    accuracy = np.float32(model.score(x_test, y_test))
    run.log("Accuracy", accuracy)
    run.log("Test samples", np.int64(len(y_test)))
    matrix = confusion_matrix(y_test, predicted)
    run.log_list("Correct per class", np.diag(matrix))
    run.log_table("Classes", {"class": np.arange(3), "correct": np.diag(matrix), "total": matrix.sum(axis=1)})
    run.log_row("Summary", accuracy=accuracy, support=np.int64(len(y_test)))
    run.log_confusion_matrix("Confusion", {"class_labels": list(iris.target_names), "matrix": matrix})

    plt.figure(figsize=(4, 3))
    plt.title("correct per class")
    plt.bar(range(3), np.diag(matrix))
    run.log_image("Correct per class plot", plot=plt)

    os.makedirs("outputs", exist_ok=True)
    joblib.dump(model, "outputs/model.joblib")
    with open("report.txt", "w") as fh:
        fh.write(f"accuracy {accuracy:.3f}\n")
    run.upload_file(name="outputs/report.txt", path_or_stream="report.txt")
    print(f"Accuracy of SVM classifier on test set: {accuracy:.2f}")


if __name__ == "__main__":
    main()
