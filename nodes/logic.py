"""Plain-function logic behind the ComfyUI nodes; imports nothing from ComfyUI.

The V3 node classes in :mod:`nodes.v3_nodes` only read widgets, ask ComfyUI for devices and
progress bars, and call the functions here. Everything here runs (and is tested) without ComfyUI.

Layouts: ComfyUI ``IMAGE`` is ``(B, H, W, C)`` float32 in [0, 1] channels-last, ``MASK`` is
``(B, H, W)`` float32 in [0, 1]; the core is channels-first ``(B, C, H, W)``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from deepexemplar_core.pipeline import (
    MIN_SIDE,
    ColorizeConfig,
    MatchResult,
    Models,
    SimilarityResult,
    colorize,
    compute_similarity,
    load_models,
    match_images,
)
from deepexemplar_core.weights import WeightsNotFoundError, configured_repo_id, weights_filename

#: Name of the weights folder registered with ComfyUI's ``folder_paths`` (``models/deepexemplar``).
WEIGHTS_FOLDER = "deepexemplar"
#: File types offered by the loaders (the core reads safetensors only).
WEIGHTS_SUFFIXES = (".safetensors",)

BUILTIN_LITE = "lite: built-in EfficientNet-Lite0 (no download)"
PAPER_BACKBONE_AUTO = "paper: gray VGG19-BN (find or download)"
NO_COLORNET = "none: weights-free colorizer"
PAPER_COLORNET_AUTO = "paper: ExampleColorNet (find or download)"

#: Targets colorized per core call in :func:`run_colorize` (bounds memory on long frame batches).
FRAMES_PER_CHUNK = 8

#: A reference whose channels differ by less than this everywhere is treated as gray.
GRAY_TOLERANCE = 1.0 / 255.0

Report = Callable[[int, int], None]


class NodeInputError(ValueError):
    """A problem with a node's inputs, phrased for ComfyUI users: node, problem and fix."""

    def __init__(self, node: str, problem: str, fix: str = "") -> None:
        message = f"DeepExemplar {node}: {problem}"
        if fix:
            message += f" Fix: {fix}"
        super().__init__(message)
        self.node = node


@dataclass(frozen=True)
class BackboneHandle:
    """What ``LoadGrayVGG`` outputs (custom type ``DEEPEXEMPLAR_BACKBONE``).

    Attributes:
        family: ``"paper"`` (gray VGG19-BN) or ``"lite"`` (EfficientNet-Lite0).
        backbone: the core backbone (a ``torch.nn.Module`` for both families).
        provenance: weights file, sha256 and version strings from the core.
        choice: the loader option the user picked.
        patcher: ComfyUI's model wrapper for memory management (``None`` outside ComfyUI).
    """

    family: str
    backbone: Any
    provenance: dict[str, str]
    choice: str
    patcher: Any = None


@dataclass(frozen=True)
class ColorNetHandle:
    """What ``LoadColorNet`` outputs (custom type ``DEEPEXEMPLAR_COLORNET``).

    Attributes:
        colorizer: the core colorizer (the authors' network or the weights-free propagation).
        needs_family: backbone family the colorizer was trained with (``"paper"``), or ``None``.
        provenance: weights file and sha256 strings from the core.
        choice: the loader option the user picked.
        patcher: ComfyUI's model wrapper for memory management (``None`` outside ComfyUI or for
            the weights-free colorizer).
    """

    colorizer: Any
    needs_family: str | None
    provenance: dict[str, str]
    choice: str
    patcher: Any = None


@dataclass(frozen=True)
class MatchHandle:
    """What ``DenseMatch`` outputs (custom type ``DEEPEXEMPLAR_CORRESPONDENCE``).

    Attributes:
        match: the core result (fields, pyramids, working-resolution images).
        size: the working short side it was computed at.
        backbone: the backbone that computed it (needed to rerun later stages on its device).
    """

    match: MatchResult
    size: int
    backbone: BackboneHandle


