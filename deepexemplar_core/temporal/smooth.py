"""Blind temporal consistency of per-frame colorized video (Bonneel et al. 2015), on ab only.

Frame by frame and causally, with only the previous frame kept (O(1) memory in the clip length):

1. backward flow (frame t -> t-1) on the luminance with DIS, optionally the forward flow too for
   the forward-backward occlusion test (:mod:`.flow`);
2. the temporal weight ``w = exp(-(L_t - warp(L_{t-1}))^2 / (2 sigma^2))``, 0 where the flow
   leaves the frame or is occluded; a frame whose mean weight is below ``scene_cut`` starts a new
   shot and is returned unchanged (the recursion restarts from it);
3. ``bonneel``: the screened-Poisson solve ``(Lap + lambda diag(w)) O = Lap P + lambda w
   warp(O_{t-1})`` per ab channel (:mod:`.solver`), warm-started from the fast estimate;
   ``fast``: ``O = P + G*(w r) / max(G*w, m)`` with ``r = warp(O_{t-1}) - P``, a flow-warped,
   occlusion-masked low-pass of the difference to the previous output (:mod:`.filters`).

The luminance is never modified; only the chroma ``ab`` is smoothed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from .. import _checks
from .filters import masked_lowpass
from .flow import FLOW_PRESETS, DisFlow, flow_consistent, luminance_u8, warp, warp_weight
from .solver import solve_screened_poisson

__all__ = [
    "AUTO_FLOW_PRESETS",
    "LAM_SIDE",
    "MODES",
    "SmoothedFrame",
    "TemporalConfig",
    "TemporalResult",
    "TemporalSmoother",
    "smooth_iter",
    "temporal_smooth",
]

Progress = Callable[[int, int], None]

#: Temporal smoothing modes.
MODES = ("off", "fast", "bonneel")

#: The DIS preset ``flow_preset="auto"`` picks for each mode: ``fast`` is for previews and CPU
#: runs (>= 15 frames/s at 480p on 2 cores, see docs/temporal.md), ``bonneel`` for quality.
AUTO_FLOW_PRESETS = {"off": "medium", "fast": "fast", "bonneel": "medium"}

#: Smallest accepted frame side in pixels (DIS needs a few patches).
MIN_SIDE = 16

#: The shorter frame side (pixels) at which ``TemporalConfig.lam`` applies as given.
LAM_SIDE = 480


@dataclass(frozen=True)
class TemporalConfig:
    """Settings of :class:`TemporalSmoother` and :func:`temporal_smooth`.

    Attributes:
        mode: ``"off"`` (returns the input), ``"fast"`` (masked low-pass of the difference to
            the warped previous output) or ``"bonneel"`` (the screened-Poisson solve).
        lam: Bonneel's temporal weight lambda, per pixel^2 of a frame whose shorter side is
            :data:`LAM_SIDE` (480) pixels; other sizes use :meth:`frame_lam`, ``lam (480 /
            shorter side)^2``, so that the smoothing acts on the same share of the picture at
            every resolution. The solve keeps the per-frame result's details smaller than about
            ``1 / sqrt(frame_lam)`` pixels and takes the larger ones from the previous output;
            larger is steadier (more ghosting risk where the weight is wrong).
        flow_preset: DIS preset, ``"ultrafast"``, ``"fast"`` or ``"medium"``, or ``"auto"``:
            the preset of :data:`AUTO_FLOW_PRESETS` for the mode (``fast`` for ``fast`` mode,
            ``medium`` for ``bonneel``); :attr:`dis_preset` is the one used.
        flow_width: the flow is computed at most this many pixels wide, then scaled.
        occlusion_check: also compute the forward flow and zero the weight where the
            forward-backward test fails.
        scene_cut: a frame whose mean temporal weight is below this starts a new shot.
        weight_sigma: width of the luminance warp-error Gaussian in L units (Bonneel's 0.05 on
            [0, 1] colours is 5).
        tol: relative residual at which the conjugate-gradient solve stops.
        max_iter: iteration cap of the solve.
        solver_levels: nested-iteration depth of the solve: it starts from the solution on
            grids up to ``2 ** solver_levels`` times coarser (0: warm start only; see
            :func:`~deepexemplar_core.temporal.solver.solve_screened_poisson`).
        fast_sigma: Gaussian standard deviation in pixels of the ``fast`` low-pass.
        fast_min_weight: floor of the low-passed weight in ``fast`` mode: where less of the
            neighbourhood is trusted, the correction fades out (keeps new content per frame).
    """

    mode: str = "bonneel"
    lam: float = 1.0
    flow_preset: str = "auto"
    flow_width: int = 960
    occlusion_check: bool = True
    scene_cut: float = 0.2
    weight_sigma: float = 5.0
    tol: float = 1e-3
    max_iter: int = 300
    solver_levels: int = 3
    fast_sigma: float = 2.0
    fast_min_weight: float = 0.25

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {self.mode!r}")
        if self.flow_preset != "auto" and self.flow_preset not in FLOW_PRESETS:
            raise ValueError(
                f"flow_preset: expected 'auto' or one of {tuple(FLOW_PRESETS)}, "
                f"got {self.flow_preset!r}"
            )
        checks = (
            ("lam", self.lam, 0.0, math.inf, "> 0", False),
            ("scene_cut", self.scene_cut, 0.0, 1.0, "in [0, 1]", True),
            ("weight_sigma", self.weight_sigma, 0.0, math.inf, "> 0", False),
            ("tol", self.tol, 0.0, 1.0, "in (0, 1)", False),
            ("fast_sigma", self.fast_sigma, 0.0, math.inf, "> 0", False),
            ("fast_min_weight", self.fast_min_weight, 0.0, 1.0, "in [0, 1]", True),
        )
        for name, value, low, high, want, closed in checks:
            ok = (low <= value <= high) if closed else (low < value < high)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not ok:
                raise ValueError(f"{name}: expected a number {want}, got {value!r}")
        if not isinstance(self.flow_width, int) or self.flow_width < MIN_SIDE:
            raise ValueError(
                f"flow_width: expected an integer >= {MIN_SIDE}, got {self.flow_width!r}"
            )
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ValueError(f"max_iter: expected an integer >= 1, got {self.max_iter!r}")
        if not isinstance(self.solver_levels, int) or not 0 <= self.solver_levels <= 8:
            raise ValueError(
                f"solver_levels: expected an integer in [0, 8], got {self.solver_levels!r}"
            )

    def frame_lam(self, height: int, width: int) -> float:
        """Lambda for a ``height`` x ``width`` frame: ``lam (LAM_SIDE / min(height, width))^2``.

        Example:
            >>> TemporalConfig(lam=1.0).frame_lam(1080, 1920)
            0.19753086419753085
        """
        return self.lam * (LAM_SIDE / min(height, width)) ** 2

    @property
    def dis_preset(self) -> str:
        """The DIS preset used: :attr:`flow_preset`, with ``"auto"`` resolved for the mode."""
        return AUTO_FLOW_PRESETS[self.mode] if self.flow_preset == "auto" else self.flow_preset


@dataclass(frozen=True)
class SmoothedFrame:
    """One output of :meth:`TemporalSmoother.step`.

    Attributes:
        ab: ``(2, H, W)`` float32 smoothed chroma on the smoother's device.
        scene_cut: True when this frame starts a new shot (the recursion was reset). False for
            the first frame of a clip (nothing to cut from) and in ``off`` mode.
        weight_mean: mean temporal weight in [0, 1] (1.0 for the first frame and ``off``).
        residual: relative residual of the solve (``bonneel``), else None.
        timings: seconds, ``"flow"`` (both flows), ``"warp"`` (warps, masks, weight) and
            ``"solve"`` (``bonneel``) or ``"filter"`` (``fast``).
    """

    ab: torch.Tensor
    scene_cut: bool
    weight_mean: float
    residual: float | None
    timings: dict[str, float]


@dataclass(frozen=True)
class TemporalResult:
    """What :func:`temporal_smooth` returns.

    Attributes:
        ab: ``(N, 2, H, W)`` float32 smoothed chroma, on the device of the input ``frames_ab``.
        scene_cuts: indices of the frames detected as starting a new shot.
        residuals: per frame, the solver's relative residual (None where nothing was solved).
        weight_means: per frame, the mean temporal weight.
        timings: seconds summed over frames per stage (``flow``, ``warp``, ``solve``/``filter``)
            and ``total``.
    """

    ab: torch.Tensor
    scene_cuts: tuple[int, ...]
    residuals: tuple[float | None, ...]
    weight_means: tuple[float, ...]
    timings: dict[str, float]


def _check_frame(l: object, ab: object) -> tuple[int, int]:
    """Validate one frame's ``l`` (1, H, W) and ``ab`` (2, H, W); return ``(H, W)``."""
    dims = _checks.check_shape("l", _checks.check_tensor("l", l), (1, "H", "W"))
    dims_ab = _checks.check_shape("ab", _checks.check_tensor("ab", ab), (2, "H", "W"))
    _checks.check_same("l height", dims["H"], "ab height", dims_ab["H"])
    _checks.check_same("l width", dims["W"], "ab width", dims_ab["W"])
    for name, value in (("l", l), ("ab", ab)):
        _checks.check_floating(name, value)
        _checks.check_finite(name, value)
    _checks.check_min_size("l", dims["H"], dims["W"], MIN_SIDE, "optical flow needs a few patches")
    _checks.check_range("l", l, 0.0, 100.0)
    return dims["H"], dims["W"]


