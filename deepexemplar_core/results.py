"""What the pipeline's stages return: frozen dataclasses, documented field by field.

:func:`~deepexemplar_core.pipeline.prepare_reference` gives a :class:`PreparedReference`,
:func:`~deepexemplar_core.pipeline.match_images` a :class:`MatchResult` (a
:class:`SetMatchResult` for several references),
:func:`~deepexemplar_core.pipeline.compute_similarity` a :class:`SimilarityResult` (a
:class:`SetSimilarityResult`),
:func:`~deepexemplar_core.pipeline.colorize_iter` a :class:`ColorizedImage` per target (with its
chunk's :class:`Intermediates` on request) and :func:`~deepexemplar_core.pipeline.colorize` a
:class:`ColorizeResult`. The ComfyUI nodes and notebooks hand them from stage to stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .fusion import Fusion, FusionConfig
from .structures import Correspondence, FeaturePyramid, Similarity

__all__ = [
    "ColorizeResult",
    "ColorizedImage",
    "Intermediates",
    "MatchResult",
    "PreparedReference",
    "ReferenceSet",
    "SetMatchResult",
    "SetSimilarityResult",
    "SimilarityResult",
]


@dataclass(frozen=True)
class PreparedReference:
    """Everything that depends on the reference alone, computed once by :func:`prepare_reference`.

    Attributes:
        rgb_work: ``(1, 3, hr, wr)`` reference sRGB in [0, 1] at working resolution.
        lab_work: ``(1, 3, hr, wr)`` the same in CIELab.
        pyramid: the backbone's features of the reference luminance (batch 1).
        size: the working short side it was prepared for (:attr:`ColorizeConfig.size`).
        backbone: name of the backbone that computed :attr:`pyramid`.
        original_size: ``(H, W)`` of the reference as given.
        gray: the reference has no colour (R, G and B agree): results will be gray.
        timings: seconds, ``{"resize": ..., "features": ...}``.
    """

    rgb_work: torch.Tensor
    lab_work: torch.Tensor
    pyramid: FeaturePyramid
    size: int
    backbone: str
    original_size: tuple[int, int]
    gray: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferenceSet:
    """Several prepared references and their optional regions
    (:func:`~deepexemplar_core.pipeline.prepare_references`).

    Attributes:
        references: the colour references, each prepared once.
        masks: per reference, ``None`` or its ``(H, W)`` region in [0, 1] drawn on the targets.
        fusion: how the references are fused (:class:`~deepexemplar_core.fusion.FusionConfig`).
        positions: per reference, its position among the references as given (gray ones are
            left out, see :attr:`skipped`).
        skipped: one message per reference left out (a gray image among colour ones).
    """

    references: tuple[PreparedReference, ...]
    masks: tuple[torch.Tensor | None, ...]
    fusion: FusionConfig = field(default_factory=FusionConfig)
    positions: tuple[int, ...] = ()
    skipped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.references)


@dataclass(frozen=True)
class MatchResult:
    """Output of :func:`match_images` for one chunk of same-sized targets.

    Attributes:
        target_l_work: ``(B, 1, h, w)`` target luminance in [0, 100] at working resolution.
        reference: the prepared reference the targets were matched against.
        target_pyramid: features of the targets.
        correspondence: the bidirectional fields at working resolution.
        original_size: ``(H, W)`` of the targets of this chunk.
        timings: seconds, ``{"resize": ..., "features": ..., "matching": ...}``.
    """

    target_l_work: torch.Tensor
    reference: PreparedReference
    target_pyramid: FeaturePyramid
    correspondence: Correspondence
    original_size: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def work_size(self) -> tuple[int, int]:
        """``(h, w)`` of the working resolution."""
        return int(self.target_l_work.shape[-2]), int(self.target_l_work.shape[-1])

    @property
    def reference_rgb_work(self) -> torch.Tensor:
        """``(1, 3, hr, wr)`` reference sRGB in [0, 1] at working resolution."""
        return self.reference.rgb_work

    @property
    def reference_lab_work(self) -> torch.Tensor:
        """``(1, 3, hr, wr)`` reference CIELab at working resolution."""
        return self.reference.lab_work

    @property
    def reference_pyramid(self) -> FeaturePyramid:
        """Features of the reference (batch 1)."""
        return self.reference.pyramid


@dataclass(frozen=True)
class SimilarityResult:
    """Output of :func:`compute_similarity`.

    Attributes:
        similarity: the ten maps (and their quantised distances).
        warped_rgb8: ``(B, 3, h, w)`` uint8 reference colours carried to the targets.
        warped_ab: ``(B, 2, h, w)`` CIELab a/b of ``warped_rgb8``.
        confidence: ``(B, 1, h, w)`` in [0, 1].
        timings: seconds, ``{"similarity": ..., "warp": ..., "confidence": ...}``.
    """

    similarity: Similarity
    warped_rgb8: torch.Tensor
    warped_ab: torch.Tensor
    confidence: torch.Tensor
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SetMatchResult:
    """Output of :func:`match_images` for several references: every reference's match of the
    same targets, and the set (its regions and fusion settings) they are fused by.

    Attributes:
        matches: per reference of ``references``, in its order, the :class:`MatchResult` (the
            targets' luminance and features are shared).
        references: the :class:`ReferenceSet` the targets were matched against.
    """

    matches: tuple[MatchResult, ...]
    references: ReferenceSet

    def __len__(self) -> int:
        return len(self.matches)

    @property
    def original_size(self) -> tuple[int, int]:
        """``(H, W)`` of the targets."""
        return self.matches[0].original_size

    @property
    def work_size(self) -> tuple[int, int]:
        """``(h, w)`` of the working resolution."""
        return self.matches[0].work_size


@dataclass(frozen=True)
class SetSimilarityResult:
    """Output of :func:`compute_similarity` for a :class:`SetMatchResult`.

    Attributes:
        fused: the fused stage, of the same shapes as one reference's (what the colorizer and
            the previews read).
        stages: per reference, its own :class:`SimilarityResult`.
        fusion: the weights and the choice map (:class:`~deepexemplar_core.fusion.Fusion`).
    """

    fused: SimilarityResult
    stages: tuple[SimilarityResult, ...]
    fusion: Fusion


@dataclass(frozen=True, eq=False)
class Intermediates:
    """Intermediate results of one chunk of same-sized targets.

    Attributes:
        indices: positions of this chunk's targets in the input.
        match: the correspondence stage.
        similarity: the similarity / warp stage.
        ab_work: ``(B, 2, h, w)`` predicted chroma at working resolution.
        timings: seconds of the colorizer on this chunk, ``{"colorize": ...}``.
        references: several references: per reference, its ``(match, similarity)`` (then
            :attr:`match` is the first reference's and :attr:`similarity` the fused one);
            empty for one reference.
        fusion: several references: the weights and the choice map; ``None`` for one.
    """

    indices: tuple[int, ...]
    match: MatchResult
    similarity: SimilarityResult
    ab_work: torch.Tensor
    timings: dict[str, float] = field(default_factory=dict)
    references: tuple[tuple[MatchResult, SimilarityResult], ...] = ()
    fusion: Fusion | None = None

    @property
    def choice(self) -> torch.Tensor:
        """``(B, 1, h, w)`` int64: which reference coloured each pixel (all 0 for one)."""
        if self.fusion is not None:
            return self.fusion.choice
        return torch.zeros_like(self.similarity.confidence, dtype=torch.int64)


@dataclass(frozen=True)
class ColorizedImage:
    """One finished target, as :func:`colorize_iter` yields it.

    Attributes:
        index: position of the target in the input.
        image: ``(3, H, W)`` float32 sRGB in [0, 1] at the target's original size.
        ab: ``(2, H, W)`` the final full-resolution chroma.
        timings: seconds per stage, this target's share of its chunk.
        intermediates: its chunk's intermediates (``keep_intermediates=True``), else ``None``.
    """

    index: int
    image: torch.Tensor
    ab: torch.Tensor
    timings: dict[str, float]
    intermediates: Intermediates | None = None


@dataclass(frozen=True)
class ColorizeResult:
    """What :func:`colorize` returns.

    Attributes:
        images: per target, ``(3, H, W)`` float32 sRGB in [0, 1] at the target's original size.
        ab: per target, ``(2, H, W)`` the final full-resolution chroma.
        intermediates: one entry per chunk of same-sized targets.
        timings: seconds per stage summed over chunks (``resize``, ``features``, ``matching``,
            ``similarity``, ``warp``, ``confidence``, ``colorize``, ``upsample``, ``total``).
        family: ``"paper"`` or ``"lite"``.
        colorizer: the colorizer's name.
        backend: the matching backend (``"torch"``, ``"cpp"``, ``"cuda"``).
    """

    images: list[torch.Tensor]
    ab: list[torch.Tensor]
    intermediates: tuple[Intermediates, ...]
    timings: dict[str, float]
    family: str
    colorizer: str
    backend: str

    def _single(self) -> Intermediates:
        if len(self.intermediates) != 1:
            raise ValueError(
                f"this result has {len(self.intermediates)} chunks (different sizes or chunk_size); "
                "read result.intermediates[i] instead"
            )
        return self.intermediates[0]

    @property
    def correspondence(self) -> Correspondence:
        """The fields of the (single) target group."""
        return self._single().match.correspondence

    @property
    def similarity(self) -> Similarity:
        """The similarity maps of the (single) target group."""
        return self._single().similarity.similarity

    @property
    def confidence(self) -> torch.Tensor:
        """``(B, 1, h, w)`` confidence of the (single) target group."""
        return self._single().similarity.confidence

    @property
    def warped_rgb8(self) -> torch.Tensor:
        """``(B, 3, h, w)`` uint8 warped reference colours of the (single) target group."""
        return self._single().similarity.warped_rgb8

    @property
    def choice(self) -> torch.Tensor:
        """``(B, 1, h, w)`` int64 choice map of the (single) target group: which reference
        coloured each pixel (all 0 with one reference)."""
        return self._single().choice
