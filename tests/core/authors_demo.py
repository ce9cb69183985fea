"""The authors' demo data for the core tests: where it is, its pairs, and how to decode it.

Read from ``$DEEPEXEMPLAR_SHARED/authors-demo/example`` (default ``<repo>/../shared``); tests
that need it are marked ``needs_demo`` and skip with the reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLE = (
    Path(
        os.environ.get("DEEPEXEMPLAR_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared")
    )
    / "authors-demo"
    / "example"
)


def demo_pairs() -> list[tuple[str, str]]:
    """``(target, reference)`` stems of every combo in the demo, both directions."""
    if not (EXAMPLE / "pairs.txt").is_file():
        return []
    pairs = []
    for line in (EXAMPLE / "pairs.txt").read_text().split("\n"):
        if len(line.split()) >= 2:
            t, r = (Path(name).stem for name in line.split()[:2])
            pairs += [(t, r), (r, t)]
    return pairs


needs_demo = pytest.mark.skipif(
    not (EXAMPLE / "combo_new" / "in1_ref1.combo").is_file(),
    reason=f"authors' demo data not found at {EXAMPLE} (set DEEPEXEMPLAR_SHARED to shared/)",
)


def load_demo_rgb8(stem: str) -> torch.Tensor:
    """Decode a demo input with OpenCV as their C++ ``imread`` does; ``(1, 3, H, W)`` uint8 RGB."""
    import cv2

    (path,) = (EXAMPLE / "input").glob(f"{stem}.*")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1)))[None]
