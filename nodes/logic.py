"""Plain-function logic behind the ComfyUI nodes; imports nothing from ComfyUI.

The V3 node classes in :mod:`nodes.v3_nodes` only read widgets, ask ComfyUI for devices and
progress bars, and call the functions here. Everything here runs (and is tested) without ComfyUI.

Layouts: ComfyUI ``IMAGE`` is ``(B, H, W, C)`` float32 in [0, 1] channels-last, ``MASK`` is
``(B, H, W)`` float32 in [0, 1]; the core is channels-first ``(B, C, H, W)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from deepexemplar_core.backbones import load_backbone as core_load_backbone
from deepexemplar_core.colorizers import load_colorizer
from deepexemplar_core.fusion import choice_image, resize_region
from deepexemplar_core.inputs import (
    MAX_SIZE,  # noqa: F401 - widget bounds of the nodes
    MIN_SIDE,  # noqa: F401 - widget bounds of the nodes
    InputError,
    check_reference,
)
from deepexemplar_core.models import Models, check_compatible
from deepexemplar_core.pipeline import (
    ColorizeConfig,
    MatchResult,
    ReferenceSet,
    SetMatchResult,
    SetSimilarityResult,
    SimilarityResult,
    check_match_references,
    colorize,
    colorize_iter,
    compute_similarity,
    match_images,
    move_to,  # noqa: F401 - the node classes move stage results to ComfyUI's devices
    prepare_reference,
    prepare_references,
)
from deepexemplar_core.schedule import (
    ReferencePlan,
    ScheduleError,
    colorize_segments,
    parse_keyframes,
)
from deepexemplar_core.weights import (
    WeightsNotFoundError,
    configured_repo_id,
    describe_state,
    read_manifest,
    read_safetensors_header,
    weights_filename,
)

#: Name of the weights folder registered with ComfyUI's ``folder_paths`` (``models/deepexemplar``).
WEIGHTS_FOLDER = "deepexemplar"
#: File types offered by the loaders (the core reads safetensors only).
WEIGHTS_SUFFIXES = (".safetensors",)

BUILTIN_LITE = "lite: built-in EfficientNet-Lite0 (no download)"
PAPER_BACKBONE_AUTO = "paper: gray VGG19-BN (find or download)"
NO_COLORNET = "none: weights-free colorizer"
PAPER_COLORNET_AUTO = "paper: ExampleColorNet (find or download)"

#: Targets colorized together by :func:`run_colorize`, streamed or from a DenseMatch output:
#: bounds memory on long frame batches, and the same chunks make both graphs give the same pixels.
FRAMES_PER_CHUNK = 8

Report = Callable[[int, int], None]

logger = logging.getLogger(__name__)


#: The node titles users see (display names without "Exemplar Colorization: "), by class name.
NODE_TITLES = {"LoadGrayVGG": "Load Backbone", "LoadColorNet": "Load Colorization Network",
               "DenseMatch": "Dense Match", "SimilarityMaps": "Similarity Maps",
               "ExemplarColorize": "Colorize", "RecommendReference": "Recommend Reference",
               "VideoTemporalSmooth": "Video Temporal Smooth"}


def _sentence(text: str) -> str:
    """``text`` ending with a full stop (unless it already ends a sentence or a line)."""
    return text if not text or text.endswith((".", "!", "?", "\n")) else text + "."


class NodeInputError(ValueError):
    """A problem with a node's inputs, phrased for ComfyUI users: node title, problem and fix.

    >>> str(NodeInputError("ExemplarColorize", "size: expected 32..2048", "change it"))
    'DeepExemplar Colorize: size: expected 32..2048. Fix: change it.'
    """

    def __init__(self, node: str, problem: str, fix: str = "") -> None:
        message = f"DeepExemplar {NODE_TITLES.get(node, node)}: {_sentence(problem)}"
        if fix:
            message += f" Fix: {_sentence(fix)}"
        super().__init__(message)
        self.node = node


@dataclass(frozen=True)
class MatchHandle:
    """What ``DenseMatch`` outputs (custom type ``DEEPEXEMPLAR_CORRESPONDENCE``).

    Attributes:
        match: the core result (fields, pyramids, working-resolution images, and the prepared
            reference with the working size it was computed at); for several references a
            :class:`~deepexemplar_core.results.SetMatchResult` (every reference's match, the
            regions and the fusion settings).
        backbone: the backbone that computed it (needed to rerun later stages on its device).
    """

    match: MatchResult | SetMatchResult
    backbone: Any


@dataclass(frozen=True)
class SimilarityHandle:
    """What ``SimilarityMaps`` outputs (custom type ``DEEPEXEMPLAR_SIMILARITY``).

    Attributes:
        result: the ten maps, the warped reference colours and the confidence; for several
            references a :class:`~deepexemplar_core.results.SetSimilarityResult` (every
            reference's, and the fused ones the previews show).
        source: the correspondence they were computed from.
    """

    result: SimilarityResult | SetSimilarityResult
    source: MatchHandle = field(repr=False)


# ----------------------------------------------------------------------------- images


def image_to_core(image: object, slot: str, node: str) -> torch.Tensor:
    """ComfyUI ``IMAGE`` -> core layout, with errors that name the node and the fix.

    Only what the layout change needs is checked here (a tensor, its rank, a non-empty batch);
    channels, sizes and values are checked once, by the core, and :func:`core_errors` phrases
    what it refuses.

    Args:
        image: ``(B, H, W, C)`` (or ``(H, W, C)``) float in [0, 1], C = 1 or 3.
        slot: the input's name, used in messages.
        node: the node's name, used in messages.

    Returns:
        ``(B, C, H, W)`` float32 on the input's device.

    Raises:
        NodeInputError: not a tensor, wrong rank or an empty batch.

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
    if image.shape[0] == 0:
        raise NodeInputError(node, f"'{slot}' is an empty batch.", "pass at least one image.")
    return image.movedim(-1, 1).float().clamp(0.0, 1.0)


def reference_to_core(image: object, node: str) -> torch.Tensor:
    """ComfyUI ``IMAGE`` holding colour references -> ``(K, C, H, W)`` float32.

    Raises:
        NodeInputError: as :func:`image_to_core`; the core refuses a gray reference (among
            several: leaves it out), phrased by :func:`core_errors`.

    Example:
        >>> reference_to_core(torch.rand(1, 40, 48, 3), "DenseMatch").shape
        torch.Size([1, 3, 40, 48])
    """
    return image_to_core(image, "reference", node)


def regions_to_core(mask: object, references: int, node: str,
                    size: tuple[int, int] | None = None,
                    notes: list[str] | None = None) -> list[torch.Tensor] | None:
    """ComfyUI ``MASK`` (one region per reference, in the batch's order) -> ``(H, W)`` masks.

    A MASK with nothing painted at all (Load Image's mask of a photo without a painted region)
    is no region: the references choose per pixel, and ``notes`` says so. One empty mask among
    painted ones stays a mistake (the core refuses it: its reference would colour nothing).

    Args:
        mask: ``None``, or ``(N, H, W)`` / ``(H, W)`` float in [0, 1] drawn on the target.
        references: how many references the node got.
        node: name used in messages.
        size: ``(H, W)`` of the targets: each mask must have their aspect ratio (the core's
            :func:`~deepexemplar_core.fusion.resize_region` decides), checked here so that
            the node with the 'regions' input says so, not a later one.
        notes: if given, receives a sentence when nothing is painted (for the page).

    Raises:
        NodeInputError: not a MASK, more regions than references, or a mask of another aspect
            ratio than the targets.

    Example:
        >>> [m.shape for m in regions_to_core(torch.ones(1, 8, 8), 2, "ExemplarColorize")]
        [torch.Size([8, 8])]
    """
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 3):
        raise NodeInputError(node, "'regions' expected a MASK (N, H, W).",
                             "connect a MASK output (e.g. the mask of Load Image).")
    masks = list((mask if mask.dim() == 3 else mask[None]).float().unbind(0))
    if mask.numel() and not bool((mask > 0).any()):
        _warn(node, [NOTHING_PAINTED], notes)
        return None
    if len(masks) > references:
        raise NodeInputError(node, f"'regions' holds {len(masks)} masks for {references} "
                             "reference(s).", "give one mask per reference image, in the "
                             "reference batch's order (batch the masks as the references).")
    for k, region in enumerate(masks if size is not None else ()):
        try:
            resize_region(_input_name(f"masks[{k}]"), region, tuple(size))
        except (ValueError, TypeError) as err:
            raise NodeInputError(node, str(err), REGIONS_SIZE_FIX) from err
    return masks