class TemporalSmoother:
    """Causal, frame by frame, O(1) memory in the number of frames (keeps only the previous frame).

    Args:
        config: settings; ``None`` uses :class:`TemporalConfig` defaults (``bonneel``).
        device: where the smoothing runs (flow always runs on the CPU with OpenCV); ``None``
            uses the device of the first ``ab`` passed to :meth:`step`.

    Example:
        >>> smoother = TemporalSmoother(TemporalConfig(mode="fast"))
        >>> l = torch.rand(1, 32, 48) * 100
        >>> out = [smoother.step(l, torch.randn(2, 32, 48)) for _ in range(3)]
        >>> out[-1].ab.shape, out[-1].scene_cut
        (torch.Size([2, 32, 48]), False)
    """

    def __init__(
        self, config: TemporalConfig | None = None, device: torch.device | str | None = None
    ) -> None:
        config = TemporalConfig() if config is None else config
        if not isinstance(config, TemporalConfig):
            raise TypeError(f"config: expected a TemporalConfig, got {type(config).__name__}")
        self.config = config
        self.device = None if device is None else torch.device(device)
        self._flow = DisFlow(config.dis_preset, config.flow_width)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame: the next :meth:`step` starts a new shot."""
        self._prev_u8: np.ndarray | None = None
        self._prev_l: torch.Tensor | None = None
        self._prev_ab: torch.Tensor | None = None

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _remember(self, l_u8: np.ndarray, l: torch.Tensor, ab: torch.Tensor) -> None:
        self._prev_u8, self._prev_l, self._prev_ab = l_u8, l, ab

    @torch.no_grad()
    def step(self, l: torch.Tensor, ab: torch.Tensor) -> SmoothedFrame:
        """Smooth the next frame.

        Args:
            l: ``(1, H, W)`` float32 CIELab L in [0, 100] (the frame's luminance, never changed).
            ab: ``(2, H, W)`` float32 per-frame colorization chroma.

        Returns:
            :class:`SmoothedFrame` with the smoothed ``ab`` on the smoother's device.

        Raises:
            TypeError, ValueError: bad shapes, dtypes, values, or a frame size that differs
                from the previous frame's (call :meth:`reset` between clips).
        """
        height, width = _check_frame(l, ab)
        cfg = self.config
        if self.device is None:
            self.device = ab.device
        if cfg.mode == "off":
            return SmoothedFrame(ab.to(self.device), False, 1.0, None, {})
        l = l.to(self.device, torch.float32)
        ab = ab.to(self.device, torch.float32)
        start = time.perf_counter()
        l_u8 = luminance_u8(l)
        if self._prev_u8 is None:
            self._remember(l_u8, l, ab)
            return SmoothedFrame(ab, False, 1.0, None, {})
        if self._prev_u8.shape != (height, width):
            raise ValueError(
                f"l: frame size {height}x{width} differs from the previous frame's "
                f"{self._prev_u8.shape[0]}x{self._prev_u8.shape[1]}; call reset() between clips"
            )
        timings: dict[str, float] = {}
        weight, timings["flow"], timings["warp"], warped_ab = self._weight(l, l_u8, start)
        weight_mean = float(weight.mean())
        if weight_mean < cfg.scene_cut:
            self._remember(l_u8, l, ab)
            return SmoothedFrame(ab, True, weight_mean, None, timings)
        start = time.perf_counter()
        diff = warped_ab - ab
        if cfg.mode == "fast":
            out = ab + masked_lowpass(diff, weight, cfg.fast_sigma, cfg.fast_min_weight)
            residual = None
        else:
            lam = cfg.frame_lam(height, width)
            screen = weight * lam
            x0 = masked_lowpass(diff, weight, 1.0 / math.sqrt(lam), 1e-3)
            solved = solve_screened_poisson(
                screen, screen * diff, x0, tol=cfg.tol, max_iter=cfg.max_iter,
                coarse_levels=cfg.solver_levels,
            )
            out, residual = ab + solved.x, solved.residual
        self._sync()
        timings["filter" if cfg.mode == "fast" else "solve"] = time.perf_counter() - start
        self._remember(l_u8, l, out)
        return SmoothedFrame(out, False, weight_mean, residual, timings)

    def _weight(
        self, l: torch.Tensor, l_u8: np.ndarray, start: float
    ) -> tuple[torch.Tensor, float, float, torch.Tensor]:
        """Flow, warp of the previous L and output, and the temporal weight ``(1, H, W)``."""
        flow_bw_np = self._flow(l_u8, self._prev_u8)
        flow_fw_np = self._flow(self._prev_u8, l_u8) if self.config.occlusion_check else None
        flow_time = time.perf_counter() - start
        start = time.perf_counter()
        flow_bw = torch.from_numpy(flow_bw_np).permute(2, 0, 1).to(self.device)
        stack = [self._prev_l, self._prev_ab]
        if flow_fw_np is not None:  # warped along with the rest: one sampling pass
            stack.append(torch.from_numpy(flow_fw_np).permute(2, 0, 1).to(self.device))
        warped, inside = warp(torch.cat(stack), flow_bw)
        weight = warp_weight(l, warped[:1], self.config.weight_sigma) * inside
        if flow_fw_np is not None:
            weight = weight * flow_consistent(flow_bw, warped[3:5])
        self._sync()
        return weight, flow_time, time.perf_counter() - start, warped[1:3]


def smooth_iter(
    frames: Iterable[tuple[torch.Tensor, torch.Tensor]],
    config: TemporalConfig | None = None,
    *,
    device: torch.device | str | None = None,
) -> Iterator[SmoothedFrame]:
    """Smooth a clip frame by frame as it streams: the one loop every product runs.

    Each ``(l, ab)`` pair is pulled only when the previous frame has been yielded, and only the
    previous frame is kept, so memory does not depend on the clip's length (a generator of a
    film's frames works). :func:`temporal_smooth` collects this.

    Args:
        frames: iterable of ``(l, ab)``: ``l`` ``(1, H, W)`` float32 L in [0, 100] (never
            changed), ``ab`` ``(2, H, W)`` float32 per-frame chroma, in playing order.
        config: settings; ``None`` uses the defaults (``bonneel``).
        device: where the smoothing runs; ``None`` uses the device of the first ``ab`` frame.

    Yields:
        :class:`SmoothedFrame` per input frame, in order, its ``ab`` on the device of that
        frame's input ``ab``.

    Raises:
        TypeError, ValueError: a bad ``config`` or ``frames`` (at the call), a pair that is not
            ``(l, ab)`` or a bad frame (the message names the argument; when it is reached).

    Example:
        >>> l = torch.rand(3, 1, 32, 32) * 100; ab = torch.randn(3, 2, 32, 32)
        >>> [f.ab.shape[0] for f in smooth_iter(zip(l, ab), TemporalConfig(mode="fast"))]
        [2, 2, 2]
    """
    if isinstance(frames, (str, bytes, torch.Tensor)) or not isinstance(frames, Iterable):
        raise TypeError(
            f"frames: expected an iterable of (l, ab) pairs, got {type(frames).__name__}"
        )
    return _smoothed(TemporalSmoother(config, device), frames)


def _smoothed(
    smoother: TemporalSmoother, frames: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> Iterator[SmoothedFrame]:
    """The generator of :func:`smooth_iter` (whose arguments are checked when it is called)."""
    for index, pair in enumerate(frames):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"frames: item {index} is not an (l, ab) pair")
        l, ab = pair
        frame = smoother.step(l, ab)
        if frame.ab.device != ab.device:
            frame = replace(frame, ab=frame.ab.to(ab.device))
        yield frame


def _frames(name: str, frames: object, channels: int) -> tuple[Iterable[torch.Tensor], int]:
    """``(N, C, H, W)`` tensor or iterable of ``(C, H, W)`` -> (iterable, N or 0 if unknown)."""
    if isinstance(frames, torch.Tensor):
        _checks.check_shape(name, frames, ("N", channels, "H", "W"))
        return frames.unbind(0), frames.shape[0]
    if isinstance(frames, (str, bytes)) or not isinstance(frames, Iterable):
        raise TypeError(
            f"{name}: expected an (N, C, H, W) tensor or an iterable of (C, H, W) tensors, "
            f"got {type(frames).__name__}"
        )
    return frames, len(frames) if isinstance(frames, Sequence) else 0


def _paired(
    frames_l: Iterable[torch.Tensor], frames_ab: Iterable[torch.Tensor]
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Zip two clips lazily; raises when one ends before the other."""
    sentinel = object()
    iter_l, iter_ab = iter(frames_l), iter(frames_ab)
    while True:
        l, ab = next(iter_l, sentinel), next(iter_ab, sentinel)
        if l is sentinel or ab is sentinel:
            if l is not ab:
                raise ValueError("frames_l and frames_ab: the clips have different lengths")
            return
        yield l, ab


def temporal_smooth(
    frames_l: torch.Tensor | Iterable[torch.Tensor],
    frames_ab: torch.Tensor | Iterable[torch.Tensor],
    config: TemporalConfig | None = None,
    *,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
) -> TemporalResult:
    """Make a per-frame colorized clip temporally consistent (ab only).

    Args:
        frames_l: ``(N, 1, H, W)`` float32 L in [0, 100], or an iterable of ``(1, H, W)``.
        frames_ab: ``(N, 2, H, W)`` float32 per-frame chroma, or an iterable of ``(2, H, W)``.
        config: settings; ``None`` uses the defaults (``bonneel``).
        device: where the smoothing runs; ``None`` uses the device of the first ``ab`` frame.
        progress: called with ``(done, total)`` after every frame (``total`` is 0 when the
            inputs are iterables of unknown length).

    Returns:
        :class:`TemporalResult`; its ``ab`` is on the device of the input ``ab`` frames.

    Raises:
        TypeError, ValueError: bad inputs (the message names the argument), including clips of
            different lengths or an empty clip.

    Example:
        >>> l = torch.rand(4, 1, 32, 32) * 100; ab = torch.randn(4, 2, 32, 32)
        >>> res = temporal_smooth(l, ab, TemporalConfig(mode="off"))
        >>> bool(torch.equal(res.ab, ab))
        True
    """
    it_l, total = _frames("frames_l", frames_l, 1)
    it_ab, total_ab = _frames("frames_ab", frames_ab, 2)
    if total and total_ab:
        _checks.check_same("frames_l length", total, "frames_ab length", total_ab)
    total = total or total_ab
    start = time.perf_counter()
    outs, cuts, residuals, means, timings = [], [], [], [], {}
    frames = smooth_iter(_paired(it_l, it_ab), config, device=device)
    for frame in frames:
        outs.append(frame.ab)
        if frame.scene_cut:
            cuts.append(len(outs) - 1)
        residuals.append(frame.residual)
        means.append(frame.weight_mean)
        for key, value in frame.timings.items():
            timings[key] = timings.get(key, 0.0) + value
        if progress is not None:
            progress(len(outs), total)
    if not outs:
        raise ValueError("frames_l: the clip is empty; pass at least one frame")
    timings["total"] = time.perf_counter() - start
    return TemporalResult(torch.stack(outs), tuple(cuts), tuple(residuals), tuple(means), timings)
