"""Whole-pipeline timings: a 256 px pair end to end, and 1080p frames with a prepared reference.

Rows:

* ``pair256``: one gray target and one reference at working size 256, end to end (reference
  features included), median of ``--repeat`` runs after a warm-up;
* ``1080p@540``: 1920x1080 frames (a real photo panned each frame) streamed through
  ``colorize_iter`` with a prepared reference at working size 540; frames/s over ``--frames``
  frames and the peak device memory.

Each row runs in float32 and, on CUDA, with the networks in float16 (``--half``); the float16
row also reports the ab difference to float32 so that "accurate enough" is measured, not assumed.
The ``paper`` family uses random weights of the exact architecture when no converted weights
resolve (timing does not depend on the values).

    .venv/bin/python benchmarks/bm_pipeline.py [--device cuda] [--family lite paper] [--frames 60]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from skimage import data, transform

from deepexemplar_core import ColorizeConfig, colorize, colorize_iter, prepare_reference
from deepexemplar_core.models import Models, load_models, resolve_device


def _photo(name: str, size: tuple[int, int] | None = None) -> torch.Tensor:
    image = getattr(data, name)()
    if size is not None:
        image = transform.resize(image, size, anti_aliasing=True)
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0


def _models(family: str, device: torch.device) -> tuple[Models, str]:
    if family == "lite":
        return load_models("lite", device=device), "built-in"
    from deepexemplar_core.weights import WeightsNotFoundError

    try:
        return load_models("paper", device=device), "converted weights"
    except WeightsNotFoundError:
        from deepexemplar_core.backbones import GrayVGG19BN
        from deepexemplar_core.colorizers import ExampleColorNet, PaperColorizer

        torch.manual_seed(0)
        return (Models.compose(GrayVGG19BN(with_classifier=False).eval(),
                               PaperColorizer(ExampleColorNet().eval()), device),
                "random weights")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pair256(models: Models, repeat: int) -> float:
    target, reference = _photo("chelsea").mean(0, keepdim=True), _photo("coffee")
    config = ColorizeConfig(size=256)
    colorize(target, reference, models, config)
    runs = []
    for _ in range(repeat):
        _sync(models.device)
        start = time.perf_counter()
        colorize(target, reference, models, config)
        _sync(models.device)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def frames1080(models: Models, frames: int) -> tuple[float, float, torch.Tensor]:
    """(frames/s, peak device memory in GB, ab of the first frame)."""
    photo = _photo("astronaut", (1080, 1920))
    config = ColorizeConfig(size=540)
    prepared = prepare_reference(models, _photo("coffee"), config)
    gray = photo.mean(0, keepdim=True).to(models.device)
    next(colorize_iter([gray], prepared, models, config))  # warm-up
    if models.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(models.device)
    first = None
    _sync(models.device)
    start = time.perf_counter()
    clip = (gray.roll(4 * t, dims=-1) for t in range(frames))
    for done in colorize_iter(clip, prepared, models, config, chunk_size=4, output_device="cpu"):
        first = done.ab[:, ::4, ::4] if first is None else first
    _sync(models.device)
    fps = frames / (time.perf_counter() - start)
    memory = (torch.cuda.max_memory_allocated(models.device) / 2**30
              if models.device.type == "cuda" else float("nan"))
    return fps, memory, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--family", nargs="+", default=["lite", "paper"])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--half", action="store_true", help="also run the networks in float16")
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(f"machine: {name}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| family | dtype | pair 256 (s) | 1080p@540 frames/s | peak GPU GB | ab diff vs fp32 | weights |")
    print("|---|---|---|---|---|---|---|")
    for family in args.family:
        models, note = _models(family, device)
        dtypes = [torch.float32] + ([torch.float16] if args.half and device.type == "cuda" else [])
        reference_ab = None
        for dtype in dtypes:
            try:
                models.backbone.to(dtype)
                pair = pair256(models, args.repeat)
                fps, memory, ab = frames1080(models, args.frames)
            except (RuntimeError, ValueError, TypeError) as err:  # report, do not hide
                print(f"| {family} | {dtype} | failed: {type(err).__name__}: {err} | | | | {note} |")
                continue
            finally:
                models.backbone.to(torch.float32)
            diff = "" if reference_ab is None else f"{float((ab - reference_ab).abs().mean()):.2f}"
            reference_ab = ab if reference_ab is None else reference_ab
            print(f"| {family} | {str(dtype).split('.')[-1]} | {pair:.4f} | {fps:.1f} | "
                  f"{memory:.2f} | {diff} | {note} |")


if __name__ == "__main__":
    main()