#: The note of a regions MASK with nothing painted (:func:`regions_to_core`).
NOTHING_PAINTED = ("Nothing is painted in 'regions', so the references choose per pixel; paint a "
                   "region on the target (right-click its Load Image, Open in MaskEditor) to say "
                   "which reference colours it.")

#: What fixes a region mask that does not fit the target, for the nodes' messages.
REGIONS_SIZE_FIX = ("right-click the target's Load Image, Open in MaskEditor and paint it there, "
                    "or crop the mask to the target's aspect ratio")


#: What fixes a keyframe schedule, for the node's messages.
KEYFRAMES_FIX = ('write FRAME=REFERENCE entries separated by commas, in frame order, frames '
                 '0-based, references numbered 1.. in the reference batch\'s order, e.g. '
                 '"0=1,120=2,120=3" (from frame 120 on, references 2 and 3 together)')


def keyframe_plan(text: str | None, frames: int, references: int, node: str,
                  notes: list[str] | None = None) -> ReferencePlan | None:
    """``keyframes`` (``"0=1,120=2,120=3"``) -> the core's plan over positions in the reference
    batch, with the command line's meaning (``deepexemplar video --keyframes``): from that frame
    on, that reference; the same frame twice gives a set.

    Args:
        text: the node's input; empty or ``None``: no schedule.
        frames: frames in the target batch (entries at or past it are dropped with a warning in
            ComfyUI's console and in ``notes``, the rest is used).
        references: images in the reference batch (references are numbered 1..references).
        node: name used in messages.
        notes: if given, receives one sentence per dropped entry (for the page).

    Returns:
        The plan (references as 0-based batch positions), or ``None`` without a schedule.

    Raises:
        NodeInputError: a malformed entry, frames out of order, a schedule that does not start
            at frame 0, no entry within the batch, or a reference beyond the batch.

    Example:
        >>> plan = keyframe_plan("0=1, 2=2, 2=1", 4, 2, "ExemplarColorize")
        >>> plan.schedule
        {0: [0], 2: [1, 0]}
    """
    if text is None or not text.strip():
        return None
    try:
        entries, dropped = parse_keyframes(text, frames, name="'keyframes'",
                                           example='"0=1,120=2"')
        _warn(node, dropped, notes)
        schedule = []
        for frame, refs in entries:
            positions = []
            for ref in refs:
                if not (ref.isascii() and ref.isdecimal()):
                    raise NodeInputError(
                        node, f"'keyframes': frame {frame} names reference {ref!r}, which is "
                              f"not a number (references are numbered 1..{references}).",
                        KEYFRAMES_FIX)
                if not 1 <= int(ref) <= references:
                    raise NodeInputError(
                        node, f"'keyframes': frame {frame} names reference {ref!r}, but the "
                              f"reference batch holds {references} image(s), numbered "
                              f"1..{references}.",
                        "batch more references (e.g. with the core node 'Batch Images') or "
                        "name one of those.")
                if int(ref) - 1 in positions:
                    twice = f"'keyframes': frame {frame} names reference {int(ref)} twice"
                    _warn(node, [f"{twice}; it is used once"], notes)
                    continue
                positions.append(int(ref) - 1)
            schedule.append((frame, positions))
        return ReferencePlan(schedule=schedule, name="'keyframes'")
    except ScheduleError as err:
        raise NodeInputError(node, str(err), KEYFRAMES_FIX) from err


