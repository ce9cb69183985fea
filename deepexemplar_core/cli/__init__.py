"""The ``deepexemplar`` command (also ``python -m deepexemplar_core``).

One module per sub-command; each has ``register(subparsers)`` (adding its parser with
``set_defaults(run=...)``) and a ``run(args) -> int``. :data:`COMMANDS` lists them in the order
``--help`` shows them.

Exit codes (stable, for scripts); a sub-command's error is mapped to its code by the exception's
type in :func:`exit_code_for`, never by its text:

====  ==========================================================================
0     every target was colorized
2     bad command line (unknown option, missing argument)
3     weights missing, corrupt or for another network
4     at least one target or the reference could not be read or is invalid, or the
      output cannot be written (the other targets were still written)
5     an unexpected error while processing
130   interrupted (Ctrl-C); no partial output file is left behind
143   terminated (SIGTERM, as schedulers and containers stop jobs); handled like
      Ctrl-C: no partial file, the summary lists what was written
====  ==========================================================================
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Sequence

EXIT_OK, EXIT_USAGE, EXIT_WEIGHTS, EXIT_INPUT, EXIT_ERROR, EXIT_INTERRUPTED = 0, 2, 3, 4, 5, 130
EXIT_TERMINATED = 143

#: Sub-command modules of this package, in the order ``--help`` lists them.
COMMANDS = ("colorize", "video", "batch", "index", "recommend", "convert", "ext")

logger = logging.getLogger("deepexemplar")


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwinds like Ctrl-C, so temporary files are removed on the way out."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def exit_code_for(error: BaseException) -> int:
    """The exit code of an error that ends a command (see the module docstring).

    Example:
        >>> exit_code_for(ValueError("size: expected >= 32")), exit_code_for(KeyboardInterrupt())
        (4, 130)
    """
    from ..weights import WeightsError

    if isinstance(error, Terminated):
        return EXIT_TERMINATED
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, WeightsError):
        return EXIT_WEIGHTS
    if isinstance(error, (ValueError, TypeError, OSError)):
        return EXIT_INPUT
    return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``deepexemplar`` command.

    ``-v``/``--verbose`` is accepted before and after the sub-command.

    Example:
        >>> parse = build_parser().parse_args
        >>> [parse(a).verbose for a in (["-v", "doctor"], ["doctor", "-v"], ["doctor"])]
        [True, True, False]
    """
    parser = argparse.ArgumentParser(
        prog="deepexemplar",
        description="Deep Exemplar-based Colorization (He et al., SIGGRAPH 2018)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log details on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f".{name}", __name__).register(sub)
    for command in {id(p): p for p in sub.choices.values()}.values():
        # SUPPRESS: absent after the sub-command, the value given before it (or False) stays
        command.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                             help="log details on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring).

    This is the one place where an error that ends a command becomes its exit code
    (:func:`exit_code_for`) and its ``error:`` line; SIGTERM unwinds like Ctrl-C while the command
    runs, and the previous SIGTERM handler is back when this returns.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.run(args))
    except KeyboardInterrupt as stop:
        print("terminated" if isinstance(stop, Terminated) else "interrupted", file=sys.stderr)
        return exit_code_for(stop)
    except Exception as err:  # noqa: BLE001 - every failure ends with a message and an exit code
        code = exit_code_for(err)
        if code != EXIT_ERROR:  # an expected error: its message says what to fix
            print(f"error: {err}", file=sys.stderr)
            return code
        if args.verbose:
            traceback.print_exc()
        print(f"error: {type(err).__name__}: {err}"
              + ("" if args.verbose else " (run with -v for the traceback)"), file=sys.stderr)
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
