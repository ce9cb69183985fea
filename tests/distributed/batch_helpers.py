"""Helpers of the batch tests (a module of its own: ``conftest`` names clash across folders)."""

from __future__ import annotations

import json
from pathlib import Path

#: The options every batch test passes (the lite family needs no converted weights).
MODEL = ["--family", "lite", "--size", "64", "--quiet"]


def ledger_rows(output: Path) -> list[dict]:
    """The file lines of a job's ledger (the header left out)."""
    lines = (output / "deepexemplar-ledger.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[1:] if line.strip()]
