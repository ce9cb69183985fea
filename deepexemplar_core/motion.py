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

__all__ = ["MotionPrior"]


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
            ``(1, h, w, 2)`` int64 absolute (y, x) field into the reference, or ``None``.
        """
        if self._l is None or self._nnf is None or self._l.shape != l.shape:
            return None
        current, previous = l[0], self._l[0].to(l.device)
        now, before = luminance_u8(current), luminance_u8(previous)
        flow = torch.from_numpy(self._flow(now, before)).permute(2, 0, 1).to(l.device)
        flow_fw = torch.from_numpy(self._flow(before, now)).permute(2, 0, 1).to(l.device)
        warped_l, _ = warp(previous, flow)
        fw_on_now, _ = warp(flow_fw, flow)
        weight = warp_weight(current, warped_l, self.sigma) * flow_consistent(flow, fw_on_now)
        if float(weight.mean()) < self.scene_cut:
            self.cuts += 1
            return None
        carried, _ = warp(self._nnf[0].permute(2, 0, 1).float().to(l.device), flow)
        return carried.round().long().permute(1, 2, 0).unsqueeze(0)

    def remember(self, l: torch.Tensor, nnf_tr: torch.Tensor) -> None:
        """Keep this frame's luminance ``(1, 1, h, w)`` and field ``(1, h, w, 2)`` for the next."""
        self._l, self._nnf = l.detach(), nnf_tr.detach()
