"""``deepexemplar colorize`` and ``deepexemplar video`` with several references (lite, small sizes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepexemplar_core import rgb_to_lab
from deepexemplar_core.cli import EXIT_INPUT, EXIT_OK, EXIT_USAGE, main
from deepexemplar_core.video import open_video

SIZE = ["--size", "128", "--family", "lite", "--quiet", "--device", "cpu"]
VIDEO = ["--size", "96", *SIZE[2:]]


def _photo(name: str, height: int, width: int) -> np.ndarray:
    from skimage import data, transform

    return (transform.resize(getattr(data, name)(), (height, width), anti_aliasing=True) * 255
            ).round().astype(np.uint8)


def _gray(rgb: np.ndarray) -> np.ndarray:
    luma = (rgb @ np.array([0.2126, 0.7152, 0.0722])).round().astype(np.uint8)
    return np.repeat(luma[..., None], 3, axis=2)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two photos side by side (gray), a mirrored copy of each, a region, a two-shot clip."""
    folder = tmp_path_factory.mktemp("multiref")
    a, b = _photo("astronaut", 128, 128), _photo("coffee", 128, 128)
    Image.fromarray(_gray(np.concatenate([a, b], 1))).save(folder / "gray.png")
    Image.fromarray(_gray(a)).save(folder / "square.png")
    Image.fromarray(np.ascontiguousarray(a[:, ::-1])).save(folder / "a.png")
    Image.fromarray(np.ascontiguousarray(b[:, ::-1])).save(folder / "b.png")
    region = np.zeros((128, 256), np.uint8)
    region[:, 192:] = 255
    Image.fromarray(region).save(folder / "b_region.png")
    clip = folder / "two_shots"  # a folder of frames: 4 panning the astronaut, 4 the coffee
    clip.mkdir()
    big_a, big_b = _photo("astronaut", 120, 160), _photo("coffee", 120, 160)
    for i in range(8):
        photo, j = (big_a, i) if i < 4 else (big_b, i - 4)
        frame = np.ascontiguousarray(photo[j:j + 96, 3 * j:3 * j + 128])
        Image.fromarray(_gray(frame)).save(clip / f"{i:03d}.png")
    return folder


def _meta(path) -> dict:
    return dict(Image.open(path).info)


def test_two_references_each_colour_their_half_and_the_choice_is_recorded(files, tmp_path):
    out = tmp_path / "out.png"
    code = main(["colorize", str(files / "gray.png"), "-r", str(files / "a.png"), "-r",
                 str(files / "b.png"), "-o", str(out), "--save-intermediates", *SIZE])
    assert code == EXIT_OK
    shares = json.loads(_meta(out)["deepexemplar:choice"])
    assert list(shares) == [str(files / "a.png"), str(files / "b.png")]
    assert all(0.4 <= share <= 0.6 for share in shares.values())
    choice = np.asarray(Image.open(tmp_path / "out_intermediates" / "choice.png").convert("RGB"))
    assert choice[:, :40, 0].mean() > 200 and choice[:, -40:, 1].mean() > 150  # (128 px)  # red | green


def test_a_region_limits_its_reference_and_a_bad_one_fails_alone(files, tmp_path, capsys):
    code = main(["colorize", str(files / "gray.png"), str(files / "square.png"), "-r",
                 str(files / "a.png"), "-r", str(files / "b.png"), "--region", "-", "--region",
                 str(files / "b_region.png"), "-o", str(tmp_path), *SIZE])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT  # the square target does not fit the region ...
    assert "a 256x128 mask does not fit a 128x128 target" in err
    written = tmp_path / "gray_colorized.png"  # ... the other one is still written
    shares = json.loads(_meta(written)["deepexemplar:choice"])
    assert 0.2 <= shares[str(files / "b.png")] <= 0.3  # only inside its quarter
    assert json.loads(_meta(written)["deepexemplar:regions"]) == ["-", str(files / "b_region.png")]
    code = main(["colorize", str(files / "gray.png"), "-r", str(files / "a.png"), "--region",
                 str(files / "b_region.png"), "--region", str(files / "b_region.png"),
                 "-o", str(tmp_path / "x.png"), *SIZE])
    assert code == EXIT_INPUT and "2 regions for 1 references" in capsys.readouterr().err


@pytest.fixture
def pool(files, tmp_path):
    """A folder holding a.png and b.png, indexed as ``tmp_path / "pool.index"``."""
    from deepexemplar_core.backbones import load_lite_backbone
    from deepexemplar_core.recommend import LiteDescriber, build_index

    folder = tmp_path / "pool"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes((files / name).read_bytes())
    build_index(folder, tmp_path / "pool.index", LiteDescriber(load_lite_backbone()))
    return folder