@dataclass(frozen=True)
class SimilarityHandle:
    """What ``SimilarityMaps`` outputs (custom type ``DEEPEXEMPLAR_SIMILARITY``).

    Attributes:
        result: the ten maps, the warped reference colours and the confidence.
        source: the correspondence they were computed from.
    """

    result: SimilarityResult
    source: MatchHandle = field(repr=False)


# ----------------------------------------------------------------------------- images


def image_to_core(image: object, slot: str, node: str) -> torch.Tensor:
    """ComfyUI ``IMAGE`` -> core layout, with errors that name the node and the fix.

    Args:
        image: ``(B, H, W, C)`` (or ``(H, W, C)``) float in [0, 1], C = 1 or 3.
        slot: the input's name, used in messages.
        node: the node's name, used in messages.

    Returns:
        ``(B, C, H, W)`` float32 in [0, 1] on the input's device.

    Raises:
        NodeInputError: not a tensor, wrong rank, 4 channels (alpha), other channel counts,
            empty batch, or a side smaller than :data:`MIN_SIDE`.

    Example:
        >>> image_to_core(torch.rand(2, 40, 48, 3), "target", "DenseMatch").shape
        torch.Size([2, 3, 40, 48])
    """
    if not isinstance(image, torch.Tensor):
        raise NodeInputError(node, f"'{slot}' expected an IMAGE tensor, got "
                             f"{type(image).__name__}.",
                             f"connect an IMAGE output (e.g. Load Image) to '{slot}'.")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4:
        raise NodeInputError(node, f"'{slot}' expected an IMAGE (B, H, W, C), got shape "
                             f"{tuple(image.shape)}.", f"connect an IMAGE output to '{slot}'.")
    channels = image.shape[-1]
    if channels == 4:
        raise NodeInputError(node, f"'{slot}' has 4 channels (RGBA).",
                             "drop the alpha channel first, e.g. with the core node "
                             "'Split Image with Alpha', and connect its IMAGE output.")
    if channels not in (1, 3):
        raise NodeInputError(node, f"'{slot}' expected 1 or 3 channels (last axis), got "
                             f"{channels} (shape {tuple(image.shape)}).",
                             f"connect an RGB IMAGE to '{slot}'.")
    if image.shape[0] == 0:
        raise NodeInputError(node, f"'{slot}' is an empty batch.", "pass at least one image.")
    height, width = int(image.shape[1]), int(image.shape[2])
    if min(height, width) < MIN_SIDE:
        raise NodeInputError(node, f"'{slot}' is {height}x{width}; the smallest side must be at "
                             f"least {MIN_SIDE} pixels.", "upscale the image first.")
    return image.movedim(-1, 1).float().clamp(0.0, 1.0)


def reference_to_core(image: object, node: str) -> torch.Tensor:
    """ComfyUI ``IMAGE`` holding one colour reference -> ``(1, 3, H, W)`` float32 in [0, 1].

    Raises:
        NodeInputError: a batch of several references, or a reference without colour (a gray
            photo in the reference slot, e.g. target and reference swapped).

    Example:
        >>> reference_to_core(torch.rand(1, 40, 48, 3), "DenseMatch").shape
        torch.Size([1, 3, 40, 48])
    """
    reference = image_to_core(image, "reference", node)
    if reference.shape[0] != 1:
        raise NodeInputError(node, f"'reference' is a batch of {reference.shape[0]} images; one "
                             "reference colours all targets.",
                             "select one image with the core node 'ImageFromBatch' (length 1).")
    if is_gray(reference):
        raise NodeInputError(node, "'reference' has no colour (it is a gray image).",
                             "connect a colour photo to 'reference' and the gray photo to "
                             "'target' (were they swapped?).")
    return reference


def is_gray(images: torch.Tensor, tolerance: float = GRAY_TOLERANCE) -> bool:
    """True when ``images: (B, C, H, W)`` has one channel or R, G and B agree within tolerance.

    >>> is_gray(torch.rand(1, 1, 8, 8).expand(1, 3, 8, 8)), is_gray(torch.rand(1, 3, 8, 8))
    (True, False)
    """
    if images.shape[1] == 1:
        return True
    spread = images.amax(dim=1) - images.amin(dim=1)
    return bool(spread.max() <= tolerance)


