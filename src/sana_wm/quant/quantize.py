"""``quantize_model``: swap a model's GEMMs for quantized ones under its rule set, on the backend that fits
the device, and say what was done.

Backends:

* ``"emulate"``: :class:`~sana_wm.quant.modules.EmulatedLinear`, the exact quantize-dequantize emulation,
  on any device. Slower than the unquantized model and no smaller in memory: it is there to measure quality.
* ``"torchao"``: torchao's kernels. fp8 (W8A8, one scale per row) on CUDA sm_89 or newer; nvfp4 (its
  prototype W4A4) on sm_100 or newer; int8 (one scale per row) and int4 (groups of 32) weight-only on CUDA
  GPUs; int8 also on the CPU.
* ``"te"``: TransformerEngine. Not built yet: refused with the alternative.
* ``"auto"``: the emulation on the CPU (said in :attr:`QuantReport.note`), torchao on CUDA, after checking the
  GPU's compute capability; a precision the GPU cannot run is refused with the nearest one it can.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass

import torch
from torch import nn

from sana_wm.errors import UserError
from sana_wm.quant.modules import EmulatedLinear, PointwiseLinear, linear_of
from sana_wm.quant.rules import REFINER_RULES, STAGE1_RULES, ModuleRules, classify

__all__ = ["BACKENDS", "PRECISIONS", "BackendChoice", "DeviceInfo", "PrecisionError", "QuantReport",
           "choose_backend", "gpu_precisions", "quantization_of", "quantize_model"]

PRECISIONS = ("bf16", "fp8", "nvfp4", "int8", "int4")  # what the command line offers
_EMULATION_ONLY = ("fp8-block",)  # the release's TransformerEngine fp8 recipe: emulated, for measurement
BACKENDS = ("auto", "emulate", "torchao", "te")

# precision -> (lowest compute capability, the GPUs that have it)
_NEEDS = {
    "fp8": ((8, 9), "an Ada or Hopper GPU (sm_89 or newer)"),
    "nvfp4": ((10, 0), "a Blackwell GPU (sm_100 or newer)"),
    "int8": ((0, 0), "a CUDA GPU"),
    "int4": ((0, 0), "a CUDA GPU"),
}
_CPU_NOTE = "emulated on the CPU: slower than unquantized and no smaller, for measuring quality, not speed"
_MARK = "_sana_wm_quantization"  # the attribute a quantized model carries its report in


class PrecisionError(UserError, ValueError):
    """A precision or backend this machine cannot run, or a model that cannot take it."""


@dataclass(frozen=True)
class DeviceInfo:
    """Where the quantized model runs: ``type`` ("cpu", "cuda", ...) and, on CUDA, the compute capability."""

    type: str
    capability: tuple[int, int] | None = None

    @classmethod
    def of(cls, device: torch.device | str) -> DeviceInfo:
        device = torch.device(device)
        if device.type == "cuda" and torch.cuda.is_available():
            return cls("cuda", tuple(torch.cuda.get_device_capability(device)))
        return cls(device.type)  # without CUDA, loading onto "cuda" fails later with torch's own message

    @property
    def sm(self) -> str:
        return f"sm_{self.capability[0]}{self.capability[1]}" if self.capability else self.type


@dataclass(frozen=True)
class BackendChoice:
    precision: str
    backend: str  # "none" (bf16), "emulate" or "torchao"
    note: str | None = None  # said to the user once (e.g. that the CPU runs an emulation)


@dataclass(frozen=True)
class QuantReport:
    """What :func:`quantize_model` did: the GEMMs quantized and kept (module paths), how, and a note."""

    model: str  # the rule set's name: "stage1" or "refiner"
    precision: str
    backend: str
    quantized: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    hadamard: bool = False
    stochastic_rounding: bool = False
    note: str | None = None

    def summary(self) -> str:
        """One line for the user."""
        if self.precision == "bf16":
            return f"{self.model}: not quantized"
        how = self.backend if self.note is None else self.note
        extra = " with the Hadamard transform and stochastic rounding" if self.hadamard else ""
        return (f"{self.model}: {self.precision}{extra} on {len(self.quantized)} GEMMs, {len(self.kept)} kept "
                f"unquantized ({how})")

    def to_dict(self) -> dict:
        """The sidecar's record (counts, not every path)."""
        d = asdict(self)
        d["quantized"], d["kept"] = len(self.quantized), len(self.kept)
        return d


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _fallback(capability: tuple[int, int]) -> str:
    """The best precision a GPU of ``capability`` runs (for refusals)."""
    return "fp8" if capability >= _NEEDS["fp8"][0] else "int8"


