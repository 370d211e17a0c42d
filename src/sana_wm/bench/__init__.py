"""SANA-WM-Bench, the one-minute benchmark: its folder layout (:mod:`~sana_wm.bench.layout`), generating every
scene with a model (:mod:`~sana_wm.bench.runner`, ``sana-wm bench run``) and building a benchmark with exact
ground truth from the synthetic world (:mod:`~sana_wm.bench.synth`, ``sana-wm bench synth``)."""

from sana_wm.bench.layout import (
    RUN_FILE,
    SPLITS,
    BenchError,
    BenchScene,
    RunInfo,
    ground_truth_depth,
    ground_truth_video,
    read_bench,
    read_run,
    video_path,
)

__all__ = ["RUN_FILE", "SPLITS", "BenchError", "BenchScene", "RunInfo", "ground_truth_depth", "ground_truth_video",
           "read_bench", "read_run", "video_path"]