def images_to_comfy(images: Sequence[torch.Tensor], device: torch.device | str) -> torch.Tensor:
    """Core ``(3, H, W)`` images of one size -> ComfyUI ``IMAGE (B, H, W, 3)`` on ``device``.

    >>> images_to_comfy([torch.rand(3, 4, 5)] * 2, "cpu").shape
    torch.Size([2, 4, 5, 3])
    """
    return torch.stack(list(images)).movedim(1, -1).contiguous().to(device)


def similarity_grid(result: SimilarityResult) -> torch.Tensor:
    """The ten similarity maps as one gray preview per target.

    Row 0 holds sim_T->R, row 1 sim_R->T, columns the levels coarse to fine (the order the
    colour network consumes), each map clamped to [0, 1].

    Args:
        result: from the core's ``compute_similarity``.

    Returns:
        ``(B, 2 h, L w, 3)`` float32 in [0, 1] (ComfyUI IMAGE layout).
    """
    rows = []
    for maps in (result.similarity.sim_tr, result.similarity.sim_rt):
        batch, levels, height, width = maps.shape
        row = maps.permute(0, 2, 1, 3).reshape(batch, height, levels * width)
        rows.append(row)
    grid = torch.cat(rows, dim=1).float().clamp(0.0, 1.0)
    return grid.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()


def warped_preview(result: SimilarityResult) -> torch.Tensor:
    """Warped reference colours ``(B, 3, h, w) uint8`` -> IMAGE ``(B, h, w, 3)`` in [0, 1]."""
    return (result.warped_rgb8.float() / 255.0).movedim(1, -1).contiguous()


def confidence_mask(result: SimilarityResult, size: tuple[int, int]) -> torch.Tensor:
    """Confidence ``(B, 1, h, w)`` resized (bilinear) to the targets' ``size``: MASK ``(B, H, W)``.

    >>> from types import SimpleNamespace
    >>> confidence_mask(SimpleNamespace(confidence=torch.rand(2, 1, 8, 8)), (16, 12)).shape
    torch.Size([2, 16, 12])
    """
    conf = result.confidence.float()
    if tuple(conf.shape[-2:]) != tuple(size):
        conf = F.interpolate(conf, size=size, mode="bilinear", align_corners=False)
    return conf[:, 0].clamp(0.0, 1.0).contiguous()


# ----------------------------------------------------------------------------- weights


def weight_options(files: Iterable[str], builtins: Sequence[str]) -> list[str]:
    """Loader choices: the built-in options first, then the safetensors files found, sorted.

    >>> weight_options(["b.safetensors", "notes.txt", "a.safetensors"], [BUILTIN_LITE])[1:]
    ['a.safetensors', 'b.safetensors']
    """
    found = sorted(f for f in files if f.lower().endswith(WEIGHTS_SUFFIXES))
    return list(builtins) + [f for f in found if f not in builtins]


def file_fingerprint(path: str | None) -> tuple[str, int, int] | str:
    """``(path, size, mtime_ns)`` of a weights file, so replacing the file reloads it.

    >>> file_fingerprint(None)
    'builtin'
    """
    if path is None:
        return "builtin"
    try:
        stat = os.stat(path)
    except OSError:
        return f"missing:{path}"
    return (path, stat.st_size, stat.st_mtime_ns)


# --- missing weights: what the loaders tell the user (issue 9, item 13) ---------------------

#: The authors' original file for each paper network (what ``deepexemplar convert`` reads).
AUTHORS_FILES = {"gray_vgg": "vgg19_bn_gray_ft_iter_150000.caffemodel",
                 "colornet": "example_net.pth"}