def images_to_comfy(images: Sequence[torch.Tensor], device: torch.device | str) -> torch.Tensor:
    """Core ``(3, H, W)`` images of one size -> ComfyUI ``IMAGE (B, H, W, 3)`` on ``device``.

    >>> images_to_comfy([torch.rand(3, 4, 5)] * 2, "cpu").shape
    torch.Size([2, 4, 5, 3])
    """
    return torch.stack(list(images)).movedim(1, -1).contiguous().to(device)


def fused_stage(result: SimilarityResult | SetSimilarityResult) -> SimilarityResult:
    """What the previews show: one reference's stage, or several references' fused stage."""
    return result.fused if isinstance(result, SetSimilarityResult) else result


def similarity_grid(result: SimilarityResult | SetSimilarityResult) -> torch.Tensor:
    """The ten similarity maps as one gray preview per target.

    Row 0 holds sim_T->R, row 1 sim_R->T, columns the levels coarse to fine (the order the
    colour network consumes), each map clamped to [0, 1].

    Args:
        result: from the core's ``compute_similarity`` (several references: the fused maps).

    Returns:
        ``(B, 2 h, L w, 3)`` float32 in [0, 1] (ComfyUI IMAGE layout).
    """
    rows, result = [], fused_stage(result)
    for maps in (result.similarity.sim_tr, result.similarity.sim_rt):
        batch, levels, height, width = maps.shape
        row = maps.permute(0, 2, 1, 3).reshape(batch, height, levels * width)
        rows.append(row)
    grid = torch.cat(rows, dim=1).float().clamp(0.0, 1.0)
    return grid.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()


def warped_preview(result: SimilarityResult | SetSimilarityResult) -> torch.Tensor:
    """Warped reference colours ``(B, 3, h, w) uint8`` (several references: fused) -> IMAGE
    ``(B, h, w, 3)`` in [0, 1]."""
    return (fused_stage(result).warped_rgb8.float() / 255.0).movedim(1, -1).contiguous()


