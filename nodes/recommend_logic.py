"""Plain logic behind ``RecommendReference``; imports nothing from ComfyUI.

Index folders (built with ``deepexemplar index FOLDER -o models/deepexemplar/indexes/NAME``) are
listed and resolved here, loaded indexes are cached here, and :func:`recommend_per_shot` runs
the core's recommendation on an index or on a batch of candidates, for a photo or for each shot
of a clip, lays out the results and writes the keyframe schedule that Colorize's ``keyframes``
input reads.
Everything here runs (and is tested) without ComfyUI.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .logic import NodeInputError, Report, core_errors

NO_INDEX = "none: use the candidates input"
#: Longest side of the top-k batch (the best reference itself keeps its size).
PREVIEW_SIDE = 1024

_INDEX_CACHE: dict[tuple, object] = {}


@dataclass(frozen=True)
class Recommended:
    """What ``RecommendReference`` outputs, in the core's layout.

    Attributes:
        best: ``(3, H, W)`` float32 in [0, 1], the best reference at its own size.
        top: ``(k, 3, h, w)`` the k best letterboxed to the best one's size (at most
            :data:`PREVIEW_SIDE` on the longer side).
        scores: one line per reference (see :func:`score_text`).
    """

    best: torch.Tensor
    top: torch.Tensor
    scores: str


def index_options(folders: Sequence[str]) -> list[str]:
    """:data:`NO_INDEX` then the index folders (holding ``manifest.json``) found in ``folders``,
    one or two levels deep, as paths relative to their folder; only those :func:`resolve_index`
    accepts (a link out of the folders is not listed)."""
    found: set[str] = set()
    for base in folders:
        if not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base)):
            path = os.path.join(base, name)
            if os.path.isfile(os.path.join(path, "manifest.json")):
                found.add(name)
            elif os.path.isdir(path):
                found.update(f"{name}/{sub}" for sub in sorted(os.listdir(path))
                             if os.path.isfile(os.path.join(path, sub, "manifest.json")))
    return [NO_INDEX, *sorted(name for name in found if resolve_index(name, folders))]


def resolve_index(choice: str, folders: Sequence[str]) -> str | None:
    """Full path of the index ``choice`` (the first folder that holds it inside itself, links
    followed: ``../elsewhere`` never leaves the index folders), else None."""
    from deepexemplar_core.files import PathOutsideError, resolve_inside

    for base in folders:
        try:
            path = str(resolve_inside(base, choice))
        except PathOutsideError:
            continue
        if os.path.isfile(os.path.join(path, "manifest.json")):
            return path
    return None


def letterbox(images: list[torch.Tensor], height: int, width: int) -> torch.Tensor:
    """Fit ``(3, h, w)`` images into ``height x width`` (aspect kept, black borders).

    Returns:
        ``(B, 3, height, width)`` float32.

    Example:
        >>> letterbox([torch.ones(3, 10, 20), torch.ones(3, 20, 10)], 10, 10).shape
        torch.Size([2, 3, 10, 10])
    """
    out = torch.zeros(len(images), 3, height, width)
    for i, image in enumerate(images):
        scale = min(height / image.shape[1], width / image.shape[2])
        h = max(1, min(height, round(image.shape[1] * scale)))
        w = max(1, min(width, round(image.shape[2] * scale)))
        small = F.interpolate(image[None].float().cpu(), size=(h, w), mode="bilinear",
                              antialias=True, align_corners=False)[0].clamp(0, 1)
        top, left = (height - h) // 2, (width - w) // 2
        out[i, :, top:top + h, left:left + w] = small
    return out


def preview_size(height: int, width: int, longest: int = PREVIEW_SIDE) -> tuple[int, int]:
    """``(height, width)`` scaled down so that the longer side is at most ``longest``.

    Example:
        >>> preview_size(3000, 4000), preview_size(300, 400)
        ((768, 1024), (300, 400))
    """
    scale = min(1.0, longest / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def score_text(found: list, names: list[str]) -> str:
    """One line per recommendation: rank, final score, the three terms, class match, name."""
    lines = ["rank score global local histogram class_match reference"]
    for rank, (item, name) in enumerate(zip(found, names, strict=True), 1):
        lines.append(f"{rank} {item.score:.4f} {item.global_score:.4f} {item.local_score:.4f} "
                     f"{item.histogram_score:.4f} {'yes' if item.class_match else 'no'} {name}")
    return "\n".join(lines)


def load_index(path: str, describer: Any, node: str) -> Any:
    """The index at ``path`` for ``describer``, cached until its manifest changes."""
    from deepexemplar_core.recommend import Index, IndexError_

    manifest = os.path.join(path, "manifest.json")
    key = (path, os.stat(manifest).st_mtime_ns, describer.family, describer.weights_sha256)
    if key not in _INDEX_CACHE:
        try:
            _INDEX_CACHE.clear()
            _INDEX_CACHE[key] = Index.load(path, describer)
        except IndexError_ as err:
            raise NodeInputError(node, str(err), "connect the backbone the index was built "
                                 "with (Load Backbone) or rebuild the index with "
                                 "`deepexemplar index ... --rebuild`.") from err
    return _INDEX_CACHE[key]


def _read_rgb(path: Path) -> torch.Tensor:
    from deepexemplar_core import read_image

    return read_image(path).rgb().float()


def recommend_per_shot(frames: torch.Tensor, describer: Any, *, node: str,
                       notes: list[str] | None = None,
                       **ranking: Any) -> tuple[Recommended, str]:
    """Each shot of a clip picks its own references; the keyframe schedule that uses them.

    A shot starts at frame 0 and after every scene cut (``motion.ShotDetector``, the criterion
    of ``deepexemplar video --reference-index``); its first frame is ranked as one target.

    Args:
        frames: ``(B, C, H, W)`` float in [0, 1], the clip in playing order (B = 1: a photo).
        describer, node: as :func:`_ranked`.
        notes: if given, receives a sentence when fewer than ``k`` references could be
            returned (fewer colour candidates than ``k``), for the page.
        **ranking: ``index_path``, ``candidates``, ``k``, ``beta``, ``restrict_class``,
            ``report`` of :func:`_ranked`.

    Returns:
        The picks of every shot (each once, in order of first use; ``best``: the first shot's
        best) and the schedule ``"0=1,0=2,120=3"`` naming them by their position in ``top``
        (from 1), for Colorize's ``keyframes``.

    Raises:
        NodeInputError: as :func:`_ranked`.
    """
    from deepexemplar_core.motion import ShotDetector
    from deepexemplar_core.schedule import ReferencePlan

    names: list[str] = []
    images: list[torch.Tensor] = []
    lines: list[str] = []

    def pick(frame: torch.Tensor) -> list[int]:
        found, shot_images, shot_names = _ranked(frame, describer, node=node, **ranking)
        for name, image in zip(shot_names, shot_images, strict=True):
            if name not in names:
                names.append(name)
                images.append(image)
        lines.append(score_text(found, shot_names))
        short = (f"k is {ranking['k']}, but only {len(shot_names)} colour candidate(s) could be "
                 "ranked: all of them are returned, best first.")
        if notes is not None and len(shot_names) < ranking["k"] and short not in notes:
            notes.append(short)
        return [names.index(name) + 1 for name in shot_names]

    plan = ReferencePlan(shots=ShotDetector(), pick=pick)
    entries = []
    for number, frame in enumerate(frames):
        if plan.starts(number, frame):
            if len(frames) > 1:
                lines.append(f"shot from frame {number}:")
            entries += [f"{number}={position}" for position in plan.references(number, frame)]
    best = images[0]
    top = letterbox(images, *preview_size(int(best.shape[1]), int(best.shape[2])))
    return Recommended(best, top, "\n".join(lines)), ",".join(entries)


def _ranked(target: torch.Tensor, describer: Any, *, index_path: str | None,
            candidates: torch.Tensor | None, k: int, beta: float, restrict_class: bool,
            node: str, report: Report | None = None) -> tuple[list, list[torch.Tensor], list[str]]:
    """The ``k`` best references for ``target``: the core's results, the images and names.

    Args:
        target: ``(C, H, W)`` float in [0, 1], the gray target (only its luminance is used).
        describer: the core's recommendation describer (``recommend.as_describer(backbone)``).
        index_path: an index folder, or ``None`` to rank ``candidates``.
        candidates: ``(N, C, H, W)`` float in [0, 1] colour photos (gray ones are never chosen).
        k, beta, restrict_class: as in :func:`deepexemplar_core.recommend.recommend`.
        node: the node's name, for messages.
        report: ``(done, total)`` progress callback for the candidates batch.

    Raises:
        NodeInputError: nothing to rank, no colour candidate, or an index the core refuses.
    """
    from deepexemplar_core.recommend import recommend, recommend_from_images

    if index_path is not None:
        loaded = load_index(index_path, describer, node)
        with core_errors(node):
            found = recommend(loaded, target, k=k, beta=beta, restrict_class=restrict_class)
        images = [_read_rgb(item.path) for item in found]
        names = [str(item.path) for item in found]
    else:
        if candidates is None:
            raise NodeInputError(node, "no candidates: 'index' is 'none' and nothing is "
                                 "connected to 'candidates'.",
                                 "connect an IMAGE batch of colour photos or pick an index.")
        pool = candidates.expand(-1, 3, -1, -1) if candidates.shape[1] == 1 else candidates
        with core_errors(node):
            found = recommend_from_images(target, pool, k=k, beta=beta,
                                          restrict_class=restrict_class, backbone=describer,
                                          progress=report)
        images = [pool[item.row] for item in found]
        names = [f"candidate {item.row}" for item in found]
    if not found:
        raise NodeInputError(node, "no colour candidate to recommend (all are gray or "
                             "excluded).", "give colour photos.")
    return found, images, names
