"""The V3 node classes inside an in-process ComfyUI (CPU), on real photos and generated weights.

Skipped with the reason when ``$COMFYUI_DIR`` does not point at a ComfyUI checkout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.comfyui

SIZE = 64
NODE_IDS = ["DeepExemplar_LoadGrayVGG", "DeepExemplar_LoadColorNet", "DeepExemplar_DenseMatch",
            "DeepExemplar_SimilarityMaps", "DeepExemplar_ExemplarColorize"]


@pytest.fixture(scope="module")
def v3(comfy):
    return comfy[0]


@pytest.fixture(scope="module")
def mm(comfy):
    return comfy[1]


def _run(node_cls, *args):
    """Execute like ComfyUI does: on a class clone with the hidden inputs set."""
    from comfy_api.latest import io

    clone = node_cls.PREPARE_CLASS_CLONE({io.Hidden.unique_id: "7"})
    return clone.execute(*args).result


@pytest.fixture(scope="module")
def lite_models(v3):
    backbone = _run(v3.LoadGrayVGG, v3.logic.BUILTIN_LITE, False)[0]
    colornet = _run(v3.LoadColorNet, v3.logic.NO_COLORNET, False)[0]
    return backbone, colornet


@pytest.fixture()
def weights_folder(v3, tiny_paper_weights):
    """Register the generated weights' folder as an extra models/deepexemplar path."""
    import folder_paths

    folder = str(tiny_paper_weights["dir"])
    folder_paths.add_model_folder_path(v3.logic.WEIGHTS_FOLDER, folder)
    folder_paths.filename_list_cache.clear()
    yield tiny_paper_weights
    folder_paths.folder_names_and_paths[v3.logic.WEIGHTS_FOLDER][0].remove(folder)
    folder_paths.filename_list_cache.clear()


def _chroma(image: torch.Tensor) -> float:
    return float((image.amax(-1) - image.amin(-1)).mean())


def test_schemas_ids_category_tooltips(v3):
    assert [n.GET_SCHEMA().node_id for n in v3.NODES] == NODE_IDS
    for node in v3.NODES:
        info = node.GET_NODE_INFO_V1()
        assert info["category"] == "image/colorization" and info["description"]
        for section in ("required", "optional"):
            for name, (_, options) in info["input"].get(section, {}).items():
                assert options.get("tooltip"), f"{info['name']}.{name} has no tooltip"
        assert all(info["output_tooltips"]), info["name"]


def test_live_schemas_equal_snapshot(v3):
    """data/object_info.json (used by the ComfyUI-free workflow tests) matches the nodes."""
    snapshot = json.loads((Path(__file__).parent / "data" / "object_info.json").read_text())
    for node in v3.NODES:
        live = json.loads(json.dumps(node.GET_NODE_INFO_V1()))
        name = live["name"]
        for key in ("input", "input_order", "output", "output_name", "display_name"):
            assert live[key] == snapshot[name][key], (
                f"{name}.{key} changed: regenerate with `python tests/nodes/comfy_server.py`")


def test_weights_folder_registered(v3):
    import folder_paths

    paths = folder_paths.get_folder_paths(v3.logic.WEIGHTS_FOLDER)
    assert any(Path(p) == Path(folder_paths.models_dir) / "deepexemplar" for p in paths)


def test_pack_creates_its_weights_folder(v3, tmp_path, monkeypatch):
    import folder_paths

    monkeypatch.setattr(folder_paths, "models_dir", str(tmp_path / "models"))
    v3.register_weights_folder()
    assert (tmp_path / "models" / "deepexemplar").is_dir()
    folder_paths.folder_names_and_paths[v3.logic.WEIGHTS_FOLDER][0].remove(
        str(tmp_path / "models" / "deepexemplar"))


