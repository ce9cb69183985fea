"""Tests of deepexemplar_core.image_io: formats, bit depths, alpha, orientation, metadata."""

from __future__ import annotations

import itertools
import os

import cv2
import numpy as np
import pytest
import skimage.color
import skimage.data
import torch
from PIL import Image, ImageOps

from deepexemplar_core import image_io
from deepexemplar_core.image_io import (
    ImageReadError,
    LoadedImage,
    read_image,
    read_metadata,
    write_image,
)


def _random(channels: int, height: int = 21, width: int = 34, seed: int = 0) -> torch.Tensor:
    return torch.rand(channels, height, width, generator=torch.Generator().manual_seed(seed))


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


def _folder_names(folder) -> list[str]:
    return sorted(os.listdir(folder))


# ------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "suffix,channels,with_alpha,bit_depth",
    list(itertools.product([".png", ".tif"], [1, 3], [False, True], [8, 16])),
)
def test_round_trip_png_tiff(tmp_path, suffix, channels, with_alpha, bit_depth):
    rgb = _random(channels)
    alpha = _random(1, seed=1) if with_alpha else None
    path = tmp_path / f"image{suffix}"
    meta = {"software": "deepexemplar", "note": "ünïcode € ok"}
    write_image(path, rgb, alpha=alpha, bit_depth=bit_depth, metadata=meta)
    image = read_image(path)
    step = 1 / (255 if bit_depth == 8 else 65535)
    assert image.bit_depth == bit_depth
    assert image.pixels.dtype == torch.float32
    # 16-bit gray+alpha TIFF is stored as RGBA (no reader handles 2-sample 16-bit TIFF)
    stored_as_rgb = suffix == ".tif" and channels == 1 and with_alpha and bit_depth == 16
    assert image.is_gray == (channels == 1 and not stored_as_rgb)
    assert (image.rgb() - rgb.expand(3, -1, -1)).abs().max() <= step / 2 + 1e-6
    if with_alpha:
        assert (image.alpha - alpha).abs().max() <= step / 2 + 1e-6
    else:
        assert image.alpha is None
    assert read_metadata(path) == meta


def test_jpeg_round_trip_real_photo(tmp_path):
    photo = torch.from_numpy(skimage.data.chelsea()).permute(2, 0, 1).float() / 255
    path = tmp_path / "cat.jpg"
    write_image(path, photo, metadata={"reference": "chelsea.png"})
    image = read_image(path)
    assert image.pixels.shape == photo.shape and not image.is_gray and image.bit_depth == 8
    assert (image.pixels - photo).abs().mean() < 0.01  # quality 95, 4:4:4
    assert read_metadata(path) == {"reference": "chelsea.png"}
    gray = photo.mean(dim=0, keepdim=True)
    write_image(tmp_path / "gray.jpeg", gray)
    assert read_image(tmp_path / "gray.jpeg").is_gray


def test_sixteen_bit_keeps_precision_of_a_smooth_ramp(tmp_path):
    ramp = torch.linspace(0, 1, 4001).view(1, 1, -1).expand(3, 2, -1).contiguous()
    write_image(tmp_path / "ramp.png", ramp, bit_depth=16)
    back = read_image(tmp_path / "ramp.png").pixels
    assert back.unique().numel() == 4001  # 8 bit would collapse it to 256 levels
    assert (back - ramp).abs().max() < 1e-5


def test_reads_files_written_by_opencv_and_pillow(tmp_path):
    rng = np.random.default_rng(0)
    rgb16 = rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    for suffix in (".png", ".tif"):
        cv2.imwrite(str(tmp_path / f"cv{suffix}"), rgb16[..., ::-1])  # OpenCV writes BGR
        image = read_image(tmp_path / f"cv{suffix}")
        assert image.bit_depth == 16
        assert np.array_equal(np.round(_hwc(image.pixels) * 65535).astype(np.uint16), rgb16)
    rgba = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
    for fmt in ("BMP", "WEBP"):
        path = tmp_path / f"pil.{fmt.lower()}"
        Image.fromarray(rgba[..., :3]).save(
            path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {})
        )
        assert np.array_equal(np.round(_hwc(read_image(path).pixels) * 255), rgba[..., :3])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    image = read_image(tmp_path / "rgba.png")
    assert np.array_equal(np.round(_hwc(image.alpha) * 255)[..., 0], rgba[..., 3])
    gray16 = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    image = read_image(tmp_path / "g16.png")
    assert image.is_gray and image.bit_depth == 16
    assert np.array_equal(np.round(image.pixels[0].numpy() * 65535).astype(np.uint16), gray16)


