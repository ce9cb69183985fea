"""``python -m training``: the package runs in steps; list them (``--help``) or say which to run."""

from __future__ import annotations

import sys

import training


def main(argv: list[str] | None = None) -> int:
    """Print the steps of the package docstring; 0 for ``-h``/``--help``, else 2 (usage)."""
    argv = sys.argv[1:] if argv is None else argv
    wants_help = bool(argv) and argv[0] in ("-h", "--help")
    text = (training.__doc__.strip()
            + "\n\nEach step has its own --help (python -m training.pairs --help).\n")
    if wants_help:
        print(text, end="")
        return 0
    print(f"python -m training: run one step, e.g. python -m training.train ...\n\n{text}",
          end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
