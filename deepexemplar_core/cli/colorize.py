"""``deepexemplar colorize`` and ``deepexemplar demo``: files in, colour files out.

Outputs keep the target's size, bit depth (8 or 16) and alpha channel, carry provenance
metadata (model family, weights sha256, version, reference), and are written atomically, so an
error or Ctrl-C never leaves a partial file.

Several references (``-r a.jpg -r b.jpg``, or ``--reference-index IDX -k 3``): per pixel the
best-matching one colours the target; ``--region`` masks (one per reference, in order, white =
its region, drawn on the target) say which reference colours what. The metadata records the
references and each one's share of the pixels (``deepexemplar:choice``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..image_io import IMAGE_SUFFIXES
from . import EXIT_ERROR, EXIT_INPUT, EXIT_OK, EXIT_USAGE, exit_code_for
from .options import (
    add_model_options,
    config_from_args,
    load_models_from_args,
    once,
    prepare_one_or_set,
)

logger = logging.getLogger("deepexemplar")


@dataclass
class _Job:
    """One target file and what became of it."""

    source: Path
    output: Path
    status: str = "pending"
    error: str = ""
    replaced: bool = False  # the output existed before this run (written over)
    timings: dict[str, float] = field(default_factory=dict)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``colorize`` and ``demo`` sub-commands."""
    col = subparsers.add_parser("colorize", help="colorize gray photos with a colour reference")
    col.add_argument("targets", nargs="+", type=Path, help="target images or folders of images")
    refs = col.add_argument_group("references (one or both)")
    refs.add_argument("--reference", "-r", type=Path, action="append", default=None,
                      help="colour reference image; repeat for several (each pixel takes the "
                           "reference that matches it best)")
    refs.add_argument("--reference-index", type=Path, default=None,
                      help="index folder (`deepexemplar index`): pick each target's reference(s) "
                           "from it (recorded in the output's metadata); with -r, the picks "
                           "join your references and colour what they do not match")
    col.add_argument("-k", type=int, default=1,
                     help="with --reference-index: use the top K recommendations together "
                          "(default 1)")
    col.add_argument("--region", type=Path, action="append", default=None,
                     help="mask image of the N-th reference's region (white = colour here with "
                          "it), drawn on the target; repeat in the references' order, '-' for "
                          "a reference without a region")
    col.add_argument("--region-weight", type=float, default=None,
                     help="a masked reference colours only inside its region (default), or, "
                          "with a weight >= 0, is only preferred there by that much")
    add_model_options(col)
    col.add_argument("-o", "--output", type=Path, required=True,
                     help="output file (one target) or folder")
    col.add_argument("--save-intermediates", action="store_true",
                     help="also write fields (authors' flow format), combo, maps and warped colours")
    col.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    col.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    col.add_argument("--skip-existing", action="store_true",
                     help="leave outputs that already exist as they are (default: replace them "
                          "and say so in the summary)")
    col.add_argument("--batch-size", type=int, default=1,
                     help="same-sized targets matched together (the reference's features are "
                          "computed once either way; more uses more memory, rarely saves time)")
    col.set_defaults(run=run_colorize)
    demo = subparsers.add_parser("demo", help="colorize the bundled example pair (offline)")
    add_model_options(demo)
    demo.add_argument("-o", "--output", type=Path, default=Path("out"), help="output folder")
    demo.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    demo.set_defaults(run=run_demo)


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


#: Suffixes that name an image file (not a folder) when given to ``-o``.
_IMAGE_LIKE = (*IMAGE_SUFFIXES, ".gif", ".heic", ".avif", ".jp2", ".exr")
#: What the writer encodes (PNG and TIFF keep 16 bits and alpha).
_WRITABLE = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


def colorized_name(stem: str, count: int = 0) -> str:
    """The output file name of a folder's target: ``<stem>_colorized.png``, ``<stem>_<count>_...``
    for the ``count``-th (from 0) target of the folder with the same stem.

    Example:
        >>> colorized_name("scan"), colorized_name("scan", 1)
        ('scan_colorized.png', 'scan_1_colorized.png')
    """
    return f"{stem}{f'_{count}' if count else ''}_colorized.png"