def confidence_mask(result: SimilarityResult | SetSimilarityResult,
                    size: tuple[int, int]) -> torch.Tensor:
    """Confidence ``(B, 1, h, w)`` (several references: fused) resized (bilinear) to the
    targets' ``size``: MASK ``(B, H, W)``.

    >>> from types import SimpleNamespace
    >>> confidence_mask(SimpleNamespace(confidence=torch.rand(2, 1, 8, 8)), (16, 12)).shape
    torch.Size([2, 16, 12])
    """
    conf = fused_stage(result).confidence.float()
    if tuple(conf.shape[-2:]) != tuple(size):
        conf = F.interpolate(conf, size=size, mode="bilinear", align_corners=False)
    return conf[:, 0].clamp(0.0, 1.0).contiguous()


def similarity_report(result: SimilarityResult | SetSimilarityResult,
                      match: MatchResult | SetMatchResult | None = None) -> str:
    """One line about a similarity stage: how many references, each one's share of the pixels
    (the choice map) and the mean confidence; with the ``match`` it came from, references are
    numbered by their position in the reference batch and those left out (gray) are named.

    >>> from types import SimpleNamespace
    >>> similarity_report(SimpleNamespace(confidence=torch.full((1, 1, 4, 4), 0.5)))
    '1 reference; mean confidence 0.50'
    """
    confidence = float(fused_stage(result).confidence.float().mean())
    if not isinstance(result, SetSimilarityResult):
        return f"1 reference; mean confidence {confidence:.2f}"
    choice, count = result.fusion.choice, len(result.stages)
    positions = _batch_positions(match) or list(range(count))
    shares = ", ".join(f"{p + 1}: {100 * float((choice == k).float().mean()):.0f} %"
                       for k, p in enumerate(positions))
    text = (f"{count} reference{'s' * (count > 1)} (fused maps shown); share of the pixels per "
            f"reference {shares}; mean confidence {confidence:.2f}")
    left = _left_out(match)
    if left:
        text += f"; left out (no colour): {', '.join(str(p + 1) for p in left)}"
    return text


def _left_out(references: ReferenceSet | SetMatchResult | object,
              positions: Sequence[int] | None = None) -> list[int]:
    """Batch positions of the gray references left out of a set (``[]`` for anything else).

    ``positions``: the batch position of each image the set was prepared from (a schedule's
    segment); by default the set was prepared from the whole batch.
    """
    if isinstance(references, SetMatchResult):
        references = references.references
    if not isinstance(references, ReferenceSet) or not references.skipped:
        return []
    given = range(len(references.positions) + len(references.skipped))
    batch = list(positions) if positions is not None else list(given)
    return [batch[p] for p in given if p not in references.positions]


def left_out_notes(references: ReferenceSet | SetMatchResult | object,
                   positions: Sequence[int] | None = None) -> list[str]:
    """One sentence per gray reference left out of a set, for the page (see :func:`_left_out`).

    >>> notes = left_out_notes(ReferenceSet((), (), positions=(1,), skipped=("...",)))
    >>> notes[0].split(":")[0]
    'reference 1 of the batch has no colour (R, G and B agree)'
    """
    return [f"reference {p + 1} of the batch has no colour (R, G and B agree): left out, the "
            "others colour the target." for p in _left_out(references, positions)]


def _batch_positions(match: MatchResult | SetMatchResult | None) -> list[int] | None:
    """Per reference of a several-reference match, its position in the reference batch (gray
    ones were left out); ``None`` for one reference or no match."""
    if isinstance(match, SetMatchResult):
        return list(match.references.positions) or None
    return None


# ----------------------------------------------------------------------------- weights


#: The network each loader lists files of (the names the converters write into manifests).
LOADER_NETWORKS = {"LoadGrayVGG": "GrayVGG19BN", "LoadColorNet": "ExampleColorNet"}


def weights_network(path: str) -> str:
    """Which network a weights file holds, as the core's ``describe_state`` says: per its
    manifest (``<stem>.manifest.json``), else guessed from its tensor names; ``""`` when the
    file is not readable safetensors.

    >>> weights_network("/nonexistent.safetensors")
    ''
    """
    try:
        manifest = read_manifest(path)
    except (OSError, ValueError):
        manifest = None
    try:
        keys = () if manifest else read_safetensors_header(path).keys()
    except (OSError, ValueError):
        return ""
    return describe_state(keys, manifest)


