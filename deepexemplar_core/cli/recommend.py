"""``deepexemplar recommend TARGET... --index INDEX``: rank an index's photos as references."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import EXIT_INPUT, EXIT_OK, EXIT_USAGE


def register(subparsers) -> None:
    """Add the ``recommend`` sub-command."""
    parser = subparsers.add_parser(
        "recommend", help="recommend colour references for gray targets from an index")
    parser.add_argument("targets", nargs="+", type=Path, help="target images")
    parser.add_argument("--index", "-i", type=Path, required=True,
                        help="index folder built by `deepexemplar index`")
    parser.add_argument("-k", type=int, default=5, help="number of recommendations (default 5)")
    parser.add_argument("--top-n", type=int, default=200,
                        help="global candidates re-ranked locally (the paper's N, default 200)")
    parser.add_argument("--beta", type=float, default=0.25,
                        help="weight of the luminance-histogram term (default 0.25, the authors')")
    parser.add_argument("--any-class", action="store_true",
                        help="do not restrict the search to the target's top-1 class")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--json", action="store_true",
                        help="print JSON: per target a list of {path, score, ...}, best first")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Rank the index for each target; returns the exit code."""
    from ..image_io import ImageReadError
    from ..models import resolve_device
    from ..recommend import Index, recommend

    if args.k < 1 or args.top_n < 1 or args.beta < 0:
        print("error: -k and --top-n must be >= 1 and --beta >= 0", file=sys.stderr)
        return EXIT_USAGE
    index = Index.load(args.index, device=resolve_device(args.device))
    results, failed = {}, False
    for target in args.targets:
        try:
            found = recommend(index, target, k=args.k, top_n=args.top_n, beta=args.beta,
                              restrict_class=not args.any_class)
        except (ImageReadError, ValueError) as err:  # this target only: the others go on
            named = "" if isinstance(err, ImageReadError) else f"{target}: "  # it names it
            print(f"error: {named}{err}", file=sys.stderr)
            failed = True
            continue
        results[str(target)] = [r.as_dict() for r in found]
        if not args.json:
            print(f"{target}:")
            print("  rank  score    global  local   hist    class  path")
            for i, r in enumerate(found, 1):
                print(f"  {i:>4}  {r.score:+.4f}  {r.global_score:+.3f}  {r.local_score:+.3f}  "
                      f"{r.histogram_score:+.3f}  {'yes' if r.class_match else 'no ':>5}  {r.path}")
    if args.json:
        print(json.dumps(results, indent=2))
    return EXIT_INPUT if failed else EXIT_OK
