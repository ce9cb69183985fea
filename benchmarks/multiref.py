"""Benchmark of several references (issue 18): known answer, top-K from an index, cost.

* **Known answer** (``known``): a gray target made of two different registry photos side by
  side (scikit-image's, centre squares of ``--size``), with a mirrored copy of each photo as the
  two references. Printed: the ab PSNR of each single-reference result and of the two together,
  and the share of each half (``--size // 16`` pixels from the seam left out) whose choice map
  names its own photo. Targets: +3 dB over the better single reference; >= 95 % per half.
* **Top-K from an index** (``index``): every photo of the folder built by
  ``benchmarks/datasets.py`` (``benchmarks/quality.py``'s protocol: the photo's luminance is the
  target, the photo itself the truth) is colorized with the top-1 and with the top-K (``-k``)
  recommendations of an index of all the photos, the target itself never recommended (held
  out). Printed: mean ab PSNR and mean colourfulness ratio (result / truth, Hasler and
  Suesstrunk) of gray, top-1 and top-K. Target: top-K ratio >= 0.85 with ab PSNR >= top-1's.
  Two diagnostic rows say where the gap to the truth lies: the top-K result with the truth's
  chroma magnitude (our hue kept) and with the truth's hue (our magnitude kept), per pixel.
* **Cost** (``cost``): seconds per ``--size`` target with one and with three references, lite,
  ``--threads`` CPU threads, median of ``--repeat`` runs after a warm-up. Target: three
  references <= 1.5 s at 256 px on 2 cores.

Usage::

    python benchmarks/multiref.py [--parts known,index,cost] [--photos /tmp/deepexemplar-photos]
        [--limit 24] [-k 3] [--size 256] [--threads 2]

Timings on a shared machine vary with its load: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.datasets import build_photo_folder, read_manifest  # noqa: E402
from deepexemplar_core import ColorizeConfig, colorize, load_models, read_image  # noqa: E402
from deepexemplar_core.color import lab_to_rgb, rgb_to_lab  # noqa: E402
from deepexemplar_core.evaluation.metrics import ab_psnr, colorfulness  # noqa: E402

PAIRS = (("astronaut", "coffee"), ("chelsea", "rocket"), ("coffee", "chelsea"),
         ("rocket", "astronaut"))


def _square(rgb: torch.Tensor, side: int) -> torch.Tensor:
    """Centre square of ``(3, H, W)`` resized to ``side``."""
    h, w = rgb.shape[-2:]
    s = min(h, w)
    crop = rgb[:, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return F.interpolate(crop[None], size=(side, side), mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp(0, 1)


def _skimage(name: str, side: int) -> torch.Tensor:
    from skimage import data

    return _square(torch.from_numpy(getattr(data, name)().copy()).float().movedim(-1, 0) / 255,
                   side)


def _psnr(rgb: torch.Tensor, truth: torch.Tensor) -> float:
    return float(ab_psnr(rgb_to_lab(rgb[None])[:, 1:], rgb_to_lab(truth[None])[:, 1:]))


def _oracles(rgb: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """``rgb`` with the truth's chroma magnitude (its own hue) and with the truth's hue (its own
    magnitude): ``(3, H, W)`` in [0, 1] each, the diagnostic rows of the index part."""
    ours, true = rgb_to_lab(rgb[None]), rgb_to_lab(truth[None])

    def split(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = lab[:, 1:].norm(dim=1, keepdim=True)
        return lab[:, 1:] / size.clamp_min(1e-3), size

    (hue, size), (true_hue, true_size) = split(ours), split(true)
    return {name: lab_to_rgb(torch.cat([ours[:, :1], ab], 1))[0]
            for name, ab in (("oracle: truth's magnitude", hue * true_size),
                             ("oracle: truth's hue", true_hue * size))}


def known_answer(models, size: int) -> None:
    config = ColorizeConfig(size=size)
    print(f"\n## Known answer (two photos side by side, {size} px each, mirrored references)")
    print("| pair | single A | single B | both | gain | choice right (A half, B half) |")
    print("|---|---|---|---|---|---|")
    for a_name, b_name in PAIRS:
        a, b = _skimage(a_name, size), _skimage(b_name, size)
        truth = torch.cat([a, b], dim=2)
        target, refs = truth.mean(0, keepdim=True), [a.flip(-1), b.flip(-1)]
        singles = [_psnr(colorize(target, r, models, config).images[0], truth) for r in refs]
        result = colorize(target, refs, models, config)
        both = _psnr(result.images[0], truth)
        choice = result.choice[0, 0]
        w, margin = choice.shape[1], choice.shape[1] // 16
        left = float((choice[:, : w // 2 - margin] == 0).float().mean())
        right = float((choice[:, w // 2 + margin:] == 1).float().mean())
        print(f"| {a_name} + {b_name} | {singles[0]:.2f} | {singles[1]:.2f} | {both:.2f} | "
              f"{both - max(singles):+.2f} dB | {left:.1%}, {right:.1%} |", flush=True)


def _photo(path: Path, size: int) -> torch.Tensor:
    rgb = read_image(path).rgb()
    scale = size / min(rgb.shape[-2:])
    shape = (round(rgb.shape[-2] * scale), round(rgb.shape[-1] * scale))
    return F.interpolate(rgb[None], size=shape, mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp(0, 1)


def top_k(models, photos: list[Path], size: int, k: int) -> None:
    from deepexemplar_core.recommend import Index, LiteDescriber, build_index, pick_references

    config = ColorizeConfig(size=size)
    with tempfile.TemporaryDirectory() as tmp:
        pool = Path(tmp) / "pool"
        pool.mkdir()
        for path in photos:
            shutil.copy(path, pool / path.name)  # the index refuses links leading outside
        build_index(pool, Path(tmp) / "pool.index", LiteDescriber(models.backbone))
        index = Index.load(Path(tmp) / "pool.index")
        rows = []
        for path in photos:
            truth = _photo(path, size)
            target = truth.mean(0, keepdim=True)
            picked = pick_references(index, pool / path.name, k)
            refs = [_photo(p, size) for p in picked]
            out = {"gray": target.expand(3, -1, -1),
                   "top-1": colorize(target, refs[0], models, config).images[0],
                   f"top-{k}": colorize(target, refs, models, config).images[0]}
            out |= _oracles(out[f"top-{k}"], truth)
            truth_c = float(colorfulness(truth[None]))
            rows.append({m: (_psnr(img, truth), float(colorfulness(img[None])) / max(truth_c, 1e-6))
                         for m, img in out.items()})
            print(f"{path.name:32s} " + "  ".join(f"{m} {p:6.2f} dB {r:4.2f}"
                                                  for m, (p, r) in rows[-1].items()), flush=True)
    print(f"\n## Top-{k} from an index ({len(photos)} held-out photos, {size} px, lite)")
    print("| method | ab PSNR (dB) | colourfulness ratio |")
    print("|---|---|---|")
    means = {method: (statistics.fmean(r[method][0] for r in rows),
                      statistics.fmean(r[method][1] for r in rows)) for method in rows[0]}
    for method, (psnr, ratio) in means.items():
        print(f"| {method} | {psnr:.2f} | {ratio:.2f} |")
    (one, _), (several, ratio) = means["top-1"], means[f"top-{k}"]
    print(f"target (issue 18): top-{k} colourfulness ratio {ratio:.2f} (>= 0.85) with ab PSNR "
          f"{several:.2f} dB not below top-1's {one:.2f}: {ratio >= 0.85 and several >= one}")
    print(f"(oracle rows: top-{k} with one part of each pixel's chroma taken from the truth; the "
          f"row that gains more names what limits the result)")


def cost(models, size: int, repeat: int) -> None:
    config = ColorizeConfig(size=size)
    target = _skimage("astronaut", size).mean(0, keepdim=True)
    refs = [_skimage(name, size) for name in ("coffee", "chelsea", "rocket")]
    print(f"\n## Cost ({size} px target, lite, {torch.get_num_threads()} threads, load "
          f"{os.getloadavg()[0]:.1f})")
    for count in (1, 3):
        chosen = refs[0] if count == 1 else refs[:count]
        colorize(target, chosen, models, config)  # warm-up
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            colorize(target, chosen, models, config)
            times.append(time.perf_counter() - start)
        print(f"{count} reference(s): {statistics.median(times):.3f} s per target "
              f"(median of {repeat})")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="known,index,cost")
    parser.add_argument("--photos", type=Path, default=Path("/tmp/deepexemplar-photos"))
    parser.add_argument("--limit", type=int, default=24, help="photos of the index part")
    parser.add_argument("-k", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = load_models("lite")
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}")
    parts = args.parts.split(",")
    if "known" in parts:
        known_answer(models, args.size)
    if "index" in parts:
        if not (args.photos / "manifest.csv").is_file():
            build_photo_folder(args.photos)
        photos = [args.photos / p.file for p in read_manifest(args.photos)]
        top_k(models, photos[: args.limit] if args.limit else photos, args.size, args.k)
    if "cost" in parts:
        cost(models, args.size, args.repeat)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