def test_loaders_list_only_files_of_their_network(v3, weights_folder, tmp_path):
    """By manifest (``network``), else by tensor names; files of unknown content stay listed."""
    import folder_paths

    from deepexemplar_core.weights import write_manifest

    folder = weights_folder["dir"]
    lite_named = folder / "renamed_backbone.safetensors"  # gray VGG keys, manifest says lite
    lite_named.write_bytes(weights_folder["gray_vgg"].read_bytes())
    write_manifest(lite_named, network="EfficientNetLite0", family="lite", source="test",
                   source_sha256="0" * 64, licence="test")
    (folder / "mystery.safetensors").write_bytes(b"not safetensors")
    folder_paths.filename_list_cache.clear()
    try:
        def options(node):
            return node.GET_NODE_INFO_V1()["input"]["required"]["weights"][1]["options"]

        gray, colour = options(v3.LoadGrayVGG), options(v3.LoadColorNet)
        assert weights_folder["gray_vgg"].name in gray
        assert weights_folder["colornet"].name not in gray
        assert weights_folder["colornet"].name in colour
        assert weights_folder["gray_vgg"].name not in colour
        assert lite_named.name not in gray and lite_named.name not in colour
        assert "mystery.safetensors" in gray and "mystery.safetensors" in colour
    finally:
        for path in (lite_named, lite_named.with_name("renamed_backbone.manifest.json"),
                     folder / "mystery.safetensors"):
            path.unlink()
        folder_paths.filename_list_cache.clear()


