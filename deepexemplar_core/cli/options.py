"""Options shared by the sub-commands that run the models, and their translation to core calls."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Model family, weights, device, working size and matching backend options."""
    from ..colorizers.propagation import FILLS
    from ..matching import BACKENDS
    from ..models import COLORIZERS, FAMILIES

    parser.add_argument("--family", choices=FAMILIES, default="auto",
                        help="model family; auto = paper when its weights resolve locally, else lite")
    parser.add_argument("--colorizer", choices=COLORIZERS, default="auto",
                        help="ab predictor; auto = the family's own")
    parser.add_argument("--weights", type=Path, default=None,
                        help="folder holding converted weights (searched before $DEEPEXEMPLAR_WEIGHTS)")
    parser.add_argument("--backbone-weights", type=Path, default=None,
                        help="explicit gray VGG19-BN safetensors file")
    parser.add_argument("--colornet-weights", type=Path, default=None,
                        help="explicit ExampleColorNet safetensors file")
    parser.add_argument("--allow-download", action="store_true",
                        help="allow downloading missing weights from the Hugging Face Hub")
    parser.add_argument("--repo-id", default=None, help="Hub repository of the converted weights")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--size", type=int, default=256,
                        help="working short side in pixels (0 = native; above 256 never more than "
                             "an image's own); the models were trained at 256")
    parser.add_argument("--upsample", choices=("guided", "bicubic"), default="guided",
                        help="chroma upsampling to full resolution (bicubic = the authors')")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="colour strength, 0 = gray, 1 = as predicted (default)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="PatchMatch implementation (auto = compiled extension when built)")
    parser.add_argument("--fill", choices=FILLS, default="propagate",
                        help="weights-free colorizer: how regions the reference matches nowhere "
                             "are coloured; propagate = along the luminance (default), semantic "
                             "= from alike regions of the target (docs/lite.md), auto = the "
                             "measured best (recorded in the output's metadata)")


def load_models_from_args(args: argparse.Namespace):
    """:func:`~deepexemplar_core.models.load_models` with the options of :func:`add_model_options`."""
    from ..models import load_models
    from ..weights import weights_filename

    from ..weights import WeightsNotFoundError

    backbone, colornet, folders = args.backbone_weights, args.colornet_weights, ()
    if args.weights is not None and not args.weights.is_dir():
        raise WeightsNotFoundError(f"--weights {args.weights}: no such folder; give the folder "
                                   "that holds the converted .safetensors files")
    if args.weights is not None:  # the folder given on the command line wins over the environment
        folders = (args.weights,)
        if backbone is None and (args.weights / weights_filename("gray_vgg")).is_file():
            backbone = args.weights / weights_filename("gray_vgg")
        if colornet is None and (args.weights / weights_filename("colornet")).is_file():
            colornet = args.weights / weights_filename("colornet")
    models = load_models(
        args.family,
        colorizer=args.colorizer,
        backbone_path=backbone,
        colornet_path=colornet,
        device=args.device,
        allow_download=args.allow_download,
        repo_id=args.repo_id,
        search_dirs=folders,
    )
    return _with_fill(models, getattr(args, "fill", "propagate"))


def _with_fill(models, fill: str):
    """Set the propagation colorizer's fill and record it in ``models.provenance["fill"]``.

    Raises:
        ValueError: a fill other than ``propagate`` for the paper's colour network.
    """
    from dataclasses import replace

    from ..colorizers.propagation import PropagationColorizer

    if isinstance(models.colorizer, PropagationColorizer):
        models.colorizer.config = replace(models.colorizer.config, fill=fill)
        models.provenance["fill"] = fill
    elif fill != "propagate":
        raise ValueError(f"--fill {fill}: only the weights-free colorizer has a fill; use "
                         "--colorizer propagation or leave --fill out")
    return models


def config_from_args(args: argparse.Namespace, *, motion: bool = False):
    """The :class:`~deepexemplar_core.pipeline.ColorizeConfig` of :func:`add_model_options`;
    ``motion`` says the targets are a video's frames (see ``ColorizeConfig.motion``)."""
    from ..matching import MatchConfig
    from ..pipeline import ColorizeConfig

    match = None if args.backend == "auto" else MatchConfig(backend=args.backend)
    return ColorizeConfig(size=args.size, upsample=args.upsample, strength=args.strength,
                          match=match, motion=motion)


def named(text: str, names: dict[str, object]) -> str:
    """A core message with files in place of the positions it names (``references[1]``,
    ``masks[0]``: the keys of ``names``).

    Example:
        >>> named("masks[0]: is empty, so references[0] would colour nothing",
        ...       {"masks[0]": "--region m.png", "references[0]": "a.png"})
        '--region m.png: is empty, so a.png would colour nothing'
    """
    return re.sub(r"\b(?:references|masks)\[\d+\]",
                  lambda found: str(names.get(found.group(0), found.group(0))), text)


def once(paths: list[Path], regions: list[Path] | None = None, option: str = "-r"
         ) -> tuple[list[Path], list[Path]]:
    """The references with a file given twice kept once (a warning names it and ``option``),
    and their regions (``'-'`` for none) in the same order.

    Raises:
        ValueError: a file given twice where either time has a region (which would be
            ambiguous: one region per file).
    """
    regions = list(regions or [])
    first: dict[Path, int] = {}
    kept: list[int] = []
    for k, path in enumerate(paths):
        if (seen := first.setdefault(path.resolve(), k)) == k:
            kept.append(k)
            continue
        if any(j < len(regions) and str(regions[j]) != "-" for j in (seen, k)):
            raise ValueError(f"{option} {path}: given twice, with a region; give it once, with "
                             "one region that covers both")
        print(f"warning: {option} {path}: given twice; used once", file=sys.stderr)
    return [paths[k] for k in kept], [regions[k] for k in kept if k < len(regions)]


def prepare_one_or_set(models, images: list, paths: list[Path], config, *, masks=None,
                       fusion=None, regions: list[Path] | None = None
                       ) -> tuple[object, list[Path]]:
    """The commands' reference(s): one prepared as always (the one-reference path, pixel for
    pixel), or several (or one with a region) as a set, where a gray one among colour ones is
    left out with a warning naming its file.

    Args:
        images: ``(3, H, W)`` sRGB in [0, 1] per reference.
        paths: the references' files, in the same order (for messages and the metadata).
        masks: a region (or None) per reference.
        fusion: the set's ``FusionConfig``.
        regions: the masks' files, for messages.

    Returns:
        ``(prepared, kept paths)``.

    Raises:
        ValueError: a reference or region the core refuses (the message names its file).
    """
    from ..pipeline import prepare_reference, prepare_references

    masks = list(masks or [])
    if len(images) == 1 and all(mask is None for mask in masks):
        try:
            return prepare_reference(models, images[0], config), list(paths)
        except ValueError as err:
            raise ValueError(f"{paths[0]}: {err}") from err
    names = {f"references[{k}]": path for k, path in enumerate(paths)}
    names.update({f"masks[{k}]": f"--region {path}" for k, path in enumerate(regions or [])})
    try:
        prepared = prepare_references(models, images, config, masks=masks or None,
                                      fusion=fusion)
    except ValueError as err:
        raise ValueError(named(str(err), names)) from err
    for k in sorted(set(range(len(paths))) - set(prepared.positions)):
        print(f"warning: {paths[k]}: has no colour (R, G and B agree); left out", file=sys.stderr)
    return prepared, [paths[k] for k in prepared.positions]

