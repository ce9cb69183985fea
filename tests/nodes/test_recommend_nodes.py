"""``RecommendReference`` inside an in-process ComfyUI (CPU), on real photos.

Skipped with the reason when ``$COMFYUI_DIR`` does not point at a ComfyUI checkout.
"""

from __future__ import annotations

import pytest
import torch
from pack_import import import_pack_module

pytestmark = pytest.mark.comfyui


@pytest.fixture(scope="module")
def nodes(comfy):
    return import_pack_module("nodes.recommend_nodes")


def _run(node_cls, *args, **kwargs):
    from comfy_api.latest import io

    clone = node_cls.PREPARE_CLASS_CLONE({io.Hidden.unique_id: "9"})
    return clone.execute(*args, **kwargs).result


@pytest.fixture(scope="module")
def backbone(comfy):
    v3 = comfy[0]
    return _run(v3.LoadGrayVGG, v3.logic.BUILTIN_LITE, False)[0]


def _resize(image: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    chw = image.movedim(-1, 1)
    out = torch.nn.functional.interpolate(chw, size=like.shape[1:3], mode="bilinear",
                                          antialias=True)
    return out.clamp(0, 1).movedim(1, -1)


def _coffee() -> torch.Tensor:
    from skimage import data

    return torch.from_numpy(data.coffee().copy()).float()[None] / 255.0


def test_registered_in_the_extension_with_tooltips(comfy, nodes):
    import asyncio

    pack = import_pack_module("nodes.v3_nodes")
    listed = asyncio.run(pack.DeepExemplarExtension().get_node_list())
    assert nodes.RecommendReference in listed
    info = nodes.RecommendReference.GET_NODE_INFO_V1()
    assert info["name"] == "DeepExemplar_RecommendReference"
    assert info["category"] == "image/colorization" and info["description"]
    for section in ("required", "optional"):
        for name, (_, options) in info["input"][section].items():
            assert options.get("tooltip"), name
    assert all(info["output_tooltips"])


def test_candidates_batch_picks_the_cat(nodes, backbone, cat_pair):
    target, reference = cat_pair
    decoy = _resize(_coffee(), reference)
    gray = reference.mean(-1, keepdim=True).expand_as(reference)
    candidates = torch.cat([decoy, gray, reference])
    best, top, scores, keyframes = _run(nodes.RecommendReference, target, backbone,
                                        nodes.NO_INDEX, 2, 0.25, True, candidates)
    torch.testing.assert_close(best, reference)
    assert top.shape == (2, *reference.shape[1:])
    torch.testing.assert_close(top[:1], reference, atol=0.02, rtol=0)
    lines = scores.splitlines()
    assert len(lines) == 3 and lines[1].endswith("candidate 2") and lines[2].endswith("candidate 0")
    assert keyframes == "0=1,0=2"  # a photo: both picks from its first frame on


def test_each_shot_of_a_clip_picks_its_own(nodes, backbone):
    """A gray clip of two shots (4 frames panning the astronaut, then 4 the coffee): each shot's
    first frame picks its photo; the schedule names them by their place in top_k."""
    from skimage import data

    photos, frames = [], []
    for name in ("astronaut", "coffee", "chelsea"):
        rgb = torch.from_numpy(getattr(data, name)().copy()).float().movedim(-1, 0)[None] / 255
        big = torch.nn.functional.interpolate(rgb, size=(88, 112), mode="area")[0]
        photos.append(big[:, 4:84, 8:104])
        if name != "chelsea":
            frames += [big[:, 2 * j:2 * j + 80, 3 * j:3 * j + 96].mean(0, keepdim=True)
                       for j in range(4)]
    clip = torch.stack(frames).expand(-1, 3, -1, -1).movedim(1, -1)
    candidates = torch.stack(photos[::-1]).movedim(1, -1)  # cat, coffee, astronaut
    best, top, scores, keyframes = _run(nodes.RecommendReference, clip, backbone, nodes.NO_INDEX,
                                        1, 0.25, True, candidates)
    assert keyframes == "0=1,4=2", (keyframes, scores)
    torch.testing.assert_close(top, candidates[[2, 1]], atol=0.02, rtol=0)
    assert scores.splitlines()[0] == "shot from frame 0:" and "shot from frame 4:" in scores
    # the video workflow: top_k -> Colorize's reference, keyframes -> its keyframes
    v3 = import_pack_module("nodes.v3_nodes")
    colornet = _run(v3.LoadColorNet, v3.logic.NO_COLORNET, False)[0]
    image, choice = _run(v3.ExemplarColorize, clip, top, backbone, colornet, 1.0, 64, "guided",
                         None, None, None, keyframes)
    assert image.shape == clip.shape
    colours = [choice[f].reshape(-1, 3).unique(dim=0) for f in range(8)]
    red, green = torch.tensor([[0.90, 0.10, 0.29]]), torch.tensor([[0.24, 0.71, 0.29]])
    assert all(torch.allclose(c, red, atol=1e-3) for c in colours[:4])
    assert all(torch.allclose(c, green, atol=1e-3) for c in colours[4:])


def test_index_from_the_models_folder(nodes, backbone, cat_pair, tmp_path):
    import folder_paths
    from PIL import Image

    from deepexemplar_core.recommend import build_index

    target, reference = cat_pair
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray((reference[0].numpy() * 255).round().astype("uint8")).save(photos / "cat.png")
    Image.fromarray((_coffee()[0].numpy() * 255).round().astype("uint8")).save(photos / "coffee.png")
    indexes = tmp_path / "indexes"
    build_index(photos, indexes / "family", backbone)
    folder_paths.add_model_folder_path(nodes.INDEX_FOLDER, str(indexes))
    try:
        assert "family" in nodes.index_options(folder_paths.get_folder_paths(nodes.INDEX_FOLDER))
        best, top, scores, _ = _run(nodes.RecommendReference, target, backbone, "family", 2,
                                    0.25, True)
        assert best.shape == reference.shape
        torch.testing.assert_close(best, reference, atol=1 / 255 + 1e-6, rtol=0)
        assert top.shape[0] == 2 and str(photos / "cat.png") in scores.splitlines()[1]
        with pytest.raises(ValueError, match="Recommend Reference: the index 'gone'"):
            _run(nodes.RecommendReference, target, backbone, "gone", 2, 0.25, True)
    finally:
        folder_paths.folder_names_and_paths[nodes.INDEX_FOLDER][0].remove(str(indexes))


def test_index_names_and_entries_stay_inside_their_folders(nodes, backbone, cat_pair, tmp_path):
    """An index name with ``..`` never leaves the index folders; an index whose manifest was
    altered to point outside its photo folder is refused, the file never read."""
    import json
    import shutil

    import folder_paths
    from PIL import Image

    from deepexemplar_core.recommend import build_index

    target, reference = cat_pair
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray((reference[0].numpy() * 255).round().astype("uint8")).save(photos / "cat.png")
    Image.fromarray((_coffee()[0].numpy() * 255).round().astype("uint8")).save(photos / "coffee.png")
    build_index(photos, tmp_path / "outside", backbone)
    indexes = tmp_path / "indexes"
    shutil.copytree(tmp_path / "outside", indexes / "tampered")
    manifest = json.loads((indexes / "tampered" / "manifest.json").read_text())
    for entry in manifest["entries"]:
        entry["path"] = "../" * 12 + "etc/passwd"
    (indexes / "tampered" / "manifest.json").write_text(json.dumps(manifest))
    folder_paths.add_model_folder_path(nodes.INDEX_FOLDER, str(indexes))
    try:
        assert nodes.resolve_index("../outside", [str(indexes)]) is None
        assert nodes.resolve_index("tampered", [str(indexes)]) == str((indexes / "tampered").resolve())
        with pytest.raises(ValueError, match="the index '../outside' is no longer there"):
            _run(nodes.RecommendReference, target, backbone, "../outside", 2, 0.25, True)
        with pytest.raises(ValueError, match="outside the indexed folder"):
            _run(nodes.RecommendReference, target, backbone, "tampered", 2, 0.25, True)
    finally:
        folder_paths.folder_names_and_paths[nodes.INDEX_FOLDER][0].remove(str(indexes))


def test_without_candidates_or_with_only_gray_ones(nodes, backbone, cat_pair):
    target, _ = cat_pair
    with pytest.raises(ValueError, match="Recommend Reference: no candidates"):
        _run(nodes.RecommendReference, target, backbone, nodes.NO_INDEX, 1, 0.25, True)
    with pytest.raises(ValueError, match="no colour candidate"):
        _run(nodes.RecommendReference, target, backbone, nodes.NO_INDEX, 1, 0.25, True,
             target.expand(2, -1, -1, -1))
