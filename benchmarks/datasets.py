"""Build a folder of real colour photos from installed registry packages, with a manifest.

Sources (see ``../shared/reference/data-sources.md``): scikit-image's sample photos,
scikit-learn's two sample images, matplotlib's Grace Hopper portrait and, optionally, the
colour photos of Debian's ``opencv-doc`` examples (unpack them first, outside the repository:
``apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb <scratch>/opencv-doc`` and pass
``--opencv-doc <scratch>/opencv-doc``). Nothing is downloaded and nothing is written into the
repository: the photos go to a scratch folder as PNG, longest side at most ``max_side``, with
``manifest.csv`` (file, source package and version, original name, licence).

Usage::

    python benchmarks/datasets.py /tmp/deepexemplar-photos [--opencv-doc DIR] [--max-side 512]
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image

#: Colour photos of scikit-image with the licence its ``skimage/data/_fetchers.py`` states.
SKIMAGE_PHOTOS = {
    "astronaut": "public domain (NASA)",
    "chelsea": "CC0",
    "coffee": "CC0",
    "rocket": "public domain (SpaceX)",
    "motorcycle_left": "not stated (Middlebury 2014 stereo data set)",
}
OPENCV_DOC_DATA = Path("usr/share/doc/opencv-doc/examples/data")
OPENCV_LICENCE = (
    "Apache-2.0 AND BSD-3-Clause (Debian copyright of opencv-doc; provenance of single "
    "images not documented)"
)


@dataclass(frozen=True)
class Photo:
    """One manifest row."""

    file: str
    source: str
    original: str
    licence: str


def _skimage() -> Iterator[tuple[str, Callable[[], np.ndarray], Photo]]:
    from skimage import data

    src = f"scikit-image {version('scikit-image')}"
    for name, licence in SKIMAGE_PHOTOS.items():
        if name == "motorcycle_left":
            load = lambda: data.stereo_motorcycle()[0]  # noqa: E731
        else:
            load = getattr(data, name)
        yield name, load, Photo(f"skimage_{name}.png", src, f"skimage.data.{name}", licence)


def _sklearn() -> Iterator[tuple[str, Callable[[], np.ndarray], Photo]]:
    from sklearn.datasets import load_sample_image

    src = f"scikit-learn {version('scikit-learn')}"
    for name in ("china.jpg", "flower.jpg"):
        stem = name.split(".")[0]
        yield stem, lambda n=name: load_sample_image(n), Photo(
            f"sklearn_{stem}.png", src, f"sklearn/datasets/images/{name}",
            "CC BY 2.0 (Flickr; credits in sklearn/datasets/images/README.txt)",
        )


def _matplotlib() -> Iterator[tuple[str, Callable[[], np.ndarray], Photo]]:
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    yield "grace_hopper", lambda: np.asarray(Image.open(path).convert("RGB")), Photo(
        "matplotlib_grace_hopper.png", f"matplotlib {version('matplotlib')}",
        "mpl-data/sample_data/grace_hopper.jpg", "public domain (U.S. Navy photograph)",
    )


def _is_colour_photo(image: Image.Image) -> bool:
    """RGB, at least 200 px, and not gray stored as RGB (mean |R-G| + |G-B| above 4 levels)."""
    if image.mode not in ("RGB", "RGBA", "P") or min(image.size) < 200:
        return False
    a = np.asarray(image.convert("RGB")).astype(np.int16)
    return float(np.abs(a[..., 0] - a[..., 1]).mean() + np.abs(a[..., 1] - a[..., 2]).mean()) > 4


def _opencv_doc(root: Path) -> Iterator[tuple[str, Callable[[], np.ndarray], Photo]]:
    folder = root / OPENCV_DOC_DATA if (root / OPENCV_DOC_DATA).is_dir() else root
    for path in sorted(folder.glob("*")):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        with Image.open(path) as image:
            if not _is_colour_photo(image):
                continue
        yield path.stem, lambda p=path: np.asarray(Image.open(p).convert("RGB")), Photo(
            f"opencv_{path.stem}.png", "Debian opencv-doc", str(path.relative_to(folder)),
            OPENCV_LICENCE,
        )


def _resized(array: np.ndarray, max_side: int) -> Image.Image:
    image = Image.fromarray(np.ascontiguousarray(array[..., :3]))
    scale = max_side / max(image.size)
    if scale < 1:
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def build_photo_folder(
    out_dir: str | Path, *, opencv_doc: str | Path | None = None, max_side: int = 512
) -> list[Photo]:
    """Write the photos and ``manifest.csv`` into ``out_dir`` and return the manifest rows.

    Existing files are kept (the folder is a cache); the manifest is rewritten.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sources = [_skimage(), _sklearn(), _matplotlib()]
    if opencv_doc is not None:
        sources.append(_opencv_doc(Path(opencv_doc)))
    rows: list[Photo] = []
    for source in sources:
        for _, load, photo in source:
            if not (out / photo.file).is_file():
                _resized(load(), max_side).save(out / photo.file)
            rows.append(photo)
    with open(out / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    return rows


def read_manifest(folder: str | Path) -> list[Photo]:
    """Rows of ``folder/manifest.csv``."""
    with open(Path(folder) / "manifest.csv", newline="") as f:
        return [Photo(**row) for row in csv.DictReader(f)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="scratch folder (outside the repository)")
    parser.add_argument("--opencv-doc", type=Path, default=None,
                        help="root where opencv-doc was unpacked with dpkg-deb -x")
    parser.add_argument("--max-side", type=int, default=512, help="longest side in pixels")
    args = parser.parse_args(argv)
    rows = build_photo_folder(args.out_dir, opencv_doc=args.opencv_doc, max_side=args.max_side)
    for row in rows:
        print(f"{row.file:32s} {row.source:24s} {row.licence}")
    print(f"{len(rows)} photos in {args.out_dir}")


if __name__ == "__main__":
    main()
