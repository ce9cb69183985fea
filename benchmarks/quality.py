"""Quality benchmark: gray, Reinhard, Welsh, lite (and paper) on real photos with ground truth.

For each colour photo of the folder built by ``benchmarks/datasets.py`` (short side resized to
``--size``), the target is the photo's luminance and the ground truth the photo itself. The
references are other views of the same photo (``self`` cases: ``flip``, ``crop``, ``shift``,
``rescale``) and a different photo (``cross``: the next photo of the manifest); with
``--recommended`` also the photo that ``recommend`` picks among all the other photos
(``recommended``); with ``--pool K`` also the unrelated photo helped by the top-``K`` photos
that ``recommend`` picks among the others (``cross+pool``: ``colorize -r REF --reference-index
IDX -k K``, the photo-pool prior of issue 19; the baselines take the unrelated photo alone).
``--photos-list`` fixes the photos (the protocol of the semantic-fill
measurements in ``docs/lite.md``: :data:`FILL_PHOTOS`, ``--targets 16``: the first 16 are the
targets, all 25 serve as cross and recommendation pool). Every method
is a callable in :data:`METHODS` ``(target_rgb, reference_rgb, pool=()) -> rgb`` so that methods can be
added or left out (``--methods``).

For the pipeline methods the confidence is also scored: the ROC AUC with which the pipeline's
confidence (``confidence_map``) and the semantic fill's (``fill_confidence``) separate the
pixels whose warped colour is right (ab error <= ``--wrong-above``, working resolution) from
the wrong ones, per kind of reference.

Reported per case and method: ab PSNR, RGB PSNR, SSIM, colourfulness (signed and abs
variants, see :mod:`deepexemplar_core.evaluation.metrics`), classifier top-5 agreement with the original
(the lite EfficientNet-Lite0 classifier), seconds per image. Written to ``--out``:
``quality.csv`` (one row per case and method), ``summary.csv`` and ``contact_sheet.png``
(target, reference, each method's result), and the means are printed.

Usage::

    python benchmarks/quality.py --photos /tmp/deepexemplar-photos --out /tmp/dx-quality \
        [--views flip,crop] [--limit 4] [--paper-weights DIR]
    python benchmarks/quality.py --photos-list fill --targets 16 --recommended --size 384 \
        --methods gray,lite,lite-semantic
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.datasets import build_photo_folder, read_manifest  # noqa: E402
from deepexemplar_core.evaluation.baselines import reinhard_transfer, welsh_transfer  # noqa: E402
from deepexemplar_core.color import lab_to_rgb, rgb_to_lab  # noqa: E402
from deepexemplar_core.evaluation.metrics import (  # noqa: E402
    ab_psnr,
    colorfulness,
    finite_mean,
    rgb_psnr,
    ssim,
    top5_agreement,
)

Method = Callable[..., torch.Tensor]
VIEWS = ("flip", "crop", "shift", "rescale")
KINDS = ("self", "cross", "recommended", "cross+pool")
#: The 25 distinct real photos of the fill protocol (near-duplicates such as aloeR, leuvenB,
#: rubberwhale2 and drawings, logos, text left out), file stems of ``benchmarks/datasets.py``
#: built with ``--opencv-doc``. The first 16 are the targets.
FILL_PHOTOS = (
    "skimage_astronaut", "skimage_chelsea", "skimage_coffee", "skimage_rocket",
    "skimage_motorcycle_left", "sklearn_china", "sklearn_flower", "matplotlib_grace_hopper",
    "opencv_aero1", "opencv_aloeL", "opencv_apple", "opencv_baboon", "opencv_building",
    "opencv_butterfly", "opencv_chicky_512", "opencv_fruits", "opencv_graf1", "opencv_home",
    "opencv_leuvenA", "opencv_messi5", "opencv_orange", "opencv_rubberwhale1", "opencv_smarties",
    "opencv_squirrel_cls", "opencv_stuff",
)


@dataclass(frozen=True)
class Case:
    """One target/reference pair: ``kind`` is one of :data:`KINDS`."""

    photo: str
    kind: str
    view: str
    target: torch.Tensor  # (1, 3, H, W) ground truth in [0, 1]
    reference: torch.Tensor  # (1, 3, Hr, Wr) in [0, 1]
    pool: tuple[torch.Tensor, ...] = ()  # cross+pool: the pool's picks, (1, 3, Hp, Wp) each


def load_rgb(path: Path, size: int) -> torch.Tensor:
    """``(1, 3, H, W)`` float in [0, 1], short side resized to ``size`` (antialiased)."""
    rgb = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None]
    rgb = rgb.float() / 255.0
    scale = size / min(rgb.shape[-2:])
    out = (round(rgb.shape[-2] * scale), round(rgb.shape[-1] * scale))
    return F.interpolate(rgb, size=out, mode="bilinear", antialias=True).clamp(0, 1)


def make_view(rgb: torch.Tensor, view: str) -> torch.Tensor:
    """A different view of the same photo: mirror, 75 % crop, 1/8 shift, or 0.6x rescale."""
    h, w = rgb.shape[-2:]
    if view == "flip":
        return rgb.flip(-1)
    if view == "crop":
        return rgb[..., h // 8 : h - h // 8, w // 8 : w - w // 8]
    if view == "shift":
        return rgb[..., h // 8 :, w // 8 :]
    if view == "rescale":
        size = (round(h * 0.6), round(w * 0.6))
        return F.interpolate(rgb, size=size, mode="bilinear", antialias=True).clamp(0, 1)
    raise ValueError(f"view: expected one of {VIEWS}, got {view!r}")


def build_cases(photos: list[Path], size: int, views: list[str], targets: int = 0,
                recommended: bool = False, pool: int = 0) -> list[Case]:
    """Self cases for each view plus one cross case (the next photo) per target photo, and with
    ``recommended`` the photo ``recommend_from_images`` ranks first among all the others; with
    ``pool`` > 0 the cross case again, helped by the top-``pool`` of that ranking (the cross
    photo left out of it).

    ``targets`` > 0 makes only the first ``targets`` photos targets (all stay references).
    """
    images = [load_rgb(p, size) for p in photos]
    cases = []
    count = targets or len(photos)
    for i, (path, rgb) in enumerate(list(zip(photos, images, strict=True))[:count]):
        cases += [Case(path.stem, "self", v, rgb, make_view(rgb, v)) for v in views]
        if len(photos) > 1:
            other = photos[(i + 1) % len(photos)]
            cases.append(Case(path.stem, "cross", other.stem, rgb, images[(i + 1) % len(images)]))
        if (recommended or pool) and len(photos) > 1:
            from deepexemplar_core.recommend import recommend_from_images

            others = [j for j in range(len(photos)) if j != i]
            gray = rgb[0].mean(dim=0, keepdim=True)
            ranked = [others[r.row] for r in recommend_from_images(
                gray, [images[j][0] for j in others], k=len(others))]
            if recommended:
                best = ranked[0]
                cases.append(Case(path.stem, "recommended", photos[best].stem, rgb, images[best]))
            if pool:
                cross = (i + 1) % len(photos)
                picks = [j for j in ranked if j != cross][:pool]
                cases.append(Case(path.stem, "cross+pool",
                                  "+".join(photos[j].stem for j in (cross, *picks)), rgb,
                                  images[cross], tuple(images[j] for j in picks)))
    return cases


def _with_ab(target_rgb: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    l = rgb_to_lab(target_rgb)[:, :1]
    return lab_to_rgb(torch.cat([l, ab], 1)).clamp(0, 1)


def gray_method(target: torch.Tensor, reference: torch.Tensor, pool=()) -> torch.Tensor:
    """ab = 0: the target's luminance alone."""
    return _with_ab(target, torch.zeros_like(target[:, :2]))


