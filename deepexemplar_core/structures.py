"""Data objects passed between the stages of the pipeline.

They are plain frozen dataclasses of tensors so that a notebook user, the CLI and the ComfyUI
nodes hand the very same objects from one stage to the next.

Conventions (see ``docs/ARCHITECTURE.md``):

* feature maps are channels-first ``(B, C, H_l, W_l)``;
* correspondence fields are ``(B, H, W, 2)`` int64 holding **absolute** ``(y, x)`` pixel
  coordinates in the *other* image (not offsets);
* level order is **fine to coarse** (stride 1 or 2 first) everywhere in code; the authors'
  files use coarse to fine (conv5_1 first) and the readers/writers convert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class FeaturePyramid:
    """Multi-level features of a batch of images, fine to coarse.

    Attributes:
        features: one tensor per level, ``(B, C_l, H_l, W_l)`` float, post-ReLU.
        strides: the stride of each level relative to ``image_size`` (e.g. ``(1, 2, 4, 8, 16)``
            for the gray VGG relu1_1..relu5_1, ``(2, 4, 8, 16, 32)`` for the lite backbone).
        names: level names, e.g. ``("relu1_1", ..., "relu5_1")``.
        image_size: ``(H, W)`` of the images the features were computed from.
    """

    features: tuple[torch.Tensor, ...]
    strides: tuple[int, ...]
    names: tuple[str, ...]
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (n == len(self.strides) == len(self.names)) or n == 0:
            raise ValueError(
                f"FeaturePyramid: features ({n}), strides ({len(self.strides)}) and names "
                f"({len(self.names)}) must have the same non-zero length"
            )
        if list(self.strides) != sorted(self.strides):
            raise ValueError(f"FeaturePyramid: strides must be fine to coarse, got {self.strides}")

    @property
    def batch_size(self) -> int:
        """Number of images in the batch."""
        return int(self.features[0].shape[0])

    def level(self, name: str) -> torch.Tensor:
        """Return the features of the level called ``name``."""
        return self.features[self.names.index(name)]

    def select(self, index: torch.Tensor | slice | int) -> FeaturePyramid:
        """Return the pyramid of a sub-batch (``index`` applied to dim 0 of every level)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return FeaturePyramid(
            tuple(f[index] for f in self.features), self.strides, self.names, self.image_size
        )


@dataclass(frozen=True)
class Correspondence:
    """Bidirectional nearest-neighbour fields between targets and a reference.

    Attributes:
        nnf_tr: ``(B, Ht, Wt, 2)`` int64, for each target pixel the ``(y, x)`` of its match in
            the reference (phi_T->R), at working resolution.
        nnf_rt: ``(B, Hr, Wr, 2)`` int64, phi_R->T, one field per target of the batch.
        level_fields: per matched level (fine to coarse), the pair ``(nnf_tr, nnf_rt)`` at that
            level's resolution, in level coordinates. Empty when not kept.
        level_names: names of the matched levels, aligned with ``level_fields``.
        backend: which implementation produced the fields (``"torch"``, ``"cpp"``, ``"cuda"``,
            ``"file"`` for flows read from the authors' files).
        timings: seconds per level and step, e.g. ``{"relu5_1": 0.01, ...}``.
    """

    nnf_tr: torch.Tensor
    nnf_rt: torch.Tensor
    level_fields: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()
    level_names: tuple[str, ...] = ()
    backend: str = "torch"
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def target_size(self) -> tuple[int, int]:
        """``(Ht, Wt)`` of the target field."""
        return int(self.nnf_tr.shape[1]), int(self.nnf_tr.shape[2])

    @property
    def reference_size(self) -> tuple[int, int]:
        """``(Hr, Wr)`` of the reference field."""
        return int(self.nnf_rt.shape[1]), int(self.nnf_rt.shape[2])


@dataclass(frozen=True)
class Similarity:
    """The ten similarity maps of the paper's Eq. 1 at working resolution.

    Attributes:
        sim_tr: ``(B, L, H, W)`` float32 cosine similarity sim_T->R per level, **authors'
            order, coarse to fine** (conv5_1, conv4_1, ..., conv1_1 for the gray VGG).
        sim_rt: ``(B, L, H, W)`` float32 sim_R->T looked up through phi_T->R, same order.
        err_tr: ``(B, L, H, W)`` uint8, the authors' quantised distance
            ``floor(clamp(1 - sim_tr, 0, 1) * 255)`` (their ``err_ba``).
        err_rt: ``(B, L, H, W)`` uint8, the same for sim_rt (their ``err_ab``).
        level_names: level names in the same coarse-to-fine order.
    """

    sim_tr: torch.Tensor
    sim_rt: torch.Tensor
    err_tr: torch.Tensor
    err_rt: torch.Tensor
    level_names: tuple[str, ...]


@dataclass(frozen=True)
class ColorizerInputs:
    """Everything a colorizer may use to predict chroma at working resolution.

    Attributes:
        target_l: ``(B, 1, H, W)`` float32 target luminance in [0, 100].
        warped_rgb8: ``(B, 3, H, W)`` uint8 reference colours carried to the target (patch vote).
        warped_ab: ``(B, 2, H, W)`` float32 CIELab a/b of ``warped_rgb8``.
        similarity: the ten maps (:class:`Similarity`).
        confidence: ``(B, 1, H, W)`` float32 in [0, 1], how much the warped colour can be trusted.
        reference_lab: ``(1, 3, Hr, Wr)`` float32 CIELab of the reference at working resolution.
        target_pyramid: the backbone's features of the targets (for a colorizer that compares
            target regions with each other), or ``None`` when the caller has none.
        references_lab: several references: each one's ``(1, 3, Hr_k, Wr_k)`` float32 CIELab
            at its working resolution (then :attr:`reference_lab` is their pixels pooled);
            empty for one reference.
        reference_weights: several references: ``(B, K, H, W)`` float32 share of each
            reference per target pixel (the fusion weights, summing to 1 over ``K``); ``None``
            for one reference.
    """

    target_l: torch.Tensor
    warped_rgb8: torch.Tensor
    warped_ab: torch.Tensor
    similarity: Similarity
    confidence: torch.Tensor
    reference_lab: torch.Tensor
    target_pyramid: FeaturePyramid | None = None
    references_lab: tuple[torch.Tensor, ...] = ()
    reference_weights: torch.Tensor | None = None


@runtime_checkable
class Colorizer(Protocol):
    """Predicts a/b at working resolution; the pipeline adds full-resolution L afterwards.

    Implementations: ``colorizers.colornet.PaperColorizer`` (the authors' network) and
    ``colorizers.propagation.PropagationColorizer`` (weights-free).
    """

    name: str

    def __call__(self, inputs: ColorizerInputs) -> torch.Tensor:
        """Return ``ab: (B, 2, H, W)`` float32 for ``inputs.target_l``'s grid."""
        ...


@runtime_checkable
class Backbone(Protocol):
    """A luminance feature extractor whose pyramid feeds matching and similarity.

    Attributes:
        family: ``"paper"`` (gray VGG19-BN) or ``"lite"`` (EfficientNet-Lite0).
        min_size: smallest image side (pixels) the backbone accepts.
    """

    family: str
    min_size: int

    def pyramid(self, l: torch.Tensor) -> FeaturePyramid:
        """Features of ``l: (B, 1, H, W)`` float32 luminance in [0, 100], fine to coarse."""
        ...
