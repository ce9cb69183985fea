"""Converters from the authors' released files to our safetensors layout (+ manifest).

* :func:`convert_colornet_pth`: ``example_net.pth`` -> ``example_net.safetensors``
  (:class:`~deepexemplar_core.models.ExampleColorNet` keys, unchanged).
* :func:`convert_gray_vgg_caffemodel`: ``vgg19_bn_gray_ft_iter_150000.caffemodel`` ->
  ``vgg19_bn_gray.safetensors`` (:class:`~deepexemplar_core.models.GrayVGG19BN` keys) with
  Caffe BatchNorm semantics.
* :func:`convert_video_vgg_pth`: the video release's ``vgg19_gray.pth`` -> the same layout with
  identity BatchNorm (unverified: that file seems to have BN folded into its weights).
* :func:`convert_file`: picks one of the above by content.

Every conversion refuses keys or shapes of another network (naming the first mismatch), writes
the safetensors file and its manifest atomically (temporary file + rename) and returns the path.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...backbones.vgg_gray import BN_EPS, VGG_BLOCKS, GrayVGG19BN
from ...colorizers.colornet import ExampleColorNet
from ...files import atomic_path, file_in_the_way, sha256_file
from ...weights.manifest import write_manifest
from ...weights.resolve import default_weights_dir, weights_filename
from ...weights.safetensors_files import (
    SAFETENSORS,
    TORCH_PICKLE,
    TORCH_ZIP,
    UNKNOWN,
    describe_file,
)
from .caffemodel import CaffeModelError, read_caffemodel
from .torch_files import ConversionError, read_legacy_torch

logger = logging.getLogger(__name__)

#: Names of files that are not Caffe models: one that is neither a zip archive nor a pickle
#: (the PyTorch formats) cannot be converted.
_NOT_CAFFE_SUFFIXES = (".pth", ".pt", ".pkl", ".safetensors")

#: What the manifest says of the licence of the authors' released files.
AUTHORS_LICENCE = "none stated by the authors"

CONV_NAMES: tuple[str, ...] = tuple(name for block in VGG_BLOCKS for name, _ in block)
FC_NAMES: tuple[str, ...] = ("fc6", "fc7", "fc8")
#: ``nn.Sequential`` indices of the 16 convs and 3 fcs in the video ``vgg19_gray.pth`` (A.5).
VIDEO_CONV_INDEX: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
VIDEO_FC_PREFIX: dict[str, str] = {"fc6": "38.1", "fc7": "40.1", "fc8": "42.1"}
FC_NOTE = (
    "no fc6..fc8 in the source: features for matching work, but reference recommendation "
    "(class logits, fc6 descriptors) needs the fc layers"
)
KINDS = ("colornet", "gray-vgg", "video-vgg")
PathLike = str | os.PathLike[str]


def expected_shapes(factory: Callable[[], nn.Module]) -> dict[str, tuple[int, ...]]:
    """State-dict shapes of a model built on the meta device (no memory), without counters."""
    with torch.device("meta"):
        model = factory()
    return {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }


def _strip_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(shape)
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _fit(value: np.ndarray | torch.Tensor, shape: tuple[int, ...], where: str) -> torch.Tensor:
    """``value`` as a float32 tensor of ``shape``; legacy leading 1-dims are squeezed."""
    tensor = torch.as_tensor(np.asarray(value) if isinstance(value, np.ndarray) else value)
    if tuple(tensor.shape) != shape:
        if _strip_ones(tuple(tensor.shape)) != _strip_ones(shape):
            raise ConversionError(
                f"{where}: shape {list(tensor.shape)}, expected {list(shape)}; "
                "this file is not the network this converter expects"
            )
        tensor = tensor.reshape(shape)
    return tensor.to(torch.float32).contiguous()


def _check_keys(state: Mapping[str, object], expected: Mapping[str, tuple], src: object) -> None:
    for key in expected:
        if key not in state:
            raise ConversionError(f"{src}: missing key {key!r}; not the expected network")
    extra = [k for k in state if k not in expected]
    if extra:
        raise ConversionError(f"{src}: unexpected key {extra[0]!r}; not the expected network")


def output_path(dst: str | os.PathLike[str] | None, filename: str) -> Path:
    """Where a conversion writes: ``dst`` if it names a ``.safetensors`` file, else the folder
    ``dst`` (default :func:`~deepexemplar_core.weights.default_weights_dir`) / ``filename``."""
    if dst is None:
        return default_weights_dir() / filename
    dst = Path(dst).expanduser()
    if dst.suffix == ".safetensors" and not dst.is_dir():
        return dst
    return dst / filename


def _make_folder(folder: Path) -> None:
    """Create the output folder, or say which part of ``--output`` is a file and not a folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        blocking = file_in_the_way(folder) or folder
        raise NotADirectoryError(
            f"output: {blocking} is a file, not a folder; pass a folder or a path ending in "
            ".safetensors"
        ) from err


