"""``deepexemplar batch``: an archive (a folder tree or a list of paths) on Ray Data, resumable.

The files go through an actor pool in which each worker loads the models and prepares the
reference once; OUTPUT mirrors INPUT, every output is written atomically with the metadata of
``deepexemplar colorize`` (same pixels), and the ledger in OUTPUT records every file, so a rerun
or a resume after a crash does only what is missing (see ``docs/batch.md``). Exit codes are
``colorize``'s; 2 also when Ray is not installed (the message says how to install it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import EXIT_ERROR, EXIT_INPUT, EXIT_OK, EXIT_USAGE, exit_code_for
from .options import add_model_options, once

#: Model options handed to the workers (the rest of the command line is the driver's).
_MODEL_OPTIONS = ("family", "colorizer", "weights", "backbone_weights", "colornet_weights",
                  "allow_download", "repo_id", "device", "size", "upsample", "strength", "backend")


class UsageError(ValueError):
    """A combination of options that cannot work (exit code 2)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``batch`` sub-command."""
    parser = subparsers.add_parser(
        "batch", help="colorize an archive (folder tree or list of paths) on Ray, resumable",
        description="Colorize every image (and video clip) of a folder tree or a list of paths "
                    "with an actor pool on Ray Data, here or on a cluster. OUTPUT mirrors the "
                    "tree and holds a ledger: a rerun does only what is missing.")
    parser.add_argument("input", help="folder (searched recursively), or a .txt/.csv/.parquet "
                                      "list of paths; a local path or a URI (s3://, gs://, ...)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="output folder (mirrors INPUT; holds the ledger); on a cluster, a "
                             "folder every node mounts")
    refs = parser.add_mutually_exclusive_group(required=True)
    refs.add_argument("--reference", "-r", type=Path, action="append",
                      help="colour reference image (every worker must be able to read it); "
                           "repeat for several (each pixel takes the reference that matches it "
                           "best)")
    refs.add_argument("--reference-index", type=Path, default=None,
                      help="index folder (`deepexemplar index`): each image gets its top "
                           "recommendation (recorded in the output's metadata)")
    parser.add_argument("-k", type=int, default=1,
                        help="references per target from --reference-index (1 for now)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join: auto or ray://HOST:10001 (default: start Ray "
                             "on this machine)")
    parser.add_argument("--workers", type=int, default=1,
                        help="actors; each loads the models once (default 1)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0,
                        help="GPUs per worker, fractions share a GPU (default 0: CPUs)")
    parser.add_argument("--cpus-per-worker", type=float, default=None,
                        help="CPUs per worker (default: without GPUs the CPUs divided among the "
                             "workers, with GPUs 1)")
    parser.add_argument("--batch-size", type=int, default=4, help="files per worker call")
    parser.add_argument("--retry-failed", action="store_true",
                        help="process again the files the ledger records as failed")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    add_model_options(parser)
    parser.set_defaults(run=run)


def _config(args: argparse.Namespace):
    """The job of the command line; options that cannot work raise :class:`UsageError`."""
    from ..distributed.job import JobConfig

    if args.k != 1:
        raise UsageError(f"-k {args.k}: only the top recommendation (-k 1) is available for now")
    if args.reference_index is not None and not args.reference_index.is_dir():
        raise UsageError(f"--reference-index {args.reference_index}: no such folder (build one "
                         "with `deepexemplar index`)")
    reference = None
    if args.reference:
        reference = tuple(str(path.resolve()) for path in once(args.reference)[0])
    index = str(args.reference_index.resolve()) if args.reference_index else None
    options = {name: getattr(args, name) for name in _MODEL_OPTIONS}
    try:
        return JobConfig(args.input, args.output.resolve(), reference, index, options,
                         args.address, args.workers, args.gpus_per_worker, args.cpus_per_worker,
                         args.batch_size, args.retry_failed)
    except ValueError as err:
        raise UsageError(str(err)) from err


def run(args: argparse.Namespace) -> int:
    """Implementation of ``deepexemplar batch``; returns the exit code."""
    from ..distributed.job import BatchJob, RayMissingError, import_ray, root_cause
    from ..image_io import ImageReadError, read_image

    try:
        config = _config(args)
        import_ray()
    except (UsageError, RayMissingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    references = [config.reference] if isinstance(config.reference, str) else config.reference
    for reference in references or ():
        try:
            read_image(reference)  # a bad reference fails here, before Ray starts
        except ImageReadError as err:
            print(f"error: reference: {err}", file=sys.stderr)
            return EXIT_INPUT
    job, bar = BatchJob(config), _Progress(enabled=not args.quiet)
    try:
        job.run(bar.update)
    except KeyboardInterrupt:
        bar.close()
        _report(job.summary, args.json)
        raise
    except Exception as err:  # noqa: BLE001 - Ray's errors wrap the workers' own (root_cause)
        bar.close()
        cause = root_cause(err)
        print(f"error: {cause}", file=sys.stderr)
        if job.summary.processed:
            _report(job.summary, args.json)
        return exit_code_for(cause)
    finally:
        bar.close()
    return _report(job.summary, args.json)


class _Progress:
    """Files done, files/s and the ETA on stderr, updated per result block."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None

    def update(self, summary) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            print(f"{summary.files} files: {summary.done_before} done before, "
                  f"{summary.failed_before} failed before, {summary.pending} to do", file=sys.stderr)
            self.bar = tqdm(total=summary.pending, unit="file", file=sys.stderr)
        self.bar.n = summary.processed
        self.bar.set_postfix(written=summary.written, failed=len(summary.failed), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _report(summary, as_json: bool) -> int:
    """Print the failures and the summary; return the exit code."""
    failed = len(summary.failed) + summary.failed_before
    if as_json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        for row in summary.failed:
            print(f"error: {row['input']}: {row['status']}: {row['error']}", file=sys.stderr)
        rate = summary.as_dict()["files_per_second"]
        print(f"{summary.written} written, {failed} failed"
              f"{f' ({summary.failed_before} recorded before; --retry-failed)' if summary.failed_before else ''}, "
              f"{summary.done_before + summary.existing} skipped (done before)"
              f"{f', {summary.not_reached} not reached' if summary.not_reached else ''}"
              f" in {summary.seconds:.1f} s ({rate or 0:.2f} files/s); ledger: {summary.ledger}",
              file=sys.stderr)
    if failed:
        return EXIT_INPUT
    return EXIT_ERROR if summary.not_reached else EXIT_OK
