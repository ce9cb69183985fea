"""``RecommendReference``: pick colour references for a gray target (paper section 4).

Candidates come either from an IMAGE batch or from a reference index built with
``deepexemplar index FOLDER -o models/deepexemplar/indexes/NAME``. Plain helpers (listing
indexes, letterboxing, the score text) live at module level; ``execute`` only converts and
calls them and the core.
"""

from __future__ import annotations

import os
from pathlib import Path

import comfy.model_management as mm
import folder_paths
import torch
import torch.nn.functional as F
from comfy_api.latest import io

from . import logic
from .v3_nodes import CATEGORY, Backbone, _report, _search_aliases

#: ComfyUI folder name of the reference indexes (``models/deepexemplar/indexes``; more folders
#: can be added under this key in extra_model_paths.yaml).
INDEX_FOLDER = "deepexemplar_indexes"
NO_INDEX = "none: use the candidates input"
#: Longest side of the top-k batch (the best reference itself keeps its size).
PREVIEW_SIDE = 1024
_INDEX_CACHE: dict[tuple, object] = {}


def register_index_folder() -> None:
    """Register ``models/deepexemplar/indexes`` (entries from extra_model_paths.yaml are kept)."""
    folder_paths.add_model_folder_path(
        INDEX_FOLDER, os.path.join(folder_paths.models_dir, logic.WEIGHTS_FOLDER, "indexes"))


def index_options(folders: list[str]) -> list[str]:
    """:data:`NO_INDEX` then the index folders (holding ``manifest.json``) found in ``folders``,
    one or two levels deep, as paths relative to their folder."""
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
    return [NO_INDEX, *sorted(found)]


def resolve_index(choice: str, folders: list[str]) -> str | None:
    """Full path of the index ``choice`` (the first folder that holds it), else None."""
    for base in folders:
        path = os.path.join(base, choice)
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


def _load_index(path: str, describer, node: str):
    from deepexemplar_core.recommend import Index, IndexError_

    manifest = os.path.join(path, "manifest.json")
    key = (path, os.stat(manifest).st_mtime_ns, describer.family, describer.weights_sha256)
    if key not in _INDEX_CACHE:
        try:
            _INDEX_CACHE.clear()
            _INDEX_CACHE[key] = Index.load(path, describer)
        except IndexError_ as err:
            raise logic.NodeInputError(node, str(err), "connect the backbone the index was built "
                                       "with (Load Gray VGG Backbone) or rebuild the index with "
                                       "`deepexemplar index ... --rebuild`.") from err
    return _INDEX_CACHE[key]


def _read_rgb(path: Path) -> torch.Tensor:
    from deepexemplar_core import read_image

    return read_image(path).rgb().float()


class RecommendReference(io.ComfyNode):
    """Rank colour candidates (a batch or an index) as references for a gray target."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        register_index_folder()
        return io.Schema(
            node_id="DeepExemplar_RecommendReference",
            display_name="Exemplar Colorization: Recommend Reference",
            category=CATEGORY,
            **_search_aliases("RecommendReference"),
            description="Picks the colour photos whose content and luminance best match the "
                        "target (global semantics, local correspondence, luminance histograms).",
            inputs=[
                io.Image.Input("target", tooltip="The gray photo to colorize (the first image "
                                                 "of the batch is used; only its luminance)."),
                Backbone.Input("backbone", tooltip="From Load Gray VGG Backbone; for an index, "
                                                   "the backbone it was built with."),
                io.Combo.Input(
                    "index", options=index_options(folder_paths.get_folder_paths(INDEX_FOLDER)),
                    default=NO_INDEX,
                    tooltip="A reference index built with `deepexemplar index FOLDER -o "
                            "models/deepexemplar/indexes/NAME` (folders added under "
                            f"'{INDEX_FOLDER}' in extra_model_paths.yaml are listed too). "
                            "'none' ranks the candidates input instead."),
                io.Int.Input("k", default=5, min=1, max=64,
                             tooltip="How many references to return, best first."),
                io.Float.Input("beta", default=0.25, min=0.0, max=4.0, step=0.05,
                               tooltip="Weight of the luminance-statistics term (0.25 = the "
                                       "authors'; 0 = content only)."),
                io.Boolean.Input("restrict_class", default=True,
                                 tooltip="Search only photos of the target's recognised class "
                                         "when it has at least max(k, 5) of them."),
                io.Image.Input("candidates", optional=True,
                               tooltip="Colour photos to choose from (an IMAGE batch); used "
                                       "when index is 'none'. Gray ones are never chosen."),
            ],
            outputs=[
                io.Image.Output(display_name="reference",
                                tooltip="The best reference, at its own size."),
                io.Image.Output(display_name="top_k",
                                tooltip="The k best, letterboxed to the best one's size (at "
                                        f"most {PREVIEW_SIDE} px on the longer side)."),
                io.String.Output(display_name="scores",
                                 tooltip="One line per reference: score, global, local and "
                                         "histogram terms, class match, file or batch position."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def fingerprint_inputs(cls, target, backbone, index, k, beta, restrict_class,
                           candidates=None):
        path = resolve_index(index, folder_paths.get_folder_paths(INDEX_FOLDER))
        return (index, logic.file_fingerprint(None if path is None else
                                              os.path.join(path, "manifest.json")))

    @classmethod
    def execute(cls, target, backbone, index, k, beta, restrict_class,
                candidates=None) -> io.NodeOutput:
        from deepexemplar_core.recommend import as_describer, recommend, recommend_from_images

        node = "RecommendReference"
        target_t = logic.image_to_core(target, "target", node)[:1].cpu()
        if backbone.patcher is not None:
            mm.load_models_gpu([backbone.patcher])
        describer = as_describer(backbone)
        report = _report(cls.hidden.unique_id)
        if index != NO_INDEX:
            path = resolve_index(index, folder_paths.get_folder_paths(INDEX_FOLDER))
            if path is None:
                raise logic.NodeInputError(node, f"the index '{index}' is no longer there.",
                                           "pick another entry (refresh the list).")
            loaded = _load_index(path, describer, node)
            with logic.core_errors(node):
                found = recommend(loaded, target_t[0], k=k, beta=beta,
                                  restrict_class=restrict_class)
            images = [_read_rgb(item.path) for item in found]
            names = [str(item.path) for item in found]
        else:
            if candidates is None:
                raise logic.NodeInputError(node, "no candidates: 'index' is 'none' and nothing "
                                           "is connected to 'candidates'.",
                                           "connect an IMAGE batch of colour photos or pick an "
                                           "index.")
            pool = logic.image_to_core(candidates, "candidates", node).cpu()
            if pool.shape[1] == 1:
                pool = pool.expand(-1, 3, -1, -1)
            with logic.core_errors(node):
                found = recommend_from_images(target_t[0], pool, k=k, beta=beta,
                                              restrict_class=restrict_class, backbone=describer,
                                              progress=report)
            images = [pool[item.row] for item in found]
            names = [f"candidate {item.row}" for item in found]
        if not found:
            raise logic.NodeInputError(node, "no colour candidate to recommend (all are gray "
                                       "or excluded).", "give colour photos.")
        best = images[0]
        out = mm.intermediate_device()
        top = letterbox(images, *preview_size(int(best.shape[1]), int(best.shape[2])))
        return io.NodeOutput(
            logic.images_to_comfy([best], out),
            top.movedim(1, -1).to(out),
            score_text(found, names),
        )


NODES: list[type[io.ComfyNode]] = [RecommendReference]