def _sort_metadata(path: Path) -> None:
    """Rewrite a safetensors header in place with its ``__metadata__`` keys sorted.

    ``safetensors`` stores the metadata in a hash map whose order changes from one call to the
    next, so the same conversion would give files (and sha256) that differ only in that order.
    The sorted header has exactly the same length, so the data offsets are unchanged.
    """
    with open(path, "r+b") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(text) > length:  # cannot happen for a permutation; never corrupt the file
            raise ConversionError(f"{path}: the sorted safetensors header does not fit")
        f.seek(8)
        f.write(text.ljust(length))


def _save(
    state: dict[str, torch.Tensor],
    target: Path,
    *,
    network: str,
    src: str | os.PathLike[str],
    notes: list[str],
) -> Path:
    from safetensors.torch import save_file

    _make_folder(target.parent)
    with atomic_path(target) as temporary:
        save_file(state, str(temporary), metadata={"network": network, "source": Path(src).name})
        _sort_metadata(temporary)
    write_manifest(
        target,
        network=network,
        family="paper",
        source=Path(src).name,
        source_sha256=sha256_file(src),
        licence=AUTHORS_LICENCE,
        notes=notes,
    )
    logger.info("wrote %s (%d tensors)", target, len(state))
    return target


def convert_colornet_pth(
    src: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None
) -> Path:
    """Convert the authors' ``example_net.pth`` (legacy pickled ``state_dict``).

    Args:
        src: the ``.pth`` file (read with ``torch.load(weights_only=True)``).
        dst: output folder or ``.safetensors`` path (default: the local weights folder).

    Returns:
        The written ``example_net.safetensors`` path (manifest beside it).

    Raises:
        ConversionError: unreadable file, or the first missing/unexpected key or wrong shape.
    """
    return _colornet_from_state(read_legacy_torch(src), src, dst)


def _colornet_from_state(
    source: dict[str, torch.Tensor], src: PathLike, dst: PathLike | None
) -> Path:
    source = {k: v for k, v in source.items() if not k.endswith("num_batches_tracked")}
    expected = expected_shapes(ExampleColorNet)
    _check_keys(source, expected, src)
    state = {k: _fit(source[k], shape, f"{src}: {k}") for k, shape in expected.items()}
    notes = [
        "the authors' ExampleColorNet weights, unchanged; num_batches_tracked counters dropped",
        "input encoding: L - 50, raw warped ab, (err - 127) / 2; output tanh * 100",
    ]
    target = output_path(dst, weights_filename("colornet"))
    return _save(state, target, network="ExampleColorNet", src=src, notes=notes)