def reinhard_method(target: torch.Tensor, reference: torch.Tensor, pool=()) -> torch.Tensor:
    """Reinhard 2001 (CIELab), gray target: the reference's mean ab."""
    return _with_ab(target, reinhard_transfer(rgb_to_lab(target)[:, :1], rgb_to_lab(reference)))


def welsh_method(target: torch.Tensor, reference: torch.Tensor, pool=()) -> torch.Tensor:
    """Welsh 2002 with 200 jittered samples."""
    return _with_ab(target, welsh_transfer(rgb_to_lab(target)[:, :1], rgb_to_lab(reference)))


#: Pixels whose warped ab is farther than this from the truth count as wrong (CIELab units).
WRONG_ABOVE = 15.0


@dataclass
class ConfidenceScores:
    """Per-pixel scores of the warped colours, pooled per kind of reference (for the ROC AUC).

    ``kind`` names the kind the next runs belong to (``None``: not scored).
    """

    wrong_above: float = WRONG_ABOVE
    scores: dict | None = None
    kind: str | None = None

    def add(self, inter, truth: torch.Tensor) -> None:
        """Score one pipeline run under :attr:`kind`: its intermediates against the photo."""
        kind = self.kind
        from deepexemplar_core.confidence import fill_confidence

        sim = inter.similarity
        size = inter.match.target_l_work.shape[-2:]
        ab_true = F.interpolate(rgb_to_lab(truth)[:, 1:], size=size, mode="area")
        wrong = (sim.warped_ab - ab_true).norm(dim=1, keepdim=True) > self.wrong_above
        warped_l = rgb_to_lab(sim.warped_rgb8.float() / 255.0)[:, :1]
        fill = fill_confidence(sim.similarity, inter.match.target_l_work, warped_l)
        rows = self.scores.setdefault(kind, {"wrong": [], "confidence_map": [],
                                             "fill_confidence": []})
        rows["wrong"].append(wrong.flatten())
        rows["confidence_map"].append(sim.confidence.flatten())
        rows["fill_confidence"].append(fill.flatten())

    def __post_init__(self) -> None:
        self.scores = {}

    def print(self) -> None:
        """ROC AUC of each confidence per kind (0.5 = no better than chance)."""
        for kind, rows in self.scores.items():
            wrong = torch.cat(rows["wrong"])
            aucs = {name: roc_auc(torch.cat(rows[name]), ~wrong)
                    for name in ("confidence_map", "fill_confidence")}
            print(f"confidence ROC AUC ({kind}, {wrong.numel()} px, "
                  f"{float(wrong.float().mean()):.0%} wrong at ab error > {self.wrong_above}): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in aucs.items()))


def roc_auc(score: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve of ``score`` for the boolean ``positive`` (ties averaged).

    Example:
        >>> roc_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([False, False, True, True]))
        0.75
    """
    score, positive = score.flatten().double(), positive.flatten()
    _, inverse, counts = torch.unique(score, return_inverse=True, return_counts=True)
    first = torch.cumsum(counts, 0) - counts  # rank - 1 of each value's first occurrence
    ranks = (first + (counts + 1) / 2.0)[inverse]
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pipeline_method(family: str, taps: str | None = None, fill: str | None = None,
                    scores: ConfidenceScores | None = None, **load_kwargs) -> Method:
    """``deepexemplar_core.pipeline.colorize`` with ``load_models(family, **load_kwargs)``.

    The target is passed as its gray version (L only), the reference in colour. ``taps``
    swaps the lite backbone for one with those feature taps (``"expansion"``; the default is
    ``"bottleneck"``); ``fill`` sets the propagation colorizer's fill. ``scores`` collects the
    confidences of every run under ``scores.kind`` (set by the caller; ``None`` skips).
    """
    from deepexemplar_core.pipeline import colorize, load_models

    models = load_models(family, **load_kwargs)
    if taps is not None:
        from deepexemplar_core.backbones import load_lite_backbone

        models.backbone = load_lite_backbone(device=models.device, taps=taps)
    if fill is not None:
        from deepexemplar_core.colorizers import PropagationColorizer, PropagationConfig

        models.colorizer = PropagationColorizer(PropagationConfig(fill=fill))

    def run(target: torch.Tensor, reference: torch.Tensor, pool=()) -> torch.Tensor:
        gray = gray_method(target, reference)
        result = colorize(gray, [reference[0], *(p[0] for p in pool)] if pool else reference[0],
                          models)
        if scores is not None and scores.kind is not None:
            scores.add(result.intermediates[0], target)
        return result.images[0][None].clamp(0, 1)

    return run


METHODS: dict[str, Callable[[argparse.Namespace], Method]] = {
    "gray": lambda args: gray_method,
    "reinhard": lambda args: reinhard_method,
    "welsh": lambda args: welsh_method,
    "lite": lambda args: pipeline_method("lite", scores=args.scores),
    "lite-semantic": lambda args: pipeline_method("lite", fill="semantic"),
    "lite-expansion": lambda args: pipeline_method("lite", taps="expansion"),
    "paper": lambda args: pipeline_method("paper", search_dirs=(str(args.paper_weights),)),
}


def evaluate(case: Case, result: torch.Tensor, classify, logits_true) -> dict[str, float]:
    """Metrics of one result against the case's original photo."""
    ab_true, ab_pred = rgb_to_lab(case.target)[:, 1:], rgb_to_lab(result)[:, 1:]
    return {
        "ab_psnr": float(ab_psnr(ab_pred, ab_true)[0]),
        "rgb_psnr": float(rgb_psnr(result, case.target)[0]),
        "ssim": float(ssim(result, case.target)[0]),
        "cf_signed": float(colorfulness(result, "signed")[0]),
        "cf_abs": float(colorfulness(result, "abs")[0]),
        "cf_truth": float(colorfulness(case.target, "signed")[0]),
        "top5_agree": float(top5_agreement(classify(result), logits_true)[0]),
    }


def _thumb(rgb: torch.Tensor, height: int) -> Image.Image:
    array = (rgb[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    image = Image.fromarray(array)
    return image.resize((max(1, round(image.width * height / image.height)), height))


def contact_sheet(rows: list[list[torch.Tensor]], path: Path, height: int = 128) -> None:
    """One row per case: target (gray), reference, then each method's result."""
    thumbs = [[_thumb(x, height) for x in row] for row in rows]
    width = max(sum(t.width for t in row) + 4 * len(row) for row in thumbs)
    sheet = Image.new("RGB", (width, (height + 4) * len(thumbs)), "white")
    for r, row in enumerate(thumbs):
        x = 0
        for t in row:
            sheet.paste(t, (x, r * (height + 4)))
            x += t.width + 4
    sheet.save(path)


def summarize(records: list[dict], methods: list[str]) -> list[dict]:
    """Mean of each metric per (kind, method); PSNR ``inf`` (identical images) left out."""
    keys = ("ab_psnr", "rgb_psnr", "ssim", "cf_signed", "cf_abs", "cf_truth", "top5_agree",
            "seconds")
    out = []
    for kind in (*KINDS, "all"):
        for m in methods:
            sel = [r for r in records if r["method"] == m and kind in ("all", r["kind"])]
            if sel:
                row = {"kind": kind, "method": m, "n": len(sel)}
                row.update({k: finite_mean([r[k] for r in sel]) for k in keys})
                out.append(row)
    return out


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _print_table(summary: list[dict]) -> None:
    cols = ("kind", "method", "n", "ab_psnr", "rgb_psnr", "ssim", "cf_signed", "cf_abs",
            "top5_agree", "seconds")
    print(" ".join(f"{c:>10s}" for c in cols))
    for row in summary:
        cells = [f"{row[c]:>10.3f}" if isinstance(row[c], float) else f"{row[c]!s:>10s}"
                 for c in cols]
        print(" ".join(cells))


def _targets(summary: list[dict]) -> None:
    mean = {(r["kind"], r["method"]): r for r in summary}
    lite, rein, welsh = (mean.get(("self", m)) for m in ("lite", "reinhard", "welsh"))
    if lite and rein:
        gain = lite["ab_psnr"] - rein["ab_psnr"]
        print(f"target: self lite - Reinhard ab PSNR = {gain:+.2f} dB (>= +3): {gain >= 3}")
    if lite and welsh:
        ok = lite["ab_psnr"] > welsh["ab_psnr"] and lite["top5_agree"] > welsh["top5_agree"]
        print(f"target: self lite beats Welsh on ab PSNR and top-5 agreement: {ok}")
    gray = {kind: mean.get((kind, "gray")) for kind in KINDS}
    for (kind, method), row in mean.items():
        if not method.startswith("lite") or gray.get(kind) is None:
            continue
        gain = row["ab_psnr"] - gray[kind]["ab_psnr"]
        ratio = row["cf_signed"] / max(row["cf_truth"], 1e-9)
        if kind in ("cross", "cross+pool"):
            ok = gain >= -1.0 and ratio >= 0.85 and row["top5_agree"] >= gray[kind]["top5_agree"]
            print(f"target (issue 19): {kind} {method}: ab PSNR {gain:+.2f} dB vs gray (>= -1), "
                  f"colourfulness ratio {ratio:.2f} (>= 0.85), top-5 {row['top5_agree']:.3f} "
                  f"vs gray {gray[kind]['top5_agree']:.3f}: {ok}")
        elif kind == "recommended":
            ok = gain >= 1.0 and ratio >= 0.85
            print(f"target (issue 19): recommended {method}: ab PSNR {gain:+.2f} dB vs gray "
                  f"(>= +1), colourfulness ratio {ratio:.2f} (>= 0.85): {ok}")
        else:
            print(f"target (issue 19): self {method}: ab PSNR {row['ab_psnr']:.2f} dB "
                  "(not below the lite row of today)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("/tmp/deepexemplar-photos"),
                        help="photo folder with manifest.csv (built when missing)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/deepexemplar-quality"))
    parser.add_argument("--size", type=int, default=256, help="short side of the targets")
    parser.add_argument("--views", default="flip,crop", help=f"comma list of {VIEWS}")
    parser.add_argument("--methods", default="gray,reinhard,welsh,lite",
                        help=f"comma list of {tuple(METHODS)}")
    parser.add_argument("--limit", type=int, default=0, help="use the first N photos (0 = all)")
    parser.add_argument("--paper-weights", type=Path, default=None,
                        help="folder with the converted paper weights (adds the paper method)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--photos-list", default="",
                        help="comma list of photo file stems, or 'fill' for FILL_PHOTOS "
                             "(default: the manifest's order)")
    parser.add_argument("--targets", type=int, default=0,
                        help="only the first N photos are targets (0 = all)")
    parser.add_argument("--recommended", action="store_true",
                        help="add the recommended reference (among all other photos) per target")
    parser.add_argument("--pool", type=int, default=0,
                        help="add the unrelated reference helped by the top-K recommended "
                             "photos (K = this; 0 = off)")
    parser.add_argument("--wrong-above", type=float, default=WRONG_ABOVE,
                        help="ab error above which a warped pixel is wrong (confidence AUC)")
    args = parser.parse_args(argv)
    args.scores = ConfidenceScores(args.wrong_above)
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    if args.paper_weights is not None and "paper" not in methods:
        methods.append("paper")
    if not (args.photos / "manifest.csv").is_file():
        build_photo_folder(args.photos)
    photos = [args.photos / p.file for p in read_manifest(args.photos)]
    if args.photos_list:
        stems = FILL_PHOTOS if args.photos_list == "fill" else args.photos_list.split(",")
        by_stem = {p.stem: p for p in photos}
        missing = [s for s in stems if s not in by_stem]
        if missing:
            parser.error(f"--photos-list: not in {args.photos}/manifest.csv: {missing} (build "
                         "the folder with benchmarks/datasets.py --opencv-doc)")
        photos = [by_stem[s] for s in stems]
    photos = photos[: args.limit] if args.limit else photos
    cases = build_cases(photos, args.size, args.views.split(","), args.targets, args.recommended,
                        args.pool)
    runners = {m: METHODS[m](args) for m in methods}

    from deepexemplar_core.backbones import load_lite_backbone

    classify = load_lite_backbone().classify
    records, sheet, warm = [], [], set()
    for case in cases:
        logits_true = classify(case.target)
        row = [gray_method(case.target, case.reference), case.reference]
        for name, run in runners.items():
            args.scores.kind = None  # warm-up runs are not scored
            if name not in warm:  # the first call pays lazy loading and allocator warm-up
                run(case.target, case.reference, case.pool)
                warm.add(name)
            args.scores.kind = case.kind
            start = time.perf_counter()
            result = run(case.target, case.reference, case.pool)
            seconds = time.perf_counter() - start
            rec = {"photo": case.photo, "kind": case.kind, "view": case.view, "method": name,
                   "seconds": seconds, **evaluate(case, result, classify, logits_true)}
            records.append(rec)
            row.append(result)
            print(f"{case.photo:28s} {case.kind:5s} {case.view:24s} {name:9s} "
                  f"ab {rec['ab_psnr']:6.2f} dB  {seconds:6.3f} s", flush=True)
        sheet.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    _write_csv(args.out / "quality.csv", records)
    summary = summarize(records, methods)
    _write_csv(args.out / "summary.csv", summary)
    contact_sheet(sheet, args.out / "contact_sheet.png")
    print(f"machine: {platform.processor() or platform.machine()}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, size {args.size}")
    _print_table(summary)
    _targets(summary)
    args.scores.print()
    print(f"wrote {args.out}/quality.csv, summary.csv, contact_sheet.png")


if __name__ == "__main__":
    main()
