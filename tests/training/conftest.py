"""Fixtures of the training tests: a handful of real photos and their cached pairs at 64 px."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: on a shared, loaded CPU the default thread pool spins (here the pairs
    fixture took 41 s with 2 threads and 1.7 s with 1). Restored after each module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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

    import torch

    out = tmp_path_factory.mktemp("pairs")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # session fixtures run before the module-scoped _one_thread
    try:
        build_pairs(photo_dir, out, size=64, pairs_per_image=2, shard_size=4, self_share=0.5,
                    similar_share=0.5, top_k=2, seed=1)
    finally:
        torch.set_num_threads(before)
    return out
