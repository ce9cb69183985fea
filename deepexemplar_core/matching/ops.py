"""The one dispatch of the two searches: compiled kernels of ``cuda_ext``, or the PyTorch reference.

This module owns, for :func:`patchmatch` and :func:`window_search`, the validation of the
arguments, their defaults and the choice of the implementation (the ``torchvision.ops`` pattern).
Both implement the spec in ``docs/matching.md`` and return the same fields as the pure-PyTorch
references (:mod:`.patchmatch_reference`, :mod:`.window_reference`), up to float rounding of
near-tied scores.

Backends: ``"cuda"`` (CUDA kernels, float32 or float16 features), ``"cpp"`` (C++ with
``at::parallel_for``, float32), ``"torch"`` (the reference) and ``"auto"``: CUDA kernels for CUDA
tensors, C++ for CPU tensors, the reference when no build is available (one warning per process,
saying how to build). The first use compiles the extension into the user cache (~15 s for the
C++ part, a few minutes with CUDA; one failed attempt per process at most) unless
``$DEEPEXEMPLAR_EXT_JIT=0``, in which case ``"auto"`` only loads a cached build (what ComfyUI
wants: :func:`.extension.load_cached_only`). Naming ``"cpp"`` or ``"cuda"`` always
allows compiling.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch

from . import extension
from .patchmatch_reference import patchmatch_reference, scaled_identity
from .scores import check_field, check_pair, check_patch_size
from .window_reference import window_search_reference

logger = logging.getLogger(__name__)

#: Matching implementations: ``auto`` (compiled when built, else the reference), the PyTorch
#: reference, the C++ kernels, the CUDA kernels.
BACKENDS = ("auto", "torch", "cpp", "cuda")
_warned: set[str] = set()
_fake_registered: list[bool] = [False]


class ExtensionNotAvailableError(ValueError):
    """A compiled backend was requested by name but cannot be used here."""


def _register_fakes() -> None:
    """Shape-only versions of the ops so that ``torch.compile`` can trace through them."""
    if _fake_registered[0]:
        return

    def fake(source, target, init, patch_size, *args):
        bs, bt = source.shape[0], target.shape[0]
        batch = bs * bt if 1 in (bs, bt) else bs  # a batch of 1 is broadcast
        ha, wa = source.shape[2], source.shape[3]
        nnf = source.new_empty((batch, ha, wa, 2), dtype=torch.int64)
        return nnf, source.new_empty((batch, ha, wa), dtype=torch.float32)

    torch.library.register_fake("deepexemplar::patchmatch")(fake)
    torch.library.register_fake("deepexemplar::window_search")(fake)
    _fake_registered[0] = True


def _extension(compile_if_missing: bool) -> bool:
    """Load the extension (compiling only when allowed); True when its ops are usable."""
    ok = extension.load() if compile_if_missing else extension.load_cached_only()
    if ok:
        _register_fakes()
    return ok


def active_backend(device: torch.device | str) -> tuple[str, str]:
    """Which backend ``backend="auto"`` uses for tensors on ``device``, and why.

    Args:
        device: a torch device or its name (``"cpu"``, ``"cuda:0"``).

    Returns:
        ``(name, reason)`` with name in ``("cuda", "cpp", "torch")`` and a one-line reason.

    Example:
        >>> name, reason = active_backend("cpu")
        >>> name in ("cpp", "torch")
        True
    """
    device = torch.device(device)
    allow_jit = os.environ.get("DEEPEXEMPLAR_EXT_JIT", "1") != "0"
    if not _extension(compile_if_missing=allow_jit):
        return "torch", f"compiled extension not available ({extension.last_error()}); " \
            "build it with `deepexemplar build-ext`"
    plan = extension.loaded_plan()
    if device.type == "cuda":
        if plan is not None and plan.with_cuda:
            return "cuda", f"CUDA kernels loaded from {plan.library}"
        return "torch", "the loaded extension was built without CUDA " \
            f"({plan.reason if plan else 'unknown'}); rebuild with `deepexemplar build-ext --force`"
    if device.type == "cpu":
        return "cpp", f"C++ kernels loaded from {plan.library if plan else '?'}"
    return "torch", f"no compiled kernels for device type {device.type!r}"


def _choose(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    if backend == "auto":
        name, reason = active_backend(device)
        if name == "torch" and device.type not in _warned:
            _warned.add(device.type)
            logger.warning("deepexemplar: using the slow PyTorch PatchMatch: %s", reason)
        return name
    wanted = {"cpp": "cpu", "cuda": "cuda"}[backend]
    if device.type != wanted:
        raise ValueError(f"backend: {backend!r} needs {wanted} tensors, got tensors on {device}; "
                         "move the tensors or use backend='auto'")
    if not _extension(compile_if_missing=True):
        raise ExtensionNotAvailableError(
            f"backend: {backend!r} needs the compiled extension, which is not available "
            f"({extension.last_error()}); run `deepexemplar doctor` or use backend='auto'")
    plan = extension.loaded_plan()
    if backend == "cuda" and not (plan is not None and plan.with_cuda):
        raise ExtensionNotAvailableError(
            "backend: 'cuda' needs an extension built with CUDA; this one is not "
            f"({plan.reason if plan else 'unknown'}). Rebuild with `deepexemplar build-ext --force`")
    return backend


def _validate(source, target, init, patch_size) -> int:
    batch = check_pair(source, target)
    check_patch_size(patch_size)
    if source.device != target.device:
        raise ValueError(f"target: expected device {source.device} (as source), got {target.device}")
    if init is not None:
        check_field("init", init, batch, source.shape[2], source.shape[3])
    return batch


def _kernel_inputs(source, target, init, backend):
    if backend == "cpp" or source.dtype not in (torch.float32, torch.float16):
        source, target = source.float(), target.float()
    elif source.dtype != target.dtype:
        source, target = source.float(), target.float()
    if init is not None:
        init = init.to(device=source.device, dtype=torch.int64).contiguous()
    return source, target, init


def patchmatch(
    source: torch.Tensor,
    target: torch.Tensor,
    init: torch.Tensor | None = None,
    *,
    patch_size: int = 3,
    iterations: int = 10,
    radius: int | None = None,
    jumps: Sequence[int] = (8, 4, 2, 1),
    seed: int = 0,
    level: int = 0,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """PatchMatch with synchronous jump-flooding propagation and counter-hash random search.

    Args:
        source: ``(B|1, C, Ha, Wa)`` per-pixel L2-normalised float32 features (float16 allowed
            on CUDA); the image whose pixels get a match.
        target: ``(B|1, C, Hb, Wb)`` features of the searched image, same dtype and device.
        init: ``(B, Ha, Wa, 2)`` int64 absolute ``(y, x)`` start field (clamped into the
            target), or None for the scaled identity ``((py * Hb) // Ha, (px * Wb) // Wa)``.
        patch_size: odd patch side ``k`` (1, 3, 5, ...).
        iterations: number of PatchMatch iterations ``T >= 0``.
        radius: first random-search radius ``R0`` (capped at ``max(Hb, Wb)``); None = the whole
            map; 0 disables the random search.
        jumps: propagation distances, one synchronous step each, per iteration.
        seed: random seed (reduced modulo 2**32).
        level: pyramid level index, mixed into the hash so that levels draw differently.
        backend: ``"auto"``, ``"torch"``, ``"cpp"`` or ``"cuda"``.

    Returns:
        ``(nnf, score, backend_name)``: ``nnf (B, Ha, Wa, 2) int64`` absolute (y, x) in the
        target, ``score (B, Ha, Wa) float32`` patch score of each match in ``[-1, 1]``, and
        the backend that ran.

    Raises:
        TypeError: non-tensor or non-float features, non-integer ``init``.
        ValueError: bad shapes, empty or non-finite input, even ``patch_size``, negative
            ``iterations``/``radius``/``jumps``, unknown ``backend``.

    Example:
        >>> a = torch.nn.functional.normalize(torch.rand(1, 8, 12, 12), dim=1)
        >>> nnf, score, name = patchmatch(a, a, None, patch_size=3, iterations=2, radius=4)
        >>> nnf.shape, score.shape, name in ("cpp", "torch")
        (torch.Size([1, 12, 12, 2]), torch.Size([1, 12, 12]), True)
    """
    _validate(source, target, init, patch_size)
    if radius is None:
        radius = max(target.shape[2], target.shape[3])
    if iterations < 0 or radius < 0 or any(int(j) < 1 for j in jumps):
        raise ValueError(f"iterations/radius/jumps: expected iterations >= 0, radius >= 0 and "
                         f"jumps >= 1, got {iterations}, {radius}, {tuple(jumps)}")
    name = _choose(backend, source.device)
    if name == "torch":
        nnf, score = patchmatch_reference(source, target, init, patch_size=patch_size,
                                          iterations=iterations, radius=radius,
                                          jumps=tuple(jumps), seed=seed, level=level)
        return nnf, score, name
    s, t, f = _kernel_inputs(source, target, init, name)
    nnf, score = torch.ops.deepexemplar.patchmatch(s, t, f, patch_size, iterations, radius,
                                                   [int(j) for j in jumps], seed & 0xFFFFFFFF,
                                                   level)
    return nnf, score, name


def window_search(
    source: torch.Tensor,
    target: torch.Tensor,
    init: torch.Tensor | None = None,
    *,
    patch_size: int = 3,
    radius: int = 4,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Exhaustive patch search in a ``(2R+1)^2`` window around a start field.

    For every source pixel ``p`` the match is the argmax of the patch score over
    ``q in clampB(clampB(init(p)) + [-R, R]^2)``; ties go to the smallest flat index ``qy * Wb + qx``.

    Args:
        source: ``(B|1, C, Ha, Wa)`` per-pixel L2-normalised float32 features (float16 allowed
            on CUDA).
        target: ``(B|1, C, Hb, Wb)`` features of the searched image.
        init: ``(B, Ha, Wa, 2)`` int64 absolute ``(y, x)`` window centres, clamped into the
            target first, or None for the scaled identity.
        patch_size: odd patch side ``k``.
        radius: window half-size ``R >= 0``.
        backend: ``"auto"``, ``"torch"``, ``"cpp"`` or ``"cuda"``.

    Returns:
        ``(nnf (B, Ha, Wa, 2) int64, score (B, Ha, Wa) float32, backend_name)``.

    Raises:
        TypeError: non-tensor or non-float features, non-integer ``init``.
        ValueError: bad shapes, empty or non-finite input, even ``patch_size``, negative
            ``radius``, unknown ``backend``.

    Example:
        >>> a = torch.nn.functional.normalize(torch.rand(1, 8, 10, 10), dim=1)
        >>> nnf, score, name = window_search(a, a, None, patch_size=3, radius=2)
        >>> bool((nnf[0, 4, 6] == torch.tensor([4, 6])).all()), round(float(score.max()), 4)
        (True, 1.0)
    """
    _validate(source, target, init, patch_size)
    if radius < 0:
        raise ValueError(f"radius: expected >= 0, got {radius}")
    name = _choose(backend, source.device)
    if name == "torch":
        if init is None:
            init = scaled_identity(max(source.shape[0], target.shape[0]), source.shape[2:],
                                   target.shape[2:], source.device)
        nnf, score = window_search_reference(source, target, init, patch_size=patch_size,
                                             radius=radius)
        return nnf, score, name
    s, t, f = _kernel_inputs(source, target, init, name)
    nnf, score = torch.ops.deepexemplar.window_search(s, t, f, patch_size, radius)
    return nnf, score, name
