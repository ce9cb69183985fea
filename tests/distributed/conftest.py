"""Shared fixtures of the batch tests: one local Ray (2 CPUs) for the whole folder, and a tree of
real registry photos (scikit-image, scikit-learn, matplotlib) with two corrupt files among them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "core")]  # batch_helpers, video_clips

#: Longest side of the test photos (small: the tests time the pipeline, not the photos).
MAX_SIDE = 96


def _registry_photos() -> dict[str, np.ndarray]:
    """20 real photos from installed registry packages, as ``(H, W, 3|1)`` uint8 arrays."""
    from importlib.resources import files

    from skimage import data

    photos = {name: getattr(data, name)() for name in (
        "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina",
        "immunohistochemistry", "camera", "coins", "moon", "page", "clock", "brick", "grass",
        "gravel")}
    left, right, _ = data.stereo_motorcycle()
    photos.update(motorcycle_left=left, motorcycle_right=right)
    images = files("sklearn.datasets") / "images"
    photos.update(china=np.asarray(Image.open(images / "china.jpg")),
                  flower=np.asarray(Image.open(images / "flower.jpg")))
    sample = files("matplotlib") / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    photos["grace_hopper"] = np.asarray(Image.open(sample))
    return photos


@pytest.fixture(scope="session")
def photo_tree(tmp_path_factory) -> Path:
    """``photos/<a|b/c|d>/<name>.png``: 20 gray registry photos, plus ``broken/garbage.png``
    (not an image), ``broken/truncated.jpg`` (cut in the middle) and ``broken/tiny.png`` (16x16,
    under the core's 32 px minimum)."""
    root = tmp_path_factory.mktemp("archive") / "photos"
    folders = ("a", "b/c", "d")
    for number, (name, array) in enumerate(sorted(_registry_photos().items())):
        image = Image.fromarray(array).convert("L")
        image.thumbnail((MAX_SIDE, MAX_SIDE))
        folder = root / folders[number % len(folders)]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{name}.png")
    broken = root / "broken"
    broken.mkdir()
    (broken / "garbage.png").write_bytes(b"this is not an image")
    Image.new("L", (16, 16), 90).save(broken / "tiny.png")
    whole = root / "a" / "astronaut.png"
    Image.open(whole).convert("RGB").save(broken / "truncated.jpg", quality=90)
    data = (broken / "truncated.jpg").read_bytes()
    (broken / "truncated.jpg").write_bytes(data[: len(data) // 3])
    return root


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Path:
    """skimage's coffee (CC0) as the colour reference."""
    from skimage import data

    path = tmp_path_factory.mktemp("reference") / "coffee.jpg"
    Image.fromarray(data.coffee()).save(path, quality=95)
    return path


@pytest.fixture(scope="session")
def ray_address() -> str:
    """One local Ray with 2 CPUs for every batch test; jobs in this process and drivers in
    subprocesses (``--address``) share it."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install '.[distributed]'")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