def gpu_precisions(rules: ModuleRules, capability: tuple[int, int]) -> tuple[str, ...]:
    """The precisions :func:`quantize_model` runs ``rules``' model at on a CUDA GPU of ``capability`` (torchao
    installed): those whose compute capability it has, less NVFP4 where the rules need the Hadamard transform
    and stochastic rounding that torchao's NVFP4 lacks (stage 1)."""
    nvfp4_ok = not (rules.nvfp4_hadamard or rules.nvfp4_stochastic_rounding)
    return tuple(p for p in PRECISIONS if p == "bf16" or (tuple(capability) >= _NEEDS[p][0]
                                                          and (p != "nvfp4" or nvfp4_ok)))


def choose_backend(precision: str, device: DeviceInfo, backend: str = "auto", *,
                   flag: str = "--stage1-precision") -> BackendChoice:
    """The backend that runs ``precision`` on ``device``, or a :class:`PrecisionError` written for the user
    (``flag`` names the option to change)."""
    known = PRECISIONS + _EMULATION_ONLY
    if precision not in known:
        raise PrecisionError(f"{flag} {precision}: unknown precision; choose from {', '.join(PRECISIONS)}")
    if backend not in BACKENDS:
        raise PrecisionError(f"quantization backend {backend!r}: choose from {', '.join(BACKENDS)}")
    if precision == "bf16":
        return BackendChoice("bf16", "none")
    if backend == "te":
        raise PrecisionError("the TransformerEngine backend is not built yet; use the torchao backend (or auto)")
    if backend == "emulate":
        return BackendChoice(precision, "emulate", _CPU_NOTE if device.type == "cpu" else
                             "emulated (quantize-dequantize in float32): for measuring quality, not speed")
    if precision in _EMULATION_ONLY:
        raise PrecisionError(f"{precision} is emulated only (the release's TransformerEngine recipe); use the "
                             "emulate backend, or fp8 for torchao's kernels")
    if device.type != "cuda":
        if backend == "auto":
            return BackendChoice(precision, "emulate", _CPU_NOTE)
        if precision != "int8":  # backend == "torchao"
            raise PrecisionError(f"torchao runs {precision} only on CUDA GPUs ({_NEEDS[precision][1]}); on the "
                                 f"{device.type} use int8, or the emulation ({flag} {precision} without a backend)")
        if not _installed("torchao"):
            raise PrecisionError("the torchao backend needs torchao: pip install 'sana-wm[quant]'")
        return BackendChoice(precision, "torchao")
    lowest, gpus = _NEEDS[precision]
    if device.capability is not None and device.capability < lowest:
        raise PrecisionError(f"{precision} needs {gpus}; this GPU is {device.sm}: use {flag} "
                             f"{_fallback(device.capability)}")
    if not _installed("torchao"):
        raise PrecisionError(f"{precision} on a GPU runs on torchao, which is not installed: "
                             "pip install 'sana-wm[quant]'")
    return BackendChoice(precision, "torchao")


def _import_torchao_quantization():
    """``torchao.quantization``, imported on first use (torch's notices at its import: :mod:`sana_wm.library_logs`)."""
    import torchao.quantization

    return torchao.quantization


