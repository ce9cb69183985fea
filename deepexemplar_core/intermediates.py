"""Writing the intermediates of one colorized target (``deepexemplar colorize --save-intermediates``).

Files written into one folder per target, at working resolution:

* ``<T>_<R>.txt`` and ``<R>_<T>.txt``: phi_T->R and phi_R->T in the authors' flow format;
* ``<T>_<R>.combo``: the authors' combo (warped colours, cycle colours, ten distance maps), so
  that their ``test.py`` or our :mod:`~deepexemplar_core.authors.replay` can read it;
* ``warped.png`` (the warped reference colours), ``confidence.png`` (0 = black, 1 = white),
  ``err_tr_<level>.png`` / ``err_rt_<level>.png`` (the uint8 distances, white = dissimilar);
* with several references, the fields and combo of each (``<T>_<R_k>``) and ``choice.png``
  (which reference coloured each pixel: red = the first, green = the second, blue = the third).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .authors.formats import write_combo, write_flow
from .authors.replay import combo_from_flows
from .color import lab_to_rgb
from .fusion import choice_image
from .image_io import write_image
from .results import Intermediates
from .structures import Similarity

__all__ = ["save_intermediates"]


def _gray_rgb8(l: torch.Tensor) -> torch.Tensor:
    """``(1, 1, H, W)`` L in [0, 100] -> ``(1, 3, H, W)`` uint8 gray image with that L."""
    lab = torch.cat([l, torch.zeros_like(l), torch.zeros_like(l)], 1)
    return (lab_to_rgb(lab, gamut="clip") * 255).round().to(torch.uint8)


def save_intermediates(folder: Path, group: Intermediates, index: int, target_name: str,
                       reference_name: str | Sequence[str]) -> None:
    """Write the intermediates of target ``index`` of ``group`` into ``folder``.

    Args:
        folder: created if needed.
        group: one size group of a :class:`~deepexemplar_core.pipeline.ColorizeResult`.
        index: position of the target inside the group's batch.
        target_name: stem used for the authors' file names (``<T>``).
        reference_name: stem of the reference (``<R>``); with several references, one stem per
            reference: each gets its fields and combo, the warped colours, confidence and
            distances are the fused ones, and ``choice.png`` colours each pixel by the
            reference that coloured it (:func:`~deepexemplar_core.fusion.choice_image`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    names = [reference_name] if isinstance(reference_name, str) else list(reference_name)
    stages = group.references or ((group.match, group.similarity),)
    for name, (match, similarity) in zip(names, stages, strict=True):
        _save_fields(folder, match, similarity.similarity, index, target_name, name)
    write_image(folder / "warped.png", group.similarity.warped_rgb8[index].float().cpu() / 255)
    write_image(folder / "confidence.png", group.similarity.confidence[index].expand(3, -1, -1).cpu())
    if group.fusion is not None:
        write_image(folder / "choice.png", choice_image(group.choice[index : index + 1].cpu())[0])
    sim = group.similarity.similarity
    for level, name in enumerate(sim.level_names):
        for kind, err in (("tr", sim.err_tr), ("rt", sim.err_rt)):
            image = err[index, level : level + 1].float().cpu() / 255
            write_image(folder / f"err_{kind}_{name}.png", image.expand(3, -1, -1))


def _save_fields(folder: Path, match, sim: Similarity, index: int, target_name: str,
                 reference_name: str) -> None:
    """The fields (authors' flow format) and combo of one target and one reference."""
    corr = match.correspondence
    nnf_tr, nnf_rt = corr.nnf_tr[index : index + 1].cpu(), corr.nnf_rt[index : index + 1].cpu()
    write_flow(folder / f"{target_name}_{reference_name}.txt", nnf_tr)
    write_flow(folder / f"{reference_name}_{target_name}.txt", nnf_rt)
    one = Similarity(*(t[index : index + 1].cpu() for t in (sim.sim_tr, sim.sim_rt, sim.err_tr, sim.err_rt)),
                     level_names=sim.level_names)
    ref_rgb8 = (match.reference_rgb_work * 255).round().to(torch.uint8).cpu()
    target_rgb8 = _gray_rgb8(match.target_l_work[index : index + 1].cpu())
    combo = combo_from_flows(target_rgb8, ref_rgb8, nnf_tr, nnf_rt, one)
    write_combo(folder / f"{target_name}_{reference_name}.combo", combo)