def test_palette_bilevel_and_float_files(tmp_path):
    palette_image = Image.fromarray(skimage.data.astronaut()[::4, ::4]).quantize(16)
    palette_image.save(tmp_path / "p.png")
    expected = np.asarray(palette_image.convert("RGB"))
    image = read_image(tmp_path / "p.png")
    assert not image.is_gray and image.alpha is None
    assert np.array_equal(np.round(_hwc(image.pixels) * 255), expected)
    palette_image.save(tmp_path / "pt.png", transparency=0)
    assert read_image(tmp_path / "pt.png").alpha is not None

    bilevel = Image.fromarray(skimage.data.camera()[::8, ::8] > 128)
    bilevel.save(tmp_path / "b.png")
    image = read_image(tmp_path / "b.png")
    assert image.is_gray and set(image.pixels.unique().tolist()) == {0.0, 1.0}

    values = np.linspace(-0.5, 1.5, 60, dtype=np.float32).reshape(6, 10)
    Image.fromarray(values, mode="F").save(tmp_path / "f.tif")
    image = read_image(tmp_path / "f.tif")
    assert image.bit_depth == 32 and image.is_gray
    assert np.allclose(image.pixels[0].numpy(), values.clip(0, 1))


def test_luminance_of_gray_scan_and_colour_photo(tmp_path):
    camera = skimage.data.camera()[::4, ::4]
    Image.fromarray(camera).save(tmp_path / "scan.png")
    image = read_image(tmp_path / "scan.png")
    reference = skimage.color.rgb2lab(np.repeat(camera[..., None], 3, axis=2))[..., 0]
    assert image.luminance().shape == (1, *camera.shape)
    assert np.abs(image.luminance()[0].numpy() - reference).max() < 0.01
    astronaut = skimage.data.astronaut()[::4, ::4]
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    lum = read_image(tmp_path / "a.png").luminance()[0].numpy()
    assert np.abs(lum - skimage.color.rgb2lab(astronaut)[..., 0]).max() < 0.01


def test_loaded_image_validates_its_fields():
    with pytest.raises(ValueError, match="pixels: expected"):
        LoadedImage(torch.zeros(2, 4, 4), None, 8, image_io.Path("x.png"))
    with pytest.raises(ValueError, match=r"alpha: expected \(1, 4, 4\)"):
        LoadedImage(torch.zeros(3, 4, 4), torch.zeros(1, 4, 5), 8, image_io.Path("x.png"))
    with pytest.raises(ValueError, match="bit_depth"):
        LoadedImage(torch.zeros(3, 4, 4), None, 12, image_io.Path("x.png"))


def test_luminance_is_computed_in_blocks(monkeypatch):
    monkeypatch.setattr(image_io, "_BLOCK_PIXELS", 64)  # 2 rows per block
    pixels = _random(3, height=13, width=30)
    image = LoadedImage(pixels, None, 8, image_io.Path("mem.png"))
    assert torch.allclose(image.luminance(), image_io.rgb_to_l(pixels), atol=1e-4)


# ------------------------------------------------------------------------------- orientation


def _marked_image() -> np.ndarray:
    """A 32 x 48 image of 16-px blocks: red block top-left, green top-right, blue bottom-left."""
    image = np.full((32, 48, 3), 128, np.uint8)
    image[:16, :16] = (255, 0, 0)
    image[:16, 32:] = (0, 255, 0)
    image[16:, :16] = (0, 0, 255)
    return image


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_all_eight(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_marked_image()).save(path, quality=100, exif=exif)
    pixels = np.round(_hwc(read_image(path).pixels) * 255).astype(np.uint8)
    with Image.open(path) as stored:
        reference = np.asarray(ImageOps.exif_transpose(stored))
    assert np.array_equal(pixels, reference)
    # independent known answer: where does the stored top-left (red) block end up?
    rotated = orientation in (5, 6, 7, 8)
    assert pixels.shape[:2] == ((48, 32) if rotated else (32, 48))
    corners = {
        "tl": pixels[:8, :8],
        "tr": pixels[:8, -8:],
        "bl": pixels[-8:, :8],
        "br": pixels[-8:, -8:],
    }
    red_corner = {1: "tl", 2: "tr", 3: "br", 4: "bl", 5: "tl", 6: "tr", 7: "br", 8: "bl"}
    corner = corners[red_corner[orientation]]
    assert np.abs(corner.astype(int) - (255, 0, 0)).max() < 12


def test_orientation_applies_to_opencv_path(tmp_path):
    path = tmp_path / "rot16.png"
    stored = np.random.default_rng(1).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    cv2.imwrite(str(path), stored[..., ::-1])
    # add an eXIf chunk with orientation 6 (rotate 90 degrees clockwise for display)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = path.read_bytes()
    raw = exif.tobytes()
    chunk_data = raw[6:] if raw.startswith(b"Exif\0\0") else raw
    chunk = _png_chunk(b"eXIf", chunk_data)
    iend = data.rindex(b"IEND") - 4
    path.write_bytes(data[:iend] + chunk + data[iend:])
    image = read_image(path)
    expected = np.rot90(stored, -1)
    assert np.array_equal(np.round(_hwc(image.pixels) * 65535).astype(np.uint16), expected)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# ------------------------------------------------------------------------------- metadata


