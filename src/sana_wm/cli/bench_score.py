"""`sana-wm bench score RUN`: score a benchmark run as the release does (camera accuracy, revisit consistency,
temporal degradation; against the exact ground truth on `bench synth` folders)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sana_wm.cli import check_output_folder

DESCRIPTION = """\
Score every video of a `sana-wm bench run` folder and write a report.

Per scene (OUT/scenes/<scene>.json, written as it finishes; a rerun skips scenes already scored with the same
settings from the same video):
  camera accuracy  poses re-estimated on every 4th frame (--estimator; the scene's intrinsics rescaled to the
                   video), frame 0 dropped when the run used the refiner, one similarity fit on the w2c
                   extrinsics: RotErr (deg), TransErr, CamMC as released; plus ATE, RPE over 1 s, ScaleErr
  revisit          PSNR, SSIM (11x11 uniform window) and, with --lpips-weights, LPIPS on the first 5
                   evaluation pairs of each scene
  temporal         sharpness and noise of the first against the last 10 s (first/last sixth of a shorter
                   video), no weights needed; MUSIQ Delta IQ with --musiq-weights; VBench with --vbench
  ground truth     on `bench synth` folders: PSNR/SSIM against the exact render at 1, 5, 10, 30, 60 s
Then OUT/report.json, OUT/report.md (laid out like the paper's Table 2, the published SANA-WM row beside
ours) and OUT/plots/ (per scene: the path from above, the error against time, a contact sheet).
Use --report-only to rebuild the report from the scene files without estimating anything.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add `score` to the `bench` group's subcommands (``sub``; the group is made by cli/bench.py)."""
    from sana_wm.bench.score import ESTIMATORS

    p = sub.add_parser("score", help="score a bench run: camera accuracy, revisit consistency, degradation",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="the folder written by `sana-wm bench run --out`")
    p.add_argument("--estimator", choices=tuple(ESTIMATORS), default="colmap",
                   help="pose estimator: colmap (pycolmap, default), opencv (light visual odometry) or learned "
                        "(a relative-pose network from --weights); the release uses Pi3")
    p.add_argument("--weights", metavar="DIR",
                   help="with --estimator learned: its folder (config.json + model.safetensors)")
    p.add_argument("--lpips-weights", metavar="FILE",
                   help="torchvision's AlexNet weights (alexnet-owt-*.pth) for LPIPS (needs `pip install lpips`); "
                        "without it LPIPS is reported as not computed")
    p.add_argument("--musiq-weights", metavar="FILE",
                   help="MUSIQ-SPAQ checkpoint for the release's Delta IQ (needs `pip install pyiqa`); without it "
                        "only the classical sharpness/noise measures are reported")
    p.add_argument("--vbench", action="store_true",
                   help="also run VBench's quality dimensions (needs vbench and its weights installed)")
    p.add_argument("--scenes", metavar="A,B,...", help="score only these scenes (default: every scene of the run)")
    p.add_argument("--out", metavar="DIR", help="report folder (default: RUN/scores)")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild report.json, report.md and the plots from the scene files already in --out")
    p.set_defaults(func=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    from sana_wm.bench.layout import read_run
    from sana_wm.bench.report import write_report
    from sana_wm.bench.score import ScoreSettings, score_run
    from sana_wm.cli import CLIError
    from sana_wm.io import folder_lock

    run = Path(args.run)
    out = Path(args.out) if args.out else run / "scores"
    scenes = None if args.scenes is None else [s.strip() for s in args.scenes.split(",") if s.strip()]
    if args.report_only:
        for flag, value in (("--weights", args.weights), ("--lpips-weights", args.lpips_weights),
                            ("--musiq-weights", args.musiq_weights), ("--vbench", args.vbench)):
            if value:
                raise CLIError(f"{flag} has no effect with --report-only (nothing is scored); leave one of them out")
        info = read_run(run)
        scenes = scenes or list(info.scenes)
        if not (out / "scenes").is_dir():
            raise CLIError(f"--report-only: {out / 'scenes'} does not exist; score the run first")
        with folder_lock(out, "sana-wm bench score --report-only"):
            report = write_report(out, info, scenes=scenes)
    else:
        check_output_folder(out, "--out")
        settings = ScoreSettings(estimator=args.estimator, estimator_weights=args.weights,
                                 lpips_weights=args.lpips_weights, musiq_weights=args.musiq_weights,
                                 vbench=args.vbench)
        report = score_run(run, settings, out=out, scenes=scenes, progress=True)
    cam = report["aggregate"]["split"]["camera"]
    print(f"{report['aggregate']['split']['scenes']} scenes: RotErr {cam['RotErr']}, TransErr {cam['TransErr']}, "
          f"CamMC {cam['CamMC']}")
    print(f"report: {out / 'report.md'}")
    return 0
