"""The synthetic-world clip cache keys on the quantization: the same files quantized make other videos."""

from sana_wm.eval.model_adapter import weights_fingerprint
from sana_wm.pipeline import SanaWMPipeline
from sana_wm.quant import quantize_model


def test_weights_fingerprint_includes_the_quantization():
    pipe = SanaWMPipeline.from_pretrained("sana-wm-synth")
    plain = weights_fingerprint(pipe)
    assert "quantization" not in plain  # unquantized: the fingerprint of earlier caches
    pipe.quantization = {"stage1": quantize_model(pipe.transformer, "int8", "emulate")}
    quantized = weights_fingerprint(pipe)
    assert quantized["quantization"]["stage1"]["precision"] == "int8"
    assert {k: v for k, v in quantized.items() if k != "quantization"} == plain