#: Tooltip of the loaders' ``allow_download`` switch (says what it really does).
ALLOW_DOWNLOAD_TOOLTIP = (
    "Off (default): never touch the network. On: a 'paper:' entry whose file is not found "
    "locally is downloaded from the Hugging Face repository named by $DEEPEXEMPLAR_HF_REPO "
    "(or repo_id in ~/.config/deepexemplar/config.json). No repository is set by default and "
    "no converted weights are published, so without one this switch changes nothing: convert "
    "the authors' files with 'deepexemplar convert' into models/deepexemplar/ instead.")


def _node_phrasing(err: Exception) -> str:
    """The core's not-found message without its command-line advice (the node gives its own),
    ending with a line break."""
    lines, skipping = [], False
    for line in str(err).splitlines():
        if line.startswith("Provide the file with one of:"):
            skipping = True
            continue
        if skipping and line.startswith("  - "):
            continue
        skipping = False
        lines.append(line.replace("pass allow_download=True", "turn allow_download on"))
    return "\n".join(lines) + "\n"  # the node's " Fix: ..." starts on its own line


def missing_weights_fix(name: str, allow_download: bool, search_dirs: Sequence[str],
                        builtin: str) -> str:
    """The fix for missing paper weights, phrased for the loader nodes.

    Names the exact ``deepexemplar convert`` command into the first ``models/deepexemplar``
    folder and, for downloads, the setting that names the repository
    (``$DEEPEXEMPLAR_HF_REPO`` or ``repo_id`` in the config file) and the ``allow_download``
    switch, depending on what is already set.

    Args:
        name: ``"gray_vgg"`` or ``"colornet"``.
        allow_download: the node's switch.
        search_dirs: the ``models/deepexemplar`` folders ComfyUI knows (the first one is named).
        builtin: the built-in entry that needs no file.

    >>> "deepexemplar convert /path/to/example_net.pth" in missing_weights_fix(
    ...     "colornet", False, [], "none")
    True
    """
    filename = weights_filename(name)
    folder = search_dirs[0] if search_dirs else f"ComfyUI/models/{WEIGHTS_FOLDER}"
    convert = (f"put {filename} into models/{WEIGHTS_FOLDER}/ ({folder}): "
               f"convert the authors' {AUTHORS_FILES[name]} once with `deepexemplar convert "
               f"/path/to/{AUTHORS_FILES[name]} -o {folder}` (without the "
               "command, run `python -m deepexemplar_core convert ...` in the pack's folder "
               "with ComfyUI's Python; see docs/weights.md), then press R to refresh")
    repo = configured_repo_id()
    if not repo:
        download = ("or, to download instead, set $DEEPEXEMPLAR_HF_REPO (or \"repo_id\" in "
                    f"~/.config/deepexemplar/config.json) to a Hugging Face repository holding "
                    f"{filename}, restart ComfyUI and turn allow_download on")
    elif not allow_download:
        download = f"or turn allow_download on to download {filename} from {repo}"
    else:
        download = (f"or check that the Hugging Face repository {repo} (set by "
                    "$DEEPEXEMPLAR_HF_REPO or the config file) holds it and is reachable")
    return f"{convert}; {download}; or pick '{builtin}' (no file needed)."


def load_backbone(choice: str, path: str | None, *, allow_download: bool,
                  search_dirs: Sequence[str]) -> BackboneHandle:
    """Load the backbone the user picked in ``LoadGrayVGG`` (on the CPU).

    Args:
        choice: :data:`BUILTIN_LITE`, :data:`PAPER_BACKBONE_AUTO` or a file name.
        path: the full path of ``choice`` when it is a file, else ``None``.
        allow_download: let the core download missing paper weights from the Hub.
        search_dirs: the ``models/deepexemplar`` folders ComfyUI knows.

    Raises:
        NodeInputError: the weights are missing or are not gray VGG19-BN weights.
    """
    node = "LoadGrayVGG"
    try:
        if choice == BUILTIN_LITE:
            models = load_models("lite", colorizer="propagation", device="cpu")
        else:
            models = load_models("paper", colorizer="propagation", backbone_path=path,
                                 device="cpu", allow_download=allow_download,
                                 search_dirs=tuple(search_dirs))
    except WeightsNotFoundError as err:
        raise NodeInputError(node, f"cannot load '{choice}': {_node_phrasing(err)}",
                             missing_weights_fix("gray_vgg", allow_download, search_dirs,
                                                 BUILTIN_LITE)) from err
    except (ValueError, TypeError, OSError, KeyError, RuntimeError) as err:
        raise NodeInputError(node, f"cannot load '{choice}': {err}",
                             f"put the converted gray VGG19-BN .safetensors into "
                             f"models/{WEIGHTS_FOLDER}/ (see docs/comfyui.md) or pick "
                             f"'{BUILTIN_LITE}'.") from err
    provenance = {k: v for k, v in models.provenance.items() if not k.startswith("colorizer")}
    return BackboneHandle(models.family, models.backbone, provenance, choice)


