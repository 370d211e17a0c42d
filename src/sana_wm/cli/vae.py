"""`sana-wm vae fit-pca|encode`: the bundled model's patch codec, and latent caches for training."""

from __future__ import annotations

import argparse
import json

from sana_wm.cli import CLIError


def register(groups: argparse._SubParsersAction) -> None:
    p = groups.add_parser("vae", help="fit the bundled model's patch codec; encode datasets into latent caches",
                          description="Fit the linear patch codec of the bundled model, and encode clip datasets "
                                      "into latent caches (data.latents: latent_cache in training configs).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    f = sub.add_parser(
        "fit-pca", help="fit the linear patch codec (PCA; the bundled model's autoencoder) on clip datasets",
        description=(
            "Fit the linear spatio-temporal patch codec (sana_wm.bundled.codec): frames grouped 8 at a time like\n"
            "the LTX-2 VAE, cut into P x P patches, and coded by their C leading principal components, fitted in\n"
            "closed form on the first --frames frames of each clip. Writes OUT/ (config.json + codec.safetensors,\n"
            "usable wherever a VAE folder is: vae encode, generate --vae, model export --vae) and\n"
            "OUT/report.json (explained variance; reconstruction PSNR of --held-out clips not used in the fit)."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("--data", nargs="+", required=True, metavar="DIR", help="clip dataset folder(s)")
    f.add_argument("--out", required=True, metavar="DIR",
                   help="output folder; an existing one is refused unless --overwrite")
    f.add_argument("--overwrite", action="store_true",
                   help="replace --out if it exists (never a folder that holds, or lies inside, a --data folder)")
    f.add_argument("--patch-size", type=int, default=16, help="pixels per latent cell side (default: 16)")
    f.add_argument("--channels", type=int, default=128, help="principal components kept (default: 128)")
    f.add_argument("--frames", type=int, default=97, help="frames used from the start of each clip, 8k+1 (default: 97)")
    f.add_argument("--max-clips", type=int, default=96, help="clips used for the fit (default: 96)")
    f.add_argument("--held-out", type=int, default=8,
                   help="further clips, after those of the fit, whose reconstruction PSNR is reported (default: 8)")
    f.set_defaults(func=cmd_fit_pca)

    e = sub.add_parser(
        "encode", help="encode a clip dataset into its latent cache with a VAE folder",
        description=(
            "Encode every clip of DATASET (its first --frames frames, 8k+1) with the VAE folder and store the\n"
            "normalised latents in DATASET/latents/ (sana_wm.data.LatentCache). Entries already there for the\n"
            "same clip and VAE are kept, so an interrupted run resumes."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("dataset", metavar="DATASET", help="clip dataset folder")
    e.add_argument("--vae", required=True, metavar="DIR",
                   help="VAE folder: diffusers (e.g. the released vae/) or a patch codec (vae fit-pca)")
    e.add_argument("--frames", type=int, required=True, help="frames to encode from the start of each clip (8k+1)")
    e.add_argument("--part", default="1/1", metavar="K/N",
                   help="encode only every N-th clip starting at the K-th (1-based), to split the work over N "
                        "processes (default: 1/1, all clips)")
    e.set_defaults(func=cmd_encode)


def _check_frames(frames: int) -> None:
    """--frames of fit-pca and encode: a whole number of 8-frame latent groups after the first frame."""
    from sana_wm.limits import check_frames

    if frames < 1 or (frames - 1) % 8:
        raise CLIError(f"--frames must be 8k+1 (9, 17, 25, ...), got {frames}")
    check_frames(frames, f"--frames {frames}")


def _check_fit_numbers(args) -> None:
    """The sizes of fit-pca, before any clip is read."""
    for name, low, high in (("patch_size", 1, 256), ("channels", 1, 65536), ("max_clips", 1, 1_000_000),
                            ("held_out", 0, 1_000_000)):
        value = getattr(args, name)
        if not low <= value <= high:
            raise CLIError(f"--{name.replace('_', '-')} {value}: must be between {low} and {high}")


def _check_fit_out(out: str, data: list[str], overwrite: bool) -> None:
    """--out of fit-pca, before any work: the codec folder replaces --out, so an existing --out needs
    --overwrite, and a --out that is, holds or lies inside a --data folder is refused even then (replacing it
    would delete the dataset being read)."""
    from pathlib import Path

    from sana_wm.io import paths_overlap

    for d in data:
        if paths_overlap(out, d):
            raise CLIError(f"--out {out} overlaps the --data folder {d}; replacing it would delete the dataset. "
                           "Choose an output folder outside the data")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise CLIError(f"--out {out} is a file, not a folder; choose a folder name")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise CLIError(f"--out {out} exists and is not empty; pass --overwrite to replace it")


def cmd_fit_pca(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from sana_wm.bundled.codec import fit_patch_pca, reconstruction_psnr
    from sana_wm.data.latents import frames_to_vae_input
    from sana_wm.io import check_free_space, write_json_atomic

    _check_frames(args.frames)
    _check_fit_numbers(args)
    _check_fit_out(args.out, args.data, args.overwrite)
    # The codec: its mean and basis over patch pixels in float32, the config and report (a megabyte spares them).
    check_free_space(args.out, 4 * 3 * args.patch_size ** 2 * (args.channels + 1) + 2**20, f"--out {args.out}")
    clips = load_frames(args.data, limit=args.max_clips + args.held_out)
    short = [i for i, c in enumerate(clips) if len(c) < args.frames]
    if short:
        raise CLIError(f"clip {short[0]} (in index order) has {len(clips[short[0]])} frames; --frames is {args.frames}")
    fit, held = clips[:args.max_clips], clips[args.max_clips:]
    codec = fit_patch_pca((frames_to_vae_input(c[:args.frames]) for c in tqdm(fit, desc="fitting", unit="clip")),
                          patch_size=args.patch_size, latent_channels=args.channels,
                          fitted_on={"datasets": [str(d) for d in args.data], "clips": len(fit), "frames": args.frames})
    codec.save_pretrained(args.out)
    report = {"config": codec.config.__dict__,
              "held_out_clips": len(held),
              "held_out_psnr": reconstruction_psnr(codec, (frames_to_vae_input(c[:args.frames]) for c in held))
              if held else None}
    write_json_atomic(Path(args.out) / "report.json", report, indent=2)
    print(json.dumps(report, indent=2))
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from sana_wm.data import LatentCache, load_index, read_clips
    from sana_wm.data.latents import prepare_clip
    from sana_wm.pipeline.sidecar import sha256_file
    from sana_wm.vae import VideoVAE

    _check_frames(args.frames)
    try:
        k, parts = (int(v) for v in args.part.split("/"))
        if not 1 <= k <= parts:
            raise ValueError
    except ValueError:
        raise CLIError(f"--part {args.part!r}: write K/N with 1 <= K <= N, e.g. 2/4") from None
    vae = VideoVAE.from_pretrained(args.vae)
    cache = LatentCache(args.dataset)
    weights = sorted(Path(args.vae).glob("*.safetensors"))
    # The id names the weights' content, so re-encoding with a retrained VAE replaces stale entries.
    encoder_id = "sana-wm-vae:" + ",".join(sha256_file(w)[:16] for w in weights)
    n = len(load_index(args.dataset).entries)

    # Every clip is read (cheap) but only this part's are encoded (the expensive step).
    clips = (prepare_clip(c, num_frames=args.frames) for i, c in enumerate(read_clips(args.dataset))
             if i % parts == k - 1)
    total = len(range(k - 1, n, parts))
    stats = cache.encode_all(tqdm(clips, total=total, desc=f"encoding clips ({args.part})", unit="clip"),
                             vae.encode, encoder_id)
    print(f"{args.dataset}: {stats}")
    return 0


def load_frames(roots, *, limit: int | None = None) -> list:
    """Every clip's frames ``(F, H, W, 3)`` uint8 from the datasets at ``roots``, in index order."""
    from sana_wm.data import read_clips

    clips = []
    for root in roots:
        for clip in read_clips(root):
            clips.append(clip.frames_numpy())
            if limit is not None and len(clips) >= limit:
                return clips
    if not clips:
        raise CLIError(f"no readable clips in {', '.join(map(str, roots))}")
    return clips