def _torchao_config(precision: str):
    q = _import_torchao_quantization()
    Float8DynamicActivationFloat8WeightConfig, Int4WeightOnlyConfig, Int8WeightOnlyConfig, PerRow = (
        q.Float8DynamicActivationFloat8WeightConfig, q.Int4WeightOnlyConfig, q.Int8WeightOnlyConfig, q.PerRow)
    if precision == "fp8":
        return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
    if precision == "int8":
        return Int8WeightOnlyConfig(granularity=PerRow())
    if precision == "int4":
        return Int4WeightOnlyConfig(group_size=32, int4_packing_format="tile_packed_to_4d")
    from torchao.prototype.mx_formats.inference_workflow import NVFP4DynamicActivationNVFP4WeightConfig

    return NVFP4DynamicActivationNVFP4WeightConfig()


def _rules_for(model: nn.Module) -> tuple[nn.Module, ModuleRules]:
    from sana_wm.model.refiner import RefinerTransformer

    if isinstance(model, RefinerTransformer):
        return model.model, REFINER_RULES
    return model, STAGE1_RULES


def quantization_of(model) -> QuantReport | None:
    """The report of the quantization applied to ``model`` (None: not quantized)."""
    inner = model.model if hasattr(model, "model") and isinstance(model.model, nn.Module) else model
    return getattr(inner, _MARK, None)


def quantize_model(model, precision: str, backend: str = "auto", *, device: torch.device | str | None = None,
                   rules: ModuleRules | None = None, flag: str = "--stage1-precision") -> QuantReport:
    """Quantize ``model`` (a :class:`~sana_wm.model.SanaWMTransformer`, a
    :class:`~sana_wm.model.refiner.RefinerTransformer` or any module with a ``rules`` set) in place and return
    what was done. ``device``: where it will run (default: where its parameters are), which decides the
    backend under ``"auto"``."""
    module, default_rules = _rules_for(model)
    rules = rules or default_rules
    if getattr(module, _MARK, None) is not None:
        raise PrecisionError(f"the {rules.name} model is already quantized "
                             f"({getattr(module, _MARK).precision}); load it again to change the precision")
    if device is None:
        device = next(module.parameters()).device
    choice = choose_backend(precision, DeviceInfo.of(device), backend, flag=flag)
    quantized, kept = classify(module, rules)
    nvfp4 = precision == "nvfp4"
    report = QuantReport(rules.name, precision, choice.backend, tuple(quantized) if precision != "bf16" else (),
                         tuple(kept) if precision != "bf16" else tuple(quantized + kept),
                         nvfp4 and rules.nvfp4_hadamard, nvfp4 and rules.nvfp4_stochastic_rounding, choice.note)
    if precision == "bf16":
        return report
    if choice.backend == "torchao" and nvfp4 and (report.hadamard or report.stochastic_rounding):
        raise PrecisionError(f"the {rules.name} model's nvfp4 recipe needs the Hadamard transform and stochastic "
                             f"rounding, which torchao's nvfp4 does not do; use {flag} fp8")
    for path in quantized:  # checked before the model is changed
        if not isinstance(module.get_submodule(path), (nn.Linear, nn.Conv2d)):
            raise ValueError(f"{rules.name} rules quantize {path}, a {type(module.get_submodule(path)).__name__}: "
                             "only linears and 1x1 Conv2d can be quantized")
    targets = set()
    for path in quantized:
        parent_path, _, leaf = path.rpartition(".")
        parent = module.get_submodule(parent_path) if parent_path else module
        gemm = getattr(parent, leaf)
        if isinstance(gemm, nn.Conv2d):
            gemm = PointwiseLinear.from_conv(gemm)
            setattr(parent, leaf, gemm)

        if choice.backend == "emulate":
            emulated = EmulatedLinear(linear_of(gemm), precision, name=path, hadamard=report.hadamard,
                                      stochastic_rounding=report.stochastic_rounding)
            if isinstance(gemm, PointwiseLinear):
                gemm.linear = emulated
            else:
                setattr(parent, leaf, emulated)
        else:
            targets.add(id(linear_of(gemm)))
    if choice.backend == "torchao":
        config = _torchao_config(precision)
        _import_torchao_quantization().quantize_(module, config, filter_fn=lambda m, fqn: id(m) in targets)
    setattr(module, _MARK, report)
    return report
