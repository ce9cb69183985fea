"""``deepexemplar colorize`` and ``deepexemplar demo``: files in, colour files out.

Outputs keep the target's size, bit depth (8 or 16) and alpha channel, carry provenance
metadata (model family, weights sha256, version, reference), and are written atomically, so an
error or Ctrl-C never leaves a partial file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .cli import EXIT_ERROR, EXIT_INPUT, EXIT_OK, EXIT_WEIGHTS, IMAGE_SUFFIXES

logger = logging.getLogger("deepexemplar")


@dataclass
class _Job:
    """One target file and what became of it."""

    source: Path
    output: Path
    status: str = "pending"
    error: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def collect_targets(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Expand folders into their image files (sorted); return ``(files, problems)``."""
    files, problems = [], []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append(f"{path}: folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, problems


def plan_outputs(targets: list[Path], output: Path) -> list[_Job]:
    """Output path per target: ``output`` itself for one target with an image suffix, else
    ``output/<stem>_colorized.png`` (PNG keeps 16 bits and alpha)."""
    if len(targets) == 1 and output.suffix.lower() in IMAGE_SUFFIXES:
        return [_Job(targets[0], output)]
    names: dict[str, int] = {}
    jobs = []
    for target in targets:
        stem = target.stem
        count = names.get(stem, 0)
        names[stem] = count + 1
        suffix = f"_{count}" if count else ""
        jobs.append(_Job(target, output / f"{stem}{suffix}_colorized.png"))
    return jobs


def _load_models(args: argparse.Namespace):
    from .models_loading import load_models
    from .weights import weights_filename

    backbone, colornet, folders = args.backbone_weights, args.colornet_weights, ()
    if args.weights is not None:  # the folder given on the command line wins over the environment
        folders = (args.weights,)
        if backbone is None and (args.weights / weights_filename("gray_vgg")).is_file():
            backbone = args.weights / weights_filename("gray_vgg")
        if colornet is None and (args.weights / weights_filename("colornet")).is_file():
            colornet = args.weights / weights_filename("colornet")
    return load_models(
        args.family,
        colorizer=args.colorizer,
        backbone_path=backbone,
        colornet_path=colornet,
        device=args.device,
        allow_download=args.allow_download,
        repo_id=args.repo_id,
        search_dirs=folders,
    )


def _config(args: argparse.Namespace):
    from .matching import MatchConfig
    from .pipeline import ColorizeConfig

    match = None if args.backend == "auto" else MatchConfig(backend=args.backend)
    return ColorizeConfig(size=args.size, upsample=args.upsample, strength=args.strength, match=match)


def _metadata(models, reference: Path, target: Path, config) -> dict[str, str]:
    meta = {f"deepexemplar:{k}": v for k, v in models.provenance.items()}
    meta.update({
        "deepexemplar:reference": str(reference),
        "deepexemplar:target": str(target),
        "deepexemplar:working_size": str(config.size),
        "deepexemplar:upsample": config.upsample,
        "Software": f"deepexemplar {models.provenance.get('deepexemplar_version', '')}",
    })
    return meta


def _process_batch(jobs: list[_Job], reference, ref_path: Path, models, config, intermediates: bool) -> None:
    """Read, colorize and write one batch of targets; failures are recorded per job."""
    from .image_io import ImageReadError, read_image, write_image
    from .pipeline import colorize

    loaded, ready = [], []
    for job in jobs:
        try:
            loaded.append(read_image(job.source))
            ready.append(job)
        except ImageReadError as err:
            job.status, job.error = "unreadable", str(err)
    if not ready:
        return
    try:
        result = colorize([img.pixels for img in loaded], reference.rgb(), models, config)
    except ValueError as err:
        for job in ready:
            job.status, job.error = "invalid", str(err)
        return
    for job, image, rgb in zip(ready, loaded, result.images, strict=True):
        job.output.parent.mkdir(parents=True, exist_ok=True)
        deep = image.bit_depth > 8 and job.output.suffix.lower() not in (".jpg", ".jpeg")
        write_image(job.output, rgb.cpu(), alpha=image.alpha, bit_depth=16 if deep else 8,
                    metadata=_metadata(models, ref_path, job.source, config))
        job.status, job.timings = "ok", {k: round(v, 4) for k, v in result.timings.items()}
    if intermediates:
        from .intermediates import save_intermediates

        for group in result.intermediates:
            for j, index in enumerate(group.indices):
                job = ready[index]
                save_intermediates(job.output.with_name(job.output.stem + "_intermediates"),
                                   group, j, job.source.stem, ref_path.stem)


def run_colorize(args: argparse.Namespace) -> int:
    """Implementation of ``deepexemplar colorize``; returns the exit code."""
    from .image_io import ImageReadError, read_image
    from .weights import WeightsNotFoundError

    targets, problems = collect_targets(args.targets)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not targets:
        return EXIT_INPUT
    if getattr(args, "reference_index", None) is not None and args.reference is None:
        return _run_with_index(args, targets)
    try:
        reference = read_image(args.reference)
    except ImageReadError as err:
        print(f"error: reference: {err}", file=sys.stderr)
        return EXIT_INPUT
    try:
        models = getattr(args, "preloaded_models", None) or _load_models(args)
        config = _config(args)
    except WeightsNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_WEIGHTS
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_WEIGHTS if "weights" in str(err).lower() else EXIT_INPUT
    if getattr(args, "reference_index_used", None) is not None:  # --reference-index
        models.provenance["reference_index"] = str(args.reference_index_used)
        args.preloaded_models = models  # reused for the targets of the next reference
    print(f"model family: {models.family} ({models.provenance.get('family_reason', 'as requested')}); "
          f"colorizer: {models.colorizer.name}", file=sys.stderr)
    jobs = plan_outputs(targets, args.output)
    batches = [jobs[i:i + max(1, args.batch_size)] for i in range(0, len(jobs), max(1, args.batch_size))]
    progress = None
    if len(jobs) > 1 and not args.quiet:
        from tqdm import tqdm

        progress = tqdm(total=len(jobs), unit="image", file=sys.stderr)
    try:
        for batch in batches:
            _process_batch(batch, reference, args.reference, models, config, args.save_intermediates)
            if progress is not None:
                progress.update(len(batch))
    except Exception as err:  # noqa: BLE001 - the CLI reports any failure with an exit code
        logger.debug("processing failed", exc_info=True)
        print(f"error: processing failed: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if progress is not None:
            progress.close()
    return _report(jobs, models, args.json)


def _report(jobs: list[_Job], models, as_json: bool) -> int:
    failed = [job for job in jobs if job.status != "ok"]
    for job in failed:
        print(f"error: {job.source}: {job.error}", file=sys.stderr)
    if as_json:
        summary = {
            "family": models.family,
            "colorizer": models.colorizer.name,
            "provenance": models.provenance,
            "results": [
                {"target": str(j.source), "output": str(j.output) if j.status == "ok" else None,
                 "status": j.status, "error": j.error, "timings": j.timings}
                for j in jobs
            ],
        }
        print(json.dumps(summary, indent=2))
    else:
        for job in jobs:
            if job.status == "ok":
                print(f"{job.source} -> {job.output} ({job.timings.get('total', 0):.2f} s)")
    return EXIT_INPUT if failed else EXIT_OK


def run_demo(args: argparse.Namespace) -> int:
    """Implementation of ``deepexemplar demo``: colorize the bundled example pair."""
    from .examples import EXAMPLE_REFERENCE, EXAMPLE_TARGET

    args.targets, args.reference = [EXAMPLE_TARGET], EXAMPLE_REFERENCE
    args.output = args.output / "example_colorized.png"
    args.save_intermediates, args.quiet, args.batch_size = False, True, 1
    return run_colorize(args)


# --- Reference recommendation: --reference-index picks each target's reference ---------------

def _run_with_index(args: argparse.Namespace, targets: list[Path]) -> int:
    """Colorize each target with the top-1 reference of ``args.reference_index``; targets that
    share a reference are colorized together. The chosen reference is recorded in the output
    metadata (``deepexemplar:reference``, plus ``deepexemplar:reference_index``)."""
    from .image_io import ImageReadError
    from .recommend import Index, IndexError_, pick_reference

    try:
        index = Index.load(args.reference_index)
    except (IndexError_, ValueError) as err:
        print(f"error: reference index: {err}", file=sys.stderr)
        return EXIT_INPUT
    chosen: dict[Path, list[Path]] = {}
    failed = False
    for target in targets:
        try:
            reference = pick_reference(args.reference_index, target, index=index)
        except (ImageReadError, IndexError_, ValueError) as err:
            print(f"error: {target}: {err}", file=sys.stderr)
            failed = True
            continue
        print(f"{target}: reference {reference}", file=sys.stderr)
        chosen.setdefault(reference, []).append(target)
    code = EXIT_OK
    for reference, group in chosen.items():
        sub = argparse.Namespace(**vars(args))
        sub.reference, sub.reference_index, sub.targets = reference, None, group
        if len(targets) > 1 and sub.output.suffix.lower() in IMAGE_SUFFIXES:
            print("error: several targets need an output folder, not a file", file=sys.stderr)
            return EXIT_INPUT
        sub.reference_index_used = args.reference_index
        code = max(code, run_colorize(sub))
        args.preloaded_models = getattr(sub, "preloaded_models", None)
    return EXIT_INPUT if failed and code == EXIT_OK else code
