"""The ComfyUI V3 nodes of the pack: thin wrappers around :mod:`nodes.logic`.

Each ``execute`` converts ComfyUI tensors, asks ComfyUI for devices, memory and progress, and
calls a plain function; no algorithm lives here. Node ids (``DeepExemplar_<ClassName>``) and
input names are frozen: saved workflows refer to them.
"""

from __future__ import annotations

import logging
import os
import shutil

import comfy.model_management as mm
import folder_paths
from comfy_api.latest import ComfyExtension, io
from typing_extensions import override

from . import logic
from .common import (
    CATEGORY,
    Backbone,
    ColorNet,
    Correspondence,
    SimilarityType,
    load_to_device,
    patcher,
    progress_relay,
    search_aliases,
    show_notes,
)
from .recommend_nodes import NODES as RECOMMEND_NODES
from .video_nodes import NODES as VIDEO_NODES

SIZE_TOOLTIP = ("Working short side in pixels (floored to a multiple of 8; above 256, never more "
                "than the image's own short side). The authors' models were trained at 256; "
                "larger is slower and finer. The output keeps the input size.")


def register_weights_folder() -> None:
    """Register ``models/deepexemplar`` with ComfyUI (extra_model_paths.yaml entries are kept)
    and create it, so that users find where converted weights go; a read-only models folder
    only logs a warning."""
    folder = os.path.join(folder_paths.models_dir, logic.WEIGHTS_FOLDER)
    folder_paths.add_model_folder_path(logic.WEIGHTS_FOLDER, folder)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        logging.getLogger(__name__).warning(
            "DeepExemplar: could not create %s (%s); create it by hand for converted weights.",
            folder, err)


def _weights_files() -> list[str]:
    return folder_paths.get_filename_list(logic.WEIGHTS_FOLDER)


def _network_of(name: str) -> str:
    """What the weights file ``name`` holds (per its manifest, else its tensor names)."""
    path = folder_paths.get_full_path(logic.WEIGHTS_FOLDER, name)
    return logic.weights_network(path) if path else ""


def _weights_path(choice: str, builtins: tuple[str, ...]) -> str | None:
    if choice in builtins:
        return None
    return folder_paths.get_full_path(logic.WEIGHTS_FOLDER, choice)


def _models(backbone, colornet, node: str):
    """Load the networks where ComfyUI wants them and return the core ``Models``."""
    load_to_device(backbone, colornet)
    return logic.assemble_models(backbone, colornet, mm.get_torch_device(), node)


def _weights_inputs(builtins: tuple[str, ...], what: str, network: str) -> list[io.Input]:
    return [
        io.Combo.Input(
            "weights", options=logic.weight_options(_weights_files(), builtins, _network_of,
                                                    network),
            default=builtins[0],
            tooltip=f"{what}. Built-in entries need no file; other entries are the {network} "
                    f".safetensors files in models/{logic.WEIGHTS_FOLDER}/ (or folders added "
                    "with extra_model_paths.yaml), as their manifest or tensor names say."),
        io.Boolean.Input("allow_download", default=False, tooltip=logic.ALLOW_DOWNLOAD_TOOLTIP),
    ]


class _WeightsLoader(io.ComfyNode):
    """Shared part of the two loaders: re-run when the chosen file changes on disk."""

    BUILTINS: tuple[str, ...] = ()

    @classmethod
    def fingerprint_inputs(cls, weights, allow_download):
        path = _weights_path(weights, cls.BUILTINS)
        return (weights, allow_download, logic.file_fingerprint(path))


class LoadGrayVGG(_WeightsLoader):
    """Load the feature backbone: the authors' gray VGG19-BN or the built-in lite one."""

    BUILTINS = (logic.BUILTIN_LITE, logic.PAPER_BACKBONE_AUTO)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DeepExemplar_LoadGrayVGG",
            **search_aliases("LoadGrayVGG"),
            display_name="Exemplar Colorization: Load Backbone",
            category=CATEGORY,
            description="Deep exemplar-based colorization, step 1: loads the feature network "
                        "that compares the gray target with the colour reference photo: the "
                        "built-in lite EfficientNet-Lite0 (the default, no file needed) or the "
                        "authors' gray VGG19-BN (a converted file).",
            inputs=_weights_inputs(cls.BUILTINS, "Backbone weights",
                                   logic.LOADER_NETWORKS["LoadGrayVGG"]),
            outputs=[Backbone.Output(
                display_name="backbone",
                tooltip="Feature backbone for DenseMatch and ExemplarColorize.")],
        )

    @classmethod
    def execute(cls, weights, allow_download) -> io.NodeOutput:
        path = _selected_path("LoadGrayVGG", weights, cls.BUILTINS)
        backbone = logic.load_backbone(weights, path, allow_download=allow_download,
                                       search_dirs=folder_paths.get_folder_paths(logic.WEIGHTS_FOLDER))
        backbone.patcher = patcher(backbone)
        return io.NodeOutput(backbone)


