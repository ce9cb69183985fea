"""Per-stage timings of the colorization chain (features, matching, similarity, colorization).

Usage::

    .venv/bin/python benchmarks/bm_stages.py [--sizes 256 512] [--family lite paper] [--device cpu]

The ``paper`` rows use randomly initialised networks of the exact architecture when no converted
weights are found (the timings do not depend on the weight values); the table says so. The target
and reference are real photos from scikit-image. Times are medians of ``--repeat`` runs after a
warm-up run, in seconds.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import numpy as np
import torch
from skimage import data

from deepexemplar_core.models import Models, load_models, resolve_device
from deepexemplar_core.pipeline import ColorizeConfig, colorize

STAGES = ("resize", "features", "matching", "similarity", "warp", "confidence", "colorize", "upsample", "total")


def _photo(name: str) -> torch.Tensor:
    image = getattr(data, name)()
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0


def _paper_models(device: torch.device) -> tuple[Models, str]:
    """The paper family with converted weights when they resolve, else random weights."""
    from deepexemplar_core.weights import WeightsNotFoundError

    try:
        return load_models("paper", device=device), "converted weights"
    except WeightsNotFoundError:
        from deepexemplar_core.colorizers.colornet import ExampleColorNet, PaperColorizer
        from deepexemplar_core.backbones.vgg_gray import GrayVGG19BN

        torch.manual_seed(0)
        models = Models("paper", GrayVGG19BN(with_classifier=False).eval(),
                        PaperColorizer(ExampleColorNet().eval()), device, {})
        return models.to(device), "random weights (same architecture)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--family", nargs="+", default=["lite", "paper"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    device = resolve_device(args.device)
    target = _photo("chelsea")  # 300x451, used as a gray target (its luminance only)
    reference = _photo("coffee")
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {device}")
    header = f"{'family':8} {'size':>5} " + " ".join(f"{s:>10}" for s in STAGES) + "  note"
    print(header)
    for family in args.family:
        models, note = (_paper_models(device) if family == "paper" else (load_models("lite", device=device), "built-in"))
        for size in args.sizes:
            config = ColorizeConfig(size=size)
            colorize(target, reference, models, config)  # warm-up
            runs = [colorize(target, reference, models, config).timings for _ in range(args.repeat)]
            cells = " ".join(f"{statistics.median(r.get(s, 0.0) for r in runs):10.3f}" for s in STAGES)
            backend = colorize(target, reference, models, config).backend
            print(f"{family:8} {size:5d} {cells}  {note}; matching backend {backend}")


if __name__ == "__main__":
    main()
