"""One process of a data-parallel test run (started by torchrun, or alone): trains the tiny
two-style setup of the training tests and leaves this rank's weights in OUT/rank<R>.pt."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from clipmorph.model.network import build_network
from clipmorph.training.config import StyleSource, TrainConfig
from clipmorph.training.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("pictures", type=Path)
    parser.add_argument("checkpoint_dir")
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    styles = [
        StyleSource("stripes", args.pictures / "stripes.png"),
        StyleSource("checks", args.pictures / "checks.png"),
    ]
    config = TrainConfig(
        styles, args.pictures / "photos", args.checkpoint_dir, steps=args.steps, width="lite", image_size=32,
        style_size=64, batch_size=4, temporal_images=3, workers=0, wandb=False, precision="float32", device="cpu",
    )  # fmt: skip
    result = train(config, resume=args.resume, show_bar=False)
    rank = int(os.environ.get("RANK", "0"))
    (backbone,) = result.library.backbones.values()
    # What the weights paint on fixed pictures: weights the losses cannot see (a conv bias ahead
    # of instance norm) drift with rounding under Adam, pictures must not.
    styles = [result.library.styles[s.id].params for s in config.styles]
    network = build_network(backbone.spec, backbone.state, styles).eval()
    pictures = torch.rand(4, 3, 40, 48, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        painted = network(pictures, torch.tensor([0, 1, 0, 1]))
    state = {
        "step": result.step,
        "backbone": backbone.state,
        "styles": {k: s.params for k, s in result.library.styles.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(
        state
        | {
            "main": result.main,
            "losses": result.losses,
            "painted": painted,
            "processes": result.library.styles["stripes"].metadata["training"]["processes"],
        },
        args.out / f"rank{rank}.pt",
    )


if __name__ == "__main__":
    main()