def _selected_path(node: str, weights: str, builtins: tuple[str, ...]) -> str | None:
    """Path of the chosen weights file (``None`` for a built-in entry); a vanished file is an
    error that names the node and the fix."""
    path = _weights_path(weights, builtins)
    if weights not in builtins and path is None:
        raise logic.NodeInputError(node, f"the file '{weights}' is no longer in "
                                   f"models/{logic.WEIGHTS_FOLDER}/.",
                                   "put it back or pick another entry (refresh the list).")
    return path


class LoadColorNet(_WeightsLoader):
    """Load the colorization network, or choose the weights-free colorizer."""

    BUILTINS = (logic.NO_COLORNET, logic.PAPER_COLORNET_AUTO)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DeepExemplar_LoadColorNet",
            **search_aliases("LoadColorNet"),
            display_name="Exemplar Colorization: Load Colorization Network",
            category=CATEGORY,
            description="Deep exemplar-based colorization: loads the network that predicts "
                        "the target's colours from the warped reference photo; 'none' is the "
                        "weights-free colorizer that keeps confident reference colours and "
                        "propagates them.",
            inputs=_weights_inputs(cls.BUILTINS, "Colorization network weights",
                                   logic.LOADER_NETWORKS["LoadColorNet"]),
            outputs=[ColorNet.Output(display_name="colornet",
                                     tooltip="Colorizer for ExemplarColorize.")],
        )

    @classmethod
    def execute(cls, weights, allow_download) -> io.NodeOutput:
        path = _selected_path("LoadColorNet", weights, cls.BUILTINS)
        colorizer = logic.load_colornet(weights, path, allow_download=allow_download,
                                        search_dirs=folder_paths.get_folder_paths(logic.WEIGHTS_FOLDER))
        colorizer.patcher = patcher(colorizer)
        return io.NodeOutput(colorizer)


def _image_inputs() -> list[io.Input]:
    return [
        io.Image.Input("target", tooltip="Gray photo(s) or video frames to colorize (an IMAGE "
                                         "batch; colour inputs are reduced to their luminance)."),
        io.Image.Input("reference", tooltip="The colour photo whose colours are transferred "
                                            "(any size), or a batch of several: each pixel "
                                            "takes the one that matches it best."),
        Backbone.Input("backbone", tooltip="From Load Backbone."),
    ]


