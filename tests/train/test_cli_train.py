from pathlib import Path

import yaml

from sana_wm.cli import main


def test_train_command_runs_and_resumes(tiny_dataset, tmp_path, capsys):
    with open(Path(__file__).parents[2] / "configs" / "train" / "synthetic_tiny.yaml") as f:
        cfg = yaml.safe_load(f)
    cfg["output_dir"] = str(tmp_path / "run")
    cfg["data"]["root"] = str(tiny_dataset)
    cfg["stages"] = [{"name": "short", "steps": 3}]
    cfg["checkpoint"] = {"every": 3, "keep_last": 1}
    cfg["validation"] = {"every": 0}
    cfg["logging"] = {"progress_bar": False}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))

    assert main(["train", str(path)]) == 0
    assert "trained to step 3" in capsys.readouterr().out
    # A second fresh run would overwrite the checkpoints: refused, pointing at --resume.
    assert main(["train", str(path)]) == 2
    assert "resume" in capsys.readouterr().err
    assert main(["train", str(path), "--resume"]) == 0


def test_train_command_names_the_bad_key(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("optimizer:\n  lr: abc\n")
    assert main(["train", str(path)]) == 2
    assert "optimizer.lr" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2


def test_train_then_merge_lora(tiny_dataset, tiny_base, tmp_path, capsys):
    """`sana-wm train LORA.yaml` then `--merge-lora OUT`: OUT is a model directory from_pretrained loads,
    holding the base plus the adapter's update."""
    import torch
    from safetensors.torch import load_file

    from sana_wm.model import from_pretrained

    with open(Path(__file__).parents[2] / "configs" / "train" / "synthetic_tiny_lora.yaml") as f:
        cfg = yaml.safe_load(f)
    cfg["output_dir"] = str(tmp_path / "run")
    cfg["model"]["init_from"] = str(tiny_base)
    cfg["data"]["root"] = str(tiny_dataset)
    cfg["stages"] = [{"steps": 2}]
    cfg["validation"] = {"every": 0}
    cfg["logging"] = {"progress_bar": False}
    path = tmp_path / "lora.yaml"
    path.write_text(yaml.safe_dump(cfg))

    out = tmp_path / "merged"
    assert main(["train", str(path), "--merge-lora", str(out)]) == 2  # nothing trained yet
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["train", str(path)]) == 0
    capsys.readouterr()
    assert main(["train", str(path), "--merge-lora", str(out), "--dtype", "bf16"]) == 0
    assert str(out) in capsys.readouterr().out
    assert from_pretrained(out, dtype=torch.float32).config.depth == 4
    base = load_file(tiny_base / "model.safetensors")
    weights = load_file(out / "model.safetensors")
    assert weights.keys() == base.keys() and all(w.dtype == torch.bfloat16 for w in weights.values())
    changed = [k for k in base if not torch.equal(weights[k].float(), base[k].bfloat16().float())]
    assert changed and all(k.startswith("blocks.") for k in changed)
    assert main(["train", str(path), "--merge-lora", str(out)]) == 2  # refuses to overwrite ...
    assert main(["train", str(path), "--merge-lora", str(out), "--overwrite", "--ema"]) == 2
    assert "kept no EMA" in capsys.readouterr().err
    assert main(["train", str(path), "--merge-lora", str(out), "--overwrite"]) == 0
