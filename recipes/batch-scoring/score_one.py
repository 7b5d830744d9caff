"""One sensor scored as a run of its own, the fan-out form of score.py (one child run per sensor).

The inputs READINGS and MODEL are that sensor's two files; its predictions go to PREDICTIONS.
"""
import json
import os
from pathlib import Path

import sensors

row = sensors.score_file(Path(os.environ["AZ_BATCHAI_INPUT_READINGS"]), Path(os.environ["AZ_BATCHAI_INPUT_MODEL"]),
                         Path(os.environ["AZ_BATCHAI_OUTPUT_PREDICTIONS"]))
print(json.dumps(row))
