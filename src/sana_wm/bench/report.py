"""The report of a scored run, built from the per-scene JSONs alone (``OUT/scenes/*.json``): aggregates per split
and per category (``report.json``), a Markdown table laid out like the SANA-WM paper's Table 2 with the published
numbers beside ours (``report.md``), and per-scene plots (``plots/``).

Aggregation: a metric's mean over the scenes that have it (camera metrics: scenes where the estimator placed at
least 2 frames; the count of the others is reported beside them, never hidden), as the release averages over
frames, then over scenes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sana_wm.bench.layout import RunInfo
from sana_wm.bench.plots import error_plot, path_plot
from sana_wm.eval.reporting import cell, json_ready
from sana_wm.io import write_text_atomic

__all__ = ["CAMERA_KEYS", "PUBLISHED", "aggregate", "report_markdown", "write_report"]

CAMERA_KEYS = ("RotErr", "TransErr", "CamMC", "ATE", "RPE_trans_per_s", "RPE_rot_deg_per_s", "ScaleErr")

# Published rows, only those we hold a source for (/work/shared/reference has no peer's numbers on this benchmark).
PUBLISHED = (
    {"method": "SANA-WM (published)", "split": "simple_60s", "refiner": True,
     "RotErr": 4.50, "TransErr": 1.39, "CamMC": 1.41,
     "source": "SANA-WM release, simple_60s with the refiner (Pi3 poses); revisit and Delta IQ columns not "
               "available to us"},
)


def _mean(values) -> float | None:
    """Mean of the numbers among ``values`` (JSON's "inf"/"-inf" strings count as infinities); None if none."""
    vals = [float(v) for v in values
            if (isinstance(v, (int, float)) and not isinstance(v, bool)) or v in ("inf", "-inf")]
    return float(np.mean(vals)) if vals else None


def aggregate(records: Sequence[dict]) -> dict:
    """Means over scenes of every scored quantity, with the counts behind them."""
    cams = [r["camera"] for r in records if (r.get("camera") or {}).get("status") == "ok"]
    camera = {k: _mean(c.get(k) for c in cams) for k in CAMERA_KEYS}
    camera.update(scenes=len(cams), scenes_failed=len(records) - len(cams),
                  frames=int(sum(c["frames"] for c in cams)),
                  frames_failed=int(sum(c["frames_failed"] for c in cams)))
    rev = [r["revisit"] for r in records if (r.get("revisit") or {}).get("status") == "ok"]
    revisit = {k: _mean(v.get(k) for v in rev) for k in ("PSNR", "SSIM", "LPIPS")}
    revisit.update(scenes=len(rev), pairs=int(sum(len(v["pairs"]) for v in rev)),
                   pairs_skipped=int(sum(len((r.get("revisit") or {}).get("skipped_pairs", [])) for r in records)),
                   lpips="computed" if rev and all(v.get("LPIPS") is not None for v in rev) else "not computed")
    temps = [r["temporal"] for r in records if r.get("temporal")]
    musiq = [t["musiq"]["delta_iq"] for t in temps if t["musiq"].get("status") == "computed"]
    temporal = {"delta_iq_musiq": _mean(musiq) if len(musiq) == len(temps) and temps else None,
                "musiq": "computed" if temps and len(musiq) == len(temps) else "not computed",
                "delta_log_sharpness": _mean(t["delta_log_sharpness"] for t in temps),
                "delta_noise": _mean(t["delta_noise"] for t in temps),
                "windows": sorted({t["windows"]["rule"] for t in temps})}
    out = {"scenes": len(records), "camera": camera, "revisit": revisit, "temporal": temporal}
    gts = [r["ground_truth"] for r in records if r.get("ground_truth")]
    if gts:
        marks = list(dict.fromkeys(m for g in gts for m in g["marks"]))
        out["ground_truth"] = {m: {"PSNR": _mean(g["marks"][m]["PSNR"] for g in gts if m in g["marks"]),
                                   "SSIM": _mean(g["marks"][m]["SSIM"] for g in gts if m in g["marks"]),
                                   "scenes": sum(m in g["marks"] for g in gts)} for m in marks}
        out["ground_truth_skipped_marks"] = sorted({t for g in gts for t in g["skipped_marks"]})
    vb = [r["vbench"] for r in records if r.get("vbench")]
    if vb:
        out["vbench"] = {d: _mean(v.get(d) for v in vb) for d in dict.fromkeys(d for v in vb for d in v)}
    return out


def _summary(record: dict) -> dict:
    """A scene's scalars for report.json (the per-frame arrays stay in its scene JSON)."""
    cam = record.get("camera") or {}
    return {"scene": record["scene"], "category": record["category"],
            "camera": {k: v for k, v in cam.items() if k not in ("per_frame", "path")},
            "revisit": {k: record["revisit"].get(k) for k in ("PSNR", "SSIM", "LPIPS", "pairs", "skipped_pairs")},
            "temporal": {k: record["temporal"].get(k) for k in ("delta_log_sharpness", "delta_noise", "musiq")},
            "ground_truth": record.get("ground_truth"), "video": record.get("video")}


def _delta_iq(agg: dict) -> str:
    t = agg["temporal"]
    return cell(t["delta_iq_musiq"], 3) if t["musiq"] == "computed" else "not computed"


def _lpips(agg: dict) -> str:
    return cell(agg["revisit"]["LPIPS"], 3) if agg["revisit"]["lpips"] == "computed" else "not computed"


def report_markdown(report: dict) -> str:
    run, agg = report["run"], report["aggregate"]
    split, cats = agg["split"], agg["categories"]
    est = report.get("estimator") or "?"
    interval = (report.get("settings") or {}).get("interval", 4)
    nth = {1: "every frame", 2: "every 2nd frame", 3: "every 3rd frame"}.get(interval, f"every {interval}th frame")
    lines = [f"# Benchmark scores: {run['model']} on {run['split']}", "",
             f"Run `{run['run_dir']}`; refiner {'on' if run['refiner'] else 'off'} (frame 0 "
             f"{'dropped' if run['refiner'] else 'kept'} in the camera metrics); videos at {run['fps']:g} fps; "
             f"poses from `{est}` on {nth}; {split['scenes']} of {len(report['scenes_requested'])} "
             "scenes scored.", "",
             "## Table 2 layout", "",
             "| Method | Split | RotErr (deg) | TransErr | CamMC | Revisit PSNR | Revisit SSIM | Revisit LPIPS "
             "| Delta IQ (MUSIQ) |", "|---|---|---|---|---|---|---|---|---|"]
    for p in report["published"]:
        lines.append(f"| {p['method']} | {p['split']}{', refiner' if p['refiner'] else ''} | {p['RotErr']:.2f} | "
                     f"{p['TransErr']:.2f} | {p['CamMC']:.2f} | n/a | n/a | n/a | n/a |")
    c, r = split["camera"], split["revisit"]
    lines.append(f"| ours: {run['model']} | {run['split']}{', refiner' if run['refiner'] else ''} | "
                 f"{cell(c['RotErr'], 2)} | {cell(c['TransErr'], 2)} | {cell(c['CamMC'], 2)} | {cell(r['PSNR'], 2)} | "
                 f"{cell(r['SSIM'], 3)} | {_lpips(split)} | {_delta_iq(split)} |")
    lines += ["", "Published rows are the numbers the release reports (marked \"published\"); the release estimates "
              "poses with Pi3, so a row scored with another estimator compares the model and the estimator at once. "
              "Only numbers we hold a source for are listed.", "",
              "## Per category", "",
              "| Category | Scenes | RotErr (deg) | TransErr | CamMC | Revisit PSNR | Revisit SSIM | Revisit LPIPS "
              "| Delta IQ (MUSIQ) | Delta ln sharpness |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, a in (*sorted(cats.items()), ("all", split)):
        c, r = a["camera"], a["revisit"]
        lines.append(f"| {name} | {a['scenes']} | {cell(c['RotErr'], 2)} | {cell(c['TransErr'], 2)} | "
                     f"{cell(c['CamMC'], 2)} | {cell(r['PSNR'], 2)} | {cell(r['SSIM'], 3)} | {_lpips(a)} | "
                     f"{_delta_iq(a)} | {cell(a['temporal']['delta_log_sharpness'], 3)} |")
    c = split["camera"]
    lines += ["", "## Camera details", "",
              "| ATE | RPE trans / s | RPE rot (deg / s) | ScaleErr abs(ln s) | scenes failed | frames failed |",
              "|---|---|---|---|---|---|",
              f"| {cell(c['ATE'], 3)} | {cell(c['RPE_trans_per_s'], 3)} | {cell(c['RPE_rot_deg_per_s'], 3)} | "
              f"{cell(c['ScaleErr'], 3)} | {c['scenes_failed']} | {c['frames_failed']} of {c['frames']} |", "",
              "Frames the estimator could not place stay in the means with the poses it interpolated for them; scenes "
              "where it placed fewer than 2 frames have no camera numbers. ScaleErr means something only for an "
              "estimator that claims metric scale.", "",
              "## Temporal degradation (no reference)", "",
              f"Windows: {', '.join(split['temporal']['windows']) or '-'}. Delta ln sharpness = ln(first) - ln(last) "
              "of the Laplacian variance (positive: the end is blurrier); Delta noise = last - first of Immerkaer's "
              "noise estimate in grey levels (positive: the end is noisier); Delta IQ (MUSIQ) = first - last of "
              "MUSIQ-SPAQ / 100, computed only with --musiq-weights.", "",
              "| Delta ln sharpness | Delta noise | Delta IQ (MUSIQ) |", "|---|---|---|",
              f"| {cell(split['temporal']['delta_log_sharpness'], 3)} | {cell(split['temporal']['delta_noise'], 3)} | "
              f"{_delta_iq(split)} |"]
    gt = split.get("ground_truth")
    if gt:
        marks = list(gt)
        lines += ["", "## Against the exact ground truth (bench synth)", "",
                  "| | " + " | ".join(f"{m} s" for m in marks) + " |", "|---|" + "---|" * len(marks),
                  "| PSNR | " + " | ".join(cell(gt[m]["PSNR"], 2) for m in marks) + " |",
                  "| SSIM | " + " | ".join(cell(gt[m]["SSIM"], 3) for m in marks) + " |"]
        if split.get("ground_truth_skipped_marks"):
            lines += ["", "Marks past the videos' end, skipped: "
                      + ", ".join(f"{t:g} s" for t in split["ground_truth_skipped_marks"]) + "."]
    lines += ["", "## Scenes", "", "| Scene | Category | RotErr (deg) | TransErr | CamMC | frames failed "
              "| Revisit PSNR | Revisit SSIM |", "|---|---|---|---|---|---|---|---|"]
    for s in report["scenes"]:
        c, r = s["camera"], s["revisit"]
        failed = f"{c.get('frames_failed', '-')} of {c.get('frames', c.get('sampled', '-'))}" \
            if c.get("status") == "ok" else f"failed: {c.get('reason', '?')}"
        lines.append(f"| {s['scene']} | {s['category']} | {cell(c.get('RotErr'), 2)} | {cell(c.get('TransErr'), 2)} | "
                     f"{cell(c.get('CamMC'), 2)} | {failed} | {cell(r.get('PSNR'), 2)} | {cell(r.get('SSIM'), 3)} |")
    if report["missing_videos"]:
        lines += ["", "Scenes without a video (not scored): " + ", ".join(report["missing_videos"]) + "."]
    return "\n".join(lines) + "\n"


def write_report(out: Path, info: RunInfo, *, scenes: Sequence[str], missing: Sequence[str] = (),
                 scored: Sequence[str] = (), skipped: Sequence[str] = ()) -> dict:
    """Read the scene JSONs of ``scenes`` under ``out/scenes``, aggregate them, write report.json, report.md and the
    plots; returns the report. Scenes without a JSON are listed as missing."""
    out = Path(out)
    records, absent = [], list(missing)
    for name in scenes:
        path = out / "scenes" / f"{name}.json"
        if path.is_file():
            records.append(json.loads(path.read_text(encoding="utf-8")))
        elif name not in absent:
            absent.append(name)
    categories = sorted({r["category"] for r in records})
    report = json_ready({
        "run": {"run_dir": str(info.run_dir), "model": info.model, "split": info.split, "refiner": info.refiner,
                "fps": info.fps, "settings": info.settings},
        "estimator": records[0]["camera"].get("estimator") if records and records[0].get("camera") else None,
        "settings": records[0].get("settings") if records else None,
        "published": list(PUBLISHED),
        "aggregate": {"split": aggregate(records),
                      "categories": {c: aggregate([r for r in records if r["category"] == c]) for c in categories}},
        "scenes_requested": list(scenes), "missing_videos": absent,
        "scored_now": list(scored), "resumed": list(skipped),
        "scenes": [_summary(r) for r in records],
    })
    for r in records:
        path_plot(r, out / "plots" / f"{r['scene']}_path.png")
        error_plot(r, out / "plots" / f"{r['scene']}_error.png")
    write_text_atomic(out / "report.json", json.dumps(report, indent=1))
    write_text_atomic(out / "report.md", report_markdown(report))
    return report
