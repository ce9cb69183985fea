"""``nodes.recommend_logic`` without ComfyUI: an index name never leads out of the index folders."""

from __future__ import annotations

import torch
from pack_import import import_pack_module


def test_index_names_resolve_only_inside_their_folders(pack, tmp_path):
    logic = import_pack_module("nodes.recommend_logic")
    indexes = tmp_path / "indexes"
    for index in (indexes / "family", indexes / "group" / "trip", tmp_path / "outside"):
        index.mkdir(parents=True)
        (index / "manifest.json").write_text("{}")
    (indexes / "linked").symlink_to(tmp_path / "outside")
    folders = [str(indexes)]
    assert logic.resolve_index("family", folders) == str((indexes / "family").resolve())
    assert logic.resolve_index("group/trip", folders) == str((indexes / "group" / "trip").resolve())
    for name in ("../outside", "group/../../outside", str(tmp_path / "outside"), "linked"):
        assert logic.resolve_index(name, folders) is None, name
    assert logic.index_options(folders)[1:] == ["family", "group/trip"]  # not the link


def test_k_above_the_candidates_returns_them_all_and_says_so(pack, cat_pair):
    """k = 5 with two colour candidates: both come back, and a note for the page says why there
    are fewer than k (before, only the count of the scores' lines told)."""
    from deepexemplar_core.backbones import load_backbone
    from deepexemplar_core.recommend import as_describer

    logic = import_pack_module("nodes.recommend_logic")
    target, reference = cat_pair
    pool = torch.cat([reference, reference.flip(1)]).movedim(-1, 1)
    notes = []
    found, keyframes = logic.recommend_per_shot(
        target.movedim(-1, 1), as_describer(load_backbone("lite")), node="RecommendReference",
        notes=notes, index_path=None, candidates=pool, k=5, beta=0.25, restrict_class=True)
    assert found.top.shape[0] == 2 and keyframes == "0=1,0=2"
    assert notes == [("k is 5, but only 2 colour candidate(s) could be ranked: all of them are "
                      "returned, best first.")]
    notes.clear()
    logic.recommend_per_shot(
        target.movedim(-1, 1), as_describer(load_backbone("lite")), node="RecommendReference",
        notes=notes, index_path=None, candidates=pool, k=2, beta=0.25, restrict_class=True)
    assert notes == []