def plan_outputs(targets: list[Path], output: Path) -> list[_Job]:
    """Output path per target: ``output`` itself when it names an image file (one target), else
    ``output/<stem>_colorized.png`` (PNG keeps 16 bits and alpha).

    Raises:
        ValueError: an image suffix the writer cannot encode, a file name for several targets, or
            an output that is one of the inputs (the original is never overwritten).
    """
    suffix = output.suffix.lower()
    if suffix in _IMAGE_LIKE and not output.is_dir():
        if suffix not in _WRITABLE:
            raise ValueError(f"-o {output}: cannot write {suffix} images; use .png, .tif or .jpg, "
                             "or give a folder")
        if len(targets) > 1:
            raise ValueError(f"-o {output}: {len(targets)} targets need an output folder, not a "
                             "file name")
        jobs = [_Job(targets[0], output)]
    else:
        names: dict[str, int] = {}
        jobs = []
        for target in targets:
            count = names.get(target.stem, 0)
            names[target.stem] = count + 1
            jobs.append(_Job(target, output / colorized_name(target.stem, count)))
    for job in jobs:
        if job.output.resolve() == job.source.resolve():
            raise ValueError(f"-o {job.output}: is the input itself; choose another output so "
                             "that the original is kept")
    return jobs


def check_writable(folders: Iterable[Path]) -> None:
    """Create the output folders and check they accept files, before any work is done (the
    one check of ``colorize`` and ``video``).

    Raises:
        OSError: a folder cannot be created or written (the message names it).
    """
    import tempfile

    for folder in dict.fromkeys(folders):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as err:
            raise OSError(f"output folder {folder} is not writable ({err.strerror or err}); "
                          "choose another -o") from err


def _metadata(models, references: list[Path], target: Path, config, done,
              regions: list[tuple[Path, object]]) -> dict[str, str]:
    meta = {f"deepexemplar:{k}": v for k, v in models.provenance.items()}
    if len(references) > 1:  # several: which reference coloured what share of the pixels
        group = done.intermediates
        choice = group.choice[group.indices.index(done.index)].flatten().cpu()
        shares = choice.bincount(minlength=len(references)).float() / choice.numel()
        meta["deepexemplar:references"] = json.dumps([str(r) for r in references])
        meta["deepexemplar:choice"] = json.dumps(
            {str(r): round(float(share), 4) for r, share in zip(references, shares, strict=True)})
        if regions:
            meta["deepexemplar:regions"] = json.dumps([str(path) for path, _ in regions])
    meta.update({
        "deepexemplar:reference": ", ".join(str(r) for r in references),
        "deepexemplar:target": str(target),
        "deepexemplar:working_size": str(config.size),
        "deepexemplar:upsample": config.upsample,
        "Software": f"deepexemplar {models.provenance.get('deepexemplar_version', '')}",
    })
    return meta


def _readable(jobs: list[_Job], loaded: dict[int, object],
              regions: list[tuple[Path, object]]) -> Iterator:
    """Read each target in turn; yield the readable ones' pixels, mark the others.

    A target that cannot be read, or that a region does not fit, fails alone; one the core
    refuses (too small, ...) is reported through :func:`_refused` and fails alone too: it is
    never part of a batch.
    """
    from ..fusion import resize_region
    from ..image_io import ImageReadError, read_image

    positions = itertools.count()  # the core numbers the images it receives: 0, 1, 2 ...
    for number, job in enumerate(jobs):
        if job.status != "pending":  # kept by --skip-existing
            continue
        try:
            image = read_image(job.source)
            for path, mask in regions:
                if mask is not None:
                    resize_region(f"--region {path}", mask, tuple(image.pixels.shape[-2:]))
        except ImageReadError as err:
            job.status, job.error = "unreadable", str(err)
            continue
        except ValueError as err:
            job.status, job.error = "invalid", str(err)
            continue
        loaded[next(positions)] = (number, image)
        yield image.pixels


