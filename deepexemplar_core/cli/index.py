"""``deepexemplar index FOLDER -o INDEX``: build or update a reference index."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import EXIT_OK


def register(subparsers) -> None:
    """Add the ``index`` sub-command."""
    parser = subparsers.add_parser(
        "index", help="index a folder of colour photos for reference recommendation")
    parser.add_argument("folder", type=Path, help="folder of colour images (searched recursively)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="index folder (created; an existing index is updated incrementally)")
    parser.add_argument("--family", choices=("auto", "lite", "paper"), default="auto",
                        help="descriptor backbone; auto = the gray VGG when its weights with fc "
                             "layers resolve locally, else lite")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--rebuild", action="store_true",
                        help="replace an existing index (e.g. one built with another backbone)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build the index; returns the exit code."""
    import json

    from ..models import resolve_device
    from ..recommend import IndexError_, build_index, load_describer, read_manifest

    family = args.family
    if family == "auto" and (args.output / "manifest.json").is_file() and not args.rebuild:
        try:  # updating an index: keep the backbone it was built with
            family = read_manifest(args.output).get("backbone", {}).get("family", "auto")
        except IndexError_:
            pass
    describer = load_describer(family, resolve_device(args.device))
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if args.quiet or total == 0:
            return
        if bar is None:  # created on the first call: nothing is shown for a refused index
            from tqdm import tqdm

            bar = tqdm(total=total, unit="image", file=sys.stderr, desc="indexing")
        bar.n = done
        bar.refresh()

    try:
        report = build_index(args.folder, args.output, describer, batch_size=args.batch_size,
                             rebuild=args.rebuild, progress=progress)
    except KeyboardInterrupt:
        print(f"interrupted; finished batches are kept in {args.output}/partial and the next run "
              "resumes from them", file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()
    for path, reason in report.skipped:
        print(f"skipped: {path}: {reason}", file=sys.stderr)
    for group in report.duplicates:
        print(f"duplicates (only the first is recommended): {', '.join(group)}", file=sys.stderr)
    rate = report.computed / report.seconds if report.seconds > 0 else 0.0
    summary = {
        "index": str(report.index), "backbone": describer.family, "indexed": report.indexed,
        "added": report.added, "changed": report.changed, "deleted": report.deleted,
        "unchanged": report.unchanged, "resumed": report.resumed, "computed": report.computed,
        "skipped": len(report.skipped), "duplicate_groups": len(report.duplicates),
        "pca_refitted": report.pca_refitted, "seconds": round(report.seconds, 2),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{report.index}: {report.indexed} images indexed with the {describer.family} "
              f"backbone ({report.added} added, {report.changed} changed, {report.deleted} "
              f"deleted, {report.unchanged} unchanged, {report.resumed} resumed; "
              f"{len(report.skipped)} skipped) in {report.seconds:.1f} s "
              f"({rate:.1f} images/s computed)")
    return EXIT_OK
