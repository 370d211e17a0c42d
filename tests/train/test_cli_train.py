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
