"""`sana-wm eval synth` end to end with a tiny random model in the released layout."""

import json

from sana_wm.cli import main


def test_eval_synth_cli_runs_and_resumes(repos, tmp_path, capsys):
    out = tmp_path / "report"
    args = ["eval", "synth", "--model", str(repos["streaming"]), "--text-encoder", str(repos["text_encoder"]),
            "--seeds", "1000", "--trajectories", "explore:walk", "--marks", "0.5,1", "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    text = json.dumps(report)
    for name in ("model", "repeat_first", "static_camera"):
        assert name in text
    assert (out / "contact_sheet.png").stat().st_size > 1000
    capsys.readouterr()
    # A rerun with the same settings loads the finished clip instead of generating it again.
    clip_files = list((out / "clips").glob("*.json"))
    mtimes = [f.stat().st_mtime_ns for f in clip_files]
    assert main(args) == 0
    assert [f.stat().st_mtime_ns for f in clip_files] == mtimes
