"""sana-wm: an independent implementation of the SANA-WM world model.

The public surface is listed here; everything else may change between releases. The model and data
parts are imported lazily so that camera tools start without loading PyTorch.
"""

from sana_wm import library_logs
from sana_wm.camera import Intrinsics, Trajectory, TrajectoryError

library_logs.install()  # before anything imports diffusers, peft or torchao

__version__ = "0.1.0.dev0"

_LAZY = {
    "SanaWMConfig": "sana_wm.model",
    "SanaWMTransformer": "sana_wm.model",
    "from_pretrained": "sana_wm.model",
    "save_pretrained": "sana_wm.model",
    "get_config": "sana_wm.model",
    "SanaWMPipeline": "sana_wm.pipeline",
    "GenerationRequest": "sana_wm.pipeline",
    "GenerationResult": "sana_wm.pipeline",
    "Clip": "sana_wm.data",
    "ClipDataset": "sana_wm.data",
    "ShardWriter": "sana_wm.data",
    "euler_sample": "sana_wm.samplers",
    "chunk_causal_sample": "sana_wm.samplers",
    "stream_sample": "sana_wm.samplers",
    "SigmaSchedule": "sana_wm.samplers",
    "run_training": "sana_wm.train",
    "generate_scene": "sana_wm.synth",
    "render": "sana_wm.synth",
    "annotate": "sana_wm.annotate",
    "AnnotateConfig": "sana_wm.annotate",
    "make_backend": "sana_wm.geometry",
    "trajectory_errors": "sana_wm.geometry",
}

__all__ = ["Intrinsics", "Trajectory", "TrajectoryError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sana_wm' has no attribute {name!r}")
