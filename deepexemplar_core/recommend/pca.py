"""PCA compression of retrieval descriptors (Babenko et al. 2014), learned on the collection.

The paper compresses fc6 from 4096 to 128 dimensions and relu5_4 from 512 to 64. A
:class:`Projection` subtracts the collection mean, projects on the leading principal axes and
L2-normalises, so that a dot product of two projected vectors is their cosine similarity.
Collections too small to estimate ``dims`` axes get fewer (at most half the number of samples);
below :data:`MIN_DIMS` the raw vectors are only L2-normalised (an identity projection).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import _checks

__all__ = ["MIN_DIMS", "Projection", "fit_projection", "l2_normalize"]

#: Fewer principal axes than this are not worth fitting; the raw vectors are used instead.
MIN_DIMS = 16
#: The fit uses at most this many samples (a fixed, evenly spaced subset beyond).
MAX_FIT_SAMPLES = 200_000


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last axis (zero vectors stay zero).

    Example:
        >>> l2_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    return F.normalize(x.float(), dim=-1, eps=1e-12)


@dataclass(frozen=True)
class Projection:
    """Mean subtraction, projection and L2 normalisation.

    Attributes:
        mean: ``(D,)`` float32 collection mean (zeros for the identity).
        components: ``(k, D)`` float32 principal axes, strongest first; ``(0, D)`` means
            "identity" (no centring, no projection).
        fitted_on: number of vectors the axes were estimated from.
    """

    mean: torch.Tensor
    components: torch.Tensor
    fitted_on: int

    @property
    def identity(self) -> bool:
        """True when vectors are only L2-normalised."""
        return self.components.shape[0] == 0

    @property
    def in_dims(self) -> int:
        """Input dimension ``D``."""
        return int(self.mean.shape[0])

    @property
    def out_dims(self) -> int:
        """Output dimension (``k``, or ``D`` for the identity)."""
        return self.in_dims if self.identity else int(self.components.shape[0])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Project ``x: (..., D)`` -> ``(..., out_dims)`` float32, L2-normalised.

        Example:
            >>> p = fit_projection(torch.randn(100, 40), 20)
            >>> y = p(torch.randn(3, 40)); tuple(y.shape), round(float(y.norm(dim=1)[0]), 4)
            ((3, 20), 1.0)
        """
        if x.shape[-1] != self.in_dims:
            raise ValueError(f"x: expected last dimension {self.in_dims}, got {tuple(x.shape)}")
        if self.identity:
            return l2_normalize(x)
        mean = self.mean.to(x.device)
        components = self.components.to(x.device)
        return l2_normalize((x.float() - mean) @ components.T)


def _eigh_one_thread(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh`` on one thread: with several threads on a busy CPU, LAPACK's
    eigensolver was measured 200x slower (6.7 s instead of 0.03 s for 320 x 320)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(matrix)
    finally:
        torch.set_num_threads(threads)


def fit_projection(x: torch.Tensor, dims: int, min_dims: int = MIN_DIMS) -> Projection:
    """Fit PCA axes on ``x: (N, D)``.

    Args:
        x: ``(N, D)`` float descriptors (N >= 1).
        dims: wanted output dimension (128 for global, 64 for local descriptors).
        min_dims: below this many usable axes the identity is returned.

    Returns:
        :class:`Projection` with ``min(dims, D, N // 2)`` axes, or the identity.

    Example:
        >>> fit_projection(torch.randn(10, 64), 128).identity   # 10 samples: too few
        True
        >>> fit_projection(torch.randn(500, 64), 32).out_dims
        32
    """
    _checks.check_shape("x", x, ("N", "D"))
    _checks.check_nonempty("x", x)
    n, d = int(x.shape[0]), int(x.shape[1])
    if dims < 1:
        raise ValueError(f"dims: expected >= 1, got {dims}")
    k = min(dims, d, n // 2)
    if k < min_dims:
        return Projection(torch.zeros(d), torch.zeros(0, d), n)
    if n > MAX_FIT_SAMPLES:
        x = x[torch.linspace(0, n - 1, MAX_FIT_SAMPLES).long()]
    sample = x.double()  # at most MAX_FIT_SAMPLES x D
    mean = sample.mean(dim=0)
    centred = sample - mean
    cov = centred.T @ centred / max(1, sample.shape[0] - 1)
    _, vectors = _eigh_one_thread(cov)  # ascending eigenvalues
    components = vectors[:, -k:].flip(1).T.contiguous()
    # Deterministic sign: the largest-magnitude entry of each axis is positive.
    signs = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
    components = components * torch.where(signs == 0, torch.ones_like(signs), signs)
    return Projection(mean.float(), components.float(), n)
