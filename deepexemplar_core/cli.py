"""The ``deepexemplar`` command (also ``python -m deepexemplar_core``).

Sub-commands: ``colorize``, ``demo`` (the bundled example pair), ``convert`` (the authors'
weights), ``build-ext`` and ``doctor`` (the compiled PatchMatch extension).

Exit codes (stable, for scripts):

====  ==========================================================================
0     every target was colorized
2     bad command line (unknown option, missing argument)
3     weights missing, corrupt or for another network
4     at least one target or the reference could not be read or is invalid (the
      other targets were still written)
5     an unexpected error while processing
130   interrupted (Ctrl-C); no partial output file is left behind
====  ==========================================================================
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_WEIGHTS, EXIT_INPUT, EXIT_ERROR, EXIT_INTERRUPTED = 0, 2, 3, 4, 5, 130

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

logger = logging.getLogger("deepexemplar")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--family", choices=("auto", "paper", "lite"), default="auto",
                        help="model family; auto = paper when its weights resolve locally, else lite")
    parser.add_argument("--colorizer", choices=("auto", "paper", "propagation"), default="auto",
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
                        help="working short side in pixels (0 = native); the models were trained at 256")
    parser.add_argument("--upsample", choices=("guided", "bicubic"), default="guided",
                        help="chroma upsampling to full resolution (bicubic = the authors')")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="colour strength, 0 = gray, 1 = as predicted (default)")
    parser.add_argument("--backend", choices=("auto", "torch", "cpp", "cuda"), default="auto",
                        help="PatchMatch implementation (auto = compiled extension when built)")


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="output file (one target) or folder")
    parser.add_argument("--save-intermediates", action="store_true",
                        help="also write fields (authors' flow format), combo, maps and warped colours")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    parser.add_argument("--batch-size", type=int, default=4,
                        help="targets colorized together (same-sized ones share the reference features)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``deepexemplar`` command."""
    parser = argparse.ArgumentParser(
        prog="deepexemplar",
        description="Deep Exemplar-based Colorization (He et al., SIGGRAPH 2018)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log details on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    col = sub.add_parser("colorize", help="colorize gray photos with a colour reference")
    col.add_argument("targets", nargs="+", type=Path, help="target images or folders of images")
    col.add_argument("--reference", "-r", type=Path, required=True, help="colour reference image")
    _add_model_options(col)
    _add_output_options(col)
    demo = sub.add_parser("demo", help="colorize the bundled example pair (offline)")
    _add_model_options(demo)
    demo.add_argument("-o", "--output", type=Path, default=Path("out"), help="output folder")
    demo.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    from .convert.cli import add_convert_parser, run_convert

    add_convert_parser(sub).set_defaults(run=run_convert)
    from .ops.cli import add_ext_parsers

    add_ext_parsers(sub)
    from .cli_video import register as register_video

    register_video(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command in ("colorize", "demo"):
            from .cli_colorize import run_colorize, run_demo

            return run_demo(args) if args.command == "demo" else run_colorize(args)
        return int(args.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