def test_metadata_foreign_and_empty(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "c.jpg", comment=b"hello")
    assert read_metadata(tmp_path / "c.jpg") == {"comment": "hello"}
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "d.tif", description="scan 1921")
    assert read_metadata(tmp_path / "d.tif") == {"ImageDescription": "scan 1921"}
    write_image(tmp_path / "e.png", _random(3))
    assert read_metadata(tmp_path / "e.png") == {}
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "f.bmp")
    assert read_metadata(tmp_path / "f.bmp") == {}


def test_reads_compressed_and_international_png_text(tmp_path):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("plain", "tEXt value")
    info.add_text("zipped", "zTXt value " * 20, zip=True)
    info.add_itxt("intl", "iTXt ünïcode €", zip=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "t.png", pnginfo=info)
    assert read_metadata(tmp_path / "t.png") == {
        "plain": "tEXt value",
        "zipped": "zTXt value " * 20,
        "intl": "iTXt ünïcode €",
    }


def test_metadata_is_readable_by_other_tools(tmp_path):
    write_image(tmp_path / "m16.png", _random(3), bit_depth=16, metadata={"Title": "colorized"})
    with Image.open(tmp_path / "m16.png") as image:
        image.load()
        assert image.text == {"Title": "colorized"}
    decoded = cv2.imread(str(tmp_path / "m16.png"), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16 and decoded.shape == (21, 34, 3)


def test_invalid_metadata(tmp_path):
    with pytest.raises(ValueError, match="not a valid PNG keyword"):
        write_image(tmp_path / "x.png", _random(3), metadata={" lead": "x"})
    with pytest.raises(TypeError, match="metadata: expected a dict"):
        write_image(tmp_path / "x.png", _random(3), metadata={"k": 1})
    assert _folder_names(tmp_path) == []


# ------------------------------------------------------------------------------- atomic writes


def test_nan_is_refused_and_nothing_is_written(tmp_path):
    rgb = _random(3)
    rgb[0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="rgb: contains NaN"):
        write_image(tmp_path / "x.png", rgb)
    assert _folder_names(tmp_path) == []


def test_failed_encoding_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    write_image(target, _random(3, seed=5))
    before = target.read_bytes()

    def broken(f, array, metadata):
        f.write(b"\x89PNG partial")
        raise RuntimeError("disk full")

    monkeypatch.setitem(image_io._ENCODERS, "png", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_image(target, _random(3, seed=6))
    assert target.read_bytes() == before
    with pytest.raises(RuntimeError, match="disk full"):
        write_image(tmp_path / "new.png", _random(3))
    assert _folder_names(tmp_path) == ["out.png"]


def test_overwrite_replaces_and_keeps_mode(tmp_path):
    target = tmp_path / "out.tif"
    write_image(target, _random(3, seed=1))
    os.chmod(target, 0o640)
    write_image(target, _random(3, seed=2), bit_depth=16)
    assert read_image(target).bit_depth == 16
    assert target.stat().st_mode & 0o777 == 0o640
    assert _folder_names(tmp_path) == ["out.tif"]


def test_write_errors(tmp_path):
    rgb = _random(3)
    with pytest.raises(ValueError, match="path: expected a suffix"):
        write_image(tmp_path / "x.gif", rgb)
    with pytest.raises(ValueError, match="does not exist"):
        write_image(tmp_path / "missing" / "x.png", rgb)
    with pytest.raises(ValueError, match="JPEG stores 8-bit images without alpha"):
        write_image(tmp_path / "x.jpg", rgb, bit_depth=16)
    with pytest.raises(ValueError, match="JPEG stores 8-bit images without alpha"):
        write_image(tmp_path / "x.jpg", rgb, alpha=_random(1))
    with pytest.raises(ValueError, match="bit_depth: expected 8 or 16"):
        write_image(tmp_path / "x.png", rgb, bit_depth=12)
    with pytest.raises(ValueError, match=r"rgb: expected \(3, H, W\)"):
        write_image(tmp_path / "x.png", torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"alpha: expected \(1, 21, 34\)"):
        write_image(tmp_path / "x.png", rgb, alpha=torch.rand(1, 4, 4))
    with pytest.raises(ValueError, match=r"rgb: expected values in \[0.0, 1.0\]"):
        write_image(tmp_path / "x.png", rgb * 2)
    with pytest.raises(TypeError, match="rgb: expected a floating dtype"):
        write_image(tmp_path / "x.png", (rgb * 255).to(torch.uint8))
    assert _folder_names(tmp_path) == []


# ------------------------------------------------------------------------------- bad files


def test_read_errors_name_the_path_and_reason(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "absent.png")
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.png.*the file is empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "notes.png").write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match=r"notes\.png.*not a recognised image"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(ImageReadError, match="notes.png"):
        read_metadata(tmp_path / "notes.png")
    assert issubclass(ImageReadError, ValueError)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_truncated_files_raise(tmp_path, suffix):
    photo = torch.from_numpy(skimage.data.coffee()[::2, ::2].copy()).permute(2, 0, 1).float() / 255
    path = tmp_path / f"whole{suffix}"
    write_image(path, photo)
    data = path.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.(png|jpg|tif)"):
        read_image(cut)
