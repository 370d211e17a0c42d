"""Zero a SANA-WM transformer's output layer (``final_layer.linear``), keeping every other weight.

Used to move trained weights to another prediction target whose zero output means something useful: with
``prediction: sample_residual`` a zero output repeats the conditioning frame (configs/train/
bundled_synth_residual.yaml). Reads any weights file ``sana_wm.model.loading.read_state_dict`` reads (the exported
``sana_dit/model.pt`` included) and writes a float32 ``{"generator": state_dict}`` file.

    python scripts/zero_output_layer.py IN.pt OUT.pt
"""

from __future__ import annotations

import argparse

import torch

from sana_wm.model.loading import read_state_dict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a transformer weights file (model.pt, model.safetensors)")
    p.add_argument("out", help="where to write the weights with the output layer zeroed")
    args = p.parse_args()
    state = read_state_dict(args.source)
    names = [k for k in state if k.startswith("final_layer.linear.")]
    if not names:
        raise SystemExit(f"{args.source}: no final_layer.linear weights (keys start with "
                         f"{sorted(state)[:3]}...); is this a SANA-WM transformer?")
    state = {k: torch.zeros_like(v, dtype=torch.float32) if k in names else v.float() for k, v in state.items()}
    torch.save({"generator": state}, args.out)
    print(f"wrote {args.out}: zeroed {', '.join(names)}")


if __name__ == "__main__":
    main()
