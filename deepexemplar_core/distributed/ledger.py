"""The ledger of a ``deepexemplar batch`` job: one JSON line per finished file, in OUTPUT.

The first line names the format and the settings the job was started with; every other line is
one file's outcome::

    {"format": "deepexemplar-batch-ledger/1", "settings": {"reference": "ref.jpg", "size": 256, ...}}
    {"input": "scans/a.tif", "status": "ok", "output": "out/scans/a_colorized.png",
     "sha256": "9f2c...", "seconds": 1.93, "error": ""}

Only the driver appends (one writer), a line at a time, flushed as it is written: a driver killed
mid-line leaves at most one truncated last line, which is skipped on reading. The last line of
an input wins. Reading keeps one short status per input, so resuming a million-file job costs
seconds and a few hundred MB (``benchmarks/batch.py`` measures it).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..files import write_text_atomic

__all__ = ["DONE", "FAILED", "FORMAT", "LEDGER_NAME", "Ledger", "LedgerError"]

logger = logging.getLogger(__name__)

#: Name of the ledger file inside OUTPUT.
LEDGER_NAME = "deepexemplar-ledger.jsonl"
#: The format tag of the first line.
FORMAT = "deepexemplar-batch-ledger/1"
#: Statuses of a finished file: written by this job (``ok``) or found complete in OUTPUT
#: (``exists``: written by an earlier run whose ledger line was lost with its driver).
DONE = ("ok", "exists")
#: Statuses of a file that failed; the names are ``deepexemplar colorize``'s.
FAILED = ("unreadable", "invalid", "failed")
#: The fields of every file line, in the order they are written.
FIELDS = ("input", "status", "output", "sha256", "seconds", "error")
#: Seconds between two fsyncs (a killed process loses nothing already written; a node that
#: loses power loses at most this much).
_SYNC_SECONDS = 2.0


class LedgerError(ValueError):
    """The ledger cannot be used for this job (another job's settings, not a ledger)."""


class Ledger:
    """An open ledger: the last status of every input already recorded, and an appender.

    Use :meth:`open`; close it (or use it as a context manager) to flush the last lines.

    Attributes:
        path: the ledger file.
        status: input -> its last recorded status (one of :data:`DONE` or :data:`FAILED`).
        skipped_lines: lines that could not be read (a truncated last line after a kill).
    """

    def __init__(self, path: Path, status: dict[str, str], skipped_lines: int) -> None:
        self.path = path
        self.status = status
        self.skipped_lines = skipped_lines
        self._file = None
        self._synced = time.monotonic()

    @classmethod
    def open(cls, path: str | os.PathLike, settings: Mapping[str, object]) -> Ledger:
        """Read the ledger at ``path`` (creating it with ``settings`` when there is none).

        Args:
            path: the ledger file (its folder must exist).
            settings: what decides the pixels of the outputs (reference, size, family ...);
                JSON-serialisable.

        Returns:
            The open ledger.

        Raises:
            LedgerError: the file is not a ledger, or was started with other settings (the
                message names them and the fix).
        """
        path = Path(path)
        settings = json.loads(json.dumps(dict(settings)))  # as it reads back from the file
        if not path.exists() or path.stat().st_size == 0:
            write_text_atomic(path, json.dumps({"format": FORMAT, "settings": settings}) + "\n")
            return cls(path, {}, 0)
        status: dict[str, str] = {}
        skipped = 0
        with open(path, encoding="utf-8", errors="replace") as f:
            _check_header(path, f.readline(), settings)
            known = {name: name for name in DONE + FAILED}  # one shared string per status
            for line in f:
                try:
                    row = json.loads(line)
                    status[row["input"]] = known[row["status"]]
                except (ValueError, KeyError, TypeError):
                    skipped += 1
        if skipped:
            logger.warning("%s: %d unreadable line(s) skipped (a job killed mid-line leaves one)",
                           path, skipped)
        return cls(path, status, skipped)

    def needs(self, source: str, retry_failed: bool = False) -> bool:
        """Whether ``source`` still has to be processed (never when it is done)."""
        state = self.status.get(source)
        return state is None or (retry_failed and state in FAILED)

    def append(self, rows: Iterable[Mapping[str, object]]) -> None:
        """Record finished files (dicts with the keys of :data:`FIELDS`), flushed at once."""
        if self._file is None:
            self._file = _open_for_append(self.path)
        for row in rows:
            self._file.write(json.dumps({key: row[key] for key in FIELDS}) + "\n")
            self.status[str(row["input"])] = str(row["status"])
        self._file.flush()
        if time.monotonic() - self._synced > _SYNC_SECONDS:
            self._sync()

    def _sync(self) -> None:
        os.fsync(self._file.fileno())
        self._synced = time.monotonic()

    def close(self) -> None:
        """Flush and fsync the appended lines."""
        if self._file is not None:
            self._file.flush()
            self._sync()
            self._file.close()
            self._file = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_for_append(path: Path):
    """Open for appending; after a line cut by a kill, start on a fresh line."""
    with open(path, "rb") as f:
        cut = False
        end = f.seek(0, os.SEEK_END)
        if end:
            f.seek(end - 1)
            cut = f.read(1) != b"\n"
    handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by Ledger.close
    if cut:
        handle.write("\n")
    return handle


def _check_header(path: Path, line: str, settings: dict) -> None:
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise LedgerError(f"{path}: not a {FORMAT} ledger; choose another -o or move the file away")
    if header.get("settings") != settings:
        before = header.get("settings") or {}
        changed = ", ".join(f"{key} {before.get(key)!r} -> {settings.get(key)!r}"
                            for key in sorted(set(before) | set(settings))
                            if before.get(key) != settings.get(key))
        raise LedgerError(f"{path}: this output folder was started with other settings "
                          f"({changed}); resume with the same settings, or choose another -o")
