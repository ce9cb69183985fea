"""``RecommendReference``: pick colour references for a gray target (paper section 4).

Candidates come either from an IMAGE batch or from a reference index built with
``deepexemplar index FOLDER -o models/deepexemplar/indexes/NAME``. The plain logic (listing and
caching indexes, the recommendation itself, the layout of its results) lives in
:mod:`.recommend_logic`; ``execute`` converts layouts and makes one call.
"""

from __future__ import annotations

import os

import comfy.model_management as mm
import folder_paths
from comfy_api.latest import io

from . import logic
from .common import (
    CATEGORY,
    Backbone,
    load_to_device,
    progress_relay,
    search_aliases,
    show_notes,
)
from .recommend_logic import (
    NO_INDEX,
    PREVIEW_SIDE,
    index_options,
    recommend_per_shot,
    resolve_index,
)

#: ComfyUI folder name of the reference indexes (``models/deepexemplar/indexes``; more folders
#: can be added under this key in extra_model_paths.yaml).
INDEX_FOLDER = "deepexemplar_indexes"


def register_index_folder() -> None:
    """Register ``models/deepexemplar/indexes`` (entries from extra_model_paths.yaml are kept)."""
    folder_paths.add_model_folder_path(
        INDEX_FOLDER, os.path.join(folder_paths.models_dir, logic.WEIGHTS_FOLDER, "indexes"))


class RecommendReference(io.ComfyNode):
    """Rank colour candidates (a batch or an index) as references for a gray target."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        register_index_folder()
        return io.Schema(
            node_id="DeepExemplar_RecommendReference",
            display_name="Exemplar Colorization: Recommend Reference",
            category=CATEGORY,
            **search_aliases("RecommendReference"),
            description="Picks the colour photos whose content and luminance best match the "
                        "target (global semantics, local correspondence, luminance histograms).",
            inputs=[
                io.Image.Input("target", tooltip="The gray photo to colorize, or a clip's frames: "
                                                 "each shot (the first frame and each frame "
                                                 "after a scene cut) picks its own references "
                                                 "(only the luminance is used)."),
                Backbone.Input("backbone", tooltip="From Load Backbone; for an index, "
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
                                tooltip="The k best (of a clip: every shot's k best, each "
                                        "once), letterboxed to the best one's size (at "
                                        f"most {PREVIEW_SIDE} px on the longer side)."),
                io.String.Output(display_name="scores",
                                 tooltip="One line per reference: score, global, local and "
                                         "histogram terms, class match, file or batch position."),
                io.String.Output(display_name="keyframes",
                                 tooltip="Which of top_k colour which frames ('0=1,0=2,120=3': "
                                         "each shot its own picks); connect it to Colorize's "
                                         "keyframes with top_k as its reference."),
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
        from deepexemplar_core.recommend import as_describer

        node = "RecommendReference"
        frames = logic.image_to_core(target, "target", node).cpu()
        pool = None if candidates is None else logic.image_to_core(candidates, "candidates",
                                                                  node).cpu()
        load_to_device(backbone)
        out, notes = mm.intermediate_device(), []
        found, keyframes = recommend_per_shot(
            frames, as_describer(backbone), index_path=_index_path(index, node),
            candidates=pool, k=k, beta=beta, restrict_class=restrict_class, node=node,
            report=progress_relay(cls.hidden.unique_id), notes=notes)
        show_notes(cls.hidden.unique_id, notes)
        return io.NodeOutput(logic.images_to_comfy([found.best], out),
                             found.top.movedim(1, -1).to(out), found.scores, keyframes)


def _index_path(index: str, node: str) -> str | None:
    """Full path of the chosen index (``None`` for :data:`NO_INDEX`); a vanished one is an
    error that names the node and the fix."""
    if index == NO_INDEX:
        return None
    path = resolve_index(index, folder_paths.get_folder_paths(INDEX_FOLDER))
    if path is None:
        raise logic.NodeInputError(node, f"the index '{index}' is no longer there.",
                                   "pick another entry (refresh the list).")
    return path


NODES: list[type[io.ComfyNode]] = [RecommendReference]
