"""Start a transformer for a new autoencoder from a trained one (sana_wm.model.retarget).

    python scripts/retarget_bundled.py --model OLD_MODEL_DIR --codec NEW_VAE_DIR --data DATASET \
        --config synth-pca --out runs/retargeted [--clips 24]

OLD_MODEL_DIR is a model folder in the streaming layout (sana_dit/model.pt + ltx2_causal_vae/ + config.yaml,
e.g. the bundled model of an earlier release); NEW_VAE_DIR the autoencoder the new model will use. Both
encode the first 97 frames of --clips clips of DATASET, the two latent-channel layers are fitted between
the two spaces, and OUT/ gets config.json + model.safetensors for `model.init_from` of a training config.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml
from tqdm import tqdm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="trained model folder (streaming layout)")
    p.add_argument("--codec", required=True, help="the new autoencoder folder")
    p.add_argument("--data", required=True, help="clip dataset used for the fit")
    p.add_argument("--config", default="synth-pca", help="the new transformer config (default: synth-pca)")
    p.add_argument("--clips", type=int, default=24, help="clips used for the fit (default: 24)")
    p.add_argument("--frames", type=int, default=97, help="frames per clip, 8k+1 (default: 97)")
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args()

    from sana_wm.ae.synth_vae import load_frames
    from sana_wm.data.latents import frames_to_vae_input
    from sana_wm.model import SanaWMConfig, get_config
    from sana_wm.model.loading import from_pretrained, save_pretrained
    from sana_wm.model.retarget import fit_latent_map, retarget_latent_channels
    from sana_wm.vae import VideoVAE

    model_dir = Path(args.model)
    old_vae = VideoVAE.from_pretrained(model_dir / "ltx2_causal_vae")
    new_vae = VideoVAE.from_pretrained(args.codec)
    settings = yaml.safe_load((model_dir / "config.yaml").read_text())["sana_wm"]
    old_config = SanaWMConfig.from_dict(settings["transformer"])
    old = from_pretrained(model_dir / "sana_dit" / "model.pt", old_config, dtype=torch.float32)
    clips = load_frames([args.data], limit=args.clips)
    pairs = []
    for frames in tqdm(clips, desc="encoding", unit="clip"):
        x = frames_to_vae_input(frames[:args.frames])
        pairs.append((old_vae.encode(x), new_vae.encode(x)))
    latent_map = fit_latent_map(pairs)
    for name, (src, dst, M, m) in {"new->old": (1, 0, latent_map["A"], latent_map["a"]),
                                   "old->new": (0, 1, latent_map["B"], latent_map["b"])}.items():
        num = sum(float(((p[src].permute(0, 2, 3, 4, 1).double() @ M + m).permute(0, 4, 1, 2, 3) - p[dst]).pow(2).sum())
                  for p in pairs)
        den = sum(float(p[dst].double().pow(2).sum()) for p in pairs)
        print(f"{name}: relative residual {num / den:.4f}")
    new = retarget_latent_channels(old, get_config(args.config), latent_map)
    save_pretrained(new, args.out)
    (Path(args.out) / "retarget.json").write_text(json.dumps({"from": str(model_dir), "codec": args.codec,
                                                              "data": args.data, "clips": len(clips)}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
