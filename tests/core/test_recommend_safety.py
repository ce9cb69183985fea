"""A reference index someone else could have written or is writing: entries that lead outside the
indexed folder are never opened, two builds never run at once, images too small for
``colorize`` are refused at indexing (issue 17, items 8-10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepexemplar_core import cli
from deepexemplar_core.files import PathOutsideError, resolve_inside
from deepexemplar_core.inputs import MIN_SIDE
from deepexemplar_core.recommend import (
    Index,
    IndexError_,
    LiteDescriber,
    build_index,
    pick_reference,
    recommend,
)

ROOT = Path(__file__).resolve().parents[2]


def _photo(name: str, side: int = 128) -> Image.Image:
    from skimage import data

    image = Image.fromarray(getattr(data, name)()[..., :3])
    scale = side / max(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)


@pytest.fixture(scope="module")
def describer() -> LiteDescriber:
    from deepexemplar_core.backbones import load_lite_backbone

    return LiteDescriber(load_lite_backbone())


@pytest.fixture
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for name in ("coffee", "rocket", "astronaut"):
        _photo(name).save(root / f"{name}.png")
    return root


@pytest.fixture
def target(tmp_path) -> Path:
    path = tmp_path / "target.png"
    _photo("chelsea", 96).convert("L").save(path)
    return path


def test_resolve_inside_follows_links_and_refuses_what_leaves_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("x")
    (root / "sub" / "a.png").write_text("x")
    assert resolve_inside(root, "sub/a.png") == (root / "sub" / "a.png").resolve()
    assert resolve_inside(root, "sub/../sub/a.png") == (root / "sub" / "a.png").resolve()
    (root / "link.png").symlink_to(tmp_path / "secret.txt")
    (root / "inner.png").symlink_to(root / "sub" / "a.png")
    assert resolve_inside(root, "inner.png") == (root / "sub" / "a.png").resolve()
    for bad in ("../secret.txt", "sub/../../secret.txt", str(tmp_path / "secret.txt"),
                "link.png", "/etc/passwd"):
        with pytest.raises(PathOutsideError, match="outside"):
            resolve_inside(root, bad)


def _tamper(index: Path, path: str) -> None:
    manifest = json.loads((index / "manifest.json").read_text())
    for entry in manifest["entries"]:
        entry["path"] = path
    (index / "manifest.json").write_text(json.dumps(manifest))


def test_a_tampered_index_never_yields_a_path_outside_its_folder(photos, target, describer,
                                                                  tmp_path, capsys):
    index = tmp_path / "photos.index"
    build_index(photos, index, describer)
    _tamper(index, "../" * 12 + "etc/passwd")
    loaded = Index.load(index, describer)
    with pytest.raises(IndexError_, match="outside the indexed folder"):
        recommend(loaded, target, k=3)
    with pytest.raises(IndexError_, match="outside the indexed folder"):
        pick_reference(index, target, index=loaded)
    out = tmp_path / "out.png"
    code = cli.main(["colorize", str(target), "--reference-index", str(index), "-o", str(out),
                     "--family", "lite", "--size", "64", "--device", "cpu", "-q"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INPUT and "outside the indexed folder" in err, err
    assert not out.exists()
    code = cli.main(["recommend", str(target), "--index", str(index), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INPUT and "outside the indexed folder" in err, err


def test_a_moved_photo_folder_is_named_with_the_command_that_repoints_the_index(
        photos, target, describer, tmp_path, capsys):
    index = tmp_path / "photos.index"
    build_index(photos, index, describer)
    moved = photos.rename(tmp_path / "moved")
    with pytest.raises(IndexError_, match="not there any more"):
        recommend(Index.load(index, describer), target, k=2)
    code = cli.main(["colorize", str(target), "--reference-index", str(index), "-o",
                     str(tmp_path / "out.png"), "--family", "lite", "--size", "64", "--device",
                     "cpu", "-q"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INPUT and f"deepexemplar index FOLDER -o {index}" in err, err
    report = build_index(moved, index, describer)
    assert (report.added, report.unchanged) == (0, 3)
    found = recommend(Index.load(index, describer), target, k=2)
    assert all(r.path.parent == moved.resolve() for r in found), found


def test_links_out_of_the_folder_are_skipped_at_indexing_and_refused_at_query(
        photos, target, describer, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _photo("chelsea").save(outside / "private.png")
    (photos / "link.png").symlink_to(outside / "private.png")
    index = tmp_path / "photos.index"
    report = build_index(photos, index, describer)
    reasons = dict(report.skipped)
    assert "outside" in reasons.get("link.png", ""), reasons
    assert report.indexed == 3
    # a file of the index replaced by a link to outside after the build
    (photos / "coffee.png").unlink()
    (photos / "coffee.png").symlink_to(outside / "private.png")
    with pytest.raises(IndexError_, match="outside the indexed folder"):
        recommend(Index.load(index, describer), target, k=3)


def test_images_too_small_for_colorize_are_refused_per_file(photos, describer, tmp_path):
    _photo("chelsea").resize((8, 8)).save(photos / "tiny.png")
    _photo("chelsea").resize((MIN_SIDE * 2, MIN_SIDE - 1)).save(photos / "strip.png")
    _photo("chelsea").resize((MIN_SIDE, MIN_SIDE)).save(photos / "smallest.png")
    report = build_index(photos, tmp_path / "photos.index", describer)
    reasons = dict(report.skipped)
    assert set(reasons) == {"tiny.png", "strip.png"}, reasons
    for name in ("tiny.png", "strip.png"):
        assert f"the minimum is {MIN_SIDE}x{MIN_SIDE}" in reasons[name], reasons[name]
    assert report.indexed == 4  # the three photos and the smallest size colorize accepts
    entries = {e["path"] for e in json.loads((report.index / "manifest.json").read_text())["entries"]}
    assert entries == {"coffee.png", "rocket.png", "astronaut.png", "smallest.png"}


_HOLDER = """
import sys
from pathlib import Path
from deepexemplar_core.recommend.storage import build_lock
with build_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_a_second_build_of_the_same_index_is_refused_while_one_runs(photos, describer, tmp_path):
    """Another process holds the build lock: the build is refused, nothing is written; once
    the other build ends the index builds."""
    index = tmp_path / "photos.index"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(index)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexError_, match="another build of .* is running"):
            build_index(photos, index, describer)
        assert not (index / "manifest.json").exists()
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    assert build_index(photos, index, describer).indexed == 3
    assert len(Index.load(index, describer)) == 3


@pytest.mark.slow
def test_two_concurrent_builds_leave_one_whole_index(photos, tmp_path):
    """Two ``deepexemplar index`` processes at once: each either builds or is refused with the
    message; the index loads and holds every photo."""
    index = tmp_path / "photos.index"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "deepexemplar_core", "index", str(photos), "-o", str(index),
               "--family", "lite", "--device", "cpu", "-q"]
    runs = [subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    for run in runs:
        run.stdout.close(), run.stderr.close()
    for code, err in results:
        assert code == 0 or "another build" in err, (code, err)
    assert any(code == 0 for code, _ in results), results
    assert len(Index.load(index)) == 3
    assert np.all([not p.name.endswith(".tmp") for p in index.iterdir()])
