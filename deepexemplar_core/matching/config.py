"""Configuration of dense matching: one :class:`LevelConfig` per pyramid level."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..structures import FeaturePyramid
from .ops import BACKENDS, active_backend

METHODS = ("exact", "window", "patchmatch")
DEFAULT_WORK_BUDGET = 2**35


@dataclass(frozen=True)
class LevelConfig:
    """How one pyramid level is matched.

    Attributes:
        method: ``"exact"`` (global argmax), ``"window"`` (exhaustive in a ``(2R+1)^2``
            window around the upsampled coarser field) or ``"patchmatch"``.
        patch_size: odd patch side ``k`` in level pixels.
        radius: window half-size (``"window"``) or first random-search radius
            (``"patchmatch"``; ``None`` = the whole map). Ignored by ``"exact"``.
        iterations: PatchMatch iterations (``"patchmatch"`` only).
    """

    method: str = "window"
    patch_size: int = 3
    radius: int | None = 4
    iterations: int = 10

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {self.method!r}")
        if not isinstance(self.patch_size, int) or self.patch_size < 1 or self.patch_size % 2 == 0:
            raise ValueError(f"patch_size: expected a positive odd int, got {self.patch_size!r}")
        if self.radius is None and self.method == "window":
            raise ValueError("radius: method 'window' needs an int radius >= 0, got None")
        if self.radius is not None and (not isinstance(self.radius, int) or self.radius < 0):
            raise ValueError(f"radius: expected None or an int >= 0, got {self.radius!r}")
        if not isinstance(self.iterations, int) or self.iterations < 0:
            raise ValueError(f"iterations: expected an int >= 0, got {self.iterations!r}")


def window_work(n_pixels: int, radius: int, patch_size: int, channels: int) -> int:
    """Multiply-adds of a naive window search: ``Na * (2R+1)^2 * k^2 * C``."""
    return n_pixels * (2 * radius + 1) ** 2 * patch_size**2 * channels


@dataclass(frozen=True)
class MatchConfig:
    """Settings of :func:`dense_match`.

    Attributes:
        levels: level name -> :class:`LevelConfig` for every level to match (others are
            skipped), or ``None`` for :meth:`default_for`'s schedule.
        stop_stride: the default schedule matches levels with stride ``>= stop_stride`` only.
        seed: PatchMatch seed.
        backend: ``"auto"`` (compiled kernels when importable, else PyTorch), ``"torch"``
            (force the reference), ``"cpp"`` or ``"cuda"`` (force a compiled kernel).
        chunk_elements: similarity entries per tile of the exact search (memory bound).
        keep_levels: keep every level's fields in ``Correspondence.level_fields``.
        work_budget: the default schedule switches a ``"window"`` level to ``"patchmatch"``
            when :func:`window_work` exceeds this many multiply-adds.
        refine: when the pyramid has a stride-1 level below ``stop_stride`` (the gray VGG's
            relu1_1), the field brought to pixel resolution is refined there by an exhaustive
            search of this radius (patch 3); this recovers the odd pixel offsets that a field
            matched at stride 2 cannot express. 0 turns it off (the authors' pipeline).
    """

    levels: dict[str, LevelConfig] | None = None
    stop_stride: int = 2
    seed: int = 0
    backend: str = "auto"
    chunk_elements: int = 2**24
    keep_levels: bool = False
    work_budget: int = DEFAULT_WORK_BUDGET
    refine: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.refine, bool) or not isinstance(self.refine, int) or self.refine < 0:
            raise ValueError(f"refine: expected an int >= 0, got {self.refine!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {self.backend!r}")
        for name in ("stop_stride", "chunk_elements", "work_budget"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if self.levels is not None:
            for name, level in self.levels.items():
                if not isinstance(level, LevelConfig):
                    raise TypeError(
                        f"levels[{name!r}]: expected a LevelConfig, got {type(level).__name__}"
                    )

    def _compiled_patchmatch(self, device: torch.device) -> bool:
        """Whether PatchMatch would run compiled on ``device``.

        The pure-PyTorch PatchMatch is slower than the PyTorch window search at every size, so
        the default schedule only trades the window for PatchMatch when a compiled kernel runs it.
        """
        if self.backend in ("cpp", "cuda"):
            return True
        if self.backend == "torch":
            return False
        return active_backend(device)[0] != "torch"

    @classmethod
    def default_for(cls, pyramid: FeaturePyramid, **options) -> MatchConfig:
        """The default schedule for ``pyramid`` (strides, channels and sizes read as data).

        Levels with stride ``>= stop_stride`` are matched. The two coarsest are ``"exact"``
        (patch 3); the finest matched level is ``"window"`` with ``R = 4``, patch 5 (as DIA); the
        levels in between are ``"window"`` with ``R = 6``, patch 3. A window level whose
        :func:`window_work` exceeds ``work_budget`` becomes ``"patchmatch"`` (10 iterations,
        same radius). See docs/matching.md for the comparison with DIA.

        Args:
            pyramid: the target pyramid (only names, strides and shapes are read).
            **options: any other :class:`MatchConfig` field (``stop_stride``, ``work_budget``...).

        Returns:
            A :class:`MatchConfig` with ``levels`` filled in.

        Example:
            >>> import torch
            >>> feats = tuple(torch.rand(1, 4, 64 // s, 64 // s) for s in (1, 2, 4, 8, 16))
            >>> pyr = FeaturePyramid(feats, (1, 2, 4, 8, 16), ("a", "b", "c", "d", "e"), (64, 64))
            >>> {n: (lc.method, lc.radius) for n, lc in MatchConfig.default_for(pyr).levels.items()}
            {'e': ('exact', None), 'd': ('exact', None), 'c': ('window', 6), 'b': ('window', 4)}
        """
        config = cls(**options)
        return replace(config, levels=config.levels_for(pyramid))

    def levels_for(self, pyramid: FeaturePyramid) -> dict[str, LevelConfig]:
        """``levels`` if set, else the default schedule for ``pyramid``, coarse to fine."""
        if self.levels is not None:
            unknown = [n for n in self.levels if n not in pyramid.names]
            if unknown:
                raise ValueError(
                    f"levels: {unknown} are not levels of the pyramid; expected names among {pyramid.names}"
                )
            return {n: self.levels[n] for n in reversed(pyramid.names) if n in self.levels}
        chosen = [
            i for i in reversed(range(len(pyramid.names))) if pyramid.strides[i] >= self.stop_stride
        ]
        if not chosen:
            raise ValueError(
                f"stop_stride: {self.stop_stride} leaves no level to match (strides {pyramid.strides}); "
                "lower it"
            )
        schedule = {}
        for rank, i in enumerate(chosen):
            if rank < 2:
                level = LevelConfig("exact", 3, None)
            else:
                finest = i == chosen[-1]
                level = LevelConfig("window", 5 if finest else 3, 4 if finest else 6)
                feats = pyramid.features[i]
                work = window_work(
                    feats.shape[2] * feats.shape[3], level.radius, level.patch_size, feats.shape[1]
                )
                if work > self.work_budget and self._compiled_patchmatch(feats.device):
                    level = replace(level, method="patchmatch")
            schedule[pyramid.names[i]] = level
        return schedule