def weight_options(files: Iterable[str], builtins: Sequence[str],
                   network_of: Callable[[str], str] | None = None,
                   network: str = "") -> list[str]:
    """Loader choices: the built-in options first, then the safetensors files found, sorted.

    Args:
        files: file names relative to the weights folders.
        builtins: the loader's built-in entries.
        network_of: file name -> what it holds (:func:`weights_network` of its path); with
            ``network``, files known to hold another network are left out (files of unknown
            content stay listed: loading them says what they are).
        network: the loader's network, e.g. ``"GrayVGG19BN"`` (:data:`LOADER_NETWORKS`).

    >>> weight_options(["b.safetensors", "notes.txt", "a.safetensors"], [BUILTIN_LITE])[1:]
    ['a.safetensors', 'b.safetensors']
    >>> kinds = {"a.safetensors": "GrayVGG19BN (per its manifest)",
    ...          "b.safetensors": "ExampleColorNet (colornet)", "c.safetensors": ""}
    >>> weight_options(kinds, [BUILTIN_LITE], kinds.get, "GrayVGG19BN")[1:]
    ['a.safetensors', 'c.safetensors']
    """
    found = sorted(f for f in files if f.lower().endswith(WEIGHTS_SUFFIXES))
    if network_of is not None and network:
        found = [name for name in found
                 if network_of(name).startswith((network, "unknown")) or not network_of(name)]
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


def _node_phrasing(err: WeightsNotFoundError) -> str:
    """The core's not-found facts without its command-line fixes (the node gives its own),
    ending with a line break."""
    places = "".join(f"\n  - {place}" for place in err.searched)
    detail = f"\n{err.detail}" if err.detail else ""
    # the node's " Fix: ..." starts on its own line
    return f"{err.headline} Searched:{places}{detail}\n" if err.searched else f"{err}\n"


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

def _load(node: str, name: str, choice: str, builtin: str, allow_download: bool,
          search_dirs: Sequence[str], load: Callable[[], Any]) -> Any:
    """Run a core loader; its errors become a :class:`NodeInputError` with the fix for the node."""
    try:
        return load()
    except WeightsNotFoundError as err:
        raise NodeInputError(node, f"cannot load '{choice}': {_node_phrasing(err)}",
                             missing_weights_fix(name, allow_download, search_dirs, builtin)) from err
    except (ValueError, TypeError, OSError, KeyError, RuntimeError) as err:
        raise NodeInputError(node, f"cannot load '{choice}': {err}",
                             f"put the converted {name} .safetensors into models/{WEIGHTS_FOLDER}/ "
                             f"(see docs/comfyui.md) or pick '{builtin}'.") from err


def load_backbone(choice: str, path: str | None, *, allow_download: bool,
                  search_dirs: Sequence[str]) -> Any:
    """The core backbone the user picked in ``LoadGrayVGG`` (on the CPU, with ``provenance``).

    Args:
        choice: :data:`BUILTIN_LITE`, :data:`PAPER_BACKBONE_AUTO` or a file name.
        path: the full path of ``choice`` when it is a file, else ``None``.
        allow_download: let the core download missing paper weights from the Hub.
        search_dirs: the ``models/deepexemplar`` folders ComfyUI knows.

    Raises:
        NodeInputError: the weights are missing or are not gray VGG19-BN weights.
    """
    if choice == BUILTIN_LITE:
        return core_load_backbone("lite")
    return _load("LoadGrayVGG", "gray_vgg", choice, BUILTIN_LITE, allow_download, search_dirs,
                 lambda: core_load_backbone("gray_vgg", path, allow_download=allow_download,
                                            search_dirs=tuple(search_dirs)))


def load_colornet(choice: str, path: str | None, *, allow_download: bool,
                  search_dirs: Sequence[str]) -> Any:
    """The core colorizer the user picked in ``LoadColorNet`` (on the CPU, with ``provenance``).

    Args:
        choice: :data:`NO_COLORNET`, :data:`PAPER_COLORNET_AUTO` or a file name.
        path: the full path of ``choice`` when it is a file, else ``None``.
        allow_download: let the core download missing weights from the Hub.
        search_dirs: the ``models/deepexemplar`` folders ComfyUI knows.

    Raises:
        NodeInputError: the weights are missing or are not ExampleColorNet weights.
    """
    if choice == NO_COLORNET:
        return load_colorizer("propagation")
    return _load("LoadColorNet", "colornet", choice, NO_COLORNET, allow_download, search_dirs,
                 lambda: load_colorizer("colornet", path, allow_download=allow_download,
                                        search_dirs=tuple(search_dirs)))


# ----------------------------------------------------------------------------- stages


def assemble_models(backbone: Any, colornet: Any | None, device: torch.device | str,
                    node: str) -> Models:
    """Join the two loader outputs into the core's :class:`Models` on ``device``.

    ComfyUI's memory manager has normally moved the networks to ``device`` already; the core
    moves whatever is not there yet.

    Raises:
        NodeInputError: a colour network trained on another backbone's similarity maps (the
            core's :func:`~deepexemplar_core.models.check_compatible` says why).
    """
    colorizer = colornet if colornet is not None else load_colorizer("propagation")
    with core_errors(node, "load the backbone the colour network was trained on in Load "
                           f"Backbone, or pick '{NO_COLORNET}' in Load Colorization Network."):
        check_compatible(backbone, colorizer, strict=True)
    return Models.compose(backbone, colorizer, device)


