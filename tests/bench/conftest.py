"""The runner's refiner test loads the tiny released-layout models of the pipeline tests."""

import sys
from pathlib import Path

path = str(Path(__file__).resolve().parent.parent / "pipeline")
if path not in sys.path:
    sys.path.append(path)