def test_top_k_from_an_index_with_fewer_images_uses_those(files, pool, tmp_path, capsys):
    out = tmp_path / "out.png"
    code = main(["colorize", str(files / "gray.png"), "--reference-index",
                 str(tmp_path / "pool.index"), "-k", "3", "-o", str(out), *SIZE])
    assert code == EXIT_OK
    assert "-k 3, but the index" in capsys.readouterr().err
    assert len(json.loads(_meta(out)["deepexemplar:references"])) == 2


def test_your_reference_helped_by_an_index(files, pool, tmp_path, capsys):
    out = tmp_path / "out.png"
    # a.png is yours and also in the index: the pick that is one of yours is left out
    code = main(["colorize", str(files / "gray.png"), "-r", str(pool / "a.png"),
                 "--reference-index", str(tmp_path / "pool.index"), "-k", "1", "-o", str(out),
                 *SIZE])
    assert code == EXIT_OK, capsys.readouterr().err
    assert "after yours" in capsys.readouterr().err
    meta = _meta(out)
    assert [Path(p).name for p in json.loads(meta["deepexemplar:references"])] == ["a.png",
                                                                                  "b.png"]
    assert meta["deepexemplar:reference_index"] == str(tmp_path / "pool.index")
    code = main(["colorize", str(files / "gray.png"), "-o", str(tmp_path / "none.png"), *SIZE])
    assert code == EXIT_USAGE and "--reference-index IDX" in capsys.readouterr().err
    assert not (tmp_path / "none.png").exists()


def _ab(folder) -> torch.Tensor:
    frames = list(open_video(folder))
    return rgb_to_lab(torch.stack(frames))[:, 1:]


def test_a_two_shot_clip_gives_each_shot_its_own_reference(files, tmp_path, capsys):
    runs = {}
    for name, refs in (("both", ["a.png", "b.png"]), ("b", ["b.png"])):
        args = [x for r in refs for x in ("-r", str(files / r))]
        code = main(["video", str(files / "two_shots"), *args, "-o", str(tmp_path / name),
                     "--json", "--fps", "12", *VIDEO])
        assert code == EXIT_OK
        runs[name] = json.loads(capsys.readouterr().out)
    both = runs["both"]
    assert both["scene_cuts"] == [4]
    first, second = both["shots"]
    assert first["first_frame"] == 0 and first["choice"][0] >= 0.9
    assert second["first_frame"] == 4 and second["choice"][1] >= 0.9
    # nothing of shot 1's colours crosses the cut: shot 2 is coloured as by its reference alone
    ab_both, ab_b = _ab(tmp_path / "both"), _ab(tmp_path / "b")
    assert float((ab_both[4:] - ab_b[4:]).abs().mean()) < 2.0
    assert float((ab_both[:4] - ab_b[:4]).abs().mean()) > 4.0  # (shot 1 is not)


def test_a_keyframe_schedule_and_its_mistakes(files, tmp_path, capsys):
    clip = str(files / "two_shots")
    code = main(["video", clip, "--keyframes", f"0={files / 'a.png'},4={files / 'b.png'},"
                 f"99={files / 'a.png'}", "-o", str(tmp_path / "kf"), "--json", "--temporal",
                 "off", *VIDEO])
    out, err = capsys.readouterr()
    assert code == EXIT_OK and "frame 99 is past the clip's end (it has 8 frames)" in err
    shots = json.loads(out)["shots"]
    assert [(s["first_frame"], s["references"]) for s in shots] == [
        (0, [str(files / "a.png")]), (4, [str(files / "b.png")])]
    code = main(["video", clip, "--keyframes", f"4={files / 'a.png'},0={files / 'b.png'}",
                 "-o", str(tmp_path / "x"), *VIDEO])
    assert code == EXIT_USAGE and "list the entries in frame order" in capsys.readouterr().err
    code = main(["video", clip, "--keyframes", f"2={files / 'a.png'}", "-o",
                 str(tmp_path / "y"), *VIDEO])
    assert code == EXIT_USAGE and "frames 0..1 have no reference" in capsys.readouterr().err


def test_each_shot_picks_its_own_reference_from_an_index(files, pool, tmp_path, capsys):
    """``video --reference-index``: the shot detector starts a segment at the cut, and each
    shot's first frame picks its top recommendation (the photo the shot shows)."""
    code = main(["video", str(files / "two_shots"), "--reference-index",
                 str(tmp_path / "pool.index"), "-o", str(tmp_path / "out"), "--json",
                 "--temporal", "off", *VIDEO])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    shots = [(s["first_frame"], [Path(r).name for r in s["references"]])
             for s in json.loads(out)["shots"]]
    assert shots == [(0, ["a.png"]), (4, ["b.png"])]