def make_config(node: str, size: int, strength: float = 1.0, upsample: str = "guided", *,
                frames: int = 1) -> ColorizeConfig:
    """The core's :class:`ColorizeConfig` from widget values, errors phrased for the node.

    The nodes' one decision about video: a batch of several ``frames`` is taken as a clip's
    frames in playing order (``ColorizeConfig.motion``: each frame's matching starts from the
    previous frame's field carried along the optical flow; a batch of unrelated photos reads as
    scene cuts and is matched from scratch). DenseMatch and ExemplarColorize both ask here, so
    the two ways of wiring them give the same pixels.
    """
    try:
        return ColorizeConfig(size=int(size), upsample=upsample, strength=float(strength),
                              motion=frames > 1)
    except ValueError as err:
        raise NodeInputError(node, str(err), "change the widget to an allowed value.") from err


def run_match(models: Models, target: torch.Tensor, reference: torch.Tensor,
              config: ColorizeConfig, node: str, report: Report | None = None,
              regions: list[torch.Tensor] | None = None) -> MatchResult | SetMatchResult:
    """The core's ``match_images`` with errors phrased for the node.

    Args:
        models: from :func:`assemble_models`.
        target: ``(B, C, H, W)`` from :func:`image_to_core`.
        reference: ``(K, 3, Hr, Wr)`` from :func:`reference_to_core`: one reference, or several
            (each matched; the result holds every match, fused later as Colorize fuses them).
        config: from :func:`make_config`.
        node: name used in messages.
        report: ``(done, total)`` callback after every pyramid level (may raise to interrupt).
        regions: from :func:`regions_to_core`, kept with the matches for the fusion.
    """
    with core_errors(node):
        return match_images(models, target.to(models.device),
                            _references(models, reference, config, regions), config,
                            progress=report)


def _references(models: Models, reference: torch.Tensor, config: ColorizeConfig,
                regions: list[torch.Tensor] | None) -> torch.Tensor | ReferenceSet:
    """One reference as it is (today's path), several (or one with a region) prepared as a set
    by the core's ``prepare_references``, on the models' device."""
    refs = reference.to(models.device)
    if regions is not None or reference.shape[0] > 1:
        refs = prepare_references(models, refs, config, masks=regions)
    return refs


def run_similarity(models: Models, match: MatchResult | SetMatchResult,
                   node: str) -> SimilarityResult | SetSimilarityResult:
    """The core's ``compute_similarity`` on the models' device, errors phrased for the node
    (several references: every reference's stage and their fusion)."""
    with core_errors(node):
        return compute_similarity(match, models.device)


def run_colorize(models: Models, target: torch.Tensor, reference: torch.Tensor,
                 config: ColorizeConfig, node: str, *, match: MatchHandle | None = None,
                 similarity: SimilarityHandle | None = None, report: Report | None = None,
                 output_device: torch.device | str = "cpu",
                 regions: list[torch.Tensor] | None = None,
                 choices: list[torch.Tensor] | None = None,
                 plan: ReferencePlan | None = None,
                 notes: list[str] | None = None) -> list[torch.Tensor]:
    """Colorize a batch of targets: one streaming core call, or one call on precomputed stages.

    The reference's features are computed once; the frames go through the core in one
    streaming call and each result leaves the device as it finishes. Progress comes after
    every matching level, so an interruption raised by ``report`` stops within one level.
    With a keyframe ``plan`` the frames stream through one core call per segment of the
    schedule (:func:`~deepexemplar_core.schedule.colorize_segments`): each segment's references
    are prepared once and matching restarts where they change; memory stays one chunk.

    Args:
        models: from :func:`assemble_models`.
        target: ``(B, C, H, W)`` from :func:`image_to_core`.
        reference: ``(K, 3, Hr, Wr)`` from :func:`reference_to_core`: one reference, or several
            (per pixel the best-matching one colours the target).
        config: from :func:`make_config`.
        node: name used in messages.
        match: a ``DenseMatch`` output for these targets (of these references and regions).
        similarity: a ``SimilarityMaps`` output; its correspondence is used when ``match`` is
            ``None``.
        report: ``(done, total)`` progress callback; it may raise to interrupt the run.
        output_device: where the results go (ComfyUI's intermediate device).
        regions: from :func:`regions_to_core`: a masked reference colours only inside its mask.
        choices: if given, receives per target its choice map, ``(3, H, W)`` at the target's
            size (:func:`~deepexemplar_core.fusion.choice_image`: red = the first reference of
            the batch).
        plan: from :func:`keyframe_plan`: which references of the batch colour which frames.
        notes: if given, receives a sentence per reference left out (:func:`left_out_notes`).

    Returns:
        One ``(3, H, W)`` float32 image in [0, 1] per target, at the input resolution.

    Raises:
        NodeInputError: precomputed stages from other targets, another size, another
            correspondence, other references or regions; any input the core refuses.
    """
    if similarity is not None:
        if match is not None and similarity.source is not match:
            raise NodeInputError(node, "'similarity' was computed from another correspondence "
                                 "than the one connected to 'correspondence'.",
                                 _PHRASES["similarity"][1])
        match = similarity.source
    if match is not None and plan is not None:
        raise NodeInputError(node, "'keyframes' changes the references over the frames, but a "
                             "precomputed correspondence matches its references for all frames.",
                             "disconnect 'correspondence'/'similarity' to use a schedule.")
    with core_errors(node):
        if match is not None:
            left = _left_out(match.match)  # their regions were left out with them
            check_match_references(match.match, reference.shape[0], None if regions is None else
                                   [None if k in left else m for k, m in enumerate(regions)])
            _extend(notes, left_out_notes(match.match))
            stage = None if similarity is None else similarity.result
            result = colorize(target.to(models.device), None, models, config,
                              match=match.match, similarity=stage,
                              chunk_size=FRAMES_PER_CHUNK)
            if choices is not None:
                positions = _batch_positions(match.match)
                choices.extend(_choice_map(inter, j, image, output_device, positions)
                               for inter in result.intermediates
                               for j, image in enumerate(result.images[i] for i in inter.indices))
            return [image.to(output_device) for image in result.images]
        if plan is not None:
            return _colorize_scheduled(models, target, reference, config, node, plan, report,
                                       output_device, regions, choices, notes)
        refs = _references(models, reference, config, regions)
        _extend(notes, left_out_notes(refs))
        results = colorize_iter(target, refs, models, config, chunk_size=FRAMES_PER_CHUNK,
                                progress=report, output_device=output_device,
                                keep_intermediates=choices is not None)
        positions = list(refs.positions) if isinstance(refs, ReferenceSet) else None
        images = []
        for done in results:
            images.append(done.image)
            if choices is not None:
                group = done.intermediates
                choices.append(_choice_map(group, group.indices.index(done.index), done.image,
                                           output_device, positions))
        return images


