"""`sana-wm annotate` end to end with the learned pose backend (tiny weights in the layout it reads) and the
caption stage (a tiny VLM): the path the network gives and the caption the model writes reach the dataset
exactly, recorded with the fingerprints of both models; a rerun resumes; wrong flags and folders are refused."""

import json

import numpy as np
import torch
from annotate_helpers import write_tiny_vlm
from safetensors.torch import save_file
from scipy.spatial.transform import Rotation

from sana_wm.cli import main
from sana_wm.data.dataset import ClipDataset
from sana_wm.data.shards import read_clips
from sana_wm.geometry.learned import ARCHITECTURE, RelativePoseNet
from sana_wm.pipeline.prompt_embeds import encoder_fingerprint

STEP = [0.0, 0.04, 0.0, -0.04, 0.0, 0.001]  # the network's answer for every frame pair: axis-angle, translation


def _constant_motion_weights(folder):
    """A sana-wm-relpose network whose head ignores the frames and always answers STEP."""
    torch.manual_seed(0)
    net = RelativePoseNet([4, 8])
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor(STEP))
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architecture": ARCHITECTURE, "image_size": [16, 24],
                                                    "channels": [4, 8]}))
    save_file(net.state_dict(), str(folder / "model.safetensors"))
    return folder


def _dataset_bytes(out) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in [*sorted(out.glob("shard-*.tar")), out / "index.json"]}


def test_learned_poses_and_captions_reach_the_dataset(footage, tmp_path, capsys):
    weights = _constant_motion_weights(tmp_path / "relpose")
    vlm = write_tiny_vlm(tmp_path / "vlm", constant_answer=True)
    out = tmp_path / "ds"
    # --scale 1: the network's units are kept, so the clip's path is the network's chained answer exactly
    cmd = ["annotate", str(footage), "--out", str(out), "--width", "192", "--fov", "70", "--codec", "png",
           "--quiet", "--backend", "learned", "--pose-weights", str(weights), "--scale", "1",
           "--caption-model", str(vlm), "--caption-max-tokens", "4", "--caption-frames", "2"]
    assert main(cmd) == 0
    (clip,) = read_clips(out)
    step = np.eye(4)
    step[:3, :3] = Rotation.from_rotvec(STEP[:3]).as_matrix()
    step[:3, 3] = STEP[3:]
    expected = np.stack([np.linalg.matrix_power(step, i) for i in range(clip.num_frames)])
    np.testing.assert_allclose(clip.c2w, expected, atol=1e-5)
    assert clip.caption == "w0 w0 w0 w0"
    prov = clip.meta["annotate"]["provenance"]
    assert prov["poses"]["backend"] == "learned" and prov["poses"]["fingerprint"] == encoder_fingerprint(weights)
    assert prov["caption"]["fingerprint"] == encoder_fingerprint(vlm)
    assert prov["caption"]["frames"] == [0, clip.num_frames - 1] and prov["caption"]["decoding"] == "greedy"
    # the caption is what training reads
    sample = next(iter(ClipDataset(out, shuffle=False)))
    assert sample["caption"] == "w0 w0 w0 w0"
    report = (out / "annotate" / "report.md").read_text()
    assert f"Captions: {vlm} (fingerprint {encoder_fingerprint(vlm)})" in report and "Poses: learned" in report

    # the same command again resumes: nothing to do, the same dataset
    before = _dataset_bytes(out)
    assert main(cmd) == 0
    assert _dataset_bytes(out) == before and "(1 already done)" in capsys.readouterr().out
    # other weights in the same folder are another annotation: refused, not mixed in
    (vlm / "generation_config.json").write_text(json.dumps({"eos_token_id": 66, "max_new_tokens": 3}))
    assert main(cmd) == 2
    assert "other settings" in capsys.readouterr().err


def test_wrong_flags_and_folders_are_refused(footage, tmp_path, capsys):
    base = ["annotate", str(footage), "--out", str(tmp_path / "ds"), "--quiet"]
    assert main([*base, "--backend", "learned"]) == 2
    assert "--backend learned needs --pose-weights DIR: a folder with config.json" in capsys.readouterr().err
    assert main([*base, "--pose-weights", str(tmp_path)]) == 2
    assert "--pose-weights is only read by --backend learned" in capsys.readouterr().err
    assert main([*base, "--backend", "learned", "--pose-weights", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "missing config.json or model.safetensors" in err and ARCHITECTURE in err
    assert main([*base, "--caption-prompt", "hello"]) == 2
    assert "--caption-prompt: captions are off without --caption-model" in capsys.readouterr().err
    assert main([*base, "--caption-model", str(tmp_path / "nothing")]) == 2
    assert "--caption-model" in capsys.readouterr().err
    assert not (tmp_path / "ds" / "annotate" / "videos").exists()  # refused before any work


def test_without_a_caption_model_the_report_says_captions_off(footage, tmp_path):
    weights = _constant_motion_weights(tmp_path / "relpose")
    out = tmp_path / "ds"
    assert main(["annotate", str(footage), "--out", str(out), "--width", "192", "--fov", "70", "--quiet",
                 "--backend", "learned", "--pose-weights", str(weights), "--scale", "1", "--max-frames", "20"]) == 0
    assert "Captions: off." in (out / "annotate" / "report.md").read_text()
    (clip,) = read_clips(out)
    assert clip.caption == "" and clip.meta["annotate"]["provenance"]["caption"] is None
