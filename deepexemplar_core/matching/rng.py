"""Counter-based hash used by the reference PatchMatch's random search.

Every random draw is a pure function of ``(seed, level, t, s, pix, c)``, so the PyTorch
reference and the compiled kernels (``cuda_ext``) produce the same draws without sharing a
generator state. All arithmetic is on unsigned 32-bit values; in PyTorch it runs on int64 with
``& 0xFFFFFFFF`` after every multiply (both constants are below 2**31, so the product of a
32-bit value and a constant stays below 2**63 and never overflows).
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
_MUL1 = 0x7FEB352D
_MUL2 = 0x1B873593


def mix32(x: torch.Tensor | int) -> torch.Tensor | int:
    """Bijective 32-bit integer finaliser (xor-shift / multiply, as in "lowbias32").

    Args:
        x: an int or an int64 tensor holding values in ``[0, 2**32)``.

    Returns:
        The mixed value(s), same type, in ``[0, 2**32)``.

    Example:
        >>> mix32(0), mix32(1)
        (0, 3368570345)
    """
    x = x & MASK32
    x = x ^ (x >> 16)
    x = (x * _MUL1) & MASK32
    x = x ^ (x >> 15)
    x = (x * _MUL2) & MASK32
    return x ^ (x >> 16)


def counter_hash(
    seed: int, level: int, t: int, s: int, pix: torch.Tensor | int, c: int
) -> torch.Tensor | int:
    """``h(seed, level, t, s, pix, c)`` of the PatchMatch spec (docs/matching.md).

    ``h = mix(mix(mix(mix(mix(mix(seed) ^ level) ^ t) ^ s) ^ pix) ^ c)`` with every argument
    taken modulo 2**32.

    Args:
        seed: user seed (any int; reduced modulo 2**32).
        level: level index in the pyramid (fine to coarse, 0 = finest).
        t: PatchMatch iteration index.
        s: step index within the iteration (propagation jumps first, then random radii).
        pix: flat pixel index ``b * Ha * Wa + py * Wa + px``, an int or an int64 tensor.
        c: component, 0 for the y offset and 1 for the x offset.

    Returns:
        Hash value(s) in ``[0, 2**32)``: an int64 tensor shaped like ``pix`` or an int.

    Example:
        >>> counter_hash(0, 0, 0, 0, 0, 0)
        0
        >>> counter_hash(1, 2, 3, 4, torch.tensor([5, 6]), 1).tolist()
        [2634224820, 4038754873]
    """
    h = mix32(mix32(mix32(mix32(seed & MASK32) ^ (level & MASK32)) ^ (t & MASK32)) ^ (s & MASK32))
    return mix32(mix32(h ^ (pix & MASK32)) ^ (c & MASK32))
