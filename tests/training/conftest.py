"""Fixtures of the training tests: a handful of real photos and their cached pairs at 64 px."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    """Four skimage photos (public domain / CC0) as PNG files in a flat folder."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        Image.fromarray(np.asarray(getattr(data, name)())).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="session")
def pairs_dir(photo_dir, tmp_path_factory) -> Path:
    """Eight pairs (2 per photo: self-references and matched pairs) at 64 px in 2 shards."""
    from training.pairs import build_pairs

    out = tmp_path_factory.mktemp("pairs")
    build_pairs(photo_dir, out, size=64, pairs_per_image=2, shard_size=4, self_share=0.5,
                similar_share=0.5, top_k=2, seed=1)
    return out