def test_loader_lists_files_and_fingerprints_them(v3, weights_folder):
    options = v3.LoadGrayVGG.GET_NODE_INFO_V1()["input"]["required"]["weights"][1]["options"]
    assert options[:2] == [v3.logic.BUILTIN_LITE, v3.logic.PAPER_BACKBONE_AUTO]
    assert weights_folder["gray_vgg"].name in options
    name = weights_folder["gray_vgg"].name
    before = v3.LoadGrayVGG.fingerprint_inputs(name, False)
    stat = weights_folder["gray_vgg"].stat()
    os.utime(weights_folder["gray_vgg"], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert v3.LoadGrayVGG.fingerprint_inputs(name, False) != before


def test_lite_chain_all_nodes(v3, mm, lite_models, cat_pair):
    backbone, colornet = lite_models
    assert backbone.patcher is not None and colornet.patcher is None  # weights-free colorizer
    target, reference = cat_pair
    frames = torch.cat([target, target.flip(2)])
    corr = _run(v3.DenseMatch, frames, reference, backbone, SIZE)[0]
    sim, maps, warped, conf, report = _run(v3.SimilarityMaps, corr)
    assert report.startswith("1 reference; mean confidence")
    h, w = corr.match.work_size
    assert maps.shape == (2, 2 * h, 5 * w, 3) and warped.shape == (2, h, w, 3)
    assert conf.shape == frames.shape[:3] and 0 <= float(conf.min()) <= float(conf.max()) <= 1
    assert _chroma(warped) > 0.02  # the reference's colours were carried over
    args = (frames, reference, backbone, colornet, 1.0, SIZE, "guided")
    direct = _run(v3.ExemplarColorize, *args)[0]
    reused = _run(v3.ExemplarColorize, *args, corr, sim)[0]
    assert direct.shape == frames.shape and direct.device == mm.intermediate_device()
    torch.testing.assert_close(reused, direct)
    assert _chroma(direct) > 0.02


def test_dense_match_takes_a_reference_batch_and_regions(v3, lite_models, cat_pair):
    """The nodes pass a reference batch and its regions through Dense Match: Colorize fed its
    correspondence gives Colorize's own pixels and choice map."""
    backbone, colornet = lite_models
    target, reference = cat_pair
    references = torch.cat([reference, reference.flip(2).roll(1, -1)])  # a colour-swapped twin
    regions = torch.zeros(1, *target.shape[1:3])
    regions[:, :, : target.shape[2] // 2] = 1.0  # the first reference on the left half only
    corr = _run(v3.DenseMatch, target, references, backbone, SIZE, regions)[0]
    assert len(corr.match) == 2
    report = _run(v3.SimilarityMaps, corr)[4]
    assert report.startswith("2 references (fused maps shown)"), report
    args = (target, references, backbone, colornet, 1.0, SIZE, "guided")
    image, choice = _run(v3.ExemplarColorize, *args, None, None, regions)
    staged = _run(v3.ExemplarColorize, *args, corr)
    assert torch.equal(staged[0], image) and torch.equal(staged[1], choice)
    red = torch.tensor([0.90, 0.10, 0.29])
    first = (choice[0] - red.to(choice)).abs().sum(-1) < 1e-3
    assert bool(first[:, : target.shape[2] // 2 - 4].all()) and not bool(
        first[:, target.shape[2] // 2 + 4:].any())
    with pytest.raises(ValueError, match=r"Colorize: reference: 1 image\(s\), but the match "
                                         r"was computed with 2"):
        _run(v3.ExemplarColorize, target, reference, backbone, colornet, 1.0, SIZE, "guided",
             corr)


def test_keyframes_choose_the_references_of_the_batch_per_frame(v3, lite_models, cat_pair):
    """Colorize's optional ``keyframes`` (a STRING socket): frames 0..1 with reference 1 of the
    batch, frames 2..3 with reference 2; the choice output names them by batch position."""
    target, reference = cat_pair
    frames = torch.cat([target, target.flip(2)] * 2)
    references = torch.cat([reference, reference.flip(2).roll(1, -1)])  # two distinct colours
    args = (frames, references, *lite_models, 1.0, SIZE, "guided", None, None, None)
    image, choice = _run(v3.ExemplarColorize, *args, "0=1,2=2")
    assert image.shape == frames.shape == choice.shape
    first, second = choice[:2].reshape(-1, 3).unique(dim=0), choice[2:].reshape(-1, 3).unique(dim=0)
    assert len(first) == len(second) == 1 and not torch.equal(first, second)
    with pytest.raises(ValueError, match=r"DeepExemplar Colorize: 'keyframes': frame 2 names "
                                         r"reference '3', but the reference batch holds 2"):
        _run(v3.ExemplarColorize, *args, "0=1,2=3")


def test_paper_chain_on_generated_weights(v3, weights_folder, cat_pair):
    backbone = _run(v3.LoadGrayVGG, weights_folder["gray_vgg"].name, False)[0]
    colornet = _run(v3.LoadColorNet, v3.logic.PAPER_COLORNET_AUTO, False)[0]
    assert backbone.family == "paper" and colornet.patcher is not None
    target, reference = cat_pair
    out = _run(v3.ExemplarColorize, target, reference, backbone, colornet, 1.0, SIZE, "bicubic")[0]
    assert out.shape == target.shape and bool(torch.isfinite(out).all())


@pytest.mark.parametrize(
    ("target", "reference", "message"),
    [
        ("rgba", "colour",
         r"DeepExemplar Colorize: 'target' \(image 0 of the batch\) has 4 channels"),
        ("gray", "gray", r"DeepExemplar Colorize: reference: has no colour.*swapped"),
    ],
)
def test_bad_inputs_raise_node_errors(v3, lite_models, cat_pair, target, reference, message):
    gray, colour = cat_pair
    images = {"gray": gray, "colour": colour, "batch": colour.expand(2, -1, -1, -1),
              "rgba": torch.cat([gray, torch.ones_like(gray[..., :1])], -1)}
    with pytest.raises(ValueError, match=message):
        _run(v3.ExemplarColorize, images[target], images[reference], *lite_models, 1.0, SIZE,
             "guided")


def test_mismatched_correspondence_is_refused(v3, lite_models, cat_pair):
    target, reference = cat_pair
    corr = _run(v3.DenseMatch, target, reference, lite_models[0], SIZE)[0]
    with pytest.raises(ValueError, match=r"DeepExemplar Colorize: match: computed for 1 target.*"
                                         r"got 3.*connect the same target images to Dense Match"):
        _run(v3.ExemplarColorize, target.expand(3, -1, -1, -1), reference, *lite_models, 1.0, SIZE,
             "guided", corr)


def test_interrupt_stops_the_node(v3, mm, lite_models, cat_pair):
    target, reference = cat_pair
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            _run(v3.DenseMatch, target, reference, lite_models[0], SIZE)
    finally:
        mm.interrupt_current_processing(False)


def test_missing_file_names_the_folder(v3):
    with pytest.raises(ValueError,
                       match=r"Load Colorization Network: the file 'gone.safetensors' is no longer"):
        _run(v3.LoadColorNet, "gone.safetensors", False)
