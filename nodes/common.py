"""What every node module of the pack shares: io types, category, search words, progress, memory.

The three node modules (:mod:`.v3_nodes`, :mod:`.recommend_nodes`, :mod:`.video_nodes`) import
this one and nothing of each other; only the extension in :mod:`.v3_nodes` lists them all.
Needs ComfyUI.
"""

from __future__ import annotations

import dataclasses

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import torch
from comfy_api.latest import io

from . import logic

CATEGORY = "image/colorization"

Backbone = io.Custom("DEEPEXEMPLAR_BACKBONE")
ColorNet = io.Custom("DEEPEXEMPLAR_COLORNET")
Correspondence = io.Custom("DEEPEXEMPLAR_CORRESPONDENCE")
SimilarityType = io.Custom("DEEPEXEMPLAR_SIMILARITY")

#: Words users type in the node search (issue 9, item 15), per node, besides the display name.
SEARCH_ALIASES = {
    "LoadGrayVGG": ["colorization", "colorize", "exemplar", "reference", "vgg", "backbone",
                    "deep exemplar"],
    "LoadColorNet": ["colorization", "colorize", "exemplar", "reference", "colornet",
                     "deep exemplar"],
    "DenseMatch": ["colorization", "colorize", "exemplar", "reference", "correspondence",
                   "patchmatch", "deep exemplar"],
    "SimilarityMaps": ["colorization", "colorize", "exemplar", "reference", "confidence",
                       "warp", "deep exemplar"],
    "ExemplarColorize": ["colorization", "colorize", "exemplar", "reference", "recolor",
                         "color transfer", "deep exemplar"],
    "RecommendReference": ["colorization", "colorize", "exemplar", "reference", "retrieval",
                           "recommend", "automatic", "deep exemplar"],
    "VideoTemporalSmooth": ["colorization", "colorize", "exemplar", "reference", "video",
                            "flicker", "temporal", "deep exemplar"],
}


def search_aliases(node: str) -> dict[str, list[str]]:
    """``{"search_aliases": [...]}`` where this ComfyUI's ``io.Schema`` has that field (added to
    ComfyUI in January 2026, searched by newer frontends), else ``{}``. Older versions search
    only the node id and display name, which is why every display name starts with
    "Exemplar Colorization"."""
    if "search_aliases" in {f.name for f in dataclasses.fields(io.Schema)}:
        return {"search_aliases": list(SEARCH_ALIASES[node])}
    return {}


def progress_relay(node_id: str | None) -> logic.Report:
    """A progress callback that drives a ProgressBar and honours ComfyUI's Cancel button."""
    bar = comfy.utils.ProgressBar(1000, node_id=node_id)

    def report(done: int, total: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        bar.update_absolute(round(1000 * done / max(total, 1)), 1000)

    return report


#: Ids of the nodes whose last run showed notes in the page (:func:`show_notes` blanks them).
_NOTED: set[str] = set()


def show_notes(node_id: str | None, notes: list[str]) -> None:
    """Show sentences about the run on the node in the page (ComfyUI's text preview under the
    node, as core nodes show theirs), e.g. inputs that were left out while the rest of the work
    was done; they are in the console's log too.

    A run without notes blanks what an earlier run of that node showed (the page keeps a text
    preview until it gets another, and ignores an empty one); nothing is sent otherwise, or
    without a server.
    """
    if node_id is None or not (notes or node_id in _NOTED):
        return
    from server import PromptServer  # ComfyUI's; imported here, where a server runs

    server = getattr(PromptServer, "instance", None)
    if server is None:
        return
    server.send_progress_text("\n".join(notes) or " ", node_id)
    if notes:
        _NOTED.add(node_id)
    else:
        _NOTED.discard(node_id)


def patcher(module: torch.nn.Module) -> object:
    """Wrap a network so ComfyUI's memory manager can load and evict it (None if no weights)."""
    if next(module.parameters(), None) is None:
        return None
    return comfy.model_patcher.ModelPatcher(
        module, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())


def load_to_device(*networks: object) -> None:
    """Have ComfyUI's memory manager load the networks' patchers (those that have weights)."""
    patchers = [p for p in (getattr(n, "patcher", None) for n in networks) if p is not None]
    if patchers:
        mm.load_models_gpu(patchers)