def _colorize_scheduled(models: Models, target: torch.Tensor, reference: torch.Tensor,
                        config: ColorizeConfig, node: str, plan: ReferencePlan,
                        report: Report | None,
                        output_device: torch.device | str,
                        regions: list[torch.Tensor] | None,
                        choices: list[torch.Tensor] | None,
                        notes: list[str] | None) -> list[torch.Tensor]:
    """:func:`run_colorize` with a keyframe schedule (inside :func:`core_errors`)."""
    _refuse_gray_segments(reference, plan, node)
    refs = reference.to(models.device)
    masks = list(regions or [])

    def prepare(positions: list[int]) -> tuple[object, list[int]]:
        own = [masks[p] if p < len(masks) else None for p in positions]
        if len(positions) == 1 and own[0] is None:  # the one-reference path
            return prepare_reference(models, refs[positions[0]], config), positions
        prepared = prepare_references(models, refs[positions], config, masks=own)
        _extend(notes, left_out_notes(prepared, positions))
        return prepared, [positions[k] for k in prepared.positions]

    images = []
    for segment, done in colorize_segments(target.unbind(0), plan, models, config, prepare,
                                           chunk_size=FRAMES_PER_CHUNK, progress=report,
                                           total=target.shape[0],
                                           keep_intermediates=choices is not None,
                                           output_device=output_device):
        images.append(done.image)
        if choices is not None:
            group = done.intermediates
            choices.append(_choice_map(group, group.indices.index(done.index), done.image,
                                       output_device, segment.references))
    return images


def _refuse_gray_segments(reference: torch.Tensor, plan: ReferencePlan, node: str) -> None:
    """Refuse, before any frame is coloured, a schedule entry whose references are all gray
    (the core refuses it only when the clip reaches that frame, naming no frame or reference).

    Raises:
        NodeInputError: names the entry's frame and references.
        ImageError: a reference the core refuses for another reason (phrased by the caller's
            :func:`core_errors`).
    """
    gray: dict[int, bool] = {}
    for frame, positions in sorted(plan.schedule.items()):
        for position in positions:
            if position not in gray:
                try:
                    check_reference(reference[position], allow_gray=False)
                    gray[position] = False
                except InputError as err:
                    if err.kind != "gray":
                        raise
                    gray[position] = True
        if all(gray[p] for p in positions):
            named = list(dict.fromkeys(p + 1 for p in positions))
            one = len(named) == 1
            raise NodeInputError(
                node, f"'keyframes': from frame {frame} on, reference "
                      f"{' and '.join(map(str, named))} of the batch colour{'s' * one} the "
                      f"frames, but {'it has' if one else 'they have'} no colour (R, G and B "
                      "agree).",
                "name a colour reference of the batch for that frame, or batch a colour photo "
                "at that position.")


