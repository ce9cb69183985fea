"""Video: the previous frame's correspondence carried along the motion, to start the next matching.

Within a shot, frame t's target->reference field is close to frame t-1's moved by the optical
flow. :class:`MotionPrior` keeps frame t-1's working-size luminance and field, computes the
backward flow (frame t -> t-1, OpenCV DIS) and returns ``prior(p) = nnf_{t-1}(p + flow(p))``;
:func:`~deepexemplar_core.matching.dense_match` then starts each fine level's search from the
better of that prior and the coarser level's field, so correspondences stay steady from frame to
frame. A scene cut (the previous frame, warped, explains too little of the new one) or a change of
size returns no prior: the matching restarts from scratch.
"""

from __future__ import annotations

import torch

from .temporal.flow import DisFlow, flow_consistent, luminance_u8, warp, warp_weight

__all__ = ["MotionPrior", "ShotDetector"]


def _continuity(flow_of, current: torch.Tensor, previous: torch.Tensor,
                sigma: float) -> tuple[float, torch.Tensor]:
    """How much of ``current`` the ``previous`` frame, warped, explains, and the backward flow.

    Args:
        flow_of: a :class:`~deepexemplar_core.temporal.flow.DisFlow`.
        current, previous: ``(1, h, w)`` luminance in [0, 100].
        sigma: the Gaussian's width in L units.

    Returns:
        ``(mean temporal weight in [0, 1], (2, h, w) flow current -> previous)``.
    """
    now, before = luminance_u8(current), luminance_u8(previous)
    flow = torch.from_numpy(flow_of(now, before)).permute(2, 0, 1).to(current.device)
    flow_fw = torch.from_numpy(flow_of(before, now)).permute(2, 0, 1).to(current.device)
    warped_l, _ = warp(previous, flow)
    fw_on_now, _ = warp(flow_fw, flow)
    weight = warp_weight(current, warped_l, sigma) * flow_consistent(flow, fw_on_now)
    return float(weight.mean()), flow


class MotionPrior:
    """The previous frame's T->R field moved along the optical flow (one frame of memory).

    Args:
        flow_preset: DIS preset (``"ultrafast"``, ``"fast"``, ``"medium"``).
        scene_cut: a new frame whose mean temporal weight (the luminance warp error's Gaussian,
            as Bonneel et al., zero where the forward and backward flows disagree) is below this
            starts a new shot (a pan scores about 0.99, a cut between two photos below 0.01).
        sigma: the Gaussian's width in L units.

    Example:
        >>> motion = MotionPrior()
        >>> l = torch.rand(1, 1, 32, 40) * 100
        >>> motion.prior_for(l) is None                    # nothing to carry yet
        True
        >>> motion.remember(l, torch.zeros(1, 32, 40, 2, dtype=torch.int64))
        >>> motion.prior_for(l).shape                      # same frame again: the field itself
        torch.Size([1, 32, 40, 2])
    """

    def __init__(self, flow_preset: str = "fast", scene_cut: float = 0.2, sigma: float = 5.0) -> None:
        if not 0.0 <= scene_cut <= 1.0:
            raise ValueError(f"scene_cut: expected a weight in [0, 1], got {scene_cut}")
        self._flow = DisFlow(flow_preset, max_width=960)
        self.scene_cut, self.sigma = float(scene_cut), float(sigma)
        self._l: torch.Tensor | None = None
        self._nnf: torch.Tensor | None = None
        self.cuts = 0

    def reset(self) -> None:
        """Forget the previous frame (the next one starts a shot)."""
        self._l = self._nnf = None

    def prior_for(self, l: torch.Tensor) -> torch.Tensor | None:
        """The prior for a frame, or ``None`` at the start of a shot.

        Args:
            l: ``(1, 1, h, w)`` the frame's luminance in [0, 100] at working size.

        Returns:
            ``(N, h, w, 2)`` int64 absolute (y, x) fields into the references (``N`` as
            remembered), or ``None``.
        """
        if self._l is None or self._nnf is None or self._l.shape != l.shape:
            return None
        weight, flow = _continuity(self._flow, l[0], self._l[0].to(l.device), self.sigma)
        if weight < self.scene_cut:
            self.cuts += 1
            return None
        carried = [warp(field.permute(2, 0, 1).float().to(l.device), flow)[0] for field in self._nnf]
        return torch.stack(carried).round().long().permute(0, 2, 3, 1)

    def remember(self, l: torch.Tensor, nnf_tr: torch.Tensor) -> None:
        """Keep this frame's luminance ``(1, 1, h, w)`` and fields ``(N, h, w, 2)`` for the next.

        ``N`` is 1 for one reference; with several references, one field per reference (the
        frame's flow is computed once and carries them all).
        """
        self._l, self._nnf = l.detach(), nnf_tr.detach()


class ShotDetector:
    """Says which frames start a shot, by :class:`MotionPrior`'s criterion, before matching.

    For choosing references per shot (``deepexemplar video --reference-index``): call it on
    every frame in order; the first frame and each frame after a scene cut start a shot.

    Args:
        scene_cut, sigma, flow_preset: as :class:`MotionPrior`.
        size: frames are compared at this short side (pixels), for speed.

    Example:
        >>> shots = ShotDetector()
        >>> a, b = torch.rand(1, 1, 64, 64) * 100, torch.rand(1, 1, 64, 64) * 100
        >>> [shots(a), shots(a), shots(b)]
        [True, False, True]
    """

    def __init__(self, scene_cut: float = 0.2, sigma: float = 5.0, flow_preset: str = "fast",
                 size: int = 128) -> None:
        if not 0.0 <= scene_cut <= 1.0:
            raise ValueError(f"scene_cut: expected a weight in [0, 1], got {scene_cut}")
        self._flow = DisFlow(flow_preset, max_width=960)
        self.scene_cut, self.sigma, self.size = float(scene_cut), float(sigma), int(size)
        self._l: torch.Tensor | None = None

    def __call__(self, l: torch.Tensor) -> bool:
        """Whether ``l`` (``(1, 1, H, W)`` luminance in [0, 100]) starts a shot."""
        scale = self.size / min(l.shape[-2:])
        small = l if scale >= 1 else torch.nn.functional.interpolate(
            l, scale_factor=scale, mode="area")
        previous, self._l = self._l, small
        if previous is None or previous.shape != small.shape:
            return True
        weight, _ = _continuity(self._flow, small[0], previous[0], self.sigma)
        return weight < self.scene_cut
