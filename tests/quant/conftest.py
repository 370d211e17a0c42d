"""The quantization tests build tiny models with the helpers of the model and pipeline tests."""

import sys
from pathlib import Path

for helpers in ("model", "pipeline"):
    path = str(Path(__file__).resolve().parent.parent / helpers)
    if path not in sys.path:
        sys.path.append(path)
