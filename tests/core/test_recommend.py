"""Reference recommendation on real photos: ranking, index build/update/resume, refusals, bad
input, and the index/recommend/colorize commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepexemplar_core.recommend import (
    Index,
    IndexError_,
    IndexMismatchError,
    LiteDescriber,
    build_index,
    pick_reference,
    recommend,
    recommend_from_images,
)
from deepexemplar_core.recommend.descriptors import cell_histograms
from deepexemplar_core.recommend.search import rank

SIDE = 256  # photos are stored with this long side, to keep the tests fast


def _photo(name: str) -> np.ndarray:
    """A registry photo as ``(H, W, 3)`` uint8."""
    import matplotlib
    import sklearn
    from skimage import data

    if name in ("china", "flower"):
        return np.asarray(Image.open(Path(sklearn.__file__).parent / f"datasets/images/{name}.jpg"))
    if name == "grace_hopper":
        return np.asarray(Image.open(
            Path(matplotlib.__file__).parent / "mpl-data/sample_data/grace_hopper.jpg"))
    if name == "motorcycle_left":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()[..., :3]


NON_CATS = ("astronaut", "coffee", "rocket", "china", "flower", "grace_hopper", "motorcycle_left")


def _save(array: np.ndarray, path: Path, side: int = SIDE) -> Path:
    image = Image.fromarray(array)
    scale = side / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.BICUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _gray(array: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(array).convert("L"))


def _flip_crop(array: np.ndarray) -> np.ndarray:
    h, w = array.shape[:2]
    return np.ascontiguousarray(array[h // 10: h - h // 20, w // 12: w - w // 8][:, ::-1])


@pytest.fixture(scope="module")
def describer() -> LiteDescriber:
    from deepexemplar_core.backbones import load_lite_backbone

    return LiteDescriber(load_lite_backbone())


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    """Registry photos plus a flipped and cropped copy of the astronaut and the right part of
    the cat photo (mirrored); neither the astronaut nor the left part of the cat are in it."""
    root = tmp_path_factory.mktemp("photos")
    for name in NON_CATS:
        if name != "astronaut":
            _save(_photo(name), root / f"{name}.jpg")
    _save(_flip_crop(_photo("astronaut")), root / "sub" / "astronaut_copy.png")
    cat = _photo("chelsea")
    _save(np.ascontiguousarray(cat[:, cat.shape[1] // 3:][:, ::-1]), root / "cat_right.jpg")
    return root


@pytest.fixture(scope="module")
def index_path(collection, describer, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index") / "photos.index"
    build_index(collection, out, describer, batch_size=4)
    return out


def test_flipped_cropped_copy_ranks_first(index_path, describer, tmp_path):
    target = _save(_gray(_photo("astronaut")), tmp_path / "astronaut_gray.png")
    found = recommend(Index.load(index_path, describer), target, k=3)
    assert found[0].path.name == "astronaut_copy.png"
    assert found[0].path.is_absolute()
    assert found[0].score > found[1].score
    assert [r.score for r in found] == sorted((r.score for r in found), reverse=True)


def test_cat_query_ranks_the_cat_above_non_cats(index_path, describer, tmp_path):
    cat = _photo("chelsea")
    target = _save(_gray(cat[:, : cat.shape[1] * 2 // 3]), tmp_path / "cat_left_gray.png")
    found = recommend(Index.load(index_path, describer), target, k=len(NON_CATS) + 1,
                      restrict_class=False)
    names = [r.path.stem for r in found]
    assert names[0] == "cat_right", names
    # Each term on its own already prefers the cat.
    cat_result = found[0]
    for other in found[1:]:
        assert cat_result.global_score > other.global_score
        assert cat_result.local_score > other.local_score


def test_matching_luminance_statistics_rank_higher(describer):
    photo = _photo("coffee")
    target = torch.from_numpy(_gray(photo).copy()).float()[None] / 255.0
    rgb = torch.from_numpy(photo).permute(2, 0, 1).float() / 255.0
    crop = rgb[:, 20:-20, 30:-30]
    darker = crop ** 2.2  # same content, much darker luminance statistics
    found = recommend_from_images(target, [darker, crop], k=2, backbone=describer)
    assert [r.row for r in found] == [1, 0]
    assert found[0].histogram_score > found[1].histogram_score + 0.2
    # Without the luminance term the order of the two may differ: the term is what is tested.
    assert found[0].score - found[1].score > (found[0].local_score - found[1].local_score)


def test_histograms_and_correlation_known_values():
    l = torch.zeros(1, 1, 224, 224)
    l[..., :112] = 95.0  # left half bright: cells in columns 0..2 bright, column 3 mixed
    h = cell_histograms(l)
    assert torch.allclose(h.sum(-1), torch.ones(1, 49))
    assert h[0, 0, 9] == 1.0 and h[0, 6, 0] == 1.0
    assert torch.isclose(h[0, 3, 9], torch.tensor(0.5))


def test_interrupted_build_resumes_and_gives_the_same_index(collection, describer, tmp_path):
    out = tmp_path / "resume.index"
    calls = []

    def interrupt(done: int, total: int) -> None:
        calls.append(done)
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index(collection, out, describer, batch_size=2, checkpoint_every=2, progress=interrupt)
    assert not (out / "manifest.json").exists()
    assert len(list((out / "partial").glob("chunk-*.safetensors"))) == 2
    report = build_index(collection, out, describer, batch_size=2, checkpoint_every=2)
    total = len(list(collection.rglob("*.*")))
    assert report.resumed == 4 and report.computed == total - 4 and report.indexed == total
    assert not (out / "partial").exists()
    fresh = build_index(collection, tmp_path / "fresh.index", describer, batch_size=4)
    a, b = Index.load(out, describer), Index.load(fresh.index, describer)
    assert [e["path"] for e in a.entries] == [e["path"] for e in b.entries]
    assert torch.allclose(a.data.global_, b.data.global_, atol=1e-4)


def test_changed_folder_updates_only_what_changed(collection, describer, tmp_path):
    root = tmp_path / "photos"
    shutil.copytree(collection, root)
    out = tmp_path / "changing.index"
    first = build_index(root, out, describer)
    assert first.added == first.indexed == 8 and first.pca_refitted
    (root / "rocket.jpg").unlink()
    _save(_photo("grace_hopper")[::-1].copy(), root / "china.jpg")       # modified content
    _save(_flip_crop(_photo("coffee")), root / "new" / "coffee_copy.png")  # added

    def stop(done: int, total: int) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # an update interrupted after one image
        build_index(root, out, describer, batch_size=1, checkpoint_every=1, progress=stop)
    assert len(Index.load(out, describer)) == 8  # the previous index is intact
    report = build_index(root, out, describer)
    assert (report.added, report.changed, report.deleted) == (1, 1, 1)
    assert (report.resumed, report.computed) == (1, 1)
    assert report.unchanged == 6 and report.indexed == 8
    index = Index.load(out, describer)
    paths = {e["path"] for e in index.entries}
    assert "rocket.jpg" not in paths and "new/coffee_copy.png" in paths
    target = _save(_gray(_photo("coffee")), tmp_path / "coffee_gray.png")
    found = recommend(index, target, k=2)
    assert {r.path.name for r in found} == {"coffee.jpg", "coffee_copy.png"}
    again = build_index(root, out, describer)
    assert again.computed == 0 and again.unchanged == 8


def test_other_backbone_weights_or_version_is_refused(index_path, describer, tmp_path):
    copy = tmp_path / "copy.index"
    shutil.copytree(index_path, copy)
    other = LiteDescriber(describer.backbone)
    other.weights_sha256 = "0" * 64
    with pytest.raises(IndexMismatchError, match="other 'lite' weights"):
        Index.load(copy, other)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["backbone"]["family"] = "paper"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match="built with the 'paper' backbone"):
        Index.load(copy, describer)
    manifest["backbone"]["family"], manifest["version"] = "lite", 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match="format version 99"):
        Index.load(copy, describer)
    with pytest.raises(IndexMismatchError, match="rebuild"):
        build_index(tmp_path, copy, other)
    with pytest.raises(IndexError_, match="not a reference index"):
        Index.load(tmp_path, describer)


def test_bad_input_is_skipped_with_reasons_and_duplicates_grouped(describer, tmp_path):
    root = tmp_path / "messy"
    _save(_photo("coffee"), root / "coffee.jpg")
    (root / "again").mkdir()
    shutil.copy(root / "coffee.jpg", root / "again" / "coffee_dup.jpg")
    _save(_photo("rocket"), root / "rocket.png")
    (root / "notes.txt").write_text("not an image")
    (root / "fake.jpg").write_text("not an image either")
    (root / "empty.png").write_bytes(b"")
    gray_target = _save(_gray(_photo("astronaut")), root / "astronaut_gray.png")
    report = build_index(root, tmp_path / "messy.index", describer)
    reasons = dict(report.skipped)
    assert set(reasons) == {"fake.jpg", "empty.png", "astronaut_gray.png"}
    assert "unreadable" in reasons["fake.jpg"] and "empty" in reasons["empty.png"]
    assert "gray" in reasons["astronaut_gray.png"]
    assert report.duplicates == [["again/coffee_dup.jpg", "coffee.jpg"]]
    index = Index.load(report.index, describer)
    found = recommend(index, gray_target, k=5)  # the gray target itself is in the folder
    names = [r.path.name for r in found]
    assert len(names) == 2 and "rocket.png" in names and "astronaut_gray.png" not in names
    coffee_target = recommend(index, root / "coffee.jpg", k=5)  # a colour file of the index
    assert [r.path.name for r in coffee_target] == ["rocket.png"]


def test_one_image_and_empty_folders(describer, tmp_path):
    one = tmp_path / "one"
    _save(_photo("flower"), one / "flower.jpg")
    report = build_index(one, tmp_path / "one.index", describer)
    assert report.indexed == 1
    target = _save(_gray(_photo("astronaut")), tmp_path / "t.png")
    assert pick_reference(report.index, target) == one / "flower.jpg"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no photos")
    with pytest.raises(IndexError_, match="no usable colour image"):
        build_index(empty, tmp_path / "empty.index", describer)
    assert not (tmp_path / "empty.index").exists()
    with pytest.raises(IndexError_, match="not a folder"):
        build_index(tmp_path / "missing", tmp_path / "x.index", describer)


def test_rank_validates_arguments(index_path, describer):
    index = Index.load(index_path, describer)
    with pytest.raises(ValueError, match="k: expected"):
        rank(index.data, index.data, k=0)
    with pytest.raises(ValueError, match="beta"):
        rank(index.data, index.data, beta=float("nan"))
    with pytest.raises(ValueError, match="target_image"):
        recommend(index, torch.rand(2, 3, 8, 8))


def test_commands_index_recommend_and_colorize(collection, tmp_path, capsys, monkeypatch):
    from deepexemplar_core import cli
    from deepexemplar_core.image_io import read_metadata

    out = tmp_path / "cli.index"
    assert cli.main(["index", str(collection), "-o", str(out), "--family", "lite",
                     "--device", "cpu", "-q", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["indexed"] == 8 and summary["backbone"] == "lite"
    cat = _photo("chelsea")
    target = _save(_gray(cat[:, : cat.shape[1] * 2 // 3]), tmp_path / "cat.png", side=96)
    assert cli.main(["recommend", str(target), "--index", str(out), "-k", "3", "--json",
                     "--device", "cpu"]) == 0
    ranking = json.loads(capsys.readouterr().out)[str(target)]
    assert Path(ranking[0]["path"]) == collection / "cat_right.jpg"
    assert ranking[0]["score"] >= ranking[1]["score"] >= ranking[2]["score"]
    assert cli.main(["recommend", str(tmp_path / "nope.png"), "--index", str(out)]) == 4
    result = tmp_path / "colour.png"
    assert cli.main(["colorize", str(target), "--reference-index", str(out), "-o", str(result),
                     "--family", "lite", "--size", "64", "--device", "cpu", "-q"]) == 0
    meta = read_metadata(result)
    assert meta["deepexemplar:reference"] == str(collection / "cat_right.jpg")
    assert meta["deepexemplar:reference_index"] == str(out)
    capsys.readouterr()
    assert cli.main(["colorize", str(target), "-o", str(result)]) == cli.EXIT_USAGE
    assert "give a colour reference (-r REF" in capsys.readouterr().err


def _unit_searchable(n: int, seed: int):
    from deepexemplar_core.recommend.search import Searchable, normalize_histograms

    gen = torch.Generator().manual_seed(seed)
    unit = lambda *s: torch.nn.functional.normalize(torch.randn(*s, generator=gen), dim=-1)
    return Searchable(torch.randint(0, 3, (n, 5), generator=gen), unit(n, 32), unit(n, 49, 16),
                      normalize_histograms(torch.rand(n, 49, 10, generator=gen)))


@pytest.mark.parametrize("restrict", [False, True])
def test_faiss_backend_agrees_with_exact_search(restrict):
    pytest.importorskip("faiss", reason="the optional faiss package is not installed")
    data, query = _unit_searchable(3000, 0), _unit_searchable(1, 1)
    exclude = torch.zeros(3000, dtype=torch.bool)
    exclude[::7] = True
    exact = rank(query, data, k=10, restrict_class=restrict, exclude=exclude, backend="torch")
    fast = rank(query, data, k=10, restrict_class=restrict, exclude=exclude, backend="faiss")
    assert [r[0] for r in fast] == [r[0] for r in exact]
    assert all(r[0] % 7 for r in fast)


def test_paper_backbone_needs_its_classifier_and_auto_falls_back_to_lite(tmp_path, monkeypatch):
    from deepexemplar_core.backbones import GrayVGG19BN
    from deepexemplar_core.recommend import as_describer, load_describer
    from deepexemplar_core.weights import WeightsNotFoundError

    with pytest.raises(ValueError, match="no classifier"):
        as_describer(GrayVGG19BN(with_classifier=False))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsNotFoundError):
        load_describer("paper")
    assert load_describer("auto").family == "lite"
    with pytest.raises(TypeError, match="backbone: expected"):
        as_describer(42)


def test_paper_describer_gives_fc6_and_a_7x7_relu5_4_grid():
    from deepexemplar_core.backbones import GrayVGG19BN
    from deepexemplar_core.recommend import VGGDescriber

    torch.manual_seed(0)
    describer = VGGDescriber(GrayVGG19BN(with_classifier=True).eval())  # random weights
    assert describer.family == "paper" and len(describer.weights_sha256) == 64
    logits, global_, local = describer(torch.rand(2, 1, 32, 48) * 100)  # small: shapes only
    assert logits.shape == (2, 1000) and global_.shape == (2, 4096)
    assert local.shape == (2, 512, 7, 7) and bool((global_ >= 0).all())
