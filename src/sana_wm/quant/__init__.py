"""Low precision for SANA-WM's transformers: exact CPU emulations of FP8, NVFP4, int8 and int4
(:mod:`~sana_wm.quant.formats`), the named rules of which GEMMs are quantized (:mod:`~sana_wm.quant.rules`),
and :func:`quantize_model`, which applies them on the backend the device supports
(:mod:`~sana_wm.quant.quantize`)."""

from sana_wm.quant.quantize import (
    BACKENDS,
    PRECISIONS,
    BackendChoice,
    DeviceInfo,
    PrecisionError,
    QuantReport,
    choose_backend,
    gpu_precisions,
    quantization_of,
    quantize_model,
)
from sana_wm.quant.rules import REFINER_RULES, STAGE1_RULES, ModuleRules, classify

__all__ = ["BACKENDS", "PRECISIONS", "REFINER_RULES", "STAGE1_RULES", "BackendChoice", "DeviceInfo", "ModuleRules",
           "PrecisionError", "QuantReport", "choose_backend", "classify", "gpu_precisions", "quantization_of",
           "quantize_model"]