def load_colornet(choice: str, path: str | None, *, allow_download: bool,
                  search_dirs: Sequence[str]) -> ColorNetHandle:
    """Load the colorizer the user picked in ``LoadColorNet`` (on the CPU).

    Args:
        choice: :data:`NO_COLORNET`, :data:`PAPER_COLORNET_AUTO` or a file name.
        path: the full path of ``choice`` when it is a file, else ``None``.
        allow_download: let the core download missing weights from the Hub.
        search_dirs: the ``models/deepexemplar`` folders ComfyUI knows.

    Raises:
        NodeInputError: the weights are missing or are not ExampleColorNet weights.
    """
    node = "LoadColorNet"
    try:
        if choice == NO_COLORNET:
            models = load_models("lite", colorizer="propagation", device="cpu")
        else:
            models = load_models("lite", colorizer="paper", colornet_path=path, device="cpu",
                                 allow_download=allow_download, search_dirs=tuple(search_dirs))
    except WeightsNotFoundError as err:
        raise NodeInputError(node, f"cannot load '{choice}': {_node_phrasing(err)}",
                             missing_weights_fix("colornet", allow_download, search_dirs,
                                                 NO_COLORNET)) from err
    except (ValueError, TypeError, OSError, KeyError, RuntimeError) as err:
        raise NodeInputError(node, f"cannot load '{choice}': {err}",
                             f"put the converted ExampleColorNet .safetensors into "
                             f"models/{WEIGHTS_FOLDER}/ (see docs/comfyui.md) or pick "
                             f"'{NO_COLORNET}'.") from err
    needs = None if choice == NO_COLORNET else "paper"
    provenance = {k: v for k, v in models.provenance.items()
                  if k.startswith("colornet") or k == "deepexemplar_version"}
    provenance["colorizer"] = models.colorizer.name
    return ColorNetHandle(models.colorizer, needs, provenance, choice)


def network_of(part: object) -> torch.nn.Module | None:
    """The ``torch.nn.Module`` holding a backbone's or colorizer's weights, if any.

    A part that is a module is returned itself; a wrapper exposing its network as ``net`` or
    ``model`` returns that; the weights-free colorizer returns ``None``.

    >>> network_of(torch.nn.Linear(1, 1)) is not None, network_of(object())
    (True, None)
    """
    if isinstance(part, torch.nn.Module):
        return part
    for name in ("net", "model"):
        inner = getattr(part, name, None)
        if isinstance(inner, torch.nn.Module):
            return inner
    return None


# ----------------------------------------------------------------------------- stages


