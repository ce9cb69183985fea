"""Shared pytest fixtures: the shared/ folder of the development checkout and small real photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``$DEEPEXEMPLAR_SHARED`` or ``<repo>/../shared`` (authors' demo data, references)."""
    return Path(os.environ.get("DEEPEXEMPLAR_SHARED", REPO.parent / "shared"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test away from the user's weights folders and configuration."""
    if "DEEPEXEMPLAR_TEST_KEEP_ENV" in os.environ:
        return
    monkeypatch.delenv("DEEPEXEMPLAR_WEIGHTS", raising=False)
    monkeypatch.delenv("DEEPEXEMPLAR_HF_REPO", raising=False)
    monkeypatch.setenv("DEEPEXEMPLAR_CONFIG", str(tmp_path_factory.mktemp("config") / "config.json"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def astronaut_rgb() -> torch.Tensor:
    """skimage's astronaut (public domain, NASA), 256x256, as ``(3, H, W)`` float in [0, 1]."""
    from skimage import data, transform

    img = transform.resize(data.astronaut(), (256, 256), anti_aliasing=True)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()


@pytest.fixture(scope="session")
def chelsea_rgb() -> torch.Tensor:
    """skimage's chelsea (CC0), 300x451, as ``(3, H, W)`` float in [0, 1]."""
    from skimage import data

    return torch.from_numpy(data.chelsea().transpose(2, 0, 1).copy()).float() / 255.0


@pytest.fixture(scope="session")
def coffee_rgb() -> torch.Tensor:
    """skimage's coffee (CC0), 400x600, as ``(3, H, W)`` float in [0, 1]."""
    from skimage import data

    return torch.from_numpy(data.coffee().transpose(2, 0, 1).copy()).float() / 255.0