def _caffe_bn(blobs: list[np.ndarray], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Caffe BatchNorm statistics: ``mean = b0 / b2``, ``var = b1 / b2``, 0 when ``b2 == 0``."""
    if len(blobs) != 3 or blobs[2].size != 1:
        raise ConversionError(f"{where}: expected 3 BatchNorm blobs (mean, var, factor)")
    factor = np.float32(blobs[2].reshape(-1)[0])
    scale = np.float32(0.0) if factor == 0 else np.float32(1.0) / factor
    return blobs[0] * scale, blobs[1] * scale


def _layer(layers: Mapping[str, list[np.ndarray]], name: str, count: int, src: object) -> list:
    if name not in layers:
        raise ConversionError(f"{src}: missing layer {name!r}; not the gray VGG19-BN caffemodel")
    if len(layers[name]) != count:
        raise ConversionError(
            f"{src}: layer {name!r} has {len(layers[name])} blobs, expected {count}"
        )
    return layers[name]


def convert_gray_vgg_caffemodel(
    src: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None
) -> Path:
    """Convert the authors' gray VGG19-BN caffemodel (section B, Appendix A.6).

    ``data/bn`` + ``data/scale`` become ``data_bn`` (weight = gamma, bias = beta); every
    ``convX_Y/bn`` becomes ``convX_Y_bn`` with Caffe's statistics divided by the moving-average
    factor (0 when the factor is 0); ``fc6``..``fc8`` and their BN when present (a note is
    logged and stored in the manifest when they are absent).

    Returns:
        The written ``vgg19_bn_gray.safetensors`` path (manifest beside it).

    Raises:
        ConversionError: a missing or unexpected layer, wrong blob count or shape.
        CaffeModelError: the file cannot be decoded.
    """
    try:
        layers = read_caffemodel(src)
    except CaffeModelError as err:
        raise CaffeModelError(f"{src}: not a readable caffemodel: {err}") from err
    with_fc = "fc6" in layers
    expected = expected_shapes(lambda: GrayVGG19BN(with_classifier=with_fc))
    mean, var = _caffe_bn(_layer(layers, "data/bn", 3, src), f"{src}: data/bn")
    gamma, beta = _layer(layers, "data/scale", 2, src)
    raw: dict[str, np.ndarray] = {
        "data_bn.weight": gamma,
        "data_bn.bias": beta,
        "data_bn.running_mean": mean,
        "data_bn.running_var": var,
    }
    used = {"data/bn", "data/scale"}
    for name in CONV_NAMES + (FC_NAMES if with_fc else ()):
        raw[f"{name}.weight"], raw[f"{name}.bias"] = _layer(layers, name, 2, src)
        used.add(name)
        if name != "fc8":
            bn = _layer(layers, f"{name}/bn", 3, src)
            mean, var = _caffe_bn(bn, f"{src}: {name}/bn")
            raw[f"{name}_bn.running_mean"], raw[f"{name}_bn.running_var"] = mean, var
            used.add(f"{name}/bn")
    extra = [name for name in layers if name not in used]
    if extra:
        raise ConversionError(f"{src}: unexpected layer {extra[0]!r}; not the gray VGG19-BN")
    _check_keys(raw, expected, src)
    state = {k: _fit(raw[k], shape, f"{src}: {k}") for k, shape in expected.items()}
    notes = [
        (
            "Caffe BatchNorm: mean = blob0 / blob2, var = blob1 / blob2 (0 if blob2 == 0), "
            f"eps {BN_EPS}; data/bn + data/scale folded into data_bn"
        ),
        "input: L * 255 / 100 replicated to 3 channels, no mean subtraction",
    ]
    if not with_fc:
        notes.append(FC_NOTE)
        logger.warning("%s: %s", src, FC_NOTE)
    target = output_path(dst, weights_filename("gray_vgg"))
    return _save(state, target, network="GrayVGG19BN", src=src, notes=notes)


def _identity_bn(prefix: str, channels: int, affine: bool = False) -> dict[str, torch.Tensor]:
    """BatchNorm that is exactly the identity: mean 0, var ``1 - eps`` (and gamma 1, beta 0)."""
    state = {
        f"{prefix}.running_mean": torch.zeros(channels),
        f"{prefix}.running_var": torch.full((channels,), 1.0 - BN_EPS),
    }
    if affine:
        state[f"{prefix}.weight"] = torch.ones(channels)
        state[f"{prefix}.bias"] = torch.zeros(channels)
    return state


def convert_video_vgg_pth(
    src: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None
) -> Path:
    """Convert the video release's ``vgg19_gray.pth`` (Appendix A.5) to the GrayVGG19BN layout.

    The file has no BatchNorm; every BN of our layout (``data_bn`` included) is set to the
    identity. Whether this equals the caffemodel's network (BN folded into the weights) is
    unverified; the manifest says so. fc layers are converted when present.

    Returns:
        The written ``vgg19_bn_gray.safetensors`` path (manifest beside it).

    Raises:
        ConversionError: unreadable file, or the first missing/unexpected key or wrong shape.
    """
    return _video_vgg_from_state(read_legacy_torch(src), src, dst)


def _video_vgg_from_state(
    source: dict[str, torch.Tensor], src: PathLike, dst: PathLike | None
) -> Path:
    with_fc = "38.1.weight" in source
    expected = expected_shapes(lambda: GrayVGG19BN(with_classifier=with_fc))
    prefixes = dict(zip(CONV_NAMES, (str(i) for i in VIDEO_CONV_INDEX), strict=True))
    if with_fc:
        prefixes.update(VIDEO_FC_PREFIX)
    wanted = {
        f"{prefix}.{kind}": (name, kind)
        for name, prefix in prefixes.items()
        for kind in ("weight", "bias")
    }
    _check_keys(source, dict.fromkeys(wanted), src)
    raw: dict[str, torch.Tensor] = _identity_bn("data_bn", 3, affine=True)
    for key, (name, kind) in wanted.items():
        raw[f"{name}.{kind}"] = source[key]
        if kind == "bias" and name != "fc8":
            raw.update(_identity_bn(f"{name}_bn", int(source[key].shape[0])))
    _check_keys(raw, expected, src)
    state = {k: _fit(raw[k], shape, f"{src}: {k}") for k, shape in expected.items()}
    notes = [
        (
            "from the video release's vgg19_gray.pth (no BatchNorm in the file); every "
            "BatchNorm set to the identity (mean 0, var 1 - eps, data_bn gamma 1 beta 0)"
        ),
        (
            "BN folding unverified: the file may be the caffemodel's network with BN folded "
            "into the weights, or not; prefer the caffemodel conversion for the authors' results"
        ),
    ]
    if not with_fc:
        notes.append(FC_NOTE)
        logger.warning("%s: %s", src, FC_NOTE)
    target = output_path(dst, weights_filename("gray_vgg"))
    return _save(state, target, network="GrayVGG19BN", src=src, notes=notes)


def convert_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    kind: str = "auto",
) -> Path:
    """Convert one of the authors' files, choosing the converter by ``kind``.

    Args:
        src: ``example_net.pth``, a gray VGG19-BN ``.caffemodel`` or ``vgg19_gray.pth``.
        dst: output folder or ``.safetensors`` path (default: the local weights folder).
        kind: ``"auto"`` (by content, whatever the name), ``"colornet"``, ``"gray-vgg"`` or
            ``"video-vgg"``.

    Returns:
        The written safetensors path.

    Raises:
        ConversionError: a safetensors file (nothing to convert), a file that is none of the
            authors' formats (the message says what it is: empty, text, unknown bytes), or
            weights of another network.
        CaffeModelError: an unreadable caffemodel.
    """
    if kind not in ("auto", *KINDS):
        raise ValueError(f"kind: expected 'auto' or one of {KINDS}, got {kind!r}")
    path = Path(src)
    if not path.is_file():
        raise FileNotFoundError(f"src: {path} does not exist or is not a file")
    what = describe_file(path)  # by content: a pickle named .safetensors is converted
    if what == SAFETENSORS:
        raise ConversionError(
            f"{path}: is a safetensors file, which needs no conversion; pass it directly "
            "(--backbone-weights / --colornet-weights or $DEEPEXEMPLAR_WEIGHTS), or re-create it "
            "from the authors' file if it is damaged"
        )
    torch_file = what in (TORCH_ZIP, TORCH_PICKLE)
    if not torch_file and (kind in ("colornet", "video-vgg") or path.suffix in _NOT_CAFFE_SUFFIXES
                           or not what.startswith(UNKNOWN)):
        raise ConversionError(
            f"{path}: is {what}, not one of the authors' weight files (a .pth zip archive or "
            "pickle, or a .caffemodel); copy or download it again")
    if kind == "gray-vgg" and torch_file:
        raise ConversionError(
            f"{path}: is {what}, not a .caffemodel; leave --kind out (auto) or pass --kind "
            "colornet or --kind video-vgg")
    if kind == "gray-vgg" or (kind == "auto" and not torch_file):
        return convert_gray_vgg_caffemodel(path, dst)
    state = read_legacy_torch(path)
    if kind == "auto":
        if "conv10_ab.weight" in state:
            kind = "colornet"
        elif "0.weight" in state:
            kind = "video-vgg"
        else:
            raise ConversionError(
                f"{path}: neither example_net.pth (no 'conv10_ab.weight') nor vgg19_gray.pth "
                f"(no '0.weight'); first key {next(iter(state), None)!r}. Pass --kind to force"
            )
    if kind == "colornet":
        return _colornet_from_state(state, path, dst)
    return _video_vgg_from_state(state, path, dst)