class DenseMatch(io.ComfyNode):
    """Bidirectional dense correspondence between the targets and the reference."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DeepExemplar_DenseMatch",
            **search_aliases("DenseMatch"),
            display_name="Exemplar Colorization: Dense Match",
            category=CATEGORY,
            description="Deep exemplar-based colorization: finds, for every pixel of the gray "
                        "target, the matching pixel of the colour reference photo (and back) "
                        "with deep features, coarse to fine; with a batch of references, each "
                        "one's match. Optional: Colorize computes it itself; connect it to look "
                        "at it or to reuse it.",
            inputs=_image_inputs() + [
                io.Int.Input("size", default=256, min=logic.MIN_SIDE, max=logic.MAX_SIZE, step=8,
                             tooltip=SIZE_TOOLTIP),
                io.Mask.Input("regions", optional=True,
                              tooltip="Optional: one mask per reference, in the batch's order, "
                                      "drawn on the target (white = colour here with that "
                                      "reference). The correspondence keeps them: Colorize "
                                      "fuses its references with them.")],
            outputs=[Correspondence.Output(
                display_name="correspondence",
                tooltip="Fields for SimilarityMaps / ExemplarColorize.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, target, reference, backbone, size, regions=None) -> io.NodeOutput:
        node = "DenseMatch"
        target_t = logic.image_to_core(target, "target", node)
        reference_t = logic.reference_to_core(reference, node)
        notes = []
        masks = logic.regions_to_core(regions, reference_t.shape[0], node,
                                      tuple(target_t.shape[-2:]), notes)
        config = logic.make_config(node, size, frames=target_t.shape[0])
        models = _models(backbone, None, node)
        match = logic.run_match(models, target_t, reference_t, config, node,
                                progress_relay(cls.hidden.unique_id), regions=masks)
        match = logic.move_to(match, mm.intermediate_device())
        show_notes(cls.hidden.unique_id, notes + logic.left_out_notes(match))
        return io.NodeOutput(logic.MatchHandle(match, backbone))


class SimilarityMaps(io.ComfyNode):
    """The ten similarity maps, the warped reference and the confidence of a correspondence."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DeepExemplar_SimilarityMaps",
            **search_aliases("SimilarityMaps"),
            display_name="Exemplar Colorization: Similarity Maps",
            category=CATEGORY,
            description="Deep exemplar-based colorization: shows how well each target pixel "
                        "matches the reference photo (5 levels x 2 directions), the reference "
                        "colours warped onto the target, and their confidence; with several "
                        "references, the fused maps.",
            inputs=[Correspondence.Input("correspondence", tooltip="From Dense Match.")],
            outputs=[
                SimilarityType.Output(display_name="similarity",
                                      tooltip="For ExemplarColorize (reuses this work)."),
                io.Image.Output(display_name="maps_preview",
                                tooltip="Top row T->R, bottom row R->T, coarse to fine; "
                                        "white = similar. Working resolution."),
                io.Image.Output(display_name="warped_reference",
                                tooltip="Reference colours carried onto the target (working "
                                        "resolution)."),
                io.Mask.Output(display_name="confidence",
                               tooltip="How much the warped colour can be trusted, 0..1, at the "
                                       "target's size."),
                io.String.Output(display_name="report",
                                 tooltip="How many references, each one's share of the pixels "
                                         "and the mean confidence."),
            ],
        )

    @classmethod
    def execute(cls, correspondence) -> io.NodeOutput:
        node = "SimilarityMaps"
        models = _models(correspondence.backbone, None, node)
        mm.throw_exception_if_processing_interrupted()
        result = logic.run_similarity(models, correspondence.match, node)
        out = mm.intermediate_device()
        result = logic.move_to(result, out)
        return io.NodeOutput(
            logic.SimilarityHandle(result, correspondence),
            logic.similarity_grid(result).to(out),
            logic.warped_preview(result).to(out),
            logic.confidence_mask(result, correspondence.match.original_size).to(out),
            logic.similarity_report(result, correspondence.match),
        )


