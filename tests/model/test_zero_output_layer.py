"""scripts/zero_output_layer.py: the step of the bundled recipe that moves trained weights to residual x0
prediction (configs/train/bundled_synth_residual.yaml)."""

import subprocess
import sys
from pathlib import Path

import torch
from model_helpers import randomize_

from sana_wm.model import SanaWMTransformer, get_config
from sana_wm.model.loading import read_state_dict

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "zero_output_layer.py"


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_only_the_output_layer_is_zeroed(tmp_path):
    model = randomize_(SanaWMTransformer(get_config("tiny")), seed=1)
    src = tmp_path / "model.pt"
    torch.save({"generator": {k: v.half() for k, v in model.state_dict().items()}}, src)  # as exported
    done = _run(src, tmp_path / "zero.pt")
    assert done.returncode == 0, done.stderr
    before, after = read_state_dict(src), read_state_dict(tmp_path / "zero.pt")
    assert set(after) == set(before)
    for k, v in after.items():
        assert v.dtype == torch.float32
        if k.startswith("final_layer.linear."):
            assert not v.any() and before[k].any()
        else:
            torch.testing.assert_close(v, before[k].float(), rtol=0, atol=0)


def test_a_file_without_an_output_layer_is_refused(tmp_path):
    src = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.ones(2, 2)}, src)
    done = _run(src, tmp_path / "zero.pt")
    assert done.returncode != 0 and "no final_layer.linear weights" in done.stderr
    assert not (tmp_path / "zero.pt").exists()