def assemble_models(backbone: BackboneHandle, colornet: ColorNetHandle | None,
                    device: torch.device | str, node: str) -> Models:
    """Join the two loader outputs into the core's :class:`Models` on ``device``.

    The networks are expected to sit on ``device`` already (ComfyUI's memory manager moves
    them); without a ComfyUI patcher they are moved here.

    Raises:
        NodeInputError: the authors' colour network with the lite backbone (it was trained on
            gray VGG features and would give wrong colours).
    """
    if colornet is not None and colornet.needs_family not in (None, backbone.family):
        raise NodeInputError(node, f"the colour network '{colornet.choice}' was trained on "
                             f"{colornet.needs_family} features but the backbone is "
                             f"'{backbone.choice}'.",
                             "load the paper gray VGG19-BN in LoadGrayVGG, or pick "
                             f"'{NO_COLORNET}' in LoadColorNet.")
    if colornet is None:
        from deepexemplar_core.lite import PropagationColorizer

        colorizer = PropagationColorizer()
    else:
        colorizer = colornet.colorizer
    provenance = dict(backbone.provenance)
    if colornet is not None:
        provenance.update(colornet.provenance)
    models = Models(backbone.family, backbone.backbone, colorizer, torch.device(device), provenance)
    for part, handle in ((backbone.backbone, backbone), (colorizer, colornet)):
        network = network_of(part)
        if network is not None and getattr(handle, "patcher", None) is None:
            network.to(models.device)
    return models


def make_config(node: str, size: int, strength: float = 1.0,
                upsample: str = "guided") -> ColorizeConfig:
    """The core's :class:`ColorizeConfig` from widget values, errors phrased for the node."""
    try:
        return ColorizeConfig(size=int(size), upsample=upsample, strength=float(strength))
    except ValueError as err:
        raise NodeInputError(node, str(err), "change the widget to an allowed value.") from err


def run_match(models: Models, target: torch.Tensor, reference: torch.Tensor,
              config: ColorizeConfig, node: str, report: Report | None = None) -> MatchResult:
    """The core's ``match_images`` with errors phrased for the node.

    Args:
        models: from :func:`assemble_models`.
        target: ``(B, C, H, W)`` from :func:`image_to_core`.
        reference: ``(1, 3, Hr, Wr)`` from :func:`reference_to_core`.
        config: from :func:`make_config`.
        node: name used in messages.
        report: ``(done, total)`` callback after every pyramid level (may raise to interrupt).
    """
    with core_errors(node):
        return match_images(models, target.to(models.device), reference.to(models.device),
                            config, progress=report)


def run_similarity(models: Models, match: MatchResult, node: str) -> SimilarityResult:
    """The core's ``compute_similarity`` with errors phrased for the node."""
    with core_errors(node):
        return compute_similarity(models, move_tensors(match, models.device))