class ExemplarColorize(io.ComfyNode):
    """Colorize gray targets with a reference photo's colours."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DeepExemplar_ExemplarColorize",
            **search_aliases("ExemplarColorize"),
            display_name="Exemplar Colorization: Colorize",
            category=CATEGORY,
            description="Colorizes gray photos or video frames with the colours of one or more "
                        "reference (exemplar) photos: Deep Exemplar-based Colorization, He et "
                        "al. 2018. With several, each pixel takes the reference that matches it "
                        "best, or the one whose region covers it. The output keeps the input "
                        "size and count.",
            inputs=_image_inputs() + [
                ColorNet.Input("colornet", tooltip="From Load Colorization Network."),
                io.Float.Input("strength", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Colour strength: 1 = as predicted, 0 = gray (disabled), "
                                       ">1 more saturated."),
                io.Int.Input("size", default=256, min=logic.MIN_SIDE, max=logic.MAX_SIZE, step=8,
                             tooltip=SIZE_TOOLTIP),
                io.Combo.Input("upsample", options=["guided", "bicubic"], default="guided",
                               tooltip="How colour is brought to full size: 'guided' follows the "
                                       "target's edges; 'bicubic' is the authors' choice."),
                Correspondence.Input("correspondence", optional=True,
                                     tooltip="Optional: reuse a Dense Match of the same targets "
                                             "(same size setting)."),
                SimilarityType.Input("similarity", optional=True,
                                     tooltip="Optional: reuse Similarity Maps of the same "
                                             "correspondence."),
                io.Mask.Input("regions", optional=True,
                              tooltip="Optional: one mask per reference, in the batch's order, "
                                      "drawn on the target (white = colour here with that "
                                      "reference; it colours nothing outside). References "
                                      "without a mask choose automatically."),
                io.String.Input("keyframes", optional=True, force_input=True,
                                tooltip="Optional, for a video's frames: which references of "
                                        "the batch colour which frames, as FRAME=REFERENCE "
                                        "entries (frames counted from 0, references numbered "
                                        "from 1 in the batch's order), e.g. '0=1,120=2,120=3': "
                                        "from frame 120 on, references 2 and 3 together. "
                                        "Connect a String node. Unset: every frame chooses per "
                                        "pixel among all references."),
            ],
            outputs=[io.Image.Output(display_name="image",
                                     tooltip="Colorized images, same size and count as 'target'."),
                     io.Image.Output(display_name="choice",
                                     tooltip="Which reference coloured each pixel: red = the "
                                             "first, green = the second, blue = the third, "
                                             "yellow, purple, cyan, orange, gray.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, target, reference, backbone, colornet, strength, size, upsample,
                correspondence=None, similarity=None, regions=None,
                keyframes=None) -> io.NodeOutput:
        node = "ExemplarColorize"
        target_t = logic.image_to_core(target, "target", node)
        reference_t = logic.reference_to_core(reference, node)
        notes = []
        masks = logic.regions_to_core(regions, reference_t.shape[0], node,
                                      tuple(target_t.shape[-2:]), notes)
        plan = logic.keyframe_plan(keyframes, target_t.shape[0], reference_t.shape[0], node,
                                   notes)
        config = logic.make_config(node, size, strength, upsample, frames=target_t.shape[0])
        models = _models(backbone, colornet, node)
        out, choices = mm.intermediate_device(), []
        images = logic.run_colorize(models, target_t, reference_t, config, node,
                                    match=correspondence, similarity=similarity,
                                    report=progress_relay(cls.hidden.unique_id),
                                    output_device=out, regions=masks, choices=choices,
                                    plan=plan, notes=notes)
        show_notes(cls.hidden.unique_id, notes)
        mm.soft_empty_cache()
        return io.NodeOutput(logic.images_to_comfy(images, out),
                             logic.images_to_comfy(choices, out))


NODES: list[type[io.ComfyNode]] = [
    LoadGrayVGG, LoadColorNet, DenseMatch, SimilarityMaps, ExemplarColorize]


class DeepExemplarExtension(ComfyExtension):
    """Registers the pack's nodes and its weights folder."""

    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES) + list(RECOMMEND_NODES) + list(VIDEO_NODES)


def provide_example_images() -> None:
    """Put the workflows' example images into ComfyUI's input folder when they are missing.

    The bundled workflows load ``deepexemplar_*.jpg`` (and one ``.png`` whose alpha holds a
    drawn region) with core ``LoadImage``, which reads from ``ComfyUI/input``; copying the eight
    small files (about 170 KB, never overwriting a file of the same name) lets every workflow
    run on a fresh install. A read-only input folder only logs a warning: the user can still
    copy or upload the files.
    """
    source = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "workflows", "images")
    if not os.path.isdir(source):
        return
    target = folder_paths.get_input_directory()
    for name in sorted(os.listdir(source)):
        if not (name.startswith("deepexemplar_") and name.endswith((".jpg", ".png"))):
            continue
        destination = os.path.join(target, name)
        if os.path.exists(destination):
            continue
        try:
            os.makedirs(target, exist_ok=True)
            shutil.copyfile(os.path.join(source, name), destination)
        except OSError as err:
            logging.getLogger(__name__).warning(
                "DeepExemplar: could not copy the example image %s to %s (%s); copy it by hand "
                "to run the bundled workflows", name, target, err)


def provide_example_clip() -> None:
    """Generate the video workflows' gray example clip in ComfyUI's input folder when missing.

    No clip of a clear licence ships with the pack: two seconds panning across the CC0 example
    photo are encoded instead (about 0.3 s, once). A failure only logs a warning.
    """
    from . import video_logic

    target = os.path.join(folder_paths.get_input_directory(), video_logic.EXAMPLE_CLIP)
    photo = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "workflows", "images", "deepexemplar_target_cat.jpg")
    if os.path.exists(target) or not os.path.isfile(photo):
        return
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        video_logic.make_example_clip(photo, target)
    except (OSError, ValueError, ImportError) as err:
        logging.getLogger(__name__).warning(
            "DeepExemplar: could not generate the example clip %s (%s); load your own video in "
            "the video workflows", target, err)


async def comfy_entrypoint() -> ComfyExtension:
    """ComfyUI's V3 entry point for this module."""
    register_weights_folder()
    provide_example_images()
    provide_example_clip()
    return DeepExemplarExtension()
