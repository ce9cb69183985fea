"""Atomic writes of the files the training steps produce, through the core's one atomic writer,
and the one safe reader of checkpoints."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import torch

from deepexemplar_core.files import atomic_path, file_in_the_way


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While the block runs, SIGTERM (a scheduler or container stopping the job) raises
    :class:`deepexemplar_core.cli.Terminated`, a ``KeyboardInterrupt``: the steps then unwind as
    on Ctrl-C (temporary files removed, the trainer's checkpoint written). The previous handler
    is back afterwards; outside the main thread nothing changes.
    """
    from deepexemplar_core.cli import Terminated

    def on_sigterm(signum: int, frame: object) -> None:
        raise Terminated()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_output_folder(path: str | os.PathLike[str], option: str) -> Path:
    """Refuse an output folder that is, or lies under, an existing file (before any work).

    Args:
        path: the folder a step will create or fill.
        option: how the user named it (``"--out"``, ``"-o"``), for the message.

    Raises:
        ValueError: ``path`` or one of its parents is a file (named in the message).
    """
    path = Path(path)
    blocking = file_in_the_way(path)
    if blocking is not None:
        raise ValueError(f"{option}: {blocking} is a file, not a folder; choose a folder")
    return path


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path`` (its folder is created),
    then move it over ``path`` (:func:`deepexemplar_core.files.atomic_path`).

    Nothing is left at ``path`` (or beside it) when ``write`` fails or is interrupted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        write(str(temporary))
    return path


def write_json_atomic(path: str | os.PathLike[str], value: object) -> Path:
    """Write ``value`` as indented JSON atomically."""
    text = json.dumps(value, indent=2) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def save_safetensors_atomic(
    tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """``safetensors.torch.save_file`` through a temporary file."""
    from safetensors.torch import save_file

    data = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(data, tmp, metadata=dict(metadata or {})))


def torch_save_atomic(obj: object, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` through a temporary file (checkpoints: tensors and plain values only, so
    that :func:`load_checkpoint` reads them back)."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


class CheckpointError(ValueError):
    """A checkpoint that is not loaded: damaged, or holding more than tensors and plain values."""


def load_checkpoint(path: str | os.PathLike[str]) -> dict:
    """Read a checkpoint of ``training.train`` without running any code from it.

    ``torch.load(weights_only=True)`` with nothing allow-listed: tensors, numbers, strings,
    ``None`` and containers of them are all a checkpoint holds (the RNG states included), so a
    file that needs any other type was not written by ``training.train`` and is refused before
    anything in it is built.

    Args:
        path: the ``checkpoint.pt`` file.

    Returns:
        The checkpoint dict (tensors on the CPU).

    Raises:
        CheckpointError: missing, truncated or otherwise unreadable, or holding other objects;
            the message names the file and how to restart.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        raise CheckpointError(
            f"{path} is not loaded: it holds objects other than tensors and plain values "
            f"({found.group(1) if found else 'an unsupported type'}), which could run code when "
            "read. training.train writes only those (checkpoints of versions before this check "
            "held numpy RNG states and are refused too); restart the run without --resume in a "
            "new --out folder") from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is damaged ({type(err).__name__}: {str(err).split('. ')[0]}); checkpoints "
            "are written whole, so it was truncated or altered afterwards. To restart, train "
            "without --resume into a new --out folder (or delete this file to restart in place)"
        ) from err
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of python -m training.train (no model "
                              "and step); restart the run without --resume in a new --out folder")
    return state