def frame_chunks(count: int, chunk: int) -> list[slice]:
    """Slices covering ``range(count)`` in pieces of at most ``chunk``.

    >>> frame_chunks(5, 2)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    return [slice(start, min(start + chunk, count)) for start in range(0, count, chunk)]


def run_colorize(models: Models, target: torch.Tensor, reference: torch.Tensor,
                 config: ColorizeConfig, node: str, *, match: MatchHandle | None = None,
                 similarity: SimilarityHandle | None = None,
                 report: Report | None = None) -> list[torch.Tensor]:
    """Colorize a batch of targets, chunk by chunk unless precomputed stages are given.

    Matching reports after every pyramid level, then similarity, colorization and upsampling
    report once each, so an interruption raised by ``report`` stops the run within one level.

    Args:
        models: from :func:`assemble_models`.
        target: ``(B, C, H, W)`` from :func:`image_to_core`.
        reference: ``(1, 3, Hr, Wr)`` from :func:`reference_to_core`.
        config: from :func:`make_config`.
        node: name used in messages.
        match: a ``DenseMatch`` output for these targets (one core call for the whole batch).
        similarity: a ``SimilarityMaps`` output; its correspondence is used when ``match`` is
            ``None``.
        report: ``(done, total)`` progress callback; it may raise to interrupt the run.

    Returns:
        One ``(3, H, W)`` float32 image in [0, 1] per target, at the input resolution, on
        ``models.device``.

    Raises:
        NodeInputError: precomputed stages from other targets, another size or another
            correspondence; any input the core refuses.
    """
    if similarity is not None:
        if match is not None and similarity.source is not match:
            raise NodeInputError(node, "'similarity' was computed from another correspondence "
                                 "than the one connected to 'correspondence'.",
                                 "connect the same DenseMatch output to SimilarityMaps and to "
                                 "this node, or disconnect one of them.")
        match = similarity.source
    if match is not None:
        check_precomputed(match, target, config, node)
        pieces = [slice(0, target.shape[0])]
    else:
        pieces = frame_chunks(target.shape[0], FRAMES_PER_CHUNK)
    reference = reference.to(models.device)
    images: list[torch.Tensor] = []
    for index, piece in enumerate(pieces):
        chunk = target[piece].to(models.device)
        if match is None:
            stage_match = run_match(models, chunk, reference, config, node,
                                    _sub_report(report, index, len(pieces), 0.0, 0.6))
            stage_similarity = run_similarity(models, stage_match, node)
        else:
            stage_match = move_tensors(match.match, models.device)
            stage_similarity = (run_similarity(models, stage_match, node) if similarity is None
                                else move_tensors(similarity.result, models.device))
        _tick(report, index, len(pieces), 0.8)
        with core_errors(node):
            result = colorize(chunk, reference, models, config, match=stage_match,
                              similarity=stage_similarity)
        _tick(report, index, len(pieces), 1.0)
        images.extend(result.images)
    return images


def check_precomputed(match: MatchHandle, target: torch.Tensor, config: ColorizeConfig,
                      node: str) -> None:
    """Refuse a correspondence computed for other targets or at another working size."""
    batch, size = int(target.shape[0]), (int(target.shape[-2]), int(target.shape[-1]))
    have_batch = int(match.match.target_l_work.shape[0])
    if have_batch != batch or tuple(match.match.original_size) != size:
        raise NodeInputError(node, f"the correspondence was computed for {have_batch} target(s) "
                             f"of {match.match.original_size[0]}x{match.match.original_size[1]}, "
                             f"but 'target' holds {batch} of {size[0]}x{size[1]}.",
                             "connect the same target images to DenseMatch and to this node.")
    if match.size != config.size:
        raise NodeInputError(node, f"the correspondence was computed at working size "
                             f"{match.size}, this node asks for {config.size}.",
                             "set the same 'size' on DenseMatch and on this node.")


def _sub_report(report: Report | None, index: int, count: int, start: float,
                end: float) -> Report | None:
    """Map one stage's ``(done, total)`` of chunk ``index`` onto a shared 0..1000 scale.

    The stage covers the fraction ``[start, end]`` of the chunk; the chunks share the scale
    equally.
    """
    if report is None:
        return None

    def relay(done: int, total: int) -> None:
        share = (index + start + (end - start) * done / max(total, 1)) / count
        report(round(1000 * share), 1000)

    return relay


def _tick(report: Report | None, index: int, count: int, reached: float) -> None:
    """Report that chunk ``index`` has reached the fraction ``reached`` of its work."""
    if report is not None:
        report(round(1000 * (index + reached) / count), 1000)


@contextmanager
def core_errors(node: str) -> Iterator[None]:
    """Re-raise the core's ``ValueError``/``TypeError`` as :class:`NodeInputError`.

    ComfyUI shows the message in its error dialog; prefixing the node name tells the user
    which node to fix. Other exceptions (ComfyUI's interruption, out of memory) pass unchanged.
    """
    try:
        yield
    except NodeInputError:
        raise
    except (ValueError, TypeError) as err:
        raise NodeInputError(node, str(err), "check this node's inputs.") from err


def move_tensors(value: Any, device: torch.device | str) -> Any:
    """A copy of ``value`` whose tensors live on ``device`` (dataclasses, tuples, lists, dicts).

    Objects that are not containers are returned unchanged; tensors already on ``device`` are
    not copied.

    >>> from deepexemplar_core.structures import Similarity
    >>> s = Similarity(*(torch.zeros(1, 2, 3, 3) for _ in range(4)), ("a", "b"))
    >>> move_tensors(s, "cpu").sim_tr.device.type
    'cpu'
    """
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: move_tensors(getattr(value, f.name), device)
                   for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(move_tensors(v, device) for v in value)
    if isinstance(value, list):
        return [move_tensors(v, device) for v in value]
    if isinstance(value, dict):
        return {k: move_tensors(v, device) for k, v in value.items()}
    return value
