"""``deepexemplar build-ext`` and ``deepexemplar doctor``."""

from __future__ import annotations

import argparse
import json
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``build-ext`` and ``doctor`` sub-commands (each sets ``args.run``)."""
    build = subparsers.add_parser(
        "build-ext", help="compile the C++/CUDA matching kernels into the user cache")
    build.add_argument("--force", action="store_true", help="recompile even if a build is cached")
    build.add_argument("--verbose-build", action="store_true", help="show the compiler commands")
    build.set_defaults(run=run_build_ext)
    doctor = subparsers.add_parser(
        "doctor", help="report which matching backend is active and why")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(run=run_doctor)


def run_build_ext(args: argparse.Namespace) -> int:
    """Compile (or find cached) and load the extension; print where it is. Returns an exit code."""
    from ..matching import extension
    from . import EXIT_OK

    start = time.perf_counter()
    try:
        plan = extension.build(force=args.force, verbose=args.verbose_build)
    except RuntimeError as e:  # exit code 5 from cli.main, with the hint
        raise RuntimeError(f"build-ext failed: {e}\nrun `deepexemplar doctor` to check the "
                           "compiler and CUDA toolkit") from e
    kind = "C++ and CUDA" if plan.with_cuda else f"C++ only ({plan.reason})"
    print(f"built {kind} kernels in {time.perf_counter() - start:.1f} s: {plan.library}")
    return EXIT_OK


def run_doctor(args: argparse.Namespace) -> int:
    """Print the environment report of :func:`deepexemplar_core.matching.doctor.diagnose`."""
    from ..matching.doctor import diagnose, format_report

    from . import EXIT_OK

    info = diagnose()
    print(json.dumps(info, indent=2) if args.json else format_report(info))
    return EXIT_OK
