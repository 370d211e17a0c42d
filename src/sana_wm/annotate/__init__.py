"""Annotation: ordinary videos -> training clips with metric camera poses (``sana-wm annotate``).

    summary = annotate(["videos/"], "dataset/", AnnotateConfig(fps=10, width=640))

Stages (each its own module, replaceable and tested alone): :mod:`.decode` (PyAV, image folders),
:mod:`.shots` (PySceneDetect cuts; short, black and static shots dropped), :mod:`.intrinsics`, poses and
scale through :mod:`sana_wm.geometry`, :mod:`.depth` (a metric depth model), :mod:`.quality`,
:mod:`.captions` (optional, a local vision-language model); :mod:`.pipeline` chains them for one input
and :mod:`.runner` runs many inputs, resumable and in parallel.
"""

from sana_wm.annotate.captions import CaptionConfig
from sana_wm.annotate.pipeline import AnnotateConfig, annotate_video
from sana_wm.annotate.quality import QualityConfig
from sana_wm.annotate.runner import AnnotateSummary, annotate
from sana_wm.annotate.shots import ShotConfig

__all__ = ["AnnotateConfig", "AnnotateSummary", "CaptionConfig", "QualityConfig", "ShotConfig", "annotate",
           "annotate_video"]