def _colorize_all(jobs: list[_Job], prepared, refs: list[Path], regions: list[tuple[Path, object]],
                  models, config, args) -> None:
    """One streaming core call for all targets; each result is written as it finishes."""
    from ..pipeline import PROGRESS_UNITS, colorize_iter

    loaded: dict[int, tuple[int, object]] = {}
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="image", file=sys.stderr,
                   bar_format="{l_bar}{bar}| {n:.1f}/{total} images [{elapsed}<{remaining}]")

    def progress(done: int, _total: int) -> None:
        if bar is not None:  # per matching level: a single large image shows progress too
            refused = sum(j.status in ("unreadable", "invalid", "kept") for j in jobs)
            bar.n = min(len(jobs), refused + done / PROGRESS_UNITS)
            bar.refresh()

    def refused(position: int, error: ValueError) -> None:
        number, image = loaded.pop(position)
        jobs[number].status, jobs[number].error = "invalid", _phrase(error, jobs[number].source)

    try:
        for done in colorize_iter(_readable(jobs, loaded, regions), prepared, models, config,
                                  chunk_size=max(1, args.batch_size), progress=progress,
                                  keep_intermediates=args.save_intermediates or len(refs) > 1,
                                  on_invalid=refused):
            number, image = loaded.pop(done.index)
            meta = _metadata(models, refs, jobs[number].source, config, done, regions)
            _write(jobs[number], image, done, meta, refs, args.save_intermediates)
    finally:
        if bar is not None:
            bar.n = sum(j.status != "pending" for j in jobs)
            bar.close()


def _phrase(error: ValueError, source: Path) -> str:
    """The core's refusal of a target, with the file's name in place of its position."""
    text = str(error)
    name = getattr(error, "name", "")
    return str(source) + text[len(name):] if name and text.startswith(name) else text


def _write(job: _Job, image, done, metadata: dict[str, str], refs: list[Path],
           intermediates: bool) -> None:
    """Write one result (and its intermediates); a failed write fails this target alone."""
    from ..image_io import write_image

    deep = image.bit_depth > 8 and job.output.suffix.lower() not in (".jpg", ".jpeg")
    try:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        write_image(job.output, done.image.cpu(), alpha=image.alpha, bit_depth=16 if deep else 8,
                    metadata=metadata)
    except OSError as err:
        job.status, job.error = "failed", f"cannot write {job.output}: {err}"
        return
    job.status, job.timings = "ok", {k: round(v, 4) for k, v in done.timings.items()}
    job.timings["total"] = round(sum(done.timings.values()), 4)
    if intermediates:  # after the result is counted: Ctrl-C here leaves it listed as written
        from ..files import atomic_folder
        from ..intermediates import save_intermediates

        group, folder = done.intermediates, job.output.with_name(job.output.stem + "_intermediates")
        try:
            with atomic_folder(folder) as temporary:  # all of the files, or none
                save_intermediates(temporary, group, group.indices.index(done.index),
                                   job.source.stem, _reference_names(job.source.stem, refs))
        except OSError as err:
            job.status, job.error = "failed", f"cannot write {folder}: {err}"


def _reference_names(target: str, refs: list[Path]) -> list[str]:
    """The references' names in the intermediates' file names (``<T>_<R>.txt``): their stems,
    numbered from 1 where two would be the same or one is the target's (``a``, ``a_2``), so
    that no file is written over another.

    Example:
        >>> _reference_names("t", [Path("x/a.png"), Path("y/a.jpg"), Path("t.png")])
        ['a', 'a_2', 't_3']
    """
    names: list[str] = []
    for k, path in enumerate(refs, 1):
        names.append(path.stem if path.stem not in (target, *names) else f"{path.stem}_{k}")
    return names


