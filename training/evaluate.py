"""Evaluate a trained colour network on held-out photos against the untrained net and baselines.

``python -m training.evaluate --weights FILE --images DIR [--size 256] [--table-out FILE]``

Every photo under ``DIR`` is brought to a ``size x size`` square (short side resized, centre
crop) and colorized from its luminance through the full pipeline (lite backbone, our matcher,
guided upsampling) in two tasks:

* **chrominance task**: the reference is a flipped, cropped and rescaled copy of the photo itself
  (the chrominance branch's situation: the right colours exist in the reference); metric: ab PSNR
  to the photo's own colours (:func:`deepexemplar_core.evaluation.metrics.ab_psnr`, peak 255);
* **cross task**: the reference is the next photo of the folder (sorted names, cyclic), another
  scene; metrics: ab PSNR to the truth, colourfulness (Hasler-Suesstrunk, the paper's signed
  form) next to the truth's, and the classifier top-5 agreement with the original (the lite
  backbone's EfficientNet-Lite0 ImageNet classifier: the original's top-1 class among the top 5 of
  the colorized photo).

Rows: the trained network, the same architecture untrained (seeded initialisation), the
weights-free propagation colorizer of the lite family, the warped reference colours R'_ab used
as they are, and gray (ab = 0). The matching is computed once per photo and task and shared by
all rows. The markdown table goes to stdout (and ``--table-out``); per-photo values to ``--json-out``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

__all__ = ["evaluate", "format_table"]

logger = logging.getLogger(__name__)


class _Warped:
    """R'_ab as it is: the warped reference colours."""

    name = "warped-reference"

    def __call__(self, inputs) -> torch.Tensor:
        return inputs.warped_ab


class _Gray:
    """No colour at all."""

    name = "gray"

    def __call__(self, inputs) -> torch.Tensor:
        return torch.zeros_like(inputs.warped_ab)


def _colorizers(weights: Path, seed: int) -> dict[str, object]:
    from deepexemplar_core import ExampleColorNet, PaperColorizer, load_models

    trained = load_models("lite", colorizer="paper", colornet_path=weights).colorizer
    torch.manual_seed(seed)
    untrained = PaperColorizer(ExampleColorNet().eval())
    propagation = load_models("lite", colorizer="propagation").colorizer
    return {
        "trained ExampleColorNet": trained,
        "untrained ExampleColorNet": untrained,
        "propagation (lite, weights-free)": propagation,
        "warped reference R'_ab": _Warped(),
        "gray (ab = 0)": _Gray(),
    }


@torch.no_grad()
def evaluate(weights: str | Path, images: str | Path, size: int = 256, seed: int = 0,
             progress=None) -> dict:
    """Run both tasks on every photo; return per-photo values and means per colorizer.

    Returns:
        ``{"photos": [...], "rows": {colorizer: {metric: mean}}, "truth_colourfulness": float,
        "per_photo": {colorizer: {metric: [values]}}, "seconds": float}``.

    Raises:
        ValueError: ``size`` below 32 (or above 2048), fewer than 2 photos, an unreadable photo.
    """
    from dataclasses import replace

    from deepexemplar_core import (ColorizeConfig, colorize, compute_similarity, load_models,
                                   match_images, rgb_to_lab)
    from deepexemplar_core.evaluation.metrics import ab_psnr, colorfulness, finite_mean, top5_agreement

    from .pairs import list_images, load_square, self_reference

    if size < 32:  # 0 would mean "native" to ColorizeConfig; the photos here are squares
        raise ValueError(f"size: expected the side of the square photos, 32..2048 pixels, got {size}")
    started = time.perf_counter()
    paths, _ = list_images(images)
    models = load_models("lite", colorizer="propagation")
    colorizers = _colorizers(Path(weights), seed)
    config = ColorizeConfig(size=size)
    squares = [load_square(p, size) for p in paths]
    per: dict[str, dict[str, list[float]]] = {
        name: {"chrom_ab_psnr": [], "cross_ab_psnr": [], "cross_colourfulness": [], "cross_top5": []}
        for name in colorizers
    }
    truth_cf = []
    for i, target8 in enumerate(squares):
        target = target8.float() / 255.0
        truth_ab = rgb_to_lab(target[None])[:, 1:]
        truth_logits = models.backbone.classify(target[None])
        truth_cf.append(float(colorfulness(target[None])[0]))
        references = {
            "chrom": self_reference(target8, seed + i).float() / 255.0,
            "cross": squares[(i + 1) % len(squares)].float() / 255.0,
        }
        for task, reference in references.items():
            match = match_images(models, target, reference, config)
            sim = compute_similarity(match)
            for name, colorizer in colorizers.items():
                result = colorize(target, None, replace(models, colorizer=colorizer), config,
                                  match=match, similarity=sim)
                psnr = float(ab_psnr(result.ab[0][None], truth_ab)[0])
                per[name][f"{task}_ab_psnr"].append(psnr)
                if task == "cross":
                    rgb = result.images[0][None]
                    per[name]["cross_colourfulness"].append(float(colorfulness(rgb)[0]))
                    logits = models.backbone.classify(rgb)
                    per[name]["cross_top5"].append(float(top5_agreement(logits, truth_logits)[0]))
        if progress:
            progress(i + 1, len(squares))
    rows = {name: {k: finite_mean(v) for k, v in metrics.items()} for name, metrics in per.items()}
    return {
        "photos": [str(p.relative_to(images)) for p in paths],
        "size": size,
        "weights": str(weights),
        "rows": rows,
        "truth_colourfulness": finite_mean(truth_cf),
        "per_photo": per,
        "seconds": time.perf_counter() - started,
    }


def format_table(report: dict) -> str:
    """The markdown table of :func:`evaluate`'s means."""
    lines = [
        f"{len(report['photos'])} held-out photos at {report['size']} px "
        f"(truth colourfulness {report['truth_colourfulness']:.1f}).",
        "",
        "| colorizer | chrominance task: ab PSNR (dB) | cross task: ab PSNR (dB) | cross: colourfulness | cross: top-5 agreement |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in report["rows"].items():
        lines.append(f"| {name} | {m['chrom_ab_psnr']:.2f} | {m['cross_ab_psnr']:.2f} | "
                     f"{m['cross_colourfulness']:.1f} | {m['cross_top5']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate",
                                     description="Held-out evaluation of a trained ExampleColorNet.")
    parser.add_argument("--weights", required=True, type=Path, help="exported example_net.safetensors")
    parser.add_argument("--images", required=True, type=Path, help="folder of held-out colour photos")
    parser.add_argument("--size", type=int, default=256, help="square working size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table-out", type=Path, default=None, help="also write the table here")
    parser.add_argument("--json-out", type=Path, default=None, help="per-photo values as JSON")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ._io import atomic_write, check_output_folder, write_json_atomic
    from ._progress import progress_bar

    try:
        if args.threads < 0:
            raise ValueError(f"--threads: expected >= 0, got {args.threads}")
        for option, path in (("--table-out", args.table_out), ("--json-out", args.json_out)):
            if path is not None:  # checked before the evaluation, which takes minutes
                check_output_folder(path.parent, option)
        if args.threads:
            torch.set_num_threads(args.threads)
        with progress_bar("evaluate", unit="photo") as bar:
            report = evaluate(args.weights, args.images, args.size, args.seed, progress=bar)
    except ValueError as e:
        logger.error("%s", e)
        return 2
    table = format_table(report)
    print(table)
    if args.table_out:
        atomic_write(args.table_out, lambda tmp: Path(tmp).write_text(table, encoding="utf-8"))
    if args.json_out:
        write_json_atomic(args.json_out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