def _warn(node: str, sentences: Iterable[str], notes: list[str] | None) -> None:
    """Say ``sentences`` about the run in ComfyUI's console and, as full sentences, in
    ``notes`` (for the page, :func:`~nodes.common.show_notes`)."""
    sentences = [_sentence(s) for s in sentences]
    for sentence in sentences:
        logger.warning("DeepExemplar %s: %s", NODE_TITLES.get(node, node), sentence)
    _extend(notes, sentences)


def _extend(notes: list[str] | None, sentences: list[str]) -> None:
    """Add ``sentences`` not yet in ``notes`` (when there is a list to add them to)."""
    if notes is not None:
        notes.extend(s for s in sentences if s not in notes)


def _choice_map(group, row: int, image: torch.Tensor, device: torch.device | str,
                positions: list[int] | None = None) -> torch.Tensor:
    """``(3, H, W)`` choice map of the target in ``row`` of a chunk's intermediates ``group``,
    at the size of its finished ``image`` (nearest upsampling).

    ``positions``: the batch position of each reference of the target's set (a schedule's
    segment, or a batch that gray references were left out of), so that the colours name
    references of the whole batch.
    """
    choice = group.choice[row][None]
    if positions is not None:
        choice = torch.tensor(positions, device=choice.device)[choice]
    full = F.interpolate(choice.float(), size=tuple(image.shape[-2:]), mode="nearest")
    return choice_image(full.long())[0].to(device)


#: How the nodes phrase the core's refusals (:class:`~deepexemplar_core.inputs.InputError`),
#: by ``kind``: the problem (``None``: the core's own words; ``{name}``: the input, as
#: :func:`_input_name` says it) and the fix.
_PHRASES = {
    "alpha": ("{name} has 4 channels (RGBA).",
              ("drop the alpha channel first, e.g. with the core node 'Split Image with Alpha', "
               "and connect its IMAGE output.")),
    "channels": ("{name} expected 1 or 3 channels (the last axis of an IMAGE).",
                 "connect an RGB IMAGE."),
    "too_small": (None, "use a larger image (upscale it first) or crop less."),
    "gray": (None, "connect a colour photo to 'reference' (were target and reference swapped?)."),
    "batch": (None, "select one image with the core node 'ImageFromBatch' (length 1)."),
    "targets": (None, "connect the same target images to Dense Match and to this node."),
    "size": (None, "set the same 'size' on Dense Match and on this node."),
    "similarity": (None, ("connect the same Dense Match output to Similarity Maps and to this "
                          "node, or disconnect one of them.")),
    "references": (None, "connect the same reference image(s) to Dense Match and to this node."),
    "empty_region": (("{name} is empty (all 0), so its reference would colour nothing (Load "
                      "Image gives an empty mask for an image without a painted region)."),
                     ("paint the region in the mask editor (right-click the Load Image, Open in "
                      "MaskEditor), or disconnect 'regions'.")),
    "regions": (None, ("connect 'regions' to Dense Match (the correspondence keeps them) and "
                       "leave it unconnected here, or connect the same masks to both.")),
}


def _input_name(name: str) -> str:
    """The core's argument name as the node's input: ``targets[2]`` -> ``'target' (image 2 of
    the batch)``, ``masks[1]`` -> ``'regions' (mask 1 of the batch)``, ``reference`` ->
    ``'reference'``.

    >>> _input_name("targets[2]"), _input_name("masks[1]"), _input_name("reference")
    ("'target' (image 2 of the batch)", "'regions' (mask 1 of the batch)", "'reference'")
    """
    if name.startswith("targets["):
        return f"'target' (image {name[len('targets['):-1]} of the batch)"
    if name.startswith("masks["):
        return f"'regions' (mask {name[len('masks['):-1]} of the batch)"
    return f"'{name}'"


@contextmanager
def core_errors(node: str, fix: str = "check this node's inputs.") -> Iterator[None]:
    """Re-raise the core's ``ValueError``/``TypeError`` as :class:`NodeInputError`.

    ComfyUI shows the message in its error dialog; prefixing the node name tells the user
    which node to fix. A typed refusal of the core (its ``kind``) gets the words and the fix for
    that kind (:data:`_PHRASES`); other errors get ``fix``. Other exceptions (ComfyUI's
    interruption, out of memory) pass unchanged.
    """
    try:
        yield
    except NodeInputError:
        raise
    except (ValueError, TypeError) as err:
        phrase = _PHRASES.get(err.kind) if isinstance(err, InputError) else None
        problem, kind_fix = phrase or (None, fix)
        if problem is None:
            problem = str(err)
        else:
            problem = problem.format(name=_input_name(err.name))
        raise NodeInputError(node, problem, kind_fix) from err