def run_colorize(args: argparse.Namespace) -> int:
    """Implementation of ``deepexemplar colorize``; returns the exit code."""
    from ..fusion import FusionConfig
    from ..image_io import ImageReadError, read_image

    targets, problems = collect_targets(args.targets)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not targets:
        return EXIT_INPUT
    if getattr(args, "reference_index", None) is not None:
        return _run_with_index(args, targets)
    if not args.reference:
        print("error: give a colour reference (-r REF, repeat for several) or an index of your "
              "photos (--reference-index IDX, built by `deepexemplar index`), or both",
              file=sys.stderr)
        return EXIT_USAGE
    refs = args.reference if isinstance(args.reference, list) else [args.reference]
    region_paths = getattr(args, "region", None) or []
    if len(region_paths) > len(refs):
        print(f"error: --region: {len(region_paths)} regions for {len(refs)} references; give "
              "at most one region per reference, in the references' order", file=sys.stderr)
        return EXIT_INPUT
    try:
        refs, region_paths = once(refs, region_paths)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    if len(refs) == 1 and region_paths and str(region_paths[0]) != "-":
        print(f"warning: --region {region_paths[0]}: with one reference a region changes "
              "nothing (no other reference colours the rest); give a -r for the rest too",
              file=sys.stderr)
    try:
        references = [read_image(path) for path in refs]
    except ImageReadError as err:
        print(f"error: reference: {err}", file=sys.stderr)
        return EXIT_INPUT
    try:
        regions = [(path, None if str(path) == "-" else _read_region(path))
                   for path in region_paths]
    except ImageReadError as err:
        print(f"error: --region: {err}", file=sys.stderr)
        return EXIT_INPUT
    try:
        jobs = plan_outputs(targets, args.output)
        check_writable(job.output.parent for job in jobs)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    _mark_existing(jobs, getattr(args, "skip_existing", False))
    if all(job.status == "kept" for job in jobs):  # --skip-existing: nothing to do
        return _report(jobs, None, args.json)
    try:
        models = getattr(args, "preloaded_models", None) or load_models_from_args(args)
        config = config_from_args(args)
    except (ValueError, TypeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return exit_code_for(err)
    if getattr(args, "reference_index_used", None) is not None:  # --reference-index
        models.provenance["reference_index"] = str(args.reference_index_used)
        args.preloaded_models = models  # reused for the targets of the next reference
    print(f"model family: {models.family} ({models.provenance.get('family_reason', 'as requested')}); "
          f"colorizer: {models.colorizer.name}"
          + (f" (fill: {models.provenance['fill']})" if "fill" in models.provenance else ""),
          file=sys.stderr)
    if models.provenance.get("warning"):
        print(f"warning: {models.provenance['warning']}", file=sys.stderr)
    try:
        weight = getattr(args, "region_weight", None)
        prepared, refs = prepare_one_or_set(
            models, [r.rgb() for r in references], refs, config,
            masks=[mask for _, mask in regions], regions=region_paths,
            fusion=FusionConfig() if weight is None else FusionConfig(region_weight=weight))
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    try:
        _colorize_all(jobs, prepared, refs, regions, models, config, args)
    except KeyboardInterrupt:
        _report(jobs, models, args.json)
        raise
    except Exception as err:  # noqa: BLE001 - the CLI reports any failure with an exit code
        logger.debug("processing failed", exc_info=True)
        print(f"error: processing failed: {type(err).__name__}: {err}", file=sys.stderr)
        _report(jobs, models, args.json)
        return EXIT_ERROR
    return _report(jobs, models, args.json)


def _read_region(path: Path):
    """A ``--region`` file as an ``(H, W)`` mask in [0, 1]: white is the region, and so is
    nothing transparent (a region painted on a transparent layer keeps any colour there)."""
    from ..image_io import read_image

    image = read_image(path)
    mask = image.pixels.mean(dim=0)
    return mask if image.alpha is None else mask * image.alpha[0]


def _mark_existing(jobs: list[_Job], skip_existing: bool) -> None:
    """Outputs already on disk: kept as they are with ``--skip-existing``, else marked replaced
    (the summary lists them, so that two runs into one folder never replace files silently)."""
    for job in jobs:
        if job.output.exists():
            if skip_existing:
                job.status = "kept"
            else:
                job.replaced = True


def _report(jobs: list[_Job], models, as_json: bool) -> int:
    """Print what was written, what failed and what was never reached; return the exit code.

    ``models`` is ``None`` when every output was kept (nothing was loaded)."""
    for job in jobs:
        if job.status == "pending":
            job.status, job.error = "skipped", "not reached (the run stopped before it)"
    failed = [job for job in jobs if job.status not in ("ok", "kept")]
    for job in failed:
        print(f"error: {job.source}: {job.error}", file=sys.stderr)
    if as_json:
        summary = {
            "family": models.family if models else None,
            "colorizer": models.colorizer.name if models else None,
            "provenance": models.provenance if models else {},
            "written": [str(j.output) for j in jobs if j.status == "ok"],
            "replaced": [str(j.output) for j in jobs if j.status == "ok" and j.replaced],
            "kept": [str(j.source) for j in jobs if j.status == "kept"],
            "failed": [str(j.source) for j in jobs if j.status not in ("ok", "skipped", "kept")],
            "skipped": [str(j.source) for j in jobs if j.status == "skipped"],
            "results": [
                {"target": str(j.source), "output": str(j.output) if j.status == "ok" else None,
                 "status": j.status, "error": j.error, "timings": j.timings,
                 "replaced": j.status == "ok" and j.replaced}
                for j in jobs
            ],
        }
        print(json.dumps(summary, indent=2))
    else:
        for job in jobs:
            if job.status == "ok":
                replaced = "replaced, " if job.replaced else ""
                print(f"{job.source} -> {job.output} ({replaced}{job.timings['total']:.2f} s)")
            elif job.status == "kept":
                print(f"{job.source} -> {job.output} (exists, kept: --skip-existing)")
        replaced = sum(j.status == "ok" and j.replaced for j in jobs)
        kept = sum(j.status == "kept" for j in jobs)
        print(f"{sum(j.status == 'ok' for j in jobs)} written"
              f"{f' ({replaced} replaced)' if replaced else ''}, "
              f"{sum(j.status not in ('ok', 'skipped', 'kept') for j in jobs)} failed, "
              f"{sum(j.status == 'skipped' for j in jobs)} skipped"
              f"{f', {kept} kept (--skip-existing)' if kept else ''}", file=sys.stderr)
    return EXIT_INPUT if failed else EXIT_OK


def run_demo(args: argparse.Namespace) -> int:
    """Implementation of ``deepexemplar demo``: colorize the bundled example pair."""
    from ..examples import EXAMPLE_REFERENCE, EXAMPLE_TARGET

    args.targets, args.reference = [EXAMPLE_TARGET], EXAMPLE_REFERENCE
    args.output = args.output / "example_colorized.png"
    args.save_intermediates, args.quiet, args.batch_size = False, True, 1
    return run_colorize(args)


def _run_with_index(args: argparse.Namespace, targets: list[Path]) -> int:
    """Colorize each target with the top-K references of ``args.reference_index`` (``-k``),
    after the user's own ``-r`` references when given (a pick that is one of them is left
    out); targets that share references are colorized together. The references are recorded
    in the output metadata (``deepexemplar:reference``, plus ``deepexemplar:reference_index``)."""
    from ..image_io import ImageReadError
    from ..recommend import Index, IndexError_, pick_references

    own = list(args.reference or [])
    regions = getattr(args, "region", None) or []
    if len(regions) > len(own):
        print(f"error: --region: {len(regions)} regions for {len(own)} reference(s) of "
              "yours; regions go with your -r references, in order (the index's picks take "
              "none)", file=sys.stderr)
        return EXIT_INPUT
    try:
        index = Index.load(args.reference_index)
    except (IndexError_, ValueError) as err:
        print(f"error: reference index: {err}", file=sys.stderr)
        return exit_code_for(err)
    if len(targets) > 1 and args.output.suffix.lower() in _IMAGE_LIKE:
        print(f"error: -o {args.output}: {len(targets)} targets need an output folder, not a "
              "file name", file=sys.stderr)
        return EXIT_INPUT
    if args.k < 1:
        print(f"error: -k: expected >= 1 references, got {args.k}", file=sys.stderr)
        return EXIT_INPUT
    mine = {path.resolve() for path in own}
    chosen: dict[tuple[Path, ...], list[Path]] = {}
    failed = False
    for target in targets:
        try:
            references = [path for path in pick_references(index, target, args.k + len(own))
                          if path.resolve() not in mine][: args.k]
        except (ImageReadError, IndexError_, ValueError) as err:
            named = "" if isinstance(err, ImageReadError) else f"{target}: "  # it names it
            print(f"error: {named}{err}", file=sys.stderr)
            failed = True
            continue
        if len(references) < args.k:
            print(f"warning: {target}: -k {args.k}, but the index {args.reference_index} has "
                  f"only {len(references)} eligible reference(s); using those", file=sys.stderr)
        print(f"{target}: reference{'s' if len(references) > 1 else ''} "
              f"{', '.join(map(str, references))}" + (" after yours" if own else ""),
              file=sys.stderr)
        chosen.setdefault(tuple(own + references), []).append(target)
    code = EXIT_OK
    for references, group in chosen.items():
        sub = argparse.Namespace(**vars(args))
        sub.reference, sub.reference_index, sub.targets = list(references), None, group
        sub.reference_index_used = args.reference_index
        code = max(code, run_colorize(sub))
        args.preloaded_models = getattr(sub, "preloaded_models", None)
    return EXIT_INPUT if failed and code == EXIT_OK else code
